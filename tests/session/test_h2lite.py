"""The CLI's HTTP/2 server (session/h2lite.py) against the daemon's real client
(session/h2grpc.GrpcConnection, client_side=True, on h2) over a socket pair, and against
raw frames a hostile or broken peer could send."""

from __future__ import annotations

import _thread
import asyncio
import os
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import hpack
import pytest
from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH
from hpack.table import HeaderTable

from dockyard.session import h2grpc, h2lite, hpacklite
from dockyard.session.h2grpc import GrpcConnection


def _serve(sock: socket.socket, handlers: dict[str, Any]) -> h2lite.Connection:
    conn = h2lite.Connection(sock, handlers)
    _thread.start_new_thread(conn.serve, ())
    return conn


async def _pair(handlers: dict[str, Any]) -> tuple[GrpcConnection, h2lite.Connection]:
    a, b = socket.socketpair()
    server = _serve(b, handlers)
    client = GrpcConnection(client_side=True)
    await asyncio.get_running_loop().create_connection(lambda: client, sock=a)
    return client, server


def run(coro: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(coro(), 60))


def echo(call: h2lite.Call) -> None:
    while (msg := call.recv()) is not None:
        if msg == b"fail":
            raise h2lite.GrpcError(h2lite.NOT_FOUND, "no such thing: ü 100%")
        call.send(msg[::-1])


def test_many_streams_status_metadata_and_unknown_method() -> None:
    seen: list[str] = []

    def meta(call: h2lite.Call) -> None:
        seen.append(call.first("dir-name") + "|" + call.first("x-thing-bin"))
        call.recv()

    async def main() -> None:
        client, server = await _pair({"/t/Echo": echo, "/t/Meta": meta})
        replies = await asyncio.gather(
            *(client.unary("/t/Echo", f"m{i}".encode() * 50) for i in range(40))
        )
        assert replies == [f"m{i}".encode()[::-1] * 50 for i in range(40)]
        with pytest.raises(h2grpc.GrpcError) as err:
            await client.unary("/t/Echo", b"fail")
        assert err.value.code == h2grpc.NOT_FOUND
        assert err.value.message == "no such thing: ü 100%"
        with pytest.raises(h2grpc.GrpcError) as err:
            await client.unary("/t/Nope", b"x")
        assert err.value.code == h2grpc.UNIMPLEMENTED
        # h2's encoder indexes headers in its dynamic table and Huffman-codes them: the
        # same metadata again is a block of table indexes
        for _ in range(3):
            md = {"dir-name": ["context"], "x-thing-bin": ["\x00\xffbin"]}  # h2grpc sends it base64
            call = client.open("/t/Meta", md)
            await call.close_send()
            assert await call.recv() is None
        assert seen == ["context|\x00\xffbin"] * 3
        client.close()
        assert await asyncio.to_thread(server.wait_closed, 10)

    run(main)


def test_64_mib_each_way_with_flow_control() -> None:
    """The daemon's windows are honoured (its 8 MiB per stream); what it sends us is
    credited back as we consume, so neither side stalls."""
    got: list[int] = []

    def sink_and_source(call: h2lite.Call) -> None:
        total = 0
        while batch := call.recv_many():
            total += sum(map(len, batch))
        got.append(total)
        chunk = os.urandom(1 << 20)
        for _ in range(64):
            call.send_many([chunk])

    async def main() -> None:
        client, _ = await _pair({"/t/Big": sink_and_source})
        call = client.open("/t/Big")
        chunk = b"x" * (4 << 20)
        for _ in range(16):
            await call.send(chunk)
        await call.close_send()
        total = 0
        while (msg := await call.recv()) is not None:
            total += len(msg)
        assert total == 64 << 20
        assert got == [64 << 20]
        client.close()

    run(main)


