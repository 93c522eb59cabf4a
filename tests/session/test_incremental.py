"""The context travels once, then only what changed; digests are re-hashed only where changed;
the kept copies stay under their cap. Both ends ours over a socket pair (no root needed)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from dockyard.builder.context import BuildContext
from dockyard.builder.copy import CopySource, file_digests
from dockyard.builder.digests import DigestIndex
from dockyard.session import buildinputs, filesync, methods
from dockyard.session.contexts import ContextStore, _du, mark_top_directory
from dockyard.session.fssend import DirServer
from dockyard.session.h2grpc import GrpcConnection
from dockyard.session.h2lite import Connection
from dockyard.session.manager import Session
from tests.support import grpc_pair


async def _pair(server: DirServer) -> tuple[GrpcConnection, Connection]:
    return await grpc_pair.connect_both(server.handlers())


def _session(conn: GrpcConnection, key: str = "key") -> Session:
    return Session("s1", "test", key, frozenset({methods.FILESYNC_DIFFCOPY.lower()}), conn)


def _tree(root: Path, files: int, size: int) -> None:
    for i in range(files):
        d = root / f"d{i // 100:02}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:04}").write_bytes(os.urandom(size))


async def _sync(server: DirServer, tree: Path, staging: Path) -> tuple[filesync.SyncResult, int]:
    """One sync; returns its result and the bytes the client's end put on the stream."""
    receiver, sender = await _pair(server)
    try:
        result = await filesync.receive(_session(receiver), "context", tree, staging)
    finally:
        receiver.close()
    return result, sender.sent


def test_one_changed_file_of_5000_is_all_that_travels(tmp_path: Path) -> None:
    src, kept = tmp_path / "src", tmp_path / "kept"
    _tree(src, 5000, 1024)
    server = DirServer({"context": src})
    index = DigestIndex(kept / "digests.json")
    ctx = BuildContext(kept / "tree", None, digests=index)

    async def main() -> None:
        first, first_bytes = await _sync(server, kept / "tree", kept / "staging")
        assert first.requested == 5000 and first_bytes > 5000 * 1024
        before = file_digests(ctx, [CopySource("", True)])
        assert index.hashed == 5000
        index.save()

        # nothing changed: only the listing travels
        same, listing_bytes = await _sync(server, kept / "tree", kept / "staging")
        assert same.requested == 0 and same.changed == []
        assert listing_bytes < 5000 * 100  # ~50 bytes of metadata per entry

        # one file rewritten (same size, new content and mtime): that file's bytes only
        changed = src / "d17" / "f1717"
        changed.write_bytes(os.urandom(1024))
        sent_files = server.sent_files
        one, one_bytes = await _sync(server, kept / "tree", kept / "staging")
        assert one.requested == 1 and server.sent_files - sent_files == 1
        assert one.changed == ["d17/f1717"]
        # the stream carried the listing, that file's 1,024 bytes and a few frame headers
        assert 1024 <= one_bytes - listing_bytes <= 1024 + 200, (one_bytes, listing_bytes)
        assert (kept / "tree" / "d17" / "f1717").read_bytes() == changed.read_bytes()

        # the digests: only that file is hashed again, even by an index read back from disk
        reloaded = DigestIndex(kept / "digests.json")
        reloaded.forget(one.changed)
        after = file_digests(
            BuildContext(kept / "tree", None, digests=reloaded), [CopySource("", True)]
        )
        assert reloaded.hashed == 1
        assert {k for k in after if after[k] != before[k]} == {"d17/f1717"}
        assert after == file_digests(BuildContext(kept / "tree", None), [CopySource("", True)])

    asyncio.run(asyncio.wait_for(main(), 120))


def test_files_are_hashed_while_they_arrive(tmp_path: Path) -> None:
    # the sync hashes each file it receives: COPY's digests then read no file again, and
    # they equal the digests computed from the tree (modes, a hardlink and an empty file)
    src, kept = tmp_path / "src", tmp_path / "kept"
    _tree(src, 300, 3000)
    (src / "empty").write_bytes(b"")
    os.chmod(src / "d01" / "f0100", 0o4755)
    os.link(src / "d02" / "f0200", src / "d02" / "hard")
    server = DirServer({"context": src})
    index = DigestIndex(kept / "digests.json")

    async def main() -> None:
        for change in (None, src / "d01" / "f0101"):
            if change is not None:
                change.write_bytes(os.urandom(5000))
            result, _ = await _sync(server, kept / "tree", kept / "staging")
            index.forget(result.changed)
            for rel, (st, value) in result.digests.items():
                index.remember(rel, st, value)
            assert len(result.digests) == (302 if change is None else 1)  # the hardlink too
            hashed = index.hashed
            tree = BuildContext(kept / "tree", None, digests=index)
            got = file_digests(tree, [CopySource("", True)])
            assert index.hashed == hashed  # nothing read again
            fresh = file_digests(BuildContext(kept / "tree", None), [CopySource("", True)])
            assert got == fresh

    asyncio.run(asyncio.wait_for(main(), 120))


