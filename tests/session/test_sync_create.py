"""A sync creates its staged files in a worker thread, ahead of their data, and leaves
neither a staged file nor an open descriptor behind when it fails halfway (both ends ours
over a socket pair, no root needed)."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

import pytest

from dockyard.session import filesync, methods
from dockyard.session.fssend import DirServer
from dockyard.session.manager import Session
from tests.support import grpc_pair


async def _sync(server: DirServer, kept: Path) -> filesync.SyncResult:
    receiver = await grpc_pair.connect(server.handlers())
    session = Session("s1", "t", "key", frozenset({methods.FILESYNC_DIFFCOPY.lower()}), receiver)
    try:
        return await filesync.receive(session, "context", kept / "tree", kept / "staging")
    finally:
        receiver.close()


def _tree(root: Path, files: int) -> None:
    for i in range(files):
        d = root / f"d{i // 50}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i}").write_bytes(b"%d" % i * 100)


def test_staged_files_are_created_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, kept = tmp_path / "src", tmp_path / "kept"
    _tree(src, 300)
    real_open = os.open
    on_loop: list[str] = []
    staged: list[str] = []
    loop_thread: list[threading.Thread] = []

    def spying(path, flags, mode=0o777, *, dir_fd=None):  # type: ignore[no-untyped-def]
        if flags & os.O_CREAT and str(path).startswith(str(kept / "staging")):
            staged.append(str(path))
            if threading.current_thread() is loop_thread[0]:
                on_loop.append(str(path))
        return real_open(path, flags, mode, dir_fd=dir_fd)

    async def main() -> filesync.SyncResult:
        loop_thread.append(threading.current_thread())
        return await _sync(DirServer({"context": src}), kept)

    monkeypatch.setattr(os, "open", spying)
    result = asyncio.run(main())
    assert result.requested == 300 and len(staged) == 300
    assert on_loop == []
    for i in (0, 150, 299):
        assert (kept / "tree" / f"d{i // 50}" / f"f{i}").read_bytes() == b"%d" % i * 100


def test_a_sync_failing_halfway_leaves_no_staged_file_nor_descriptor(tmp_path: Path) -> None:
    src, kept = tmp_path / "src", tmp_path / "kept"
    _tree(src, 300)
    victim = src / "d3" / "f150"
    real = DirServer._file_packets

    def growing(self: DirServer, ident: int, path: str, size: int):  # type: ignore[no-untyped-def]
        if path == str(victim):
            size += 10  # more bytes than listed: the receiver fails the sync here
            victim.write_bytes(b"z" * size)
        return real(self, ident, path, size)

    def fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    before = fds()
    server = DirServer({"context": src})
    server._file_packets = growing.__get__(server)  # type: ignore[method-assign]
    with pytest.raises(Exception, match="changed while it was sent"):
        asyncio.run(_sync(server, kept))
    assert not (kept / "staging").exists()
    for _ in range(100):  # the client's end (threads) closes its socket once it sees the end
        if fds() <= before:
            break
        time.sleep(0.02)
    assert fds() <= before
