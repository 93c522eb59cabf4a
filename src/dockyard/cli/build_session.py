"""`dockyard build`'s session: the context travels by file sync, secrets and agents on request.

As the docker CLI does for BuildKit (cli/command/image/build_buildkit.go) and moby's legacy
builder once did for `remote=client-session`: the CLI opens `POST /session` (Upgrade: h2c)
on a connection of its own and serves gRPC on it, and the build request names the session.
The daemon then asks for the context by fsutil's DiffCopy against the copy it kept from the
last build of the same directory (our shared key), so only the files whose metadata changed
travel; it asks for secrets and agent connections the same way. Nothing of it needs the
daemon to see the client's filesystem, so a remote daemon works alike.

The session runs on an asyncio loop in a thread of its own while the main thread sends the
build and prints its stream. Imported only by `build` (h2, protobuf and asyncio cost
~40 ms of start-up that other commands must not pay).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
import threading
from collections.abc import Mapping
from pathlib import Path

from dockyard.cli.client import HOST_HEADER, USER_AGENT, Client, build_path
from dockyard.session import attachables, gomode, methods
from dockyard.session.fssend import DirServer
from dockyard.session.h2grpc import GrpcConnection

CONTEXT = "context"
_CONNECT_TIMEOUT = 30.0


class SessionRefused(Exception):
    """The daemon has no `/session` (an old or foreign daemon): send a tar instead."""


def _node_id() -> str:
    """A stable identity of this client machine for the shared key, as the docker CLI keeps
    one in $DOCKER_CONFIG/.buildNodeID (ours beside it, so the two keep apart copies)."""
    config = Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")
    path = config / ".dockyardBuildNodeID"
    with contextlib.suppress(OSError):
        return path.read_text().strip()
    node = os.urandom(32).hex()  # secrets.token_hex's bytes, without importing random
    try:
        config.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.write_text(node)
    except OSError:
        return socket.gethostname()
    return node


def shared_key(context_dir: Path) -> str:
    return hashlib.sha256(f"{_node_id()}:{context_dir}".encode()).hexdigest()


class _Upgrade(asyncio.Protocol):
    """Reads the answer to `POST /session` until its head ends, then hands over."""

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.buf = b""
        self.head: asyncio.Future[tuple[bytes, bytes]] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end >= 0 and not self.head.done():
            self.transport.pause_reading()  # type: ignore[union-attr]
            self.head.set_result((self.buf[:end], self.buf[end + 4 :]))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.head.done():
            self.head.set_exception(SessionRefused("the daemon closed the session connection"))


class BuildSession:
    """A session serving one context directory (plus files shown in it), secrets and
    agents, for the `with` block."""

    def __init__(
        self,
        client: Client,
        root: Path | None,
        *,
        excludes: list[str] | None = None,
        extras: Mapping[str, Path] | None = None,
        secrets: Mapping[str, bytes],
        agents: Mapping[str, str],
    ) -> None:
        """`root` None: no directory is served (a tar context in the request's body)."""
        self.client = client
        self.id = new_session_id()
        self.key = shared_key(root) if root is not None else ""
        dirs = {CONTEXT: root} if root is not None else {}
        self.files = DirServer(
            dirs, excludes={CONTEXT: excludes or []}, extras={CONTEXT: extras or {}}
        )
        self._secrets = attachables.Secrets(secrets)
        self._agents = attachables.Agents(agents)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._conn: GrpcConnection | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="session", daemon=True)

    # the main thread's side ---------------------------------------------------------------
    def __enter__(self) -> BuildSession:
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            raise self._error
        return self

    def __exit__(self, *exc: object) -> None:
        loop, conn = self._loop, self._conn
        if loop is not None and conn is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(conn.close, "the build ended")
        self._thread.join(10)

    @property
    def sent_bytes(self) -> int:
        return self.files.sent_bytes

    def tar_size(self) -> int:
        """The size of the tar the legacy client would have sent for what was listed, for
        its "Sending build context" line (docker's output; far less may have travelled):
        a 512-byte header per entry (and a PAX header where USTAR's fields are too small,
        as our tar writer does), contents padded to 512, two zero blocks at the end."""
        import tarfile

        total = 1024
        for ent in self.files.listed.get(CONTEXT, []):
            if ent.mode & gomode.MODE_SOCKET:
                continue  # a tar has no type for them
            name = ent.path + "/" if ent.mode & gomode.MODE_DIR else ent.path
            size = ent.size if gomode.is_regular(ent.mode) and not ent.linkname else 0
            total += 512 + -(-size // 512) * 512
            if len(name) > 100 or len(ent.linkname) > 100 or not name.isascii():
                info = tarfile.TarInfo(name)
                info.linkname = ent.linkname
                total += len(info.tobuf(tarfile.PAX_FORMAT)) - 512
        return total

    # the session's thread -----------------------------------------------------------------
    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to the main thread if it still waits
            if not self._ready.is_set():
                self._error = exc
        finally:
            self._ready.set()

    def _request(self) -> bytes:
        served = [
            methods.FILESYNC_DIFFCOPY,
            methods.HEALTH_CHECK,
            methods.SECRETS_GET,
            methods.SSH_CHECK_AGENT,
            methods.SSH_FORWARD_AGENT,
        ]
        lines = [
            f"POST {build_path('/session')} HTTP/1.1",
            f"Host: {HOST_HEADER}",
            f"User-Agent: {USER_AGENT}",
            "Connection: Upgrade",
            "Upgrade: h2c",
            "Content-Length: 0",
            f"X-Docker-Expose-Session-Uuid: {self.id}",
            "X-Docker-Expose-Session-Name: dockyard-build",
            *([f"X-Docker-Expose-Session-Sharedkey: {self.key}"] if self.key else []),
            *(f"X-Docker-Expose-Session-Grpc-Method: {m}" for m in served),
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    async def _connect(self) -> tuple[asyncio.Transport, _Upgrade]:
        loop = asyncio.get_running_loop()
        proto = _Upgrade(self._request())
        host = self.client.host
        if host.is_unix:
            transport, _ = await loop.create_unix_connection(lambda: proto, host.address)
        else:
            ssl_ctx = None
            if self.client.tls is not None:
                from dockyard.cli.tls import context

                ssl_ctx = context(self.client.tls)
            transport, _ = await loop.create_connection(
                lambda: proto,
                host.address,
                host.port,
                ssl=ssl_ctx,
                server_hostname=host.address if ssl_ctx is not None else None,
            )
        return transport, proto

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        handlers = {
            **self.files.handlers(),
            **self._secrets.handlers(),
            **self._agents.handlers(),
            **attachables.health_handlers(),
        }
        if CONTEXT in self.files.dirs:
            self.files.prefetch(CONTEXT)
        try:
            async with asyncio.timeout(_CONNECT_TIMEOUT):
                transport, proto = await self._connect()
                head, rest = await proto.head
        except OSError as exc:
            raise SessionRefused(f"cannot open the session: {exc}") from None
        status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        if " 101 " not in status_line + " ":
            transport.close()
            raise SessionRefused(f"the daemon refused the session: {status_line}")
        conn = GrpcConnection(client_side=False, handlers=handlers)
        self._conn = conn
        conn.attach(transport, rest)
        transport.resume_reading()
        self._ready.set()
        await conn.closed.wait()


def new_session_id() -> str:
    """A session id shaped as BuildKit's identity.NewID (25 base-36 characters)."""
    n = int.from_bytes(os.urandom(16), "big")
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = []
    for _ in range(25):
        n, r = divmod(n, 36)
        out.append(digits[r])
    return "".join(out)