def test_an_unchanged_sync_keeps_the_whole_result_and_any_change_ends_it(tmp_path: Path) -> None:
    # a cached rebuild takes COPY's digests whole (no walk, no lstat of 5,000 files); every
    # change a sync makes, a directory's mode included, gives a fresh result
    src, base = tmp_path / "src", tmp_path / "kept"
    _tree(src, 200, 100)
    server = DirServer({"context": src})
    store = ContextStore(base)
    sources = [CopySource("", True)]

    async def main() -> None:
        async with store.checkout("key", "context") as kept:
            result, _ = await _sync(server, kept.tree, kept.staging)
            index = buildinputs.kept_digests(store, kept, result)
            ctx = BuildContext(kept.tree, None, digests=index)
            first = file_digests(ctx, sources)
            for change in ("none", "dir mode", "content", "removed"):
                if change == "dir mode":
                    os.chmod(src / "d01", 0o700)
                elif change == "content":
                    (src / "d00" / "f0000").write_bytes(b"x" * 100)
                elif change == "removed":
                    (src / "d00" / "f0001").unlink()
                result, _ = await _sync(server, kept.tree, kept.staging)
                buildinputs.kept_digests(store, kept, result)
                remembered = index.result((tuple(sources), ctx.dropped))
                fresh = file_digests(BuildContext(kept.tree, None), sources)
                if change == "none":
                    assert remembered == first
                else:
                    assert remembered is None
                assert file_digests(ctx, sources) == fresh
            assert fresh["d01"] != first["d01"] and "d00/f0001" not in fresh

    asyncio.run(asyncio.wait_for(main(), 120))


def test_a_stale_digest_is_never_used(tmp_path: Path) -> None:
    # an entry whose file was replaced behind the index's back (same size and mtime) is
    # recomputed: the inode and ctime differ
    f = tmp_path / "f"
    f.write_bytes(b"a" * 10)
    index = DigestIndex()
    first = index.digest(f, "f")
    st = os.lstat(f)
    tmp = tmp_path / "g"
    tmp.write_bytes(b"b" * 10)
    os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(tmp, f)
    assert index.digest(f, "f") != first and index.hashed == 2
    os.chmod(f, 0o600)
    assert index.digest(f, "f") != first and index.hashed == 3


def test_kept_contexts_stay_under_a_small_cap(tmp_path: Path) -> None:
    cap = 1 << 20
    store = ContextStore(tmp_path / "contexts", cap)
    sources = []
    for n in range(4):
        src = tmp_path / f"src{n}"
        _tree(src, 30, 10 << 10)  # ~300 KiB each: three fit, the fourth evicts the oldest
        sources.append(src)

    async def main() -> None:
        for n, src in enumerate(sources):
            receiver, _ = await _pair(DirServer({"context": src}))
            try:
                async with store.checkout(f"key{n}", "context") as kept:
                    result = await filesync.receive(
                        _session(receiver, f"key{n}"), "context", kept.tree, kept.staging
                    )
                    store.note_size(kept.key, result.disk_bytes)
            finally:
                receiver.close()
            assert _du(store.root) <= cap, (n, _du(store.root))
            assert result.disk_bytes >= _du(store.root / kept.key / "tree")
        kept_keys = {p.name for p in store.root.iterdir()}
        assert ContextStore.key("key3", "context") in kept_keys
        assert ContextStore.key("key0", "context") not in kept_keys

    asyncio.run(asyncio.wait_for(main(), 60))


def test_eviction_never_takes_a_copy_in_use(tmp_path: Path) -> None:
    cap = 600 << 10
    store = ContextStore(tmp_path / "contexts", cap)
    big, small = tmp_path / "big", tmp_path / "small"
    _tree(big, 40, 10 << 10)  # ~400 KiB
    _tree(small, 30, 10 << 10)  # ~300 KiB: the two pass the cap

    async def sync(src: Path, key: str) -> None:
        receiver, _ = await _pair(DirServer({"context": src}))
        try:
            async with store.checkout(key, "context") as kept:
                result = await filesync.receive(
                    _session(receiver, key), "context", kept.tree, kept.staging
                )
                store.note_size(kept.key, result.disk_bytes)
                if key == "big":
                    # the small one syncs and evicts while this one is still in use: this
                    # copy is the older, but it stays
                    await sync(small, "small")
                    assert (kept.tree / "d00" / "f0000").exists()
        finally:
            receiver.close()

    async def main() -> None:
        # a copy an earlier daemon left (no size known): measured, then evicted first
        old = store.root / ContextStore.key("old", "context") / "tree"
        _tree(old, 30, 10 << 10)
        os.utime(old.parent, (1, 1))
        await sync(big, "big")
        names = {p.name for p in store.root.iterdir()}
        assert ContextStore.key("old", "context") not in names
        assert not [n for n in names if n.startswith(".")]  # nothing left aside
        assert _du(store.root) <= cap

    asyncio.run(asyncio.wait_for(main(), 60))