def test_daemon_resetting_a_call_mid_stream_stops_its_handler() -> None:
    stopped: list[str] = []

    def endless(call: h2lite.Call) -> None:
        try:
            while True:
                call.send(b"y" * 65536)
        except h2lite.GrpcError as exc:
            stopped.append(exc.message)
            raise

    async def main() -> None:
        client, _ = await _pair({"/t/Endless": endless, "/t/Echo": echo})
        call = client.open("/t/Endless")
        assert await call.recv()
        call.cancel()
        for _ in range(100):
            if stopped:
                break
            await asyncio.sleep(0.05)
        assert stopped == ["the daemon cancelled the call"]
        assert await client.unary("/t/Echo", b"ab") == b"ba"  # the connection lives on
        client.close()

    run(main)


def test_daemon_going_away_fails_the_calls_and_ends_serve() -> None:
    errors: list[int] = []

    def wait(call: h2lite.Call) -> None:
        try:
            call.recv()
            call.recv()
        except h2lite.GrpcError as exc:
            errors.append(exc.code)

    async def main() -> None:
        client, server = await _pair({"/t/Wait": wait})
        call = client.open("/t/Wait")
        await call.send(b"x")
        await asyncio.sleep(0.1)
        client.close("bye")  # GOAWAY, then the socket closes
        assert await asyncio.to_thread(server.wait_closed, 10)
        for _ in range(100):
            if errors:
                break
            await asyncio.sleep(0.02)
        assert errors == [h2lite.UNAVAILABLE]
        assert server.closed

    run(main)


# raw frames ------------------------------------------------------------------------------


class _Raw:
    """A hand-driven peer writing raw frames (legal or not) and reading the answers."""

    def __init__(self, handlers: dict[str, Any], settings: bytes = b"") -> None:
        self.sock, theirs = socket.socketpair()
        self.server = _serve(theirs, handlers)
        self._start(settings)

    def _start(self, settings: bytes = b"") -> None:
        self.sock.settimeout(10)
        self.sock.sendall(h2lite.PREFACE + h2lite._frame(h2lite.SETTINGS, 0, 0, settings))
        self.buf = b""
        self.decoder = hpack.Decoder()

    def frame(self) -> tuple[int, int, int, bytes] | None:
        while len(self.buf) < 9 or len(self.buf) < 9 + int.from_bytes(self.buf[:3], "big"):
            data = self.sock.recv(1 << 20)
            if not data:
                return None
            self.buf += data
        n = int.from_bytes(self.buf[:3], "big")
        kind, flags = self.buf[3], self.buf[4]
        sid = int.from_bytes(self.buf[5:9], "big")
        payload, self.buf = self.buf[9 : 9 + n], self.buf[9 + n :]
        return kind, flags, sid, payload

    def until(self, kind: int, flags: int = 0) -> list[tuple[int, int, int, bytes]]:
        """Frames up to one of `kind` with `flags` (or the end: a None last)."""
        out: list[Any] = []
        while True:
            f = self.frame()
            out.append(f)
            if f is None or (f[0] == kind and f[1] & flags == flags):
                return out

    def raw(self, kind: int, flags: int, sid: int, payload: bytes) -> None:
        self.sock.sendall(h2lite._frame(kind, flags, sid, payload))


