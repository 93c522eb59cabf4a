"""Content digests of a kept context's files, re-hashed only for the files that changed.

COPY's cache key sees a digest per source file (copy.file_digests). A context synced into
the copy the daemon keeps (session/contexts.py) is mostly the same files as last time, so
each digest is remembered with the file's identity as lstat gives it: inode, size, mode,
mtime and ctime in nanoseconds. The sync replaces a changed file by a new inode (and any
chmod, chown or write moves ctime, which no one can set back), so an entry whose identity
still matches holds the digest of the same bytes, and a changed or new file is hashed again.
BuildKit does the same with its content-hash cache keyed by the synced tree's records.

The index persists beside its tree (one JSON document, written atomically), so a daemon
restart does not re-hash the world either.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
from pathlib import Path

_Identity = tuple[int, int, int, int, int]


def _identity(st: os.stat_result) -> _Identity:
    return (st.st_ino, st.st_size, st.st_mode, st.st_mtime_ns, st.st_ctime_ns)


def compute(full: Path | str, st: os.stat_result | None = None) -> str:
    """The digest of one entry: type, permission bits and content (a link's target);
    never mtimes, which change on every checkout and would defeat the cache."""
    st = st or os.lstat(full)
    h = start(st.st_mode)
    feed_content(h, full, st)
    return finish(h)


def start(mode: int) -> hashlib._Hash:
    """A digest of an entry of `mode` (st_mode) begun: its content goes in next. The sync
    (session/filesync.py) feeds a file's bytes as they arrive, so no one reads them again."""
    return hashlib.sha256(f"{stat.S_IFMT(mode)}\0{stat.S_IMODE(mode)}\0".encode())


def finish(h: hashlib._Hash) -> str:
    return "sha256:" + h.hexdigest()


def feed_content(h: hashlib._Hash, full: Path | str, st: os.stat_result) -> None:
    """What an entry holds, into `h`: a file's bytes, a link's target, nothing else."""
    if stat.S_ISREG(st.st_mode):
        with open(full, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    elif stat.S_ISLNK(st.st_mode):
        h.update(os.readlink(full).encode())


class DigestIndex:
    """Remembered digests of regular files under one tree, by path relative to it.
    Entries come from `digest` (hashed on first use) or `remember` (hashed by the sync)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._known: dict[str, tuple[_Identity, str]] = {}
        self._dirty = False
        self.hashed = 0  # files hashed since load, for tests and benchmarks
        # Whole results of copy.file_digests, valid while the tree is unchanged: a cached
        # rebuild of a 5,000-file context walked and lstat'ed every file again (40 ms).
        # Anything the index learns, and every sync that changed the tree, ends them.
        self._generation = 0
        self._results: dict[object, tuple[int, dict[str, str]]] = {}
        if path is not None:
            self._load(path)

    def _load(self, path: Path) -> None:
        try:
            doc = json.loads(path.read_bytes())
            self._known = {
                rel: (tuple(ident), digest)
                for rel, (ident, digest) in doc.items()
                if isinstance(digest, str) and len(ident) == 5
            }
        except (OSError, ValueError, TypeError, AttributeError):
            self._known = {}  # missing or damaged: everything is hashed once more

    def __len__(self) -> int:
        return len(self._known)

    @property
    def dirty(self) -> bool:
        """Whether the index learnt anything since it was loaded or saved."""
        return self._dirty

    def digest(self, full: Path | str, rel: str) -> str:
        st = os.lstat(full)
        if not stat.S_ISREG(st.st_mode):
            return compute(full, st)
        ident = _identity(st)
        hit = self._known.get(rel)
        if hit is not None and hit[0] == ident:
            return hit[1]
        value = compute(full, st)
        self.hashed += 1
        self._known[rel] = (ident, value)
        self._dirty = True
        self._generation += 1
        return value

    def tree_changed(self) -> None:
        """The tree changed (a sync added, replaced or removed entries, or changed a
        directory's mode): no remembered whole result holds."""
        self._generation += 1

    def result(self, key: object) -> dict[str, str] | None:
        """The digests remembered for `key` (copy.file_digests' sources and options),
        if nothing changed since."""
        hit = self._results.get(key)
        return dict(hit[1]) if hit is not None and hit[0] == self._generation else None

    def keep_result(self, key: object, digests: dict[str, str]) -> None:
        self._results[key] = (self._generation, dict(digests))
        while len(self._results) > 8:
            del self._results[next(iter(self._results))]

    def remember(self, rel: str, st: os.stat_result, value: str) -> None:
        """The digest of a regular file hashed elsewhere (while the sync received it), for the
        file as `st` (its lstat once in place) shows it."""
        if stat.S_ISREG(st.st_mode):
            self._known[rel] = (_identity(st), value)
            self._dirty = True
            self._generation += 1

    def relinked(self, rel: str, before: os.stat_result, after: os.stat_result) -> None:
        """The file at `rel`, as `before` showed it, was only linked (a COPY shared it with
        a layer, builder/copylinks.py): the same bytes, a new ctime."""
        hit = self._known.get(rel)
        if hit is not None and hit[0] == _identity(before):
            self._known[rel] = (_identity(after), hit[1])
            self._dirty = True

    def forget(self, rels: list[str]) -> None:
        """Drop the entries of paths the sync removed or replaced (and those below them)."""
        if not rels:
            return
        self._generation += 1
        if not self._known:
            return
        gone = set(rels)
        prefixes = tuple(r + "/" for r in rels)
        kept = {
            r: v for r, v in self._known.items() if r not in gone and not r.startswith(prefixes)
        }
        if len(kept) != len(self._known):
            self._known = kept
            self._dirty = True

    def save(self) -> None:
        if self.path is None or not self._dirty:
            return
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        tmp.write_text(json.dumps({r: [list(i), d] for r, (i, d) in self._known.items()}))
        os.replace(tmp, self.path)
        self._dirty = False