def test_a_data_frame_repr_reads_only_its_first_bytes() -> None:
    # h2 formats every received frame for its trace log; ours gives hyperframe's text
    # without hexlifying a whole 1 MiB frame (dockyard.session.h2grpc._cheap_data_repr)
    import hyperframe.frame

    from dockyard.session import h2grpc

    for n in (0, 1, 10, 11, 1 << 20):
        frame = hyperframe.frame.DataFrame(1, data=os.urandom(n))
        assert repr(frame) == (f"DataFrame(stream_id=1, flags=[]): {h2grpc._full_data_repr(frame)}")


def test_a_checkout_that_learnt_nothing_is_put_back_without_a_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a cached rebuild's index is as it was loaded: nothing to save, no worker thread's
    # wake-up to wait for; an index that learnt a digest is saved
    store = ContextStore(tmp_path / "contexts")
    hops: list[object] = []
    to_thread = asyncio.to_thread

    async def counted(fn: object, *args: object) -> object:
        if getattr(fn, "__name__", "") == "save":
            hops.append(fn)
        return await to_thread(fn, *args)  # type: ignore[arg-type]

    async def main() -> None:
        async with store.checkout("key", "context") as kept:
            kept.tree.mkdir(parents=True)
            (kept.tree / "f").write_text("1")
            kept.digests.digest(kept.tree / "f", "f")
        assert len(hops) == 1 and kept.digests.path is not None and kept.digests.path.is_file()
        async with store.checkout("key", "context") as again:
            again.digests.digest(again.tree / "f", "f")  # known: nothing learnt
        assert len(hops) == 1, hops

    monkeypatch.setattr(asyncio, "to_thread", counted)
    asyncio.run(main())


def _flags(path: Path) -> int:
    import array
    import fcntl

    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        buf = array.array("l", [0])
        fcntl.ioctl(fd, 0x80086601, buf, True)  # FS_IOC_GETFLAGS
        return buf[0]
    finally:
        os.close(fd)


def test_kept_copies_are_spread_over_the_filesystem(tmp_path: Path) -> None:
    # ext4's TOPDIR flag on the store: each copy's directory (and its files' inodes) goes to
    # a block group of its own, away from groups full of recently deleted inodes, which a
    # journal-less ext4 scans past on every create (contexts.py: 1.9-2.4 s for 5,000 here)
    probe = tmp_path / "probe"
    probe.mkdir()
    if not mark_top_directory(probe):
        pytest.skip("the test directory's filesystem has no TOPDIR flag (not ext4)")
    store = ContextStore(tmp_path / "contexts")

    async def main() -> None:
        async with store.checkout("key", "context"):
            pass

    asyncio.run(main())
    assert _flags(tmp_path / "contexts") & 0x00020000  # FS_TOPDIR_FL


def test_an_evicted_copy_goes_to_the_trash_without_the_build_waiting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Removing a big evicted copy (5,000 files: ~0.4 s) was awaited in a worker thread when
    # the checkout ended, so the build's stream could not end before it. Now the copy is
    # renamed into the trash at once and its reaper thread deletes it.
    store = ContextStore(tmp_path / "contexts", 1)  # any copy passes the cap
    waited: list[str] = []
    to_thread = asyncio.to_thread

    async def counted(fn: object, *args: object) -> object:
        waited.append(getattr(fn, "__name__", repr(fn)))
        return await to_thread(fn, *args)  # type: ignore[arg-type]

    async def main() -> None:
        for key in ("a", "b"):
            async with store.checkout(key, "context") as kept:
                _tree(kept.tree, 20, 1 << 10)
                store.note_size(kept.key, _du(kept.tree))
        assert [p.name for p in store.root.iterdir()] == []  # both over the cap: gone
        assert waited == [], waited  # no removal awaited on the way out

    monkeypatch.setattr(asyncio, "to_thread", counted)
    asyncio.run(main())
    assert store.trash.wait_empty(30) and list(store.trash.dir.iterdir()) == []
    store.trash.close()
