"""The kept copies of synced build contexts: what lets the next sync send only what changed.

BuildKit keeps the last copy of each local source by its session's shared key (the client
derives it from the directory's path and the client's identity) and the source's name, and
its DiffCopy compares the client's listing against that copy. We do the same under
`<root>/contexts/<hash>/` (`tree/` the copy, `staging/` files on their way in, `digests.json`
the content digests of its files, builder/digests.py, so that a build re-hashes only what the
sync changed; `mtimes.json` the client's mtimes of a copy kept for the legacy builder,
session/wholeseconds.py). A copy is
used by one build at a time (a lock per key: two concurrent builds of one directory take
turns), it is never image data, and the least recently used copies are evicted once the
whole store passes its cap (default 2 GiB). Eviction decides and moves its victims into the
store's trash (content/trash.py: a rename, deleted by the trash's reaper thread) on the event
loop, between two checkouts, so a copy being checked out is never removed under its sync, and
no build waits for a deletion: removing a 5,000-file, 200 MiB copy took ~0.4 s, which every
build past the cap paid before its stream could end.

`<root>/contexts/` carries ext4's "top of a directory hierarchy" flag (chattr +T), so each
copy's directory, and with it the inodes of its files, is placed by the Orlov allocator in
a block group of its own rather than beside the daemon's root. Why it matters: ext4 without
a journal (this machine's root filesystem) skips every free inode deleted in the last 5 s
(the last ~5 min while its inode-table block is dirty) on each allocation, scanning from the
start of the group (fs/ext4/ialloc.c, recently_deleted), and the groups beside a busy
directory such as /tmp are full of them: 5,000 files created there took 1.9-2.4 s of
system time, under a +T parent 0.10 s (measured here), which was most of a cold sync.
Elsewhere the flag changes nothing, and a filesystem without it refuses it (ignored).
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import fcntl
import hashlib
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from dockyard.builder.digests import DigestIndex
from dockyard.content.trash import Trash
from dockyard.session.listingmemo import ListingMemo

DEFAULT_CAP = 2 << 30
# A Dockerfile on stdin comes with an empty context in a new temporary directory each time,
# so a new shared key: cap the number of copies too.
MAX_COPIES = 256
# Digest indexes held in memory, by their entries in all (the others are read back from
# their file when used): ~700 bytes of heap per entry, so a 5,000-file context's index is
# ~3.5 MiB, and sixteen of them, as a count cap once allowed, were 25 of the ~33 MiB a
# daemon grew by over the benchmark. The index just used always stays: the next build of
# the same directory is the common case (and the cached row of bench row f).
INDEX_ENTRIES_IN_MEMORY = 10_000


@dataclass(frozen=True)
class KeptContext:
    key: str
    tree: Path
    staging: Path
    digests: DigestIndex
    # the listing the tree last matched (listingmemo.py); in memory only
    listing: ListingMemo | None = None

    @property
    def client_times(self) -> Path:
        return self.tree.parent / "mtimes.json"


# linux/fs.h: FS_IOC_GETFLAGS, FS_IOC_SETFLAGS (long-sized on x86-64), FS_TOPDIR_FL
_GETFLAGS = 0x80086601
_SETFLAGS = 0x40086602
_TOPDIR = 0x00020000


def mark_top_directory(path: Path) -> bool:
    """Give `path` ext4's TOPDIR flag (chattr +T): directories made in it are spread over the
    block groups. False where the filesystem has no such flag or refuses it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        flags = array.array("l", [0])
        fcntl.ioctl(fd, _GETFLAGS, flags, True)
        if not flags[0] & _TOPDIR:
            flags[0] |= _TOPDIR
            fcntl.ioctl(fd, _SETFLAGS, flags, True)
        return True
    except OSError:  # ENOTTY (tmpfs), EOPNOTSUPP (xfs, btrfs), EPERM
        return False
    finally:
        os.close(fd)


