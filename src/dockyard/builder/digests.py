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

In memory each entry is one bytes object, the identity packed (36 bytes) and the raw
digest (32): a kept 5,000-file context's index was ~3.5 MiB of small Python objects (a
tuple of five ints, a 71-character digest string per file), which stay in the daemon while
its context is kept (session/contexts.py) and spread over pymalloc's arenas.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import struct
from collections.abc import Iterable
from pathlib import Path

# inode, size, mode, mtime_ns, ctime_ns as lstat gives them; then the sha256 itself
_IDENTITY = struct.Struct("=QQIqq")
_ID_LEN = _IDENTITY.size
_PREFIX = "sha256:"
_HEX_LEN = 64


def _identity(st: os.stat_result) -> bytes:
    return _IDENTITY.pack(st.st_ino, st.st_size, st.st_mode, st.st_mtime_ns, st.st_ctime_ns)


def _raw(value: str) -> bytes | None:
    """The 32 bytes of a "sha256:<hex>" digest, None for anything else (not kept)."""
    if len(value) != len(_PREFIX) + _HEX_LEN or not value.startswith(_PREFIX):
        return None
    try:
        return bytes.fromhex(value[len(_PREFIX) :])
    except ValueError:
        return None


def _text(raw: bytes) -> str:
    return _PREFIX + raw.hex()


def _pack(ident: bytes, value: str) -> bytes | None:
    raw = _raw(value)
    return None if raw is None else ident + raw


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
        # rel -> packed identity + raw digest (module docstring)
        self._known: dict[str, bytes] = {}
        self._dirty = False
        self.hashed = 0  # files hashed since load, for tests and benchmarks
        # Whole results of copy.file_digests, valid while the tree is unchanged: a cached
        # rebuild of a 5,000-file context walked and lstat'ed every file again (40 ms).
        # Anything the index learns, and every sync that changed the tree, ends them. Kept
        # packed as well: the paths joined by NULs, the raw digests in one bytes object.
        self._generation = 0
        self._results: dict[object, tuple[int, str, bytes] | tuple[int, dict[str, str]]] = {}
        if path is not None:
            self._load(path)

    def _load(self, path: Path) -> None:
        try:
            doc = json.loads(path.read_bytes())
            known: dict[str, bytes] = {}
            for rel, (ident, digest) in doc.items():
                if not isinstance(digest, str) or len(ident) != 5:
                    continue
                packed = _pack(_IDENTITY.pack(*ident), digest)
                if packed is not None:
                    known[rel] = packed
            self._known = known
        except (OSError, ValueError, TypeError, AttributeError, struct.error):
            self._known = {}  # missing or damaged: everything is hashed once more

    def __len__(self) -> int:
        return len(self._known)

    @property
    def dirty(self) -> bool:
        """Whether the index learnt anything since it was loaded or saved."""
        return self._dirty

    def _put(self, rel: str, ident: bytes, value: str) -> None:
        packed = _pack(ident, value)
        if packed is None:
            self._known.pop(rel, None)
        else:
            self._known[rel] = packed

    def digest(self, full: Path | str, rel: str) -> str:
        st = os.lstat(full)
        if not stat.S_ISREG(st.st_mode):
            return compute(full, st)
        ident = _identity(st)
        hit = self._known.get(rel)
        if hit is not None and hit.startswith(ident):
            return _text(hit[_ID_LEN:])
        value = compute(full, st)
        self.hashed += 1
        self._put(rel, ident, value)
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
        if hit is None or hit[0] != self._generation:
            return None
        if len(hit) == 2:
            return dict(hit[1])
        rels, raws = hit[1].split("\0"), hit[2]
        n = _HEX_LEN // 2
        return {rel: _text(raws[i * n : (i + 1) * n]) for i, rel in enumerate(rels)}

    def keep_result(self, key: object, digests: dict[str, str]) -> None:
        raws = _raws(digests.values())
        if raws is not None and all("\0" not in rel for rel in digests) and digests:
            self._results[key] = (self._generation, "\0".join(digests), raws)
        else:
            self._results[key] = (self._generation, dict(digests))
        while len(self._results) > 8:
            del self._results[next(iter(self._results))]

    def remember(self, rel: str, st: os.stat_result, value: str) -> None:
        """The digest of a regular file hashed elsewhere (while the sync received it), for the
        file as `st` (its lstat once in place) shows it."""
        if stat.S_ISREG(st.st_mode):
            self._put(rel, _identity(st), value)
            self._dirty = True
            self._generation += 1

    def relinked(self, rel: str, before: os.stat_result, after: os.stat_result) -> None:
        """The file at `rel`, as `before` showed it, was only linked (a COPY shared it with
        a layer, builder/copylinks.py): the same bytes, a new ctime."""
        hit = self._known.get(rel)
        if hit is not None and hit.startswith(_identity(before)):
            self._known[rel] = _identity(after) + hit[_ID_LEN:]
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

    def document(self) -> dict[str, list[object]]:
        """The index as digests.json holds it: {rel: [[ino, size, mode, mtime_ns,
        ctime_ns], "sha256:…"]}."""
        return {
            r: [list(_IDENTITY.unpack(v[:_ID_LEN])), _text(v[_ID_LEN:])]
            for r, v in self._known.items()
        }

    def save(self) -> None:
        if self.path is None or not self._dirty:
            return
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        tmp.write_text(json.dumps(self.document()))
        os.replace(tmp, self.path)
        self._dirty = False


def _raws(values: Iterable[str]) -> bytes | None:
    """The raw digests of `values` end to end, None if one is not a sha256 digest."""
    out = bytearray()
    for value in values:
        raw = _raw(value)
        if raw is None:
            return None
        out += raw
    return bytes(out)
