"""HTTP transport to the daemon: the Docker Engine API over a Unix socket (or TCP).

A minimal HTTP/1.1 client on a plain socket rather than `http.client`: importing
`http.client` pulls in `email.*` and `ssl` (~15 ms measured), a third of the CLI's whole
start-up budget (< 40 ms), and every command pays it. What the Engine API needs is small:
one request per connection, Content-Length or chunked bodies both ways, and the hijacked
attach stream, where the raw bytes after a `101 UPGRADED` head belong to the caller.

A Unix socket is `_socket.socket`, the C type under `socket.socket`: the `socket` module
imports `enum` and `selectors` (~3 ms of every command here); a TCP host (rare, and TLS
wraps a `socket.socket`) imports it. JSON goes through cli/cjson.py (no `re`).
"""

from __future__ import annotations

import _socket

from dockyard.cli import cjson

# The client's errors and TLS settings, re-exported (they live apart for cli/tls.py).
from dockyard.cli.transport import DaemonPermissionDenied as DaemonPermissionDenied
from dockyard.cli.transport import DaemonUnreachable as DaemonUnreachable
from dockyard.cli.transport import TLSError as TLSError
from dockyard.cli.transport import TLSSettings as TLSSettings

TYPE_CHECKING = False  # typing itself costs ~1.5 ms of start-up; mypy honours this name
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from typing import Any

API_VERSION = "1.44"
DEFAULT_HOST = "unix:///run/dockyard/dockyard.sock"
DEFAULT_ROOT = "/var/lib/dockyard"
# The docker CLI sends this Host header on Unix sockets; a daemon may log it.
HOST_HEADER = "api.moby.localhost"
USER_AGENT = "Dockyard-Client/0.1.0 (linux)"

Query = list[tuple[str, str]] | dict[str, str] | None


class APIError(Exception):
    """The daemon answered with an error status; `message` is its `{"message": ...}`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Host:
    """A parsed `--host` value: `unix:///path` or `tcp://host:port`.

    A plain immutable class, not a dataclass: importing dataclasses costs ~5 ms of the
    CLI's start-up, which every command pays.
    """

    __slots__ = ("address", "port", "scheme")
    scheme: str
    address: str
    port: int

    def __init__(self, scheme: str, address: str, port: int = 0) -> None:
        object.__setattr__(self, "scheme", scheme)
        object.__setattr__(self, "address", address)
        object.__setattr__(self, "port", port)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Host is immutable")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Host) and (self.scheme, self.address, self.port) == (
            other.scheme,
            other.address,
            other.port,
        )

    def __hash__(self) -> int:
        return hash((self.scheme, self.address, self.port))

    def __repr__(self) -> str:
        return f"Host({self.scheme!r}, {self.address!r}, {self.port!r})"

    @property
    def is_unix(self) -> bool:
        return bool(self.scheme == "unix")


def parse_host(value: str) -> Host:
    """Parse a docker-style host string; a bare path means a Unix socket."""
    if value.startswith("unix://"):
        path = value[len("unix://") :]
        if not path:
            raise ValueError(f"invalid host {value!r}: empty socket path")
        return Host("unix", path)
    if value.startswith("/"):
        return Host("unix", value)
    if value.startswith(("tcp://", "http://")):
        rest = value.split("://", 1)[1].rstrip("/")
        hostname, sep, port = rest.rpartition(":")
        if not sep:
            hostname, port = rest, "2375"
        try:
            return Host("tcp", hostname.strip("[]") or "127.0.0.1", int(port))
        except ValueError:
            raise ValueError(f"invalid host {value!r}: bad port") from None
    raise ValueError(f"invalid host {value!r}: use unix:///path/to.sock or tcp://host:port")


# RFC 3986 unreserved characters; Go's url.QueryEscape keeps the same set (and maps
# space to "+"). Hand-rolled: urllib.parse costs ~1.5 ms of start-up.
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def quote(text: str, safe: str = "") -> str:
    """Percent-encode UTF-8 bytes outside the unreserved set and `safe`."""
    keep = _UNRESERVED | frozenset(safe.encode())
    return "".join(chr(b) if b in keep else f"%{b:02X}" for b in text.encode("utf-8"))


def urlencode(query: list[tuple[str, str]] | dict[str, str]) -> str:
    """`k=v&…` like Go's url.Values.Encode (space as "+", everything else escaped)."""
    pairs = query.items() if isinstance(query, dict) else query
    return "&".join(f"{quote(k)}={quote(v, ' ').replace(' ', '+')}" for k, v in pairs)