class _RawOn(_Raw):
    """The raw peer on a socket whose other end someone else serves."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._start()


def _grpc(msg: bytes) -> bytes:
    return b"\0" + len(msg).to_bytes(4, "big") + msg


REQUEST = [
    (":method", "POST"),
    (":scheme", "http"),
    (":path", "/t/Echo"),
    (":authority", "localhost"),
    ("content-type", "application/grpc"),
]


def _reply(peer: _Raw, frames: list[Any]) -> tuple[bytes, dict[bytes, bytes]]:
    data = b"".join(f[3] for f in frames if f and f[0] == h2lite.DATA)
    headers: dict[bytes, bytes] = {}
    for f in frames:
        if f and f[0] == h2lite.HEADERS:
            headers.update(dict(peer.decoder.decode(f[3], raw=True)))
    return data, headers


def test_continuation_padding_and_ping() -> None:
    peer = _Raw({"/t/Echo": echo})
    peer.until(h2lite.SETTINGS, h2lite.ACK)
    # a header block in three pieces: HEADERS (padded, with priority) and two CONTINUATIONs,
    # Huffman-coded and indexed into the dynamic table; then the same again from the table
    enc = hpack.Encoder()
    for sid in (1, 3):
        block = enc.encode([*REQUEST, ("x-long", "v" * 3000)], huffman=True)
        pad = 7
        first = bytes((pad,)) + bytes(5) + block[:1000] + bytes(pad)
        peer.raw(h2lite.HEADERS, h2lite.PADDED | h2lite.PRIORITY_FLAG, sid, first)
        peer.raw(h2lite.CONTINUATION, 0, sid, block[1000:2000])
        peer.raw(h2lite.CONTINUATION, h2lite.END_HEADERS, sid, block[2000:])
        msg = _grpc(b"hello")
        peer.raw(h2lite.DATA, h2lite.PADDED, sid, bytes((20,)) + msg[:3] + bytes(20))
        peer.raw(h2lite.DATA, h2lite.PADDED | h2lite.END_STREAM, sid, bytes((0,)) + msg[3:])
        peer.raw(h2lite.PING, 0, 0, b"12345678")
        frames: list[Any] = []
        while not (
            (h2lite.PING, h2lite.ACK, 0, b"12345678") in frames
            and any(f[0] == h2lite.HEADERS and f[1] & h2lite.END_STREAM for f in frames)
        ):
            frames.append(peer.frame())
            assert frames[-1] is not None
        data, trailers = _reply(peer, frames)
        assert data == _grpc(b"olleh")
        assert trailers[b"grpc-status"] == b"0"
        assert len(block) < 100 or sid == 1  # the second block is table indexes
    peer.sock.close()
    assert peer.server.wait_closed(10)


def test_small_peer_windows_and_frames_are_honoured() -> None:
    """A peer announcing a 1,000-byte stream window gets 1,000 bytes until it grants more."""

    def big(call: h2lite.Call) -> None:
        call.recv()
        call.send(b"z" * 50_000)

    settings = h2lite.S_INITIAL_WINDOW_SIZE.to_bytes(2, "big") + (1000).to_bytes(4, "big")
    peer = _Raw({"/t/Big": big}, settings)
    peer.until(h2lite.SETTINGS, h2lite.ACK)
    block = hpack.Encoder().encode([*REQUEST[:2], (":path", "/t/Big"), *REQUEST[3:]])
    peer.raw(h2lite.HEADERS, h2lite.END_HEADERS, 1, block)
    peer.raw(h2lite.DATA, h2lite.END_STREAM, 1, _grpc(b"go"))
    got = 0
    while got < 50_005:
        frames = peer.until(h2lite.DATA)
        assert frames[-1] is not None
        size = len(frames[-1][3])
        assert size <= 1000
        got += size
        if got == 1000:  # the window is spent: nothing comes until we grant more
            peer.sock.settimeout(0.2)
            with pytest.raises(TimeoutError):
                peer.frame()
            peer.sock.settimeout(10)
        if got % 1000 == 0:
            peer.raw(h2lite.WINDOW_UPDATE, 0, 1, (1000).to_bytes(4, "big"))
    assert peer.until(h2lite.HEADERS, h2lite.END_STREAM)[-1] is not None
    peer.sock.close()


@pytest.mark.parametrize(
    "frame",
    [
        (h2lite.DATA, 0, 0, b"x"),  # DATA on stream 0
        (h2lite.DATA, 0, 9, _grpc(b"x")),  # on an idle stream
        (h2lite.PING, 0, 0, b"short"),
        (h2lite.SETTINGS, 0, 0, b"\x00\x05\x00\x00\x00\x01"),  # MAX_FRAME_SIZE 1
        (h2lite.SETTINGS, 0, 0, b"\x00\x04\xff\xff\xff\xff"),  # window 2**32-1
        (h2lite.WINDOW_UPDATE, 0, 0, bytes(4)),
        (h2lite.HEADERS, h2lite.END_HEADERS, 1, b"\xff\xff\xff\xff\x0f"),  # index too big
        (h2lite.HEADERS, h2lite.END_HEADERS, 1, b"\x00\x81\xff\x01x"),  # bad Huffman
        (h2lite.HEADERS, h2lite.PADDED | h2lite.END_HEADERS, 1, b"\x09abc"),  # pad > frame
        (h2lite.CONTINUATION, h2lite.END_HEADERS, 1, b""),  # without HEADERS
        (h2lite.PUSH_PROMISE, 0, 1, bytes(8)),
        (h2lite.RST_STREAM, 0, 7, bytes(4)),  # on an idle stream
    ],
    ids=lambda f: repr(f)[:40],
)
def test_malformed_frames_end_the_connection_cleanly(frame: tuple[int, int, int, bytes]) -> None:
    peer = _Raw({"/t/Echo": echo})
    peer.until(h2lite.SETTINGS, h2lite.ACK)
    peer.raw(*frame)
    frames = peer.until(h2lite.GOAWAY)
    assert frames[-1] is not None and frames[-1][0] == h2lite.GOAWAY
    assert int.from_bytes(frames[-1][3][4:8], "big") != h2lite.NO_ERROR
    assert peer.frame() is None  # then the socket closes
    assert peer.server.wait_closed(10)
    assert "protocol error" in peer.server.close_reason


def test_oversized_frame_and_garbage_preface() -> None:
    peer = _Raw({})
    peer.until(h2lite.SETTINGS, h2lite.ACK)
    peer.sock.sendall((2 << 20).to_bytes(3, "big") + bytes(6))
    assert peer.server.wait_closed(10)
    assert "a frame of" in peer.server.close_reason
    a, b = socket.socketpair()
    server = _serve(b, {})
    a.sendall(b"GET / HTTP/1.1\r\n\r\n" + bytes(20))
    assert server.wait_closed(10)
    assert "preface" in server.close_reason


# HPACK -----------------------------------------------------------------------------------


def test_huffman_code_lengths_make_rfc7541s_code() -> None:
    codes = hpacklite.huffman_codes()
    assert codes == {s: (REQUEST_CODES[s], REQUEST_CODES_LENGTH[s]) for s in range(257)}
    assert hpacklite.STATIC_TABLE == HeaderTable.STATIC_TABLE


def test_decoder_follows_hpacks_encoder_with_table_changes() -> None:
    enc = hpack.Encoder()
    dec = hpacklite.Decoder()
    blocks = []
    for i in range(200):
        headers = [(":path", f"/p/{i % 7}"), (f"x-h{i % 13}", os.urandom(i % 90).hex())]
        if i == 50:
            enc.header_table_size = 256  # a dynamic table size update, then evictions
        if i == 120:
            enc.header_table_size = 4096
        never = [hpack.NeverIndexedHeaderTuple("authorization", "secret")]
        blocks.append((headers + never, enc.encode(headers + never, huffman=i % 2 == 0)))
    for headers, block in blocks:
        got = dec.decode(block)
        assert got == [(k.encode(), v.encode()) for k, v in headers]
    assert hpack.Decoder().decode(hpacklite.encode([("grpc-message", "a%20b")])) == [
        ("grpc-message", "a%20b")
    ]


# fsutil's DiffCopy through it ----------------------------------------------------------


def _session(conn: GrpcConnection) -> Any:
    from dockyard.session import methods
    from dockyard.session.manager import Session

    return Session("s1", "t", "key", frozenset({methods.FILESYNC_DIFFCOPY.lower()}), conn)


def test_a_64_mib_diffcopy_streams_through_the_windows(tmp_path: Path) -> None:
    from dockyard.session import filesync
    from dockyard.session.fssend import DirServer

    src = tmp_path / "src"
    src.mkdir()
    big = os.urandom(1 << 20) * 64
    (src / "big.bin").write_bytes(big)
    for i in range(300):
        (src / f"small{i}").write_bytes(b"%d" % i)
    server = DirServer({"context": src})

    async def main() -> None:
        client, sender = await _pair(server.handlers())
        result = await filesync.receive(
            _session(client), "context", tmp_path / "kept" / "tree", tmp_path / "kept" / "st"
        )
        client.close()
        assert result.requested == 301
        assert sender.sent > 64 << 20

    run(main)
    assert (tmp_path / "kept" / "tree" / "big.bin").read_bytes() == big
    assert server.sent_bytes == len(big) + sum(len(b"%d" % i) for i in range(300))


def test_a_daemon_dying_mid_sync_ends_the_handler_and_serve(tmp_path: Path) -> None:
    """The daemon's socket closes without GOAWAY while the sender waits on its window:
    nothing hangs, the handler's file is closed."""
    from dockyard.session import methods
    from dockyard.session.fssend import DirServer

    src = tmp_path / "src"
    src.mkdir()
    (src / "big.bin").write_bytes(os.urandom(1 << 20) * 32)
    a, b = socket.socketpair()
    server = _serve(b, DirServer({"context": src}).handlers())
    peer = _RawOn(a)
    peer.until(h2lite.SETTINGS, h2lite.ACK)
    block = hpack.Encoder().encode(
        [*REQUEST[:2], (":path", methods.FILESYNC_DIFFCOPY), *REQUEST[3:], ("dir-name", "context")]
    )
    peer.raw(h2lite.HEADERS, h2lite.END_HEADERS, 1, block)
    peer.until(h2lite.DATA)  # the listing
    peer.raw(h2lite.DATA, 0, 1, _grpc(b"\x08\x01"))  # REQ id 0: the big file
    time.sleep(0.2)  # it sends until the default 65,535-byte window is spent, then waits
    before = len(os.listdir("/proc/self/fd"))
    a.close()
    assert server.wait_closed(10)
    for _ in range(100):
        if len(os.listdir("/proc/self/fd")) < before:
            break
        time.sleep(0.02)
    assert len(os.listdir("/proc/self/fd")) < before  # its socket, and the file it read
    assert "closed" in server.close_reason


