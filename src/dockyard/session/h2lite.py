"""A small synchronous HTTP/2 server carrying gRPC: the CLI's end of a build session.

BuildKit's session turns the roles around (session/h2grpc.py): the CLI opens `POST /session`
(Upgrade: h2c) and then *serves* gRPC on that socket while the daemon calls DiffCopy, Health,
Secrets and SSH on it. The daemon's side stays session/h2grpc.py on the `h2` library; this is
the server subset the CLI needs, on a blocking socket and plain threads (`_thread`): a
reader thread runs `serve()`, each call runs its handler in a thread of its own, writes are
serialised by one lock.

Why our own rather than h2 on an asyncio loop (issue 17 row b, the cached build ≤ 50 ms):
asyncio cost the CLI ~65 ms of start-up here, h2 with hpack and hyperframe ~45 ms,
`threading` 8 ms (`python -S -X importtime`); this module and session/hpacklite.py import
only C modules. What it implements (RFC 9113): the connection preface; SETTINGS (acked;
the peer's INITIAL_WINDOW_SIZE, also when it changes, and MAX_FRAME_SIZE honoured);
HEADERS with CONTINUATION, padding and priority; DATA with padding; flow control both
ways (nothing is sent beyond the peer's connection and stream windows; WINDOW_UPDATE goes
back as handlers consume messages, in quarter-window batches); PING ack; RST_STREAM;
GOAWAY (streams above its last id fail); trailers with grpc-status and grpc-message. A
malformed frame is a connection error: GOAWAY with its code, the socket closed, every call
failed with UNAVAILABLE (`close_reason` says why), no traceback.

gRPC on top (grpc/doc/PROTOCOL-HTTP2.md): a message is a 1-byte compressed flag, a 4-byte
big-endian length and the bytes; `-bin` metadata is base64.
"""

from __future__ import annotations

import _thread

from dockyard.session.grpcheaders import headers_dict
from dockyard.session.hpacklite import Decoder, HPACKError, encode
from dockyard.threadlite import Event

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any

# gRPC status codes (grpc/codes), as session/h2grpc.py names them
OK = 0
CANCELLED = 1
UNKNOWN = 2
INVALID_ARGUMENT = 3
NOT_FOUND = 5
INTERNAL = 13
UNAVAILABLE = 14
UNIMPLEMENTED = 12

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY = range(8)
WINDOW_UPDATE, CONTINUATION = 8, 9
END_STREAM = ACK = 0x1
END_HEADERS, PADDED, PRIORITY_FLAG = 0x4, 0x8, 0x20
# error codes (RFC 9113 §7)
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR = 0, 1, 2, 3
STREAM_CLOSED, FRAME_SIZE_ERROR, CANCEL, COMPRESSION_ERROR = 5, 6, 8, 9
# settings
S_HEADER_TABLE_SIZE, S_ENABLE_PUSH, S_INITIAL_WINDOW_SIZE, S_MAX_FRAME_SIZE = 1, 2, 4, 5

MAX_MESSAGE = 16 << 20  # BuildKit's limit (h2grpc.MAX_MESSAGE)
_WINDOW = 4 << 20  # what we let the peer send per stream (it sends little: REQs, FIN)
_CONN_WINDOW = 2 * _WINDOW
_MAX_FRAME = 1 << 20  # the largest frame we accept
_MAX_WINDOW = (1 << 31) - 1
_READ = 1 << 20


