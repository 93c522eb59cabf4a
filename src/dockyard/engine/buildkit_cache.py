"""The step cache as BuildKit's DiskUsage and Prune report it (`docker buildx du`, `buildx prune`).

dockyard's build cache is one table: a step's cache key → the image that step made (the
legacy builder's intermediate images, shared by every build path). Each entry is one
BuildKit usage record: its ID is the key's first 25 hex digits (BuildKit's record IDs are
25 characters), its size the layer the step added (0 for a config-only step), its
description the step's `created_by`, and it is `Shared` when its image is tagged (the
layer then stays with that image whatever the cache does).

Prune as BuildKit's: without `--all`, the records whose image is not tagged; with it, every
record. A pruned record's entry goes, and its image too when untagged and unused by any
container; then garbage collection drops what no image references. Filters: `id`,
`description`, `type` (regular), `until` (Go durations via keepDuration), `keepBytes`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from dockyard.errors import DockyardError, InvalidArgument, NotFound
from dockyard.image.config import ImageConfig

if TYPE_CHECKING:
    from dockyard.engine.engine import Engine

RECORD_TYPE = "regular"
_FILTER_KEYS = ("id", "description", "type", "inuse", "shared", "private", "mutable")


@dataclass(frozen=True)
class CacheRecord:
    key: str
    image_id: str
    size: int
    created_ns: int
    description: str
    shared: bool

    @property
    def id(self) -> str:
        return self.key.removeprefix("sha256:")[:25]


def _created_ns(cfg: ImageConfig) -> int:
    created = str(cfg.doc.get("created") or "")
    try:
        head = created[:19] + "+00:00"
        return int(datetime.fromisoformat(head).timestamp()) * 1_000_000_000
    except ValueError:
        return 0


def _matches(rec: CacheRecord, filters: list[str]) -> bool:
    """containerd-style filters as buildx sends them (`id==x`, `type==regular`, ...); the
    clauses of one string are ANDed, several strings ORed."""
    if not filters:
        return True
    for f in filters:
        ok = True
        for clause in f.split(","):
            clause = clause.strip()
            if not clause:
                continue
            for op in ("==", "!=", "~="):
                if op in clause:
                    key, value = clause.split(op, 1)
                    break
            else:
                raise InvalidArgument(f"invalid build cache filter {clause!r}")
            key, value = key.strip(), value.strip().strip('"')
            if key not in _FILTER_KEYS:
                raise InvalidArgument(f"invalid build cache filter key {key!r}")
            actual = {
                "id": rec.id,
                "description": rec.description,
                "type": RECORD_TYPE,
                "inuse": "false",
                "shared": str(rec.shared).lower(),
                "private": str(not rec.shared).lower(),
                "mutable": "false",
            }[key]
            if op == "==":
                hit = actual == value or (key == "id" and actual.startswith(value))
            elif op == "!=":
                hit = actual != value
            else:
                hit = value in actual
            ok = ok and hit
        if ok:
            return True
    return False


_RUN_ARGS = re.compile(r"\|(\d+) ")


def _description(created_by: str) -> str:
    """A RUN step's record reads as BuildKit's exec mount does (`mount / from exec ARGS`,
    solver/llbsolver/ops/exec.go), from BuildKit's history text `RUN [|N A=1 …] ARGS #
    buildkit`; other steps keep their history text."""
    if not created_by.startswith("RUN ") or not created_by.endswith(" # buildkit"):
        return created_by
    text = created_by.removeprefix("RUN ").removesuffix(" # buildkit")
    if m := _RUN_ARGS.match(text):
        text = text[m.end() :].split(" ", int(m[1]))[-1]
    return f"mount / from exec {text}"


def records(engine: Engine, filters: list[str]) -> list[CacheRecord]:
    """Runs in a worker thread."""
    sizes = {layer.chain_id: layer.size for layer in engine.meta.layers()}
    from dockyard.image.config import chain_ids

    out = []
    for key, image_id in engine.meta.cache_entries():
        try:
            cfg = engine.images.get(image_id).config
        except (NotFound, DockyardError):
            continue
        # The step's own layer: the image's top one, unless its history says the step
        # made none (a config-only step, or one that changed nothing).
        history = list(cfg.history)
        chains = chain_ids(cfg.diff_ids)
        made_layer = bool(history) and not history[-1].get("empty_layer") and bool(chains)
        size = sizes.get(chains[-1], 0) if made_layer else 0
        description = _description(str(history[-1].get("created_by", ""))) if history else ""
        rec = CacheRecord(
            key,
            image_id,
            size,
            _created_ns(cfg),
            description,
            bool(engine.meta.tags_of(image_id)),
        )
        if _matches(rec, filters):
            out.append(rec)
    out.sort(key=lambda r: r.created_ns)
    return out


def usage_record(rec: CacheRecord) -> Any:
    from dockyard.session.proto import control_pb2

    msg = control_pb2.UsageRecord(
        ID=rec.id,
        Mutable=False,
        InUse=False,
        Size=rec.size,
        UsageCount=1,
        Description=rec.description,
        RecordType=RECORD_TYPE,
        Shared=rec.shared,
    )
    msg.CreatedAt.FromNanoseconds(rec.created_ns)
    msg.LastUsedAt.FromNanoseconds(rec.created_ns)
    return msg


async def prune(
    engine: Engine,
    filters: list[str],
    *,
    all_: bool,
    keep_bytes: int,
    keep_duration_ns: int,
) -> list[CacheRecord]:
    import asyncio
    import time

    from dockyard.engine import gc

    recs = await asyncio.to_thread(records, engine, filters)
    if keep_duration_ns > 0:
        cutoff = time.time_ns() - keep_duration_ns
        recs = [r for r in recs if r.created_ns < cutoff]
    if not all_:
        recs = [r for r in recs if not r.shared]
    total = sum(r.size for r in recs)
    used = {rec.image_id for rec in engine.meta.containers()}
    pruned: list[CacheRecord] = []
    for rec in recs:  # oldest first, as BuildKit's LRU
        if keep_bytes and total <= keep_bytes:
            break
        engine.meta.cache_delete(rec.key)
        if not engine.meta.tags_of(rec.image_id) and rec.image_id not in used:
            engine.meta.delete_image(rec.image_id)
            gc.delete_unreferenced_config(engine.meta, engine.content, rec.image_id)
        pruned.append(rec)
        total -= rec.size
    if pruned:  # what builds in progress made is held by their leases (metadata/leases.py)
        await engine.collect_garbage()
    return pruned
