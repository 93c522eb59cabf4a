"""The session's gRPC layer and fsutil's DiffCopy, both ends ours, over a socket pair.

No root needed: these check the wire logic (framing, flow control, status, clean-up when
the peer goes away) and the receiver's incremental sync; the docker client's side is
checked in test_client.py.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from dockyard.errors import BuildFailure, InvalidArgument
from dockyard.session import filesync, methods
from dockyard.session.fssend import DirServer
from dockyard.session.h2grpc import (
    NOT_FOUND,
    UNAVAILABLE,
    UNIMPLEMENTED,
    Call,
    GrpcConnection,
    GrpcError,
)
from dockyard.session.manager import Session
from dockyard.session.proto import fsutil_pb2
from tests.support import grpc_pair


async def _pair(handlers: dict[str, Any]) -> tuple[GrpcConnection, GrpcConnection]:
    a, b = socket.socketpair()
    loop = asyncio.get_running_loop()
    server = GrpcConnection(client_side=False, handlers=handlers)
    client = GrpcConnection(client_side=True)
    await loop.create_connection(lambda: server, sock=b)
    await loop.create_connection(lambda: client, sock=a)
    return client, server


def _session(conn: GrpcConnection) -> Session:
    return Session("s1", "test", "key", frozenset({methods.FILESYNC_DIFFCOPY.lower()}), conn)


def run(coro: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(coro(), 30))


def test_unary_status_and_unknown_method() -> None:
    async def echo(call: Call) -> None:
        msg = await call.recv()
        assert msg is not None
        if msg == b"fail":
            raise GrpcError(NOT_FOUND, "no such thing: ü")
        await call.send(msg[::-1])

    async def main() -> None:
        client, _server = await _pair({"/t.T/Echo": echo})
        assert await client.unary("/t.T/Echo", b"abc") == b"cba"
        with pytest.raises(GrpcError) as err:
            await client.unary("/t.T/Echo", b"fail")
        assert (err.value.code, err.value.message) == (NOT_FOUND, "no such thing: ü")
        with pytest.raises(GrpcError) as err:
            await client.unary("/t.T/Nope", b"")
        assert err.value.code == UNIMPLEMENTED
        client.close()

    run(main)


def test_large_messages_pass_flow_control() -> None:
    big = os.urandom(12 << 20)

    async def sink(call: Call) -> None:
        total = 0
        while (m := await call.recv()) is not None:
            total += len(m)
            await asyncio.sleep(0)  # a slow reader: the sender must wait for window credit
        await call.send(str(total).encode())

    async def main() -> None:
        client, _ = await _pair({"/t.T/Sink": sink})
        call = client.open("/t.T/Sink")
        for _ in range(3):
            await call.send(big)
        await call.close_send()
        assert await call.recv() == str(3 * len(big)).encode()
        assert await call.recv() is None
        client.close()

    run(main)


def test_peer_going_away_fails_calls_and_closes() -> None:
    async def hang(call: Call) -> None:
        await asyncio.sleep(3600)

    async def main() -> None:
        client, server = await _pair({"/t.T/Hang": hang})
        call = client.open("/t.T/Hang")
        await call.send(b"x")
        await asyncio.sleep(0.05)
        server.close()
        with pytest.raises(GrpcError) as err:
            await call.recv()
        assert err.value.code == UNAVAILABLE
        await asyncio.wait_for(client.closed.wait(), 5)
        assert not server._tasks  # the handler was cancelled

    run(main)


def _make_tree(root: Path) -> None:
    (root / "sub" / "deep").mkdir(parents=True)
    (root / "a.txt").write_text("alpha\n")
    (root / "sub" / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(root / "sub" / "run.sh", 0o755)
    (root / "sub" / "deep" / "big.bin").write_bytes(os.urandom(3 << 20))
    os.symlink("../a.txt", root / "sub" / "link")
    os.link(root / "a.txt", root / "hard.txt")
    (root / "ignored.log").write_text("no\n")
    os.utime(root / "a.txt", ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))


def _snapshot(root: Path) -> dict[str, tuple[Any, ...]]:
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            rel = os.path.relpath(full, root)
            content: Any = None
            if os.path.islink(full):
                content = os.readlink(full)
            elif os.path.isfile(full):
                content = Path(full).read_bytes()
            out[rel] = (
                st.st_mode,
                st.st_uid,
                st.st_gid,
                content,
                st.st_mtime_ns if not os.path.isdir(full) else 0,
            )
    return out


def test_diffcopy_syncs_then_sends_only_changes(tmp_path: Path) -> None:
    src, dest = tmp_path / "src", tmp_path / "kept"
    src.mkdir()
    _make_tree(src)
    server = DirServer({"context": src})

    async def sync() -> filesync.SyncResult:
        client, _ = await grpc_pair.connect_both(server.handlers())
        try:
            return await filesync.receive(
                _session(client), "context", dest / "tree", dest / "staging", exclude=["*.log"]
            )
        finally:
            client.close()

    async def main() -> None:
        first = await sync()
        want = _snapshot(src)
        del want["ignored.log"]
        assert _snapshot(dest / "tree") == want
        assert (
            os.lstat(dest / "tree" / "a.txt").st_ino == os.lstat(dest / "tree" / "hard.txt").st_ino
        )
        assert first.requested == 3 and server.sent_bytes >= 3 << 20
        assert not (dest / "staging").exists()

        sent = server.sent_bytes
        (src / "sub" / "run.sh").write_text("#!/bin/sh\necho changed\n")
        (src / "new.txt").write_text("new\n")
        os.unlink(src / "sub" / "link")
        second = await sync()
        assert second.requested == 2
        assert server.sent_bytes - sent == len("#!/bin/sh\necho changed\n") + len("new\n")
        want = _snapshot(src)
        del want["ignored.log"]
        assert _snapshot(dest / "tree") == want

    run(main)


def test_include_patterns_pick_one_file(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    _make_tree(src)

    async def main() -> None:
        client, _ = await grpc_pair.connect_both(DirServer({"dockerfile": src}).handlers())
        data = await filesync.read_file(_session(client), "dockerfile", "a.txt", tmp_path / "s")
        assert data == b"alpha\n"
        assert (
            await filesync.read_file(_session(client), "dockerfile", "none", tmp_path / "t") is None
        )
        with pytest.raises(BuildFailure, match="no access allowed"):
            await filesync.read_file(_session(client), "other", "a.txt", tmp_path / "u")
        client.close()
        assert not (tmp_path / "s").exists() and not (tmp_path / "t").exists()

    run(main)


async def _hostile(call: Call, stats: list[dict[str, Any]], then: str) -> None:
    for st in stats:
        p = fsutil_pb2.Packet(type=0, stat=fsutil_pb2.Stat(**st))
        await call.send(p.SerializeToString())
    await call.send(fsutil_pb2.Packet(type=0).SerializeToString())
    if then == "hangup":
        await call.recv()  # the first REQ
        call._conn.close()


def test_client_leaving_mid_sync_leaves_no_staged_file(tmp_path: Path) -> None:
    stats = [
        {"path": "a", "mode": 0o644, "size": 10},
        {"path": "b", "mode": 0o644, "size": 10},
    ]

    async def main() -> None:
        client, _ = await _pair({methods.FILESYNC_DIFFCOPY: lambda c: _hostile(c, stats, "hangup")})
        with pytest.raises(BuildFailure):
            await filesync.receive(
                _session(client), "context", tmp_path / "tree", tmp_path / "staging"
            )
        assert not (tmp_path / "staging").exists()
        assert list((tmp_path / "tree").iterdir()) == []

    run(main)


@pytest.mark.parametrize("path", ["../escape", "/abs", "a/../../x", "a//b", ""])
def test_hostile_paths_are_refused(tmp_path: Path, path: str) -> None:
    async def main() -> None:
        client, _ = await _pair(
            {methods.FILESYNC_DIFFCOPY: lambda c: _hostile(c, [{"path": path, "mode": 0o644}], "")}
        )
        with pytest.raises(InvalidArgument):
            await filesync.receive(
                _session(client), "context", tmp_path / "tree", tmp_path / "staging"
            )
        client.close()
        assert not (tmp_path / "escape").exists() and not (tmp_path / "x").exists()

    run(main)


def test_child_without_parent_and_disorder_are_refused(tmp_path: Path) -> None:
    async def main() -> None:
        for stats in (
            [{"path": "d/f", "mode": 0o644}],
            [{"path": "b", "mode": 0o644}, {"path": "a", "mode": 0o644}],
        ):
            client, _ = await _pair(
                {methods.FILESYNC_DIFFCOPY: lambda c, s=stats: _hostile(c, s, "")}
            )
            with pytest.raises(InvalidArgument):
                await filesync.receive(
                    _session(client), "context", tmp_path / "tree", tmp_path / "staging"
                )
            client.close()

    run(main)


def test_binary_metadata_travels_base64_and_round_trips() -> None:
    """A `-bin` value is bytes: sent base64 (gRPC's HTTP/2 protocol), decoded back on the
    other end; a plain key's value goes as it is."""
    raw_value = "\x00\xffbinary\x80"
    seen: dict[str, list[str]] = {}

    async def echo(call: Call) -> None:
        seen.update(call.metadata)
        await call.recv()
        await call.send(b"ok")

    async def main() -> None:
        client, _server = await _pair({"/t.T/Echo": echo})
        meta = {"trace-bin": [raw_value], "plain": ["text"]}
        assert await client.unary("/t.T/Echo", b"x", metadata=meta) == b"ok"
        client.close()

    run(main)
    assert seen["trace-bin"] == [raw_value]
    assert seen["plain"] == ["text"]


def test_binary_metadata_header_is_base64_on_the_wire() -> None:
    from dockyard.session.h2grpc import _encode_metadata

    headers = dict(_encode_metadata({"Trace-Bin": ["\x00\xff"], "plain": ["a b"]}))
    assert headers == {"trace-bin": "AP8", "plain": "a b"}


def _raw_calls(sock: socket.socket, calls: list[list[tuple[str, str]]]) -> dict[int, bytes]:
    """Unary calls with the given extra headers through the h2 library itself (so they can
    carry what our client would never send); each stream's answer data, by stream ID."""
    import h2.config
    import h2.connection
    import h2.events

    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    body = b"\0" + len(b"ping").to_bytes(4, "big") + b"ping"
    for sid, extra in zip(range(1, 2 * len(calls), 2), calls, strict=True):
        head = [(":method", "POST"), (":scheme", "http"), (":path", "/t.T/Echo")]
        head += [(":authority", "x"), ("content-type", "application/grpc"), *extra]
        conn.send_headers(sid, head)
        conn.send_data(sid, body, end_stream=True)
    sock.sendall(conn.data_to_send())
    answers: dict[int, bytes] = {}
    ended: set[int] = set()
    while len(ended) < len(calls):
        data = sock.recv(65536)
        if not data:
            break
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.DataReceived):
                answers[ev.stream_id] = answers.get(ev.stream_id, b"") + ev.data
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                ended.add(ev.stream_id)
        sock.sendall(conn.data_to_send())
    return answers


def test_a_malformed_bin_header_reads_as_empty_and_the_connection_serves_on() -> None:
    """A peer's `-bin` metadata that is not base64 reads as "" on the daemon's end, as on
    the CLI's (session/grpcheaders.py). It used to raise inside data_received, which closed
    the connection and every stream of the session with a logged traceback."""
    seen: list[list[str]] = []

    async def echo(call: Call) -> None:
        seen.append(call.metadata.get("x-trace-bin", []))
        msg = await call.recv()
        await call.send(msg or b"")

    async def main() -> None:
        a, b = socket.socketpair()
        server = GrpcConnection(client_side=False, handlers={"/t.T/Echo": echo})
        await asyncio.get_running_loop().create_connection(lambda: server, sock=b)
        calls = [[("x-trace-bin", "a")], [("x-trace-bin", "aGk")]]  # bad, then "hi" unpadded
        answers = await asyncio.to_thread(_raw_calls, a, calls)
        a.close()
        assert answers == {1: b"\0\0\0\0\x04ping", 3: b"\0\0\0\0\x04ping"}
        assert sorted(seen) == [[""], ["hi"]]

    run(main)
