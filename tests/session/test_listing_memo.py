"""A kept context remembers the listing it was last synced to: the same listing again is
neither parsed nor compared with the tree, and anything else is synced as before. Both ends
ours over a socket pair (no root needed)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from dockyard.session import filesync, listingmemo, methods
from dockyard.session.fssend import DirServer
from dockyard.session.listingmemo import ListingMemo
from dockyard.session.manager import Session
from dockyard.session.wholeseconds import ClientTimes
from tests.support import grpc_pair


def _tree(root: Path, files: int) -> None:
    for i in range(files):
        d = root / f"d{i // 100:02}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:04}").write_bytes(b"%d" % i * 10)


async def _sync(
    src: Path, kept: Path, memo: ListingMemo | None, times: ClientTimes | None = None
) -> filesync.SyncResult:
    server = DirServer({"context": src})
    receiver = await grpc_pair.connect(server.handlers())
    session = Session("s1", "t", "key", frozenset({methods.FILESYNC_DIFFCOPY.lower()}), receiver)
    try:
        return await filesync.receive(
            session, "context", kept / "tree", kept / "staging", memo=memo, times=times
        )
    finally:
        receiver.close()


@pytest.fixture
def scans(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every stat walk of a kept tree."""
    seen: list[Path] = []
    real = filesync._scan

    def counting(root: Path) -> dict[str, os.stat_result]:
        seen.append(root)
        return real(root)

    monkeypatch.setattr(filesync, "_scan", counting)
    return seen


