"""The build cache as BuildKit reports it: `RUN --mount=type=cache` directories.

Each directory under `buildcache/` is one record of type `exec.cachemount` (BuildKit's name
for it), which `GET /system/df` lists and `POST /build/prune` removes. The legacy builder's
step cache lives in intermediate images, which `image prune` handles, as with dockerd 20.10.
A cache mount that a running step has mounted is `InUse` and never pruned; a prune moves a
directory out of `buildcache/` first (one rename, atomic), so a step starting meanwhile gets
a fresh, empty cache rather than a half-deleted one.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dockyard.builder.mounts import CacheMounts
from dockyard.engine.image_prune import parse_timestamp
from dockyard.errors import InvalidArgument
from dockyard.snapshot.overlay import tree_size

CACHE_TYPE = "exec.cachemount"
FILTERS = ("until", "id", "type", "inuse", "shared", "private")


@dataclass(frozen=True)
class CacheRecord:
    id: str
    path: Path
    created: float
    last_used: float
    in_use: bool
    size: int

    def to_json(self) -> dict[str, Any]:
        return {
            "ID": self.id,
            "Parent": "",
            "Parents": None,
            "Type": CACHE_TYPE,
            "Description": "cached mount from exec",
            "InUse": self.in_use,
            "Shared": False,
            "Size": self.size,
            "CreatedAt": _rfc3339(self.created),
            "LastUsedAt": _rfc3339(self.last_used),
            "UsageCount": 1,
        }


def _rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def records(caches: CacheMounts) -> list[CacheRecord]:
    root = caches.root
    out = []
    for entry in sorted(root.iterdir()) if root.is_dir() else []:
        if not entry.is_dir() or entry.name.startswith("."):
            continue
        st = entry.stat()
        out.append(
            CacheRecord(
                entry.name,
                entry,
                st.st_ctime,
                st.st_mtime,
                caches.in_use(entry),
                tree_size(entry),
            )
        )
    return out


@dataclass(frozen=True)
class BuildPruneOptions:
    keep_storage: int = 0
    all: bool = False
    until: float | None = None
    ids: tuple[str, ...] = ()
    types: tuple[str, ...] = ()

    @classmethod
    def parse(
        cls, filters: dict[str, list[str]], keep_storage: str, all_: bool
    ) -> BuildPruneOptions:
        for key in filters:
            if key not in FILTERS:
                raise InvalidArgument(f"invalid filter '{key}'")
            if key in ("inuse", "shared", "private"):
                raise InvalidArgument(f"build prune filter '{key}' is not supported by dockyard")
        try:
            keep = int(keep_storage or 0)
        except ValueError:
            raise InvalidArgument(f"invalid keep-storage value {keep_storage!r}") from None
        until = None
        for v in filters.get("until", []):
            until = parse_timestamp(v, "until")
        return cls(keep, all_, until, tuple(filters.get("id", [])), tuple(filters.get("type", [])))

    def selects(self, rec: CacheRecord) -> bool:
        if rec.in_use:
            return False
        if self.until is not None and rec.last_used >= self.until:
            return False
        if self.ids and not any(rec.id.startswith(i) for i in self.ids):
            return False
        return not self.types or CACHE_TYPE in self.types


def prune(caches: CacheMounts, opts: BuildPruneOptions) -> dict[str, Any]:
    """Runs in a worker thread. With `keep-storage`, the least recently used records go first
    and pruning stops once what is left fits (BuildKit's keepBytes)."""
    recs = sorted(records(caches), key=lambda r: r.last_used)
    total = sum(r.size for r in recs)
    deleted: list[str] = []
    reclaimed = 0
    trash = caches.root / f".prune-{os.getpid()}-{time.monotonic_ns()}"
    for rec in recs:
        if opts.keep_storage and total <= opts.keep_storage:
            break
        if not opts.selects(rec) or caches.in_use(rec.path):
            continue
        trash.mkdir(exist_ok=True)
        try:
            rec.path.rename(trash / rec.id)
        except OSError:
            continue
        deleted.append(rec.id)
        reclaimed += rec.size
        total -= rec.size
    shutil.rmtree(trash, ignore_errors=True)
    return {"CachesDeleted": deleted or None, "SpaceReclaimed": reclaimed}