# the attachables through it, their hand-written messages read and written by protobuf ------


def test_secrets_health_and_an_ssh_agent_forwarded(tmp_path: Path) -> None:
    import threading

    from dockyard.session import attachables, methods
    from dockyard.session.proto import session_pb2

    agent_path = tmp_path / "agent.sock"
    agent = socket.socket(socket.AF_UNIX)
    agent.bind(str(agent_path))
    agent.listen(1)

    def echo_agent() -> None:
        conn, _ = agent.accept()
        while data := conn.recv(65536):
            conn.sendall(data.upper())
        conn.close()

    threading.Thread(target=echo_agent, daemon=True).start()
    handlers = {
        **attachables.Secrets({"tok": b"s3cret"}).handlers(),
        **attachables.Agents({"default": str(agent_path)}).handlers(),
        **attachables.health_handlers(),
    }

    async def main() -> None:
        client, _ = await _pair(handlers)
        req = session_pb2.GetSecretRequest(ID="tok", annotations={"a": "b"})
        raw = await client.unary(methods.SECRETS_GET, req.SerializeToString())
        assert session_pb2.GetSecretResponse.FromString(raw).data == b"s3cret"
        with pytest.raises(h2grpc.GrpcError) as err:
            await client.unary(
                methods.SECRETS_GET, session_pb2.GetSecretRequest(ID="no").SerializeToString()
            )
        assert (err.value.code, err.value.message) == (h2grpc.NOT_FOUND, "secret no not found")
        ok = await client.unary(methods.HEALTH_CHECK, b"")
        assert session_pb2.HealthCheckResponse.FromString(ok).status == 1  # SERVING
        check = session_pb2.CheckAgentRequest(ID="").SerializeToString()
        assert await client.unary(methods.SSH_CHECK_AGENT, check) == b""
        with pytest.raises(h2grpc.GrpcError, match="unset ssh forward key work"):
            await client.unary(
                methods.SSH_CHECK_AGENT,
                session_pb2.CheckAgentRequest(ID="work").SerializeToString(),
            )
        call = client.open(methods.SSH_FORWARD_AGENT, {methods.KEY_SSH_ID: ["default"]})
        got = b""
        for word in (b"hello ", b"agent"):
            await call.send(session_pb2.BytesMessage(data=word).SerializeToString())
            while len(got) < 6:
                msg = await call.recv()
                assert msg is not None
                got += session_pb2.BytesMessage.FromString(msg).data
        await call.close_send()
        while (msg := await call.recv()) is not None:  # the agent's end, then status OK
            got += session_pb2.BytesMessage.FromString(msg).data
        assert got == b"HELLO AGENT"
        client.close()

    run(main)
    agent.close()
