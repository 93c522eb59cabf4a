"""`dockyard build`'s session: the context travels by file sync, secrets and agents on request.

As the docker CLI does for BuildKit (cli/command/image/build_buildkit.go) and moby's legacy
builder once did for `remote=client-session`: the CLI opens `POST /session` (Upgrade: h2c)
on a connection of its own and serves gRPC on it, and the build request names the session.
The daemon then asks for the context by fsutil's DiffCopy against the copy it kept from the
last build of the same directory (our shared key), so only the files whose metadata changed
travel; it asks for secrets and agent connections the same way. Nothing of it needs the
daemon to see the client's filesystem, so a remote daemon works alike.

The session is served by session/h2lite.py on the blocking socket, in a thread of its own
(each call in one more), while the main thread sends the build and prints its stream.
Imported only by `build`; it loads no asyncio, h2 or protobuf (~110 ms of start-up before,
`python -S -c 'import dockyard.cli.build_session'`).
"""

from __future__ import annotations

import _thread
import os

from dockyard.cli.client import HOST_HEADER, USER_AGENT, Client, build_path
from dockyard.session import attachables, gomode, methods
from dockyard.session.fssend import DirServer
from dockyard.session.h2lite import Connection

TYPE_CHECKING = False  # typing costs start-up; mypy honours this name
if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path
    from typing import Any

CONTEXT = "context"
_CONNECT_TIMEOUT = 30.0


class SessionRefused(Exception):
    """The daemon has no `/session` (an old or foreign daemon): send a tar instead."""


def _node_id() -> str:
    """A stable identity of this client machine for the shared key, as the docker CLI keeps
    one in $DOCKER_CONFIG/.buildNodeID (ours beside it, so the two keep apart copies)."""
    config = os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    path = os.path.join(config, ".dockyardBuildNodeID")
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        pass
    node = os.urandom(32).hex()  # secrets.token_hex's bytes, without importing random
    try:
        os.makedirs(config, mode=0o700, exist_ok=True)
        with open(path, "w") as f:
            f.write(node)
    except OSError:
        return os.uname().nodename
    return node


def shared_key(context_dir: Path | str) -> str:
    return _sha256(f"{_node_id()}:{context_dir}".encode())


def _sha256(data: bytes) -> str:
    try:
        from _sha256 import sha256  # type: ignore[import-not-found]  # hashlib: ~5 ms more
    except ImportError:  # pragma: no cover - a Python built without it
        from hashlib import sha256
    return str(sha256(data).hexdigest())


def _read_head(sock: Any) -> tuple[bytes, bytes]:
    """The answer to `POST /session` up to its blank line, and what came after it."""
    buf = b""
    while (end := buf.find(b"\r\n\r\n")) < 0:
        data = sock.recv(65536)
        if not data:
            raise SessionRefused("the daemon closed the session connection")
        buf += data
        if len(buf) > 1 << 20:
            raise SessionRefused("the daemon's answer to /session is too large")
    return buf[:end], buf[end + 4 :]


class BuildSession:
    """A session serving one context directory (plus files shown in it), secrets and
    agents, for the `with` block."""

    def __init__(
        self,
        client: Client,
        root: Path | None,
        *,
        excludes: list[str] | None = None,
        extras: Mapping[str, str] | None = None,
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
        self._conn: Connection | None = None
        self._sock: Any = None

    # the main thread's side ---------------------------------------------------------------
    def __enter__(self) -> BuildSession:
        if CONTEXT in self.files.dirs:
            self.files.prefetch(CONTEXT)  # the walk overlaps the connection and the request
        sock = self.client.connect()  # the client's errors (unreachable, TLS) as they are
        settimeout = getattr(sock, "settimeout", None)
        try:
            if settimeout is not None:
                settimeout(_CONNECT_TIMEOUT)  # a daemon that never answers the upgrade
            sock.sendall(self._request())
            head, rest = _read_head(sock)
            status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
            if " 101 " not in status_line + " ":
                raise SessionRefused(f"the daemon refused the session: {status_line}")
            if settimeout is not None:
                settimeout(None)
        except OSError as exc:
            sock.close()
            raise SessionRefused(f"cannot open the session: {exc}") from None
        except BaseException:
            sock.close()
            raise
        handlers = {
            **self.files.handlers(),
            **self._secrets.handlers(),
            **self._agents.handlers(),
            **attachables.health_handlers(),
        }
        self._sock = sock
        self._conn = Connection(sock, handlers, rest)
        _thread.start_new_thread(self._conn.serve, ())
        return self

    def __exit__(self, *exc: object) -> None:
        conn = self._conn
        if conn is not None:
            conn.close("the build ended")
            conn.wait_closed(10)
            try:
                self._sock.close()
            except OSError:
                pass

    @property
    def sent_bytes(self) -> int:
        return self.files.sent_bytes

    def tar_size(self) -> int:
        """The size of the tar the legacy client would have sent for what was listed, for
        its "Sending build context" line (docker's output; far less may have travelled):
        a 512-byte header per entry (and a PAX header where USTAR's fields are too small,
        as our tar writer does), contents padded to 512, two zero blocks at the end."""
        total = 1024
        for ent in self.files.listed.get(CONTEXT, []):
            if ent.mode & gomode.MODE_SOCKET:
                continue  # a tar has no type for them
            name = ent.path + "/" if ent.mode & gomode.MODE_DIR else ent.path
            size = ent.size if gomode.is_regular(ent.mode) and not ent.linkname else 0
            total += 512 + -(-size // 512) * 512
            if len(name) > 100 or len(ent.linkname) > 100 or not name.isascii():
                import tarfile  # rare: a tar here costs the start-up ~3 ms

                info = tarfile.TarInfo(name)
                info.linkname = ent.linkname
                total += len(info.tobuf(tarfile.PAX_FORMAT)) - 512
        return total

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


def new_session_id() -> str:
    """A session id shaped as BuildKit's identity.NewID (25 base-36 characters)."""
    n = int.from_bytes(os.urandom(16), "big")
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = []
    for _ in range(25):
        n, r = divmod(n, 36)
        out.append(digits[r])
    return "".join(out)
