"""gRPC over HTTP/2 cleartext on a connection we already hold (a hijacked `/session` or `/grpc`).

BuildKit's session turns the usual roles around: the client that opened `POST /session` serves
gRPC on the hijacked socket and the daemon calls it, while `/grpc` (buildx) is the ordinary
way round. One class serves both: `GrpcConnection(client_side=True)` makes calls,
`client_side=False` dispatches incoming calls to handlers by method path.

Why our own thin layer on `h2` rather than grpcio or grpclib (measured in docs/ARCHITECTURE.md,
"BuildKit's session"): grpcio's channels dial their own sockets and cannot ride an existing
one; grpclib can only through its private protocol classes; and here we need exact control
of flow control (back-pressure from the context writer to the client's sender) and of
clean-up when the peer goes away. gRPC's wire format on HTTP/2 is small: a message is a
1-byte compressed flag, a 4-byte big-endian length and the bytes; the status travels in the
trailers (`grpc-status`, `grpc-message`); metadata are ordinary headers, `-bin` ones base64.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import logging
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import hyperframe.frame

from dockyard.session.grpcheaders import headers_dict

_log = logging.getLogger("dockyard.session")

# gRPC status codes (grpc/codes).
OK = 0
CANCELLED = 1
UNKNOWN = 2
INVALID_ARGUMENT = 3
DEADLINE_EXCEEDED = 4
NOT_FOUND = 5
ALREADY_EXISTS = 6
PERMISSION_DENIED = 7
FAILED_PRECONDITION = 9
UNIMPLEMENTED = 12
INTERNAL = 13
UNAVAILABLE = 14

# grpc-go refuses messages over 4 MiB by default, BuildKit raises it to 16 MiB.
MAX_MESSAGE = 16 << 20
_WINDOW = 8 << 20  # per stream and (doubled) per connection: the sender never waits on us
_FRAME = 1 << 20

Metadata = Mapping[str, Sequence[str]]


def _cheap_data_repr(frame: hyperframe.frame.DataFrame) -> str:
    """A DATA frame's repr from its first bytes only. h2 formats every frame it receives for
    its trace log whether or not the log is on (`H2Connection._receive_frame`:
    `logger.trace("Received frame: %s", repr(frame))`), and hyperframe's default body repr
    serialises the whole frame and hexlifies it before keeping 20 digits: for a 200 MiB
    context that was ~10% of the daemon's time in the sync (py-spy, bench row f). The text is
    the same: the first 10 bytes of the body (an 11th says whether "..." follows)."""
    if "PADDED" in frame.flags:
        return _full_data_repr(frame)
    return hyperframe.frame._raw_data_repr(bytes(frame.data[:11]))


_full_data_repr = hyperframe.frame.DataFrame._body_repr
setattr(hyperframe.frame.DataFrame, "_body_repr", _cheap_data_repr)  # noqa: B010


class GrpcError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class _Stream:
    id: int
    inbox: collections.deque[bytes] = field(default_factory=collections.deque)
    buffer: bytearray = field(default_factory=bytearray)
    unacked: int = 0
    ended: bool = False  # the peer sent END_STREAM
    readable: asyncio.Event = field(default_factory=asyncio.Event)
    writable: asyncio.Event = field(default_factory=asyncio.Event)
    headers: dict[str, list[str]] = field(default_factory=dict)
    trailers: dict[str, list[str]] = field(default_factory=dict)
    error: GrpcError | None = None
    sent_headers: bool = False
    closed_send: bool = False


class Call:
    """One gRPC call's stream, from either side: messages in with `recv`, out with `send`."""

    def __init__(self, conn: GrpcConnection, stream: _Stream, method: str) -> None:
        self._conn = conn
        self._s = stream
        self.method = method

    @property
    def metadata(self) -> dict[str, list[str]]:
        return self._s.headers

    def first(self, key: str) -> str:
        values = self._s.headers.get(key.lower())
        return values[0] if values else ""

    async def recv(self) -> bytes | None:
        """The next message, or None once the peer has finished sending. A failed call
        (the peer's status, a reset, a lost connection) raises GrpcError."""
        s = self._s
        while not s.inbox:
            if s.error is not None:
                raise s.error
            if s.ended:
                if self._conn.client_side:  # a server's stream lives until its status is sent
                    self._conn._streams.pop(s.id, None)
                self._conn._check_status(s)
                return None
            s.readable.clear()
            await s.readable.wait()
        msg = s.inbox.popleft()
        self._conn._ack(s)
        return msg

    async def recv_many(self) -> list[bytes]:
        """Every message already received (waiting for one if none is), or [] once the
        peer has finished sending: a listing of thousands of entries without an await each."""
        s = self._s
        if not s.inbox:
            first = await self.recv()
            if first is None:
                return []
            out = [first]
        else:
            out = []
        out.extend(s.inbox)
        s.inbox.clear()
        self._conn._ack(s)
        return out

    async def send(self, message: bytes) -> None:
        await self._conn._send_message(self._s, message)

    async def send_many(self, messages: Sequence[bytes]) -> None:
        """Several messages in as few DATA frames as fit: thousands of small ones (a
        file listing) cost one frame each otherwise, on both ends."""
        parts: list[bytes] = []
        for m in messages:
            parts.append(b"\0" + len(m).to_bytes(4, "big"))
            parts.append(m)
        if parts:
            await self._conn._send_data(self._s, b"".join(parts), end=False)

    async def close_send(self) -> None:
        """Half-close: the client's CloseSend."""
        await self._conn._close_send(self._s)

    def cancel(self) -> None:
        self._conn._reset(self._s, h2.errors.ErrorCodes.CANCEL)


