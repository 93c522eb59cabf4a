"""A kept context stored with whole-second mtimes, the client's own remembered beside it.

The legacy builder's COPY gives files whole-second mtimes (a legacy context is a tar, and
moby's FileInfoHeader truncates them; builder/context.py `second_mtimes`). A kept context
whose files already have them can share its inodes with the layer (builder/copylinks.py),
but the sync must still compare the client's nanosecond mtimes, or a change within the
second that keeps the size would go unseen. So a file synced for the legacy builder is
stored with its mtime truncated, and its client mtime is remembered here with what
identifies the stored file: inode and stored mtime. A file that anything else touched since
(a write moves its mtime; the sync itself replaces, never rewrites) no longer matches, and
its stored mtime is compared as it is: the file travels again, never a stale one is used.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

SECOND = 1_000_000_000


def truncated(mtime_ns: int) -> int:
    return mtime_ns - mtime_ns % SECOND


class ClientTimes:
    """Client mtimes of a kept tree's regular files, by path relative to the tree."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._loaded: dict[str, tuple[int, int, int]] | None = None
        self._dirty = False

    @property
    def _known(self) -> dict[str, tuple[int, int, int]]:
        """rel -> (ino, stored, client), read when first needed: a sync that finds the
        listing unchanged (listingmemo.py) never needs it (23 ms of JSON for 5,000 files)."""
        if self._loaded is None:
            self._loaded = {}
            if self.path is not None:
                with contextlib.suppress(OSError, ValueError, TypeError, AttributeError):
                    doc = json.loads(self.path.read_bytes())
                    self._loaded = {
                        rel: (int(v[0]), int(v[1]), int(v[2]))
                        for rel, v in doc.items()
                        if isinstance(v, list) and len(v) == 3
                    }
        return self._loaded

    def client_mtime(self, rel: str, st: os.stat_result) -> int:
        """The mtime the client listed for the stored file `st`, or its own."""
        hit = self._known.get(rel)
        if hit is not None and hit[0] == st.st_ino and hit[1] == st.st_mtime_ns:
            return hit[2]
        return st.st_mtime_ns

    def stored(self, rel: str, st: os.stat_result, client_mtime: int) -> None:
        self._known[rel] = (st.st_ino, st.st_mtime_ns, client_mtime)
        self._dirty = True

    def retain(self, rels: Iterable[str]) -> None:
        """Only these paths are still regular files of the tree."""
        keep = set(rels)
        if any(rel not in keep for rel in self._known):
            self._loaded = {r: v for r, v in self._known.items() if r in keep}
            self._dirty = True

    def save(self) -> None:
        if self.path is None or not self._dirty:
            return
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({r: list(v) for r, v in self._known.items()}))
        os.replace(tmp, self.path)
        self._dirty = False