def test_the_same_listing_again_is_not_compared_with_the_tree(
    tmp_path: Path, scans: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    src, kept = tmp_path / "src", tmp_path / "kept"
    _tree(src, 1000)  # four digest groups of 256 packets
    memo = ListingMemo()

    async def main() -> None:
        first = await _sync(src, kept, memo)
        assert first.requested == 1000 and memo.known()
        assert scans == []  # nothing kept yet
        entries, disk = first.entries, first.disk_bytes

        parsed: list[bytes] = []
        real_packet = filesync._packet
        monkeypatch.setattr(
            filesync, "_packet", lambda P, raw, d: parsed.append(raw) or real_packet(P, raw, d)
        )
        same = await _sync(src, kept, memo)
        assert (same.requested, same.changed, same.bytes) == (0, [], 0)
        assert (same.entries, same.disk_bytes) == (entries, disk)
        assert scans == []  # the tree was not walked
        assert len(parsed) <= 2  # the listing's end and the client's FIN, no STAT
        # without the memo the same sync walks the tree and parses every packet
        without = await _sync(src, kept, None)
        assert (without.requested, without.changed) == (0, [])
        assert len(scans) == 1 and len(parsed) > 1000

    asyncio.run(main())


@pytest.mark.parametrize(
    "change",
    ["content", "first", "last", "removed", "added", "mode", "mtime"],
)
def test_any_change_of_the_listing_is_synced(tmp_path: Path, change: str) -> None:
    src, kept = tmp_path / "src", tmp_path / "kept"
    _tree(src, 600)
    memo = ListingMemo()

    async def main() -> None:
        await _sync(src, kept, memo)
        target = {
            "first": src / "d00" / "f0000",
            "last": src / "d05" / "f0599",
        }.get(change, src / "d03" / "f0300")
        if change == "removed":
            target.unlink()
        elif change == "added":
            (src / "d05" / "f0600").write_bytes(b"new")
        elif change == "mode":
            os.chmod(target, 0o600)
        elif change == "mtime":
            os.utime(target, ns=(10**18, 10**18))
        else:
            target.write_bytes(b"X" * len(target.read_bytes()))
        result = await _sync(src, kept, memo)
        assert result.changed, change
        again = await _sync(src, kept, memo)
        assert again.changed == [] and again.requested == 0
        for path in src.rglob("*"):
            if path.is_file():
                kept_file = kept / "tree" / path.relative_to(src)
                assert kept_file.read_bytes() == path.read_bytes()
                assert kept_file.stat().st_mode == path.stat().st_mode
                assert kept_file.stat().st_mtime_ns == path.stat().st_mtime_ns
        assert not (kept / "tree" / "d03" / "f0300").exists() or change != "removed"

    asyncio.run(main())


def test_a_memo_is_forgotten_by_a_failed_sync_and_kept_apart_by_store_kind(
    tmp_path: Path, scans: list[Path]
) -> None:
    src, kept = tmp_path / "src", tmp_path / "kept"
    _tree(src, 300)
    memo = ListingMemo()

    async def main() -> None:
        await _sync(src, kept, memo)
        # a file that changes size while it is sent fails the sync halfway
        big = src / "d01" / "f0100"
        big.write_bytes(b"y" * 4096)
        real = DirServer._file_packets

        def growing(self: DirServer, ident: int, path: str, size: int):  # type: ignore[no-untyped-def]
            Path(path).write_bytes(b"z" * (size + 10))
            return real(self, ident, path, size + 10)

        DirServer._file_packets = growing  # type: ignore[method-assign]
        try:
            with pytest.raises(Exception, match="changed while it was sent"):
                await _sync(src, kept, memo)
        finally:
            DirServer._file_packets = real  # type: ignore[method-assign]
        assert not memo.known()
        n = len(scans)
        await _sync(src, kept, memo)
        assert len(scans) == n + 1 and memo.known()
        # the same listing for a legacy (whole-second) store is a different tree
        await _sync(src, kept, memo, ClientTimes(kept / "mtimes.json"))
        assert len(scans) == n + 2

    asyncio.run(main())


def test_group_digests_see_the_packets_boundaries() -> None:
    a = listingmemo.ListingDigest(None, False)
    b = listingmemo.ListingDigest(None, False)
    for raw in (b"\x12ab", b"c"):
        a.add(raw)
    for raw in (b"\x12a", b"bc"):
        b.add(raw)
    a.end()
    b.end()
    assert a.groups != b.groups


def test_the_store_keeps_memos_only_of_copies_that_matched_a_listing(tmp_path: Path) -> None:
    from dockyard.session.contexts import ContextStore

    store = ContextStore(tmp_path / "contexts")

    async def main() -> None:
        for n in range(50):  # checkouts whose sync never finished (a failed build, say)
            async with store.checkout(f"key{n}", "context") as kept:
                assert kept.listing is not None and not kept.listing.known()
        assert store._listings == {}
        async with store.checkout("kept", "context") as kept:
            assert kept.listing is not None
            kept.listing.groups = [b"x" * 32]
        async with store.checkout("kept", "context") as again:
            assert again.listing is kept.listing

    asyncio.run(main())


def test_the_store_holds_digest_indexes_by_their_entries_not_their_count(
    tmp_path: Path,
) -> None:
    """Each kept context's digest index costs ~700 bytes per file in memory: three
    4,000-file contexts must not all stay (sixteen did, ~25 MiB of the benchmark's daemon),
    while the one just used always does, however big (the next build of it is the common
    case)."""
    import os

    from dockyard.session.contexts import INDEX_ENTRIES_IN_MEMORY, ContextStore

    store = ContextStore(tmp_path / "contexts")
    (tmp_path / "file").write_text("x")
    st = os.stat(tmp_path / "file")
    per_context = INDEX_ENTRIES_IN_MEMORY * 2 // 5

    async def fill(shared_key: str, entries: int) -> None:
        async with store.checkout(shared_key, "context") as kept:
            kept.tree.mkdir(parents=True, exist_ok=True)
            for i in range(entries):
                kept.digests.remember(f"f{i}", st, "sha256:" + "0" * 64)

    async def main() -> None:
        for name in ("a", "b", "c"):
            await fill(name, per_context)
        held = list(store._indexes.values())
        assert sum(len(i) for i in held) <= INDEX_ENTRIES_IN_MEMORY
        assert len(held) == 2  # b and c: a was read back from its file when used again
        await fill("huge", INDEX_ENTRIES_IN_MEMORY * 2)
        assert [len(i) for i in store._indexes.values()] == [INDEX_ENTRIES_IN_MEMORY * 2]
        async with store.checkout("a", "context") as kept:
            assert len(kept.digests) == per_context  # from digests.json, not memory

    asyncio.run(main())