Handler = Callable[[Call], Awaitable[None]]


def _encode_metadata(metadata: Metadata | None) -> list[tuple[str, str]]:
    """Metadata as headers; a `-bin` key's value is binary and travels base64-encoded,
    unpadded, as gRPC's HTTP/2 protocol says senders should (PROTOCOL-HTTP2.md, "Custom-Metadata");
    headers_dict decodes it back, so a value round-trips as the latin-1 text of its bytes."""
    out = []
    for key, values in (metadata or {}).items():
        name = key.lower()
        for v in values:
            if name.endswith("-bin"):
                v = base64.b64encode(v.encode("latin-1")).rstrip(b"=").decode("ascii")
            out.append((name, v))
    return out


class GrpcConnection(asyncio.Protocol):
    """An HTTP/2 connection carrying gRPC, attached to a transport someone else accepted."""

    def __init__(self, *, client_side: bool, handlers: Mapping[str, Handler] | None = None) -> None:
        self.client_side = client_side
        self._handlers = dict(handlers or {})
        config = h2.config.H2Configuration(client_side=client_side, header_encoding=None)
        self._h2 = h2.connection.H2Connection(config=config)
        self._transport: asyncio.Transport | None = None
        self._streams: dict[int, _Stream] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._can_write = asyncio.Event()
        self._can_write.set()
        self.closed = asyncio.Event()
        self.close_reason = ""

    # transport ---------------------------------------------------------------------------
    def attach(self, transport: asyncio.Transport, initial: bytes = b"") -> None:
        """Take over a transport that carried the HTTP/1.1 upgrade; `initial` holds bytes the
        previous protocol had already read past the request."""
        transport.set_protocol(self)
        self.connection_made(transport)
        if initial:
            self.data_received(initial)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._h2.local_settings = h2.settings.Settings(
            client=self.client_side,
            initial_values={
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: _WINDOW,
                h2.settings.SettingCodes.MAX_FRAME_SIZE: _FRAME,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: 1 << 20,
            },
        )
        # h2 applies our own settings only once the peer acknowledges them, but a peer may
        # use them as soon as it has read them: accept the larger frames from the start.
        self._h2.max_inbound_frame_size = _FRAME
        self._h2.initiate_connection()
        self._h2.increment_flow_control_window(2 * _WINDOW - 65535)
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self._shutdown(self.close_reason or "the session's connection closed")

    def eof_received(self) -> bool:
        return False  # the peer is gone: close our side too

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    def close(self, reason: str = "") -> None:
        if self.closed.is_set():
            return
        self.close_reason = reason or self.close_reason
        with contextlib.suppress(h2.exceptions.ProtocolError):
            self._h2.close_connection()
            self._flush()
        if self._transport is not None:
            self._transport.close()
        self._shutdown(self.close_reason or "the session was closed")

    def _shutdown(self, reason: str) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        err = GrpcError(UNAVAILABLE, reason)
        for s in self._streams.values():
            if s.error is None:
                s.error = err
            s.readable.set()
            s.writable.set()
        self._streams.clear()
        self._can_write.set()
        for t in list(self._tasks):
            t.cancel()

    def _flush(self) -> None:
        data = self._h2.data_to_send()
        if data and self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    # incoming ----------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        try:
            events = self._h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            _log.debug("session: HTTP/2 protocol error: %s", exc)
            self._flush()
            self.close(f"HTTP/2 protocol error: {exc}")
            return
        for ev in events:
            self._event(ev)
        self._flush()

    def _event(self, ev: h2.events.Event) -> None:
        if isinstance(ev, h2.events.RequestReceived):
            self._request(ev.stream_id, ev.headers or [], ev.stream_ended is not None)
        elif isinstance(ev, h2.events.ResponseReceived):
            s = self._streams.get(ev.stream_id)
            if s is not None:
                s.headers = headers_dict(ev.headers or [])
                status = s.headers.get(":status", [""])[0]
                if status != "200":
                    s.error = GrpcError(UNAVAILABLE, f"unexpected HTTP status {status}")
                s.readable.set()
        elif isinstance(ev, h2.events.TrailersReceived):
            s = self._streams.get(ev.stream_id)
            if s is not None:
                s.trailers = headers_dict(ev.headers or [])
        elif isinstance(ev, h2.events.DataReceived):
            self._data(ev.stream_id, ev.data or b"", ev.flow_controlled_length or 0)
        elif isinstance(ev, h2.events.StreamEnded):
            s = self._streams.get(ev.stream_id)
            if s is not None:
                s.ended = True
                s.readable.set()
                self._maybe_forget(s)
        elif isinstance(ev, h2.events.StreamReset):
            s = self._streams.pop(ev.stream_id, None)
            if s is not None:
                # A reset after the status arrived only says the peer stopped reading
                # (Go's server resets a stream whose handler returned before our half-close).
                if s.error is None and not s.ended:
                    s.error = GrpcError(CANCELLED, "the peer cancelled the call")
                s.readable.set()
                s.writable.set()
        elif isinstance(ev, h2.events.WindowUpdated):
            targets = (
                self._streams.values()
                if ev.stream_id == 0
                else [s for s in [self._streams.get(ev.stream_id)] if s]
            )
            for s in targets:
                s.writable.set()
        elif isinstance(ev, h2.events.RemoteSettingsChanged):
            for s in self._streams.values():
                s.writable.set()
        elif isinstance(ev, h2.events.ConnectionTerminated):
            self.close("the peer ended the HTTP/2 connection")

    def _data(self, stream_id: int, data: bytes, flow: int) -> None:
        s = self._streams.get(stream_id)
        if s is None:
            self._h2.acknowledge_received_data(flow, stream_id)
            return
        s.buffer += data
        s.unacked += flow
        # messages are cut out through a view (one copy each, not a slice and its bytes: a
        # 200 MiB context is copied once less) and the consumed prefix dropped once
        buf, pos, end = s.buffer, 0, len(s.buffer)
        with memoryview(buf) as view:
            while end - pos >= 5:
                if buf[pos] != 0:
                    s.error = GrpcError(UNIMPLEMENTED, "compressed gRPC messages are not supported")
                    self._reset(s, h2.errors.ErrorCodes.INTERNAL_ERROR)
                    break
                n = int.from_bytes(view[pos + 1 : pos + 5], "big")
                if n > MAX_MESSAGE:
                    s.error = GrpcError(INTERNAL, f"gRPC message of {n} bytes is too large")
                    self._reset(s, h2.errors.ErrorCodes.INTERNAL_ERROR)
                    break
                if end - pos < 5 + n:
                    break
                s.inbox.append(bytes(view[pos + 5 : pos + 5 + n]))
                pos += 5 + n
        del buf[:pos]
        if not s.inbox:
            self._ack(s)  # a partial message: let the rest come
        s.readable.set()

    def _ack(self, s: _Stream) -> None:
        # Window credit goes back as messages are consumed: a slow consumer slows the sender.
        # Returned in batches (a quarter of the window, or when all is read): one
        # WINDOW_UPDATE per small message would double the frames of a listing.
        if s.unacked and s.id in self._streams and (s.unacked >= _WINDOW // 4 or not s.inbox):
            try:
                self._h2.acknowledge_received_data(s.unacked, s.id)
            except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
                pass
            s.unacked = 0
            self._flush()

    def _check_status(self, s: _Stream) -> None:
        meta = s.trailers or s.headers  # a trailers-only response carries it in the headers
        code_s = meta.get("grpc-status", [""])[0]
        if not self.client_side:
            return
        if code_s == "":
            raise GrpcError(UNKNOWN, "the call ended without a gRPC status")
        code = int(code_s) if code_s.isdigit() else UNKNOWN
        if code != OK:
            message = urllib.parse.unquote(meta.get("grpc-message", [""])[0])
            raise GrpcError(code, message)

    def _maybe_forget(self, s: _Stream) -> None:
        if s.ended and s.closed_send and not s.inbox:
            self._streams.pop(s.id, None)

    # outgoing ----------------------------------------------------------------------------
    async def _send_message(self, s: _Stream, message: bytes) -> None:
        frame = b"\0" + len(message).to_bytes(4, "big") + message
        await self._send_data(s, frame, end=False)

    async def _send_data(self, s: _Stream, data: bytes, *, end: bool) -> None:
        if not self.client_side and not s.sent_headers:
            self._respond_headers(s)
        view = memoryview(data)
        while True:
            if s.error is not None:
                raise s.error
            if self.closed.is_set():
                raise GrpcError(UNAVAILABLE, self.close_reason or "the session closed")
            if not view:
                if end:
                    self._h2.end_stream(s.id)
                    self._flush()
                return
            try:
                window = self._h2.local_flow_control_window(s.id)
            except h2.exceptions.StreamClosedError:
                raise GrpcError(CANCELLED, "the peer closed the call") from None
            if window <= 0:
                s.writable.clear()
                await s.writable.wait()
                continue
            n = min(window, self._h2.max_outbound_frame_size, len(view))
            last = n == len(view)
            self._h2.send_data(s.id, bytes(view[:n]), end_stream=end and last)
            self._flush()
            view = view[n:]
            if not self._can_write.is_set():
                await self._can_write.wait()
            if last:
                return

    async def _close_send(self, s: _Stream) -> None:
        if s.closed_send or s.error is not None or s.id not in self._streams:
            return
        s.closed_send = True
        with contextlib.suppress(h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            self._h2.end_stream(s.id)
            self._flush()
        self._maybe_forget(s)

    def _reset(self, s: _Stream, code: h2.errors.ErrorCodes) -> None:
        if self._streams.pop(s.id, None) is None:
            return
        with contextlib.suppress(h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            self._h2.reset_stream(s.id, code)
            self._flush()
        if s.error is None:
            s.error = GrpcError(CANCELLED, "call cancelled")
        s.readable.set()
        s.writable.set()

    # client role -------------------------------------------------------------------------
    def open(self, method: str, metadata: Metadata | None = None) -> Call:
        """Start a call on `method` ("/package.Service/Method")."""
        if self.closed.is_set():
            raise GrpcError(UNAVAILABLE, self.close_reason or "the session closed")
        sid = self._h2.get_next_available_stream_id()
        headers = [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", method),
            (":authority", "localhost"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
            *_encode_metadata(metadata),
        ]
        s = _Stream(sid)
        self._streams[sid] = s
        self._h2.send_headers(sid, headers)
        self._flush()
        return Call(self, s, method)

    async def unary(
        self,
        method: str,
        request: bytes,
        metadata: Metadata | None = None,
        timeout: float | None = None,
    ) -> bytes:
        call = self.open(method, metadata)
        try:
            async with asyncio.timeout(timeout):
                await call.send(request)
                await call.close_send()
                reply = await call.recv()
                if reply is None:
                    raise GrpcError(INTERNAL, f"{method}: no reply")
                while await call.recv() is not None:
                    pass
                return reply
        except TimeoutError:
            call.cancel()
            raise GrpcError(DEADLINE_EXCEEDED, f"{method}: no answer in {timeout} s") from None
        except BaseException:
            call.cancel()
            raise

    # server role -------------------------------------------------------------------------
    def _request(self, stream_id: int, raw: Sequence[tuple[bytes, bytes]], ended: bool) -> None:
        s = _Stream(stream_id, headers=headers_dict(raw))
        s.ended = ended
        self._streams[stream_id] = s
        method = s.headers.get(":path", [""])[0]
        handler = self._handlers.get(method)
        call = Call(self, s, method)
        if handler is None:
            self._finish(s, UNIMPLEMENTED, f"unknown method {method}")
            return
        task = asyncio.get_running_loop().create_task(self._serve(handler, call))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, handler: Handler, call: Call) -> None:
        s = call._s
        try:
            await handler(call)
        except GrpcError as exc:
            self._finish(s, exc.code, exc.message)
        except asyncio.CancelledError:
            self._reset(s, h2.errors.ErrorCodes.CANCEL)
            raise
        except Exception as exc:
            _log.exception("gRPC handler %s failed", call.method)
            self._finish(s, UNKNOWN, str(exc) or type(exc).__name__)
        else:
            self._finish(s, OK, "")

    def _respond_headers(self, s: _Stream) -> None:
        s.sent_headers = True
        self._h2.send_headers(s.id, [(":status", "200"), ("content-type", "application/grpc")])

    def _finish(self, s: _Stream, code: int, message: str) -> None:
        if s.id not in self._streams or self.closed.is_set():
            return
        trailers = [("grpc-status", str(code))]
        if message:
            trailers.append(("grpc-message", urllib.parse.quote(message, safe=" ")))
        try:
            if not s.sent_headers:
                # trailers-only response
                s.sent_headers = True
                self._h2.send_headers(
                    s.id,
                    [(":status", "200"), ("content-type", "application/grpc"), *trailers],
                    end_stream=True,
                )
            else:
                self._h2.send_headers(s.id, trailers, end_stream=True)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            pass
        s.closed_send = True
        self._streams.pop(s.id, None)
        self._flush()