class GrpcError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ConnectionError_(Exception):
    """The peer broke the protocol: the connection ends with GOAWAY(code)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class _Cond:
    """threading.Condition's wait/notify_all on `_thread` locks (threading costs ~8 ms of
    start-up): each waiter blocks on a lock of its own that notify releases."""

    def __init__(self, lock: Any) -> None:
        self._lock = lock
        self._waiters: list[Any] = []

    def wait(self, timeout: float = -1) -> None:
        w = _thread.allocate_lock()
        w.acquire()
        self._waiters.append(w)
        self._lock.release()
        try:
            w.acquire(True, timeout)
        finally:
            self._lock.acquire()
            if w in self._waiters:
                self._waiters.remove(w)

    def notify_all(self) -> None:
        for w in self._waiters:
            w.release()
        self._waiters.clear()


class _Stream:
    __slots__ = (
        "buffer",
        "done",
        "ended",
        "error",
        "headers",
        "id",
        "inbox",
        "sent_headers",
        "unacked",
        "window",
    )  # fmt: skip

    def __init__(self, sid: int, window: int) -> None:
        self.id = sid
        self.headers: dict[str, list[str]] = {}
        self.inbox: list[bytes] = []  # not a deque: collections costs ~2 ms of start-up
        self.buffer = bytearray()
        self.unacked = 0  # flow-controlled bytes received and not yet credited back
        self.ended = False  # the peer sent END_STREAM
        self.error: GrpcError | None = None
        self.window = window  # what we may still send on it
        self.sent_headers = False
        self.done = False  # our side ended (trailers sent, or reset)


def _grpc_message(text: str) -> str:
    """grpc-message's percent-encoding (PROTOCOL-HTTP2.md: outside 0x20-0x7E, and %)."""
    raw = text.encode("utf-8")
    return "".join(chr(b) if 0x20 <= b <= 0x7E and b != 0x25 else f"%{b:02X}" for b in raw)


def _frame(kind: int, flags: int, sid: int, payload: bytes = b"") -> bytes:
    return len(payload).to_bytes(3, "big") + bytes((kind, flags)) + sid.to_bytes(4, "big") + payload


class Call:
    """One incoming gRPC call, for its handler (running in a thread of its own)."""

    def __init__(self, conn: Connection, stream: _Stream, method: str) -> None:
        self._conn = conn
        self._s = stream
        self.method = method

    @property
    def metadata(self) -> dict[str, list[str]]:
        return self._s.headers

    def first(self, key: str) -> str:
        values = self._s.headers.get(key.lower())
        return values[0] if values else ""

    def recv(self) -> bytes | None:
        """The next message, or None once the peer has finished sending; a reset call or a
        lost connection raises GrpcError."""
        got = self._conn._recv(self._s, False)
        return got[0] if got else None

    def recv_many(self) -> list[bytes]:
        """Every message already received (waiting for one if none is), [] at the end."""
        return self._conn._recv(self._s, True)

    def send(self, message: bytes) -> None:
        self.send_many([message])

    def send_many(self, messages: Sequence[bytes]) -> None:
        parts: list[bytes] = []
        for m in messages:
            parts.append(b"\0" + len(m).to_bytes(4, "big"))
            parts.append(m)
        if parts:
            self._conn._send_data(self._s, b"".join(parts))


