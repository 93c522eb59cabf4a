"""`--ssh` through the session: a Unix socket per agent id, each connection a ForwardAgent call.

The builder binds an agent socket into `RUN --mount=type=ssh`; for a session build that
socket is ours, in a private directory, and every connection to it becomes one
`moby.sshforward.v1.SSH/ForwardAgent` stream (id in the `buildkit.ssh.id` metadata), bytes
both ways in BytesMessage frames until either side closes (buildkit sshforward/copy.go).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from dockyard.session import methods
from dockyard.session.h2grpc import GrpcError

if TYPE_CHECKING:
    from dockyard.session.manager import Session

_log = logging.getLogger("dockyard.session")


async def check_agent(session: Session, ident: str) -> bool:
    from dockyard.session.proto import session_pb2

    if not session.supports(methods.SSH_CHECK_AGENT):
        return False
    req = session_pb2.CheckAgentRequest(ID=ident).SerializeToString()
    try:
        await session.conn.unary(methods.SSH_CHECK_AGENT, req, timeout=15)
    except GrpcError:
        return False
    return True


async def _pump(
    session: Session, ident: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    from dockyard.session.proto import session_pb2

    Msg = session_pb2.BytesMessage
    call = session.conn.open(methods.SSH_FORWARD_AGENT, {methods.KEY_SSH_ID: [ident]})

    async def upstream() -> None:
        while data := await reader.read(32 << 10):
            await call.send(Msg(data=data).SerializeToString())
        await call.close_send()

    async def downstream() -> None:
        while (raw := await call.recv()) is not None:
            writer.write(Msg.FromString(raw).data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()

    up = asyncio.create_task(upstream())
    try:
        await downstream()
        await up
    except (GrpcError, ConnectionError) as exc:
        _log.debug("ssh forward %s: %s", ident, exc)
    finally:
        up.cancel()
        with contextlib.suppress(BaseException):
            await up
        call.cancel()
        writer.close()


@contextlib.asynccontextmanager
async def agent_sockets(
    session: Session, idents: list[str], scratch: Path
) -> AsyncIterator[dict[str, str]]:
    """Sockets on this host for the agents the client serves among `idents`, by id. A
    socket path must fit sun_path (108 bytes), so fall back to /tmp for a deep root."""
    found = [i for i in idents if await check_agent(session, i)]
    if not found:
        yield {}
        return
    base = Path(tempfile.mkdtemp(prefix="ssh-", dir=scratch))
    if len(str(base)) > 80:
        shutil.rmtree(base, ignore_errors=True)
        base = Path(tempfile.mkdtemp(prefix="dockyard-ssh-"))
    os.chmod(base, 0o700)
    servers: list[asyncio.AbstractServer] = []
    handlers: set[asyncio.Task[None]] = set()
    out: dict[str, str] = {}
    try:
        for n, ident in enumerate(found):
            path = str(base / f"{n}.sock")

            def on_conn(r: asyncio.StreamReader, w: asyncio.StreamWriter, i: str = ident) -> None:
                t = asyncio.create_task(_pump(session, i, r, w))
                handlers.add(t)
                t.add_done_callback(handlers.discard)

            servers.append(await asyncio.start_unix_server(on_conn, path=path))
            os.chmod(path, 0o600)
            out[ident] = path
        yield out
    finally:
        for s in servers:
            s.close()
        for t in list(handlers):
            t.cancel()
        for t in list(handlers):
            with contextlib.suppress(BaseException):
                await t
        for s in servers:
            with contextlib.suppress(Exception):
                await s.wait_closed()
        shutil.rmtree(base, ignore_errors=True)
