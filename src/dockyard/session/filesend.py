"""FileSend: a build's output back to the client through its session (`--output type=local|tar`).

The daemon is the gRPC client here (moby/buildkit session/filesync CopyToCaller and
CopyFileWriter): it calls `/moby.filesync.v1.FileSend/DiffCopy` on the client's session with
`buildkit-attachable-exporter-id` set to the exporter's index in the Solve's list, then
- for a directory (`local`), speaks fsutil's DiffCopy as the sender: a STAT per entry, the
  empty STAT, the content of each file the client REQuests, FIN for FIN (session/fssend.py
  walks the tree the same way for the client's own context);
- for a file (`tar`), sends its bytes as BytesMessages and half-closes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dockyard.errors import BuildFailure
from dockyard.session import gomode, methods
from dockyard.session.fspackets import PACKET_DATA, PACKET_ERR, PACKET_FIN, PACKET_REQ, PACKET_STAT
from dockyard.session.fssend import CHUNK, listing
from dockyard.session.h2grpc import Call, GrpcError

if TYPE_CHECKING:
    from dockyard.session.manager import Session


def _open(session: Session, index: int) -> Call:
    if not session.supports(methods.FILESEND_DIFFCOPY):
        raise BuildFailure(
            f"failed to export: method {methods.FILESEND_DIFFCOPY} not supported by the client"
        )
    return session.conn.open(methods.FILESEND_DIFFCOPY, {methods.KEY_EXPORTER_ID: [str(index)]})


async def _finish(call: Call) -> None:
    """Read to the end of the call: the client's status says whether it kept everything."""
    try:
        while await call.recv() is not None:
            pass
    except GrpcError as exc:
        raise BuildFailure(f"failed to export: {exc.message}") from None


@contextlib.asynccontextmanager
async def _exporting(call: Call) -> AsyncIterator[None]:
    """The client's error as the export's; the call cancelled when we stop early."""
    try:
        yield
    except GrpcError as exc:
        raise BuildFailure(f"failed to export: {exc.message}") from None
    except BaseException:
        call.cancel()
        raise


async def send_tree(session: Session, index: int, root: Path) -> int:
    """Send the tree under `root` to the client's output directory; returns bytes sent."""
    from dockyard.session.proto import fsutil_pb2

    Packet: Any = fsutil_pb2.Packet
    entries = await asyncio.to_thread(listing, root, [], [])
    call = _open(session, index)
    sent = 0
    async with _exporting(call):
        files: dict[int, str] = {}
        for i, ent in enumerate(entries):
            if gomode.is_regular(ent.mode):
                files[i] = ent.full
            await call.send(ent.packet)
        await call.send(Packet(type=PACKET_STAT).SerializeToString())
        while (raw := await call.recv()) is not None:
            p = Packet.FromString(raw)
            if p.type == PACKET_REQ:
                path = files.pop(p.ID, None)
                if path is None:
                    raise BuildFailure(f"failed to export: the client asked for file {p.ID}")
                async for chunk in _read(path):
                    sent += len(chunk)
                    await call.send(
                        Packet(type=PACKET_DATA, ID=p.ID, data=chunk).SerializeToString()
                    )
                await call.send(Packet(type=PACKET_DATA, ID=p.ID).SerializeToString())
            elif p.type == PACKET_FIN:
                await call.send(Packet(type=PACKET_FIN).SerializeToString())
                await call.close_send()
                break
            elif p.type == PACKET_ERR:
                raise BuildFailure(f"failed to export: {p.data.decode(errors='replace')}")
        await _finish(call)
    return sent


async def _read(path: str) -> AsyncIterator[bytes]:
    f = await asyncio.to_thread(open, path, "rb")
    try:
        while chunk := await asyncio.to_thread(f.read, CHUNK):
            yield chunk
    finally:
        f.close()


async def send_file(session: Session, index: int, path: Path) -> int:
    """Send the file at `path` as the client's output file (`dest=…`, or stdout)."""
    from dockyard.session.proto import session_pb2

    call = _open(session, index)
    sent = 0
    async with _exporting(call):
        async for chunk in _read(str(path)):
            sent += len(chunk)
            await call.send(session_pb2.BytesMessage(data=chunk).SerializeToString())
        await call.close_send()
        await _finish(call)
    return sent