class Connection:
    """The server end of an HTTP/2 connection on a connected blocking socket (or
    cli/tls.TLSSocket). `serve()` reads until the connection ends; `close()` from any
    thread ends it."""

    def __init__(
        self,
        sock: Any,
        handlers: Mapping[str, Callable[[Call], None]],
        initial: bytes = b"",
    ) -> None:
        self._sock = sock
        self._handlers = dict(handlers)
        self._buf = bytearray(initial)
        self._lock = _thread.allocate_lock()  # every field below and the windows
        self._cond = _Cond(self._lock)
        self._wlock = _thread.allocate_lock()  # one writer on the socket at a time
        self._tls = hasattr(sock, "decrypt")  # cli/tls.TLSSocket: see _fill
        self._decoder = Decoder()
        self._streams: dict[int, _Stream] = {}
        self._last_id = 0  # the highest stream id the peer opened
        self._goaway_id: int | None = None
        self._peer_window = 65535  # connection send window
        self._peer_initial = 65535
        self._peer_frame = 16384
        self._conn_unacked = 0
        self.closed = False
        self.close_reason = ""
        self.sent = 0  # bytes written, for tests and benchmarks
        self._done = Event()  # set when serve() has ended and the socket is closed

    # the reader's side ---------------------------------------------------------------------
    def serve(self) -> None:
        """Send our preface, then read and dispatch frames until the connection ends."""
        try:
            self._write(
                _frame(
                    SETTINGS,
                    0,
                    0,
                    (S_INITIAL_WINDOW_SIZE).to_bytes(2, "big")
                    + _WINDOW.to_bytes(4, "big")
                    + (S_MAX_FRAME_SIZE).to_bytes(2, "big")
                    + _MAX_FRAME.to_bytes(4, "big"),
                )
                + _frame(WINDOW_UPDATE, 0, 0, (_CONN_WINDOW - 65535).to_bytes(4, "big"))
            )
            self._read_exactly(len(PREFACE))
            if bytes(self._buf[: len(PREFACE)]) != PREFACE:
                raise ConnectionError_(PROTOCOL_ERROR, "no HTTP/2 connection preface")
            del self._buf[: len(PREFACE)]
            first = True
            while True:
                kind, flags, sid, payload = self._next_frame()
                if first and kind != SETTINGS:
                    raise ConnectionError_(PROTOCOL_ERROR, "the first frame is not SETTINGS")
                first = False
                self._frame_received(kind, flags, sid, payload)
        except ConnectionError_ as exc:
            self._fail(exc.code, str(exc))
        except HPACKError as exc:
            self._fail(COMPRESSION_ERROR, f"header block: {exc}")
        except _Ended as exc:
            self._end(str(exc))
        except ConnectionResetError:
            self._end(self.close_reason or "the daemon closed the session's connection")
        except Exception as exc:  # OSError, TLS errors: the end, said once, no traceback
            self._end(f"the session's connection failed: {exc}")
        finally:
            try:
                self._sock.close()
            except OSError:
                pass
            self._done.set()

    def wait_closed(self, timeout: float = -1) -> bool:
        return self._done.wait(timeout)

    def _fill(self) -> None:
        if self._tls:
            self._fill_tls()
            return
        data = self._sock.recv(_READ)
        if not data:
            raise _Ended(self.close_reason or "the daemon closed the session's connection")
        self._buf += data

    def _fill_tls(self) -> None:
        """A TLS object takes one operation at a time: the raw socket is read outside the
        write lock and the records decrypted under it, so writers never wait on a read."""
        try:
            with self._wlock:
                plain = self._sock.decrypt(None)  # records already read with the upgrade
            while not plain:
                data = self._sock.raw_socket().recv(_READ)
                with self._wlock:
                    plain = self._sock.decrypt(data)
                if not data and not plain:
                    raise EOFError
        except EOFError:
            raise _Ended(
                self.close_reason or "the daemon closed the session's connection"
            ) from None
        self._buf += plain

    def _read_exactly(self, n: int) -> None:
        while len(self._buf) < n:
            self._fill()

    def _next_frame(self) -> tuple[int, int, int, bytes]:
        self._read_exactly(9)
        head = self._buf
        length = int.from_bytes(head[:3], "big")
        kind, flags = head[3], head[4]
        sid = int.from_bytes(head[5:9], "big") & 0x7FFFFFFF
        if length > _MAX_FRAME:
            raise ConnectionError_(FRAME_SIZE_ERROR, f"a frame of {length} bytes")
        self._read_exactly(9 + length)
        payload = bytes(self._buf[9 : 9 + length])
        del self._buf[: 9 + length]
        return kind, flags, sid, payload

    def _frame_received(self, kind: int, flags: int, sid: int, payload: bytes) -> None:
        if kind == DATA:
            self._on_data(flags, sid, payload)
        elif kind == HEADERS:
            self._on_headers(flags, sid, payload)
        elif kind == SETTINGS:
            self._on_settings(flags, sid, payload)
        elif kind == WINDOW_UPDATE:
            self._on_window_update(sid, payload)
        elif kind == PING:
            if sid or len(payload) != 8:
                raise ConnectionError_(PROTOCOL_ERROR if sid else FRAME_SIZE_ERROR, "bad PING")
            if not flags & ACK:
                self._write(_frame(PING, ACK, 0, payload))
        elif kind == RST_STREAM:
            if not sid or len(payload) != 4:
                raise ConnectionError_(PROTOCOL_ERROR, "bad RST_STREAM")
            if sid > self._last_id:
                raise ConnectionError_(PROTOCOL_ERROR, f"RST_STREAM on idle stream {sid}")
            with self._lock:
                s = self._streams.pop(sid, None)
                if s is not None:
                    s.done = True
                    if s.error is None:
                        s.error = GrpcError(CANCELLED, "the daemon cancelled the call")
                    self._cond.notify_all()
        elif kind == GOAWAY:
            if sid or len(payload) < 8:
                raise ConnectionError_(PROTOCOL_ERROR, "bad GOAWAY")
            last = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF
            with self._lock:
                self._goaway_id = last
                for s in [s for s in self._streams.values() if s.id > last]:
                    s.error = GrpcError(UNAVAILABLE, "the daemon is going away")
                    self._streams.pop(s.id, None)
                self._cond.notify_all()
        elif kind == PRIORITY:
            if not sid or len(payload) != 5:
                raise ConnectionError_(PROTOCOL_ERROR, "bad PRIORITY")
        elif kind in (PUSH_PROMISE, CONTINUATION):
            raise ConnectionError_(PROTOCOL_ERROR, f"unexpected frame type {kind}")
        # other types are extensions: ignored (§5.5)

    def _unpad(self, flags: int, payload: bytes) -> bytes:
        if not flags & PADDED:
            return payload
        if not payload or payload[0] >= len(payload):
            raise ConnectionError_(PROTOCOL_ERROR, "padding longer than the frame")
        return payload[1 : len(payload) - payload[0]]

    def _on_settings(self, flags: int, sid: int, payload: bytes) -> None:
        if sid:
            raise ConnectionError_(PROTOCOL_ERROR, "SETTINGS on a stream")
        if flags & ACK:
            if payload:
                raise ConnectionError_(FRAME_SIZE_ERROR, "SETTINGS ack with a payload")
            return
        if len(payload) % 6:
            raise ConnectionError_(FRAME_SIZE_ERROR, "SETTINGS of a bad length")
        with self._lock:
            for i in range(0, len(payload), 6):
                key = int.from_bytes(payload[i : i + 2], "big")
                value = int.from_bytes(payload[i + 2 : i + 6], "big")
                if key == S_INITIAL_WINDOW_SIZE:
                    if value > _MAX_WINDOW:
                        raise ConnectionError_(FLOW_CONTROL_ERROR, "INITIAL_WINDOW_SIZE too big")
                    delta = value - self._peer_initial  # §6.9.2: open streams change too
                    self._peer_initial = value
                    for s in self._streams.values():
                        s.window += delta
                        if s.window > _MAX_WINDOW:
                            raise ConnectionError_(FLOW_CONTROL_ERROR, "stream window too big")
                elif key == S_MAX_FRAME_SIZE:
                    if not 16384 <= value <= (1 << 24) - 1:
                        raise ConnectionError_(PROTOCOL_ERROR, f"MAX_FRAME_SIZE {value}")
                    self._peer_frame = value
                elif key == S_ENABLE_PUSH and value > 1:
                    raise ConnectionError_(PROTOCOL_ERROR, f"ENABLE_PUSH {value}")
                # HEADER_TABLE_SIZE bounds the peer's decoder: our literals use no table
            self._cond.notify_all()
        self._write(_frame(SETTINGS, ACK, 0))

    def _on_window_update(self, sid: int, payload: bytes) -> None:
        if len(payload) != 4:
            raise ConnectionError_(FRAME_SIZE_ERROR, "bad WINDOW_UPDATE")
        inc = int.from_bytes(payload, "big") & 0x7FFFFFFF
        with self._lock:
            if sid == 0:
                if inc == 0:
                    raise ConnectionError_(PROTOCOL_ERROR, "WINDOW_UPDATE of 0")
                self._peer_window += inc
                if self._peer_window > _MAX_WINDOW:
                    raise ConnectionError_(FLOW_CONTROL_ERROR, "connection window too big")
            else:
                s = self._streams.get(sid)
                if s is None:
                    if sid > self._last_id:
                        raise ConnectionError_(PROTOCOL_ERROR, f"WINDOW_UPDATE on idle {sid}")
                    return
                if inc == 0 or s.window + inc > _MAX_WINDOW:
                    s.error = GrpcError(INTERNAL, "bad WINDOW_UPDATE from the daemon")
                    self._reset_locked(s, PROTOCOL_ERROR if inc == 0 else FLOW_CONTROL_ERROR)
                    return
                s.window += inc
            self._cond.notify_all()

    def _on_headers(self, flags: int, sid: int, payload: bytes) -> None:
        if not sid:
            raise ConnectionError_(PROTOCOL_ERROR, "HEADERS on stream 0")
        block = self._unpad(flags, payload)
        if flags & PRIORITY_FLAG:
            if len(block) < 5:
                raise ConnectionError_(FRAME_SIZE_ERROR, "HEADERS too short for its priority")
            block = block[5:]
        ended = bool(flags & END_STREAM)  # on the HEADERS frame, not its CONTINUATIONs
        parts = [block]
        size = len(block)
        while not flags & END_HEADERS:
            kind, flags, csid, more = self._next_frame()
            if kind != CONTINUATION or csid != sid:
                raise ConnectionError_(PROTOCOL_ERROR, "a header block cut by another frame")
            parts.append(more)
            size += len(more)
            if size > 1 << 20:
                raise ConnectionError_(PROTOCOL_ERROR, "header block too large")
        headers = self._decoder.decode(b"".join(parts))  # always: the table must follow
        self._headers_done(sid, headers, ended)

    def _headers_done(self, sid: int, headers: list[tuple[bytes, bytes]], ended: bool) -> None:
        with self._lock:
            s = self._streams.get(sid)
            if s is not None:  # trailers: the peer's half of the call is over
                if not ended:
                    raise ConnectionError_(PROTOCOL_ERROR, "trailers without END_STREAM")
                s.ended = True
                self._cond.notify_all()
                return
            if sid <= self._last_id:
                return  # a stream we already closed (§5.1: ignore what follows its end)
            if sid % 2 == 0:
                raise ConnectionError_(PROTOCOL_ERROR, f"the daemon opened even stream {sid}")
            self._last_id = sid
            if self.closed or self._goaway_sent:
                return
            s = _Stream(sid, self._peer_initial)
            s.headers = headers_dict(headers)
            s.ended = ended
            self._streams[sid] = s
        method = s.headers.get(":path", [""])[0]
        handler = self._handlers.get(method)
        call = Call(self, s, method)
        if handler is None:
            self._finish(s, UNIMPLEMENTED, f"unknown method {method}")
            return
        _thread.start_new_thread(self._serve_call, (handler, call))

    _goaway_sent = False

    def _on_data(self, flags: int, sid: int, payload: bytes) -> None:
        if not sid:
            raise ConnectionError_(PROTOCOL_ERROR, "DATA on stream 0")
        flow = len(payload)
        data = self._unpad(flags, payload)
        credit = b""
        with self._lock:
            self._conn_unacked += flow
            if self._conn_unacked > _CONN_WINDOW:
                raise ConnectionError_(FLOW_CONTROL_ERROR, "the daemon overran our window")
            s = self._streams.get(sid)
            if s is None:
                if sid > self._last_id:
                    raise ConnectionError_(PROTOCOL_ERROR, f"DATA on idle stream {sid}")
                # a stream we ended or reset: its bytes still count for the connection
                credit = self._conn_credit_locked(force=True)
            elif s.ended:
                raise ConnectionError_(STREAM_CLOSED, f"DATA after END_STREAM on {sid}")
            else:
                s.unacked += flow
                if s.unacked > _WINDOW:
                    raise ConnectionError_(FLOW_CONTROL_ERROR, f"the daemon overran stream {sid}")
                if flags & END_STREAM:
                    s.ended = True
                self._messages_locked(s, data)
                if not s.inbox:  # a partial message (or padding only): let the rest come
                    credit = self._credit_locked(s, force=True)
                self._cond.notify_all()
        if credit:
            self._write(credit)

    def _messages_locked(self, s: _Stream, data: bytes) -> None:
        s.buffer += data
        buf, pos, end = s.buffer, 0, len(s.buffer)
        while end - pos >= 5:
            if buf[pos] != 0:
                s.error = GrpcError(UNIMPLEMENTED, "compressed gRPC messages are not supported")
                self._reset_locked(s, INTERNAL_ERROR)
                return
            n = int.from_bytes(buf[pos + 1 : pos + 5], "big")
            if n > MAX_MESSAGE:
                s.error = GrpcError(INTERNAL, f"gRPC message of {n} bytes is too large")
                self._reset_locked(s, INTERNAL_ERROR)
                return
            if end - pos < 5 + n:
                break
            s.inbox.append(bytes(buf[pos + 5 : pos + 5 + n]))
            pos += 5 + n
        del buf[:pos]

    def _credit_locked(self, s: _Stream, force: bool = False) -> bytes:
        """WINDOW_UPDATEs for what was consumed, once a quarter window is owed (or `force`):
        one per small message would double a listing's frames."""
        out = b""
        if s.unacked and (force or s.unacked >= _WINDOW // 4) and not s.ended and not s.done:
            out = _frame(WINDOW_UPDATE, 0, s.id, s.unacked.to_bytes(4, "big"))
            s.unacked = 0
        return out + self._conn_credit_locked(force)

    def _conn_credit_locked(self, force: bool) -> bytes:
        if self._conn_unacked and (force or self._conn_unacked >= _CONN_WINDOW // 4):
            out = _frame(WINDOW_UPDATE, 0, 0, self._conn_unacked.to_bytes(4, "big"))
            self._conn_unacked = 0
            return out
        return b""

    # the handlers' side --------------------------------------------------------------------
    def _recv(self, s: _Stream, many: bool) -> list[bytes]:
        with self._lock:
            while not s.inbox:
                if s.error is not None:
                    raise s.error
                if s.ended:
                    return []
                if self.closed:
                    raise GrpcError(UNAVAILABLE, self.close_reason)
                self._cond.wait()
            if many:
                out = list(s.inbox)
                s.inbox.clear()
            else:
                out = [s.inbox.pop(0)]
            credit = self._credit_locked(s, force=not s.inbox)
        if credit:
            self._write(credit)
        return out

    def _send_data(self, s: _Stream, data: bytes) -> None:
        if not s.sent_headers:
            s.sent_headers = True
            self._write(
                _frame(
                    HEADERS,
                    END_HEADERS,
                    s.id,
                    encode([(":status", "200"), ("content-type", "application/grpc")]),
                )
            )
        view = memoryview(data)
        while view:
            with self._lock:
                while True:
                    if s.error is not None:
                        raise s.error
                    if self.closed:
                        raise GrpcError(UNAVAILABLE, self.close_reason)
                    if s.done:
                        raise GrpcError(CANCELLED, "the call is over")
                    n = min(s.window, self._peer_window, self._peer_frame, len(view))
                    if n > 0:
                        break
                    self._cond.wait()
                s.window -= n
                self._peer_window -= n
            self._write(_frame(DATA, 0, s.id, bytes(view[:n])))
            view = view[n:]

    def _serve_call(self, handler: Callable[[Call], None], call: Call) -> None:
        try:
            handler(call)
        except GrpcError as exc:
            self._finish(call._s, exc.code, exc.message)
        except Exception as exc:  # the daemon gets the error as the call's status
            self._finish(call._s, UNKNOWN, str(exc) or type(exc).__name__)
        else:
            self._finish(call._s, OK, "")

    def _finish(self, s: _Stream, code: int, message: str) -> None:
        with self._lock:
            if s.done or self.closed or self._streams.get(s.id) is not s:
                return
            s.done = True
            self._streams.pop(s.id, None)
            self._cond.notify_all()
        trailers = [("grpc-status", str(code))]
        if message:
            trailers.append(("grpc-message", _grpc_message(message)))
        if not s.sent_headers:  # trailers-only
            s.sent_headers = True
            trailers = [(":status", "200"), ("content-type", "application/grpc"), *trailers]
        try:
            self._write(_frame(HEADERS, END_HEADERS | END_STREAM, s.id, encode(trailers)))
        except OSError:
            pass

    def _reset_locked(self, s: _Stream, code: int) -> None:
        s.done = True
        self._streams.pop(s.id, None)
        if s.error is None:
            s.error = GrpcError(CANCELLED, "call cancelled")
        self._cond.notify_all()
        frame = _frame(RST_STREAM, 0, s.id, code.to_bytes(4, "big"))
        _thread.start_new_thread(self._write_quietly, (frame,))  # never write under _lock

    def _write_quietly(self, data: bytes) -> None:
        try:
            self._write(data)
        except OSError:
            pass

    # both ----------------------------------------------------------------------------------
    def _write(self, data: bytes) -> None:
        with self._wlock:
            self._sock.sendall(data)
            self.sent += len(data)

    def _fail(self, code: int, reason: str) -> None:
        """A connection error of ours: GOAWAY, then the end."""
        debug = reason.encode()[:256]  # §6.8: debug data, for the peer's log
        goaway = _frame(
            GOAWAY, 0, 0, self._last_id.to_bytes(4, "big") + code.to_bytes(4, "big") + debug
        )
        self._goaway_sent = True
        try:
            self._write(goaway)
        except OSError:
            pass
        self._end(f"HTTP/2 protocol error: {reason}")

    def _end(self, reason: str) -> None:
        with self._lock:
            if not self.closed:
                self.closed = True
                self.close_reason = self.close_reason or reason
            err = GrpcError(UNAVAILABLE, self.close_reason)
            for s in self._streams.values():
                if s.error is None:
                    s.error = err
            self._streams.clear()
            self._cond.notify_all()
        self._shutdown()

    def _shutdown(self) -> None:
        sock = self._sock.raw_socket() if self._tls else self._sock
        try:
            sock.shutdown(2)  # SHUT_RDWR: wakes the reader (and a writer blocked in sendall)
        except OSError:
            pass

    def close(self, reason: str = "") -> None:
        """End the connection (GOAWAY NO_ERROR) from any thread; the reader stops."""
        with self._lock:
            if self.closed:
                return
            self.close_reason = reason or "the session was closed"
        if not self._goaway_sent:
            self._goaway_sent = True
            goaway = _frame(GOAWAY, 0, 0, self._last_id.to_bytes(4, "big") + bytes(4))
            # a writer stuck in sendall (a daemon that stopped reading) must not hold us up:
            # the shutdown below ends it
            if self._wlock.acquire(True, 1.0):
                try:
                    self._sock.sendall(goaway)
                except OSError:
                    pass
                finally:
                    self._wlock.release()
        self._end(self.close_reason)


class _Ended(Exception):
    """The socket reached its end."""
