"""Docker's connection hijack (attach, exec start): after `101 UPGRADED` the socket is a pipe.

aiohttp cannot do this through its request/response objects (pitfalls.md: bytes sent after the
101 never reach `request.content`, and a client's half-close ends the whole connection), so we
take the transport over with a protocol of our own. aiohttp's own protocol (its RequestHandler)
no longer hears about the connection: once the connection is gone and the request over, we
tell it, or aiohttp's server keeps it registered for good (13 of 13 after ten `run --rm`
and three `exec`, each with its buffers; and the daemon counts open connections from that
registry before it re-executes itself, api/idle_reexec.py). `eof_received` returns True so the docker
CLI's half-close at the end of stdin keeps our write side open until the container's output
ends. The handler then returns a response object whose prepare/write_eof do nothing, since the
HTTP exchange is already over. Over TLS the same half-close is a close_notify alert, which
asyncio's SSL layer would turn into a full shutdown: `_keep_tls_write_side` keeps it a
half-close.
"""

from __future__ import annotations

import asyncio
import fcntl
import socket
import struct
from collections.abc import Callable
from typing import Any

from aiohttp import web


class HijackProtocol(asyncio.Protocol):
    def __init__(
        self,
        on_data: Callable[[bytes], None],
        on_eof: Callable[[], None],
        on_lost: Callable[[Exception | None], None] = lambda _exc: None,
    ) -> None:
        self._on_data = on_data
        self._on_eof = on_eof
        self._on_lost = on_lost
        self.closed = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()

    # The transport calls these around its write buffer's high-water mark (64 KiB).
    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    async def drain(self) -> None:
        """Wait until the client has taken what was written (or has gone): writers call it
        so a slow client holds the output back instead of it queueing in the transport."""
        if not self._writable.is_set() and not self.closed.is_set():
            closed = asyncio.ensure_future(self.closed.wait())
            writable = asyncio.ensure_future(self._writable.wait())
            await asyncio.wait({closed, writable}, return_when=asyncio.FIRST_COMPLETED)
            closed.cancel()
            writable.cancel()

    def data_received(self, data: bytes) -> None:
        self._on_data(data)

    def eof_received(self) -> bool:
        self._on_eof()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._on_eof()
        self.closed.set()
        self._writable.set()
        self._on_lost(exc)


class HijackedResponse(web.StreamResponse):
    """Stands in for the response aiohttp expects from a handler whose socket we took.

    Its status is the one the client saw (101, or 200 for a client that did not ask to
    upgrade), so the request log reports it.
    """

    def __init__(self, request: web.Request) -> None:
        super().__init__(status=101 if _upgrades(request) else 200)

    async def prepare(self, request: web.BaseRequest) -> Any:
        return None

    async def write_eof(self, data: bytes = b"") -> None:
        return None


def _upgrades(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower() in ("tcp", "h2c")


def hijack(
    request: web.Request,
    headers: dict[str, str],
    on_data: Callable[[bytes], None],
    on_eof: Callable[[], None],
) -> tuple[asyncio.Transport, HijackProtocol]:
    transport = request.transport
    assert transport is not None
    upgrade = _upgrades(request)
    status = "101 UPGRADED" if upgrade else "200 OK"
    lines = [f"HTTP/1.1 {status}", "Content-Type: application/vnd.docker.raw-stream"]
    if upgrade:
        lines += ["Connection: Upgrade", "Upgrade: tcp"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    proto = HijackProtocol(on_data, on_eof, _release(request))
    transport.set_protocol(proto)
    _keep_tls_write_side(transport)
    transport.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    return transport, proto


def _release(request: web.Request) -> Callable[[Exception | None], None]:
    """What tells aiohttp's protocol that its connection is gone, once the request's task
    is over: told while the handler still runs, aiohttp would cancel it (handler_cancellation),
    where a handler whose client left still finishes on its own."""
    original = request.protocol
    task = asyncio.current_task()

    def release(exc: Exception | None) -> None:
        if task is None or task.done():
            original.connection_lost(exc)
        else:
            task.add_done_callback(lambda _task: original.connection_lost(exc))

    return release


async def headers_read(transport: asyncio.Transport, timeout: float = 1.0) -> None:
    """Wait (on a Unix socket, at most `timeout`) until the client has read the upgrade
    answer, before the stream's first bytes go out.

    docker-py takes the raw socket from under http.client once the headers are parsed; bytes
    that reached the socket before the client read the headers sit in http.client's buffer
    and are lost to it (an empty `attach(logs=True, stream=False)`, a missing first frame of
    `exec_start(socket=True)`). dockerd's own work between the two writes hides this; on a
    loaded machine ours may not. For a Unix socket the kernel counts the bytes the peer has
    not read yet (SIOCOUTQ), so we wait for that count to reach zero."""
    sock = transport.get_extra_info("socket")
    if sock is None or sock.family != socket.AF_UNIX:
        return
    import termios  # here: an idle daemon need not load it

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if transport.get_write_buffer_size() == 0:
            try:
                raw = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
            except OSError:
                return
            if struct.unpack("i", raw)[0] == 0:
                return
        await asyncio.sleep(0.001)


def _keep_tls_write_side(transport: asyncio.BaseTransport) -> None:
    """Over TLS, a client's half-close is a close_notify alert (Go's tls.Conn.CloseWrite, as
    the docker CLI sends at the end of stdin), and asyncio's SSL protocol answers it by
    shutting the whole connection down once its buffer is flushed, so the container's output
    after the end of stdin would be lost. TLS allows writing after the peer's close_notify;
    keep the write side open until we close the transport ourselves. (asyncio has no public
    switch for this: CPython's sslproto keeps `_start_shutdown` on the protocol object, which
    `close()` calls after setting `_closed`.)"""
    ssl_protocol = getattr(transport, "_ssl_protocol", None)
    shutdown = getattr(ssl_protocol, "_start_shutdown", None)
    if ssl_protocol is None or shutdown is None:
        return

    def start_shutdown() -> None:
        if getattr(transport, "_closed", True):
            shutdown()

    ssl_protocol._start_shutdown = start_shutdown


def frame(stream: int, data: bytes) -> bytes:
    """Docker's multiplexed-stream frame: type, three zero bytes, big-endian uint32 length."""
    return bytes([stream, 0, 0, 0]) + len(data).to_bytes(4, "big") + data
