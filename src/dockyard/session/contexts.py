"""The kept copies of synced build contexts: what lets the next sync send only what changed.

BuildKit keeps the last copy of each local source by its session's shared key (the client
derives it from the directory's path and the client's identity) and the source's name, and
its DiffCopy compares the client's listing against that copy. We do the same under
`<root>/contexts/<hash>/` (`tree/` the copy, `staging/` files on their way in, `digests.json`
the content digests of its files, builder/digests.py, so that a build re-hashes only what the
sync changed). A copy is
used by one build at a time (a lock per key: two concurrent builds of one directory take
turns), it is never image data, and the least recently used copies are evicted once the
whole store passes its cap (default 2 GiB).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from dockyard.builder.digests import DigestIndex

DEFAULT_CAP = 2 << 30
# A Dockerfile on stdin comes with an empty context in a new temporary directory each time,
# so a new shared key: cap the number of copies too.
MAX_COPIES = 256
# digest indexes held in memory (the others are read back from their file when used)
_INDEXES_IN_MEMORY = 16


@dataclass(frozen=True)
class KeptContext:
    key: str
    tree: Path
    staging: Path
    digests: DigestIndex


def _du(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
    return total


class ContextStore:
    def __init__(self, root: Path, cap: int = DEFAULT_CAP) -> None:
        self.root = root
        self.cap = cap
        self._locks: dict[str, asyncio.Lock] = {}
        self._in_use: set[str] = set()
        self._indexes: dict[str, DigestIndex] = {}  # most recently used last
        # disk use by copy, as the last sync listed it: eviction need not walk every tree
        self._sizes: dict[str, int] = {}

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
        key = self.key(shared_key or os.urandom(16).hex(), name)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            base = self.root / key
            index = self._indexes.pop(key, None)
            if index is None:
                index = DigestIndex(None if private else base / "digests.json")
            kept = KeptContext(key, base / "tree", base / "staging", index)
            self._in_use.add(key)
            self._sizes.pop(key, None)  # until its sync says again
            try:
                yield kept
            finally:
                self._in_use.discard(key)
                if private:
                    await asyncio.shield(asyncio.to_thread(shutil.rmtree, base, True))
                else:
                    if base.is_dir():
                        with contextlib.suppress(OSError):
                            await asyncio.to_thread(index.save)
                            if key in self._sizes and index.path is not None:
                                self._sizes[key] += index.path.stat().st_blocks * 512
                        self._indexes[key] = index
                        while len(self._indexes) > _INDEXES_IN_MEMORY:
                            del self._indexes[next(iter(self._indexes))]
                    with contextlib.suppress(OSError):
                        os.utime(base)  # last use, for eviction
                    for dropped in await asyncio.to_thread(self.evict):
                        self._indexes.pop(dropped, None)
            if not lock.locked() and self._locks.get(key) is lock:
                del self._locks[key]

    def evict(self) -> list[str]:
        """Drop the least recently used copies (never one in use) until under the cap."""
        if not self.root.is_dir():
            return []
        entries = []
        for d in self.root.iterdir():
            with contextlib.suppress(OSError):
                size = self._sizes.get(d.name)
                if size is None:
                    size = self._sizes[d.name] = _du(d)
                entries.append((d.stat().st_mtime, d.name, size))
        total = sum(size for _t, _n, size in entries)
        dropped: list[str] = []
        for _mtime, name, size in sorted(entries):
            if total <= self.cap and len(entries) - len(dropped) <= MAX_COPIES:
                break
            if name in self._in_use:
                continue
            shutil.rmtree(self.root / name, ignore_errors=True)
            self._sizes.pop(name, None)
            total -= size
            dropped.append(name)
        return dropped

    def clean_staging(self) -> None:
        """At daemon start: nothing is syncing, so no staged file is wanted."""
        if not self.root.is_dir():
            return
        for d in self.root.iterdir():
            shutil.rmtree(d / "staging", ignore_errors=True)

    def size(self) -> int:
        return _du(self.root) if self.root.is_dir() else 0