def _du(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
    return total


class ContextStore:
    def __init__(self, root: Path, cap: int = DEFAULT_CAP, trash: Trash | None = None) -> None:
        self.root = root
        self.cap = cap
        self.trash = trash or Trash(root.parent / f"{root.name}.trash")
        self._locks: dict[str, asyncio.Lock] = {}
        self._in_use: set[str] = set()
        self._indexes: dict[str, DigestIndex] = {}  # most recently used last
        self._listings: dict[str, ListingMemo] = {}  # by copy; a few hundred bytes each
        # disk use by copy, as the last sync listed it: eviction need not walk every tree
        self._sizes: dict[str, int] = {}
        self._root_ready = False

    def note_size(self, key: str, size: int) -> None:
        """What a sync left in the copy `key` (fsutil's listing, in blocks)."""
        self._sizes[key] = size

    @staticmethod
    def key(shared_key: str, name: str) -> str:
        return hashlib.sha256(f"{shared_key}\0{name}".encode()).hexdigest()[:32]

    @contextlib.asynccontextmanager
    async def checkout(self, shared_key: str, name: str) -> AsyncIterator[KeptContext]:
        """The kept copy for (shared key, name), locked for the caller. Without a shared key
        (a client that sends none) the copy is private to this use and removed after."""
        private = not shared_key
        if not self._root_ready:
            self.root.mkdir(parents=True, exist_ok=True)
            mark_top_directory(self.root)  # before any copy's directory is made in it
            self._root_ready = True
        key = self.key(shared_key or os.urandom(16).hex(), name)
        lock = self._locks.setdefault(key, asyncio.Lock())
        try:
            async with lock:
                base = self.root / key
                index = self._indexes.pop(key, None)
                if index is None:
                    index = DigestIndex(None if private else base / "digests.json")
                listing = None if private else self._listings.setdefault(key, ListingMemo())
                kept = KeptContext(key, base / "tree", base / "staging", index, listing)
                self._in_use.add(key)
                self._sizes.pop(key, None)  # until its sync says again
                try:
                    yield kept
                finally:
                    try:
                        if private:
                            self.trash.put(base)
                        else:
                            await self._put_back(key, base, index)
                    finally:
                        self._in_use.discard(key)
                        if listing is not None and not listing.known():
                            self._listings.pop(key, None)  # nothing to remember
        finally:
            if not lock.locked() and self._locks.get(key) is lock:
                del self._locks[key]
            # after the lock: this copy may go too if it alone passes the cap, unless a
            # checkout waiting for it has taken it meanwhile (then it is in use)
            await asyncio.shield(self.evict())

    async def _put_back(self, key: str, base: Path, index: DigestIndex) -> None:
        if base.is_dir():
            with contextlib.suppress(OSError):
                if index.dirty:  # a cached rebuild learns nothing: no thread's wake-up to wait for
                    await asyncio.to_thread(index.save)
                if key in self._sizes and index.path is not None:
                    self._sizes[key] += index.path.stat().st_blocks * 512
            self._indexes[key] = index
            held = sum(len(i) for i in self._indexes.values())
            while held > INDEX_ENTRIES_IN_MEMORY and len(self._indexes) > 1:
                held -= len(self._indexes.pop(next(iter(self._indexes))))
        with contextlib.suppress(OSError):
            os.utime(base)  # last use, for eviction

    async def evict(self) -> list[str]:
        """Drop the least recently used copies (never one in use) until under the cap."""
        if not self.root.is_dir():
            return []
        # copies of unknown size (kept by an earlier daemon) are measured once, in a thread:
        # measuring changes nothing, so a checkout may happen meanwhile
        unknown = [
            d
            for d in self.root.iterdir()
            if not d.name.startswith(".") and d.name not in self._sizes
        ]
        if unknown:
            sizes = await asyncio.to_thread(lambda: [_du(d) for d in unknown])
            for d, size in zip(unknown, sizes, strict=True):
                self._sizes.setdefault(d.name, size)
        # from here to the renames no await: no checkout can start in between
        entries = []
        for d in self.root.iterdir():
            if d.name.startswith(".") or d.name not in self._sizes:
                continue
            with contextlib.suppress(OSError):
                entries.append((d.stat().st_mtime, d.name, self._sizes[d.name]))
        total = sum(size for _t, _n, size in entries)
        dropped: list[str] = []
        for _mtime, name, size in sorted(entries):
            if total <= self.cap and len(entries) - len(dropped) <= MAX_COPIES:
                break
            if name in self._in_use:
                continue
            try:
                self.trash.put(self.root / name)
            except OSError:
                continue
            self._sizes.pop(name, None)
            self._indexes.pop(name, None)
            self._listings.pop(name, None)
            total -= size
            dropped.append(name)
        return dropped

    def _remove_aside(self) -> None:
        # `.evicted-*`: where daemons before the trash put their victims
        for d in self.root.iterdir():
            if d.name.startswith(".evicted-"):
                shutil.rmtree(d, ignore_errors=True)

    def clean_staging(self) -> None:
        """At daemon start: nothing is syncing, so no staged file is wanted."""
        if not self.root.is_dir():
            return
        self._remove_aside()  # an older daemon's eviction cut short by a stop
        for d in self.root.iterdir():
            shutil.rmtree(d / "staging", ignore_errors=True)

    def size(self) -> int:
        return _du(self.root) if self.root.is_dir() else 0