def build_path(path: str, query: Query = None) -> str:
    """`/v1.44` + path + the query string (lists give repeated keys, as Go's url.Values)."""
    # DOCKER_API_VERSION pins the version as it does for the docker CLI (no negotiation):
    # how our CLI talks to an older daemon such as the reference dockerd 20.10 (1.41).
    import os

    version = os.environ.get("DOCKER_API_VERSION") or API_VERSION
    full = f"/v{version}{path}"
    if query:
        full += "?" + urlencode(query)
    return full


def quote_name(name: str) -> str:
    """A name or reference as one path segment; `/` stays, as in `images/a/b:1/json`."""
    return quote(name, safe="/:@")


def error_message(status: int, body: bytes) -> str:
    """The daemon's error text: `{"message": ...}` if JSON, else the raw body."""
    text = body.decode("utf-8", "replace").strip()
    try:
        doc = cjson.loads(text)
    except ValueError:
        return text or f"HTTP {status}"
    if isinstance(doc, dict) and isinstance(doc.get("message"), str):
        return str(doc["message"])
    return text


class HijackedStream:
    """A raw bidirectional socket left after a `101 UPGRADED` (or `200`) attach answer."""

    def __init__(self, sock: _socket.socket, initial: bytes) -> None:
        self.sock = sock
        self.initial = initial

    def recv_chunks(self, size: int = 32768) -> Iterator[bytes]:
        if self.initial:
            yield self.initial
            self.initial = b""
        while True:
            try:
                data = self.sock.recv(size)
            except (ConnectionResetError, OSError):
                return
            if not data:
                return
            yield data

    def send_all(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close_write(self) -> None:
        try:
            self.sock.shutdown(_socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        _close(self.sock)


def _close(sock: _socket.socket) -> None:
    try:
        sock.close()
    except OSError:
        pass


def parse_response_head(head: bytes) -> tuple[int, dict[str, str]]:
    """Status code and lower-cased headers of an HTTP/1.x response head."""
    lines = head.decode("iso-8859-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise APIError(0, f"malformed response from daemon: {lines[0]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            key, value = line.split(":", 1)
            headers[key.strip().lower()] = value.strip()
    return int(parts[1]), headers


class Response:
    """A response body read from the socket as it arrives (Content-Length, chunked or EOF)."""

    def __init__(
        self, sock: _socket.socket, status: int, headers: dict[str, str], buf: bytes, head: bool
    ) -> None:
        self.sock = sock
        self.status = status
        self.headers = headers
        self._buf = bytearray(buf)
        self._eof = False
        self._chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        self._chunk_left = 0  # bytes left in the current chunk
        self._remaining: int | None = None
        if head or status in (204, 304) or 100 <= status < 200:
            self._remaining = 0
        elif not self._chunked and "content-length" in headers:
            self._remaining = int(headers["content-length"])
        if self._remaining == 0:
            self._eof = True

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        if not data:
            return False
        self._buf += data
        return True

    def _take(self, n: int) -> bytes:
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def _line(self) -> bytes:
        while b"\r\n" not in self._buf:
            if not self._fill():
                raise APIError(0, "connection closed in the middle of a chunked response")
        i = self._buf.index(b"\r\n")
        line = self._take(i)
        del self._buf[:2]
        return line

    def read1(self, size: int = 65536) -> bytes:
        """The next available body bytes (at most `size`); b"" at the end of the body."""
        if self._eof:
            return b""
        if self._chunked:
            return self._read1_chunked(size)
        if not self._buf and not self._fill():
            self._eof = True
            if self._remaining:
                raise APIError(0, "connection closed before the response body was complete")
            return b""
        n = min(size, len(self._buf))
        if self._remaining is not None:
            n = min(n, self._remaining)
            self._remaining -= n
            if self._remaining == 0:
                self._eof = True
        return self._take(n)

    def _read1_chunked(self, size: int) -> bytes:
        if self._chunk_left == 0:
            line = self._line()
            try:
                self._chunk_left = int(line.split(b";", 1)[0].strip() or b"0", 16)
            except ValueError:
                raise APIError(0, f"bad chunk size {line[:20]!r} from daemon") from None
            if self._chunk_left == 0:
                while self._line():  # trailers, up to the empty line
                    pass
                self._eof = True
                return b""
        if not self._buf and not self._fill():
            raise APIError(0, "connection closed in the middle of a chunked response")
        n = min(size, len(self._buf), self._chunk_left)
        data = self._take(n)
        self._chunk_left -= n
        if self._chunk_left == 0:
            while len(self._buf) < 2:
                if not self._fill():
                    break
            del self._buf[:2]
        return data

    def read(self) -> bytes:
        parts: list[bytes] = []
        while True:
            data = self.read1()
            if not data:
                return b"".join(parts)
            parts.append(data)

    def close(self) -> None:
        _close(self.sock)


def _read_head(sock: _socket.socket, buf: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    """Read up to the blank line; returns status, headers and the bytes read past it."""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            raise APIError(0, "the daemon closed the connection without answering")
        buf += data
        if len(buf) > 1 << 20:
            raise APIError(0, "response head from the daemon is too large")
    head, rest = buf.split(b"\r\n\r\n", 1)
    status, headers = parse_response_head(head)
    return status, headers, rest


def encode_request_head(method: str, target: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {target} HTTP/1.1"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def encode_chunk(data: bytes) -> bytes:
    """One HTTP/1.1 chunk (RFC 9112 §7.1)."""
    return b"%x\r\n%s\r\n" % (len(data), data)


class Exchange:
    """A request that has been sent; `response()` waits for the answer."""

    def __init__(self, sock: _socket.socket, method: str) -> None:
        self.sock = sock
        self.method = method

    def response(self) -> Response:
        status, headers, rest = _read_head(self.sock)
        while status == 100:  # Continue: the real answer follows
            status, headers, rest = _read_head(self.sock, rest)
        return Response(self.sock, status, headers, rest, self.method == "HEAD")


class Client:
    """One method per HTTP exchange; each request uses a fresh connection, like the CLI.

    `on_unreachable` is called once when the first connection fails because nothing
    listens; if it returns True (it started a daemon), the connection is retried.
    """

    def __init__(
        self,
        host: Host,
        on_unreachable: Callable[[], bool] | None = None,
        tls: TLSSettings | None = None,
    ) -> None:
        self.host = host
        self._on_unreachable = on_unreachable
        self._checked = False
        self.tls = tls if not host.is_unix else None

    def _new_socket(self) -> _socket.socket:
        sock: _socket.socket
        if self.host.is_unix:
            sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
            address: Any = self.host.address
        else:
            import socket

            sock = socket.socket(socket.AF_INET6 if ":" in self.host.address else socket.AF_INET)
            address = (self.host.address, self.host.port)
        try:
            sock.connect(address)
        except BaseException:
            sock.close()
            raise
        if self.tls is not None:
            from dockyard.cli.tls import wrap

            return wrap(sock, self.tls, self.host.address)  # type: ignore[arg-type,return-value]
        return sock

    def connect(self) -> _socket.socket:
        try:
            sock = self._new_socket()
        except OSError as exc:
            # Autostart only when nothing listens: not for EACCES or a TCP timeout.
            absent = isinstance(exc, FileNotFoundError | ConnectionRefusedError)
            if absent and not self._checked and self._on_unreachable is not None:
                self._checked = True
                if self._on_unreachable():
                    return self.connect()
            if isinstance(exc, PermissionError) and self.host.is_unix:
                raise DaemonPermissionDenied(
                    f"dial unix {self.host.address}: connect: permission denied"
                ) from exc
            raise DaemonUnreachable(str(exc)) from exc
        self._checked = True
        return sock

    def send(
        self,
        method: str,
        path: str,
        query: Query = None,
        *,
        body: bytes | Iterable[bytes] | None = None,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
        versioned: bool = True,
    ) -> Exchange:
        """Connect and send a whole request (an iterable body goes chunked)."""
        hdrs = {"Host": HOST_HEADER, "User-Agent": USER_AGENT}
        if json_body is not None:
            body = cjson.dumps(json_body).encode()
            hdrs["Content-Type"] = "application/json"
        if headers:
            hdrs.update(headers)
        if body is None:
            if method in ("POST", "PUT"):
                hdrs["Content-Length"] = "0"
        elif isinstance(body, bytes | bytearray):
            hdrs["Content-Length"] = str(len(body))
        else:
            hdrs["Transfer-Encoding"] = "chunked"
        sock = self.connect()
        try:
            target = build_path(path, query) if versioned else path
            head = encode_request_head(method, target, hdrs)
            if body is None:
                sock.sendall(head)
            elif isinstance(body, bytes | bytearray):
                sock.sendall(head + body)
            else:
                sock.sendall(head)
                for chunk in body:
                    if chunk:
                        sock.sendall(encode_chunk(chunk))
                sock.sendall(b"0\r\n\r\n")
        except BaseException:
            sock.close()
            raise
        return Exchange(sock, method)

    def request(self, method: str, path: str, query: Query = None, **kw: Any) -> Response:
        """Send a request; raise APIError for status >= 400, else return the open response."""
        exchange = self.send(method, path, query, **kw)
        try:
            resp = exchange.response()
        except BaseException:
            exchange.sock.close()
            raise
        if resp.status >= 400:
            data = resp.read()
            resp.close()
            raise APIError(resp.status, error_message(resp.status, data))
        return resp

    def call(self, method: str, path: str, query: Query = None, **kw: Any) -> bytes:
        """A request whose whole body is read and returned."""
        resp = self.request(method, path, query, **kw)
        try:
            return resp.read()
        finally:
            resp.close()

    def get_json(self, path: str, query: Query = None) -> Any:
        return cjson.loads(self.call("GET", path, query) or b"null")

    def post_json(self, path: str, query: Query = None, body: Any = None) -> Any:
        data = self.call("POST", path, query, json_body=body)
        return cjson.loads(data) if data.strip() else None

    def ping(self) -> dict[str, str]:
        """`HEAD /_ping` (unversioned); the answer's headers carry Api-Version etc."""
        resp = self.request("HEAD", "/_ping", versioned=False)
        resp.close()
        return resp.headers

    def hijack(self, path: str, query: Query = None, json_body: Any = None) -> HijackedStream:
        """POST with `Upgrade: tcp` and hand back the raw socket (attach, exec start)."""
        headers = {
            "Content-Type": "text/plain" if json_body is None else "application/json",
            "Connection": "Upgrade",
            "Upgrade": "tcp",
        }
        exchange = self.send("POST", path, query, json_body=json_body, headers=headers)
        sock = exchange.sock
        try:
            status, hdrs, rest = _read_head(sock)
        except BaseException:
            sock.close()
            raise
        if status >= 400:
            resp = Response(sock, status, hdrs, rest, False)
            body = resp.read()
            resp.close()
            raise APIError(status, error_message(status, body))
        if status not in (101, 200):
            sock.close()
            raise APIError(status, f"unexpected attach answer: HTTP {status}")
        return HijackedStream(sock, rest)
