"""`POST /images/prune`: remove unused images, as dockerd's ImagesPrune does.

dockerd (daemon/images/image_prune.go), which this follows:
- `dangling=true` (the default) considers only images without a tag; `dangling=false` every
  image. An untagged image with children (a build's intermediate step) is never a candidate.
- `until` (created before) and `label`/`label!` narrow the candidates.
- A tagged candidate is removed reference by reference (`DELETE /images/<ref>` without force),
  an untagged one by ID; a deletion that would conflict — a container uses the image — is
  skipped silently, so an image in use survives while its other references are untagged.
- `SpaceReclaimed` is the disk usage of the layers the deletions released.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dockyard.engine import gc
from dockyard.errors import Conflict, InvalidArgument, NotFound
from dockyard.store.images import created_unix

if TYPE_CHECKING:
    from dockyard.engine.engine import Engine

FILTERS = ("dangling", "until", "label", "label!")


@dataclass(frozen=True)
class ImagePruneFilters:
    dangling_only: bool = True
    until: float | None = None
    labels: tuple[str, ...] = ()
    not_labels: tuple[str, ...] = ()

    @classmethod
    def parse(cls, raw: dict[str, list[str]], now: float | None = None) -> ImagePruneFilters:
        for key in raw:
            if key not in FILTERS:
                raise InvalidArgument(f"invalid filter '{key}'")
        dangling = True
        for v in raw.get("dangling", []):
            if v.lower() not in ("true", "1", "false", "0"):
                raise InvalidArgument(f"invalid filter 'dangling={v}'")
            dangling = v.lower() in ("true", "1")
        until = None
        for v in raw.get("until", []):
            until = parse_timestamp(v, "until", now)
        return cls(dangling, until, tuple(raw.get("label", [])), tuple(raw.get("label!", [])))

    def keeps(self, labels: dict[str, str], created: float) -> bool:
        if self.until is not None and created >= self.until:
            return True
        if self.labels and not all(_has_label(labels, lbl) for lbl in self.labels):
            return True
        return any(_has_label(labels, lbl) for lbl in self.not_labels)


def _has_label(labels: dict[str, str], spec: str) -> bool:
    key, sep, value = spec.partition("=")
    return key in labels and (not sep or labels[key] == value)


_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def parse_timestamp(value: str, name: str, now: float | None = None) -> float:
    """Docker's timetypes.GetTimestamp: Unix seconds (with a fraction), an RFC 3339 time or
    date, or a Go duration (`10m`, `1h30m`) counted back from now."""
    import re
    from datetime import UTC, datetime

    now = time.time() if now is None else now
    v = value.strip()
    with contextlib.suppress(ValueError):
        return float(v)
    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", v)
    if parts and "".join(n + u for n, u in parts) == v:
        return now - sum(float(n) * _DURATION_UNITS[u] for n, u in parts)
    try:
        t = datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidArgument(f"invalid {name} value {value!r}") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.timestamp()


def prune_images(engine: Engine, filters: ImagePruneFilters) -> dict[str, Any]:
    """Runs in a worker thread (deletions walk and remove layer directories)."""
    meta, images = engine.meta, engine.images
    report: list[dict[str, str]] = []
    for image_id in meta.image_ids():
        if not meta.has_image(image_id):
            continue  # removed with an earlier candidate's chain
        tags = meta.tags_of(image_id)
        if not tags and meta.image_children(image_id):
            continue
        if tags and filters.dangling_only:
            continue
        cfg = images.config(image_id)
        if filters.keeps(cfg.container_config.get("Labels") or {}, created_unix(cfg.created)):
            continue
        names = tags or [image_id]
        for name in names:
            try:
                deleted = images.delete(
                    name, force=False, prune=True, users=engine.containers.users_of_image
                )
            except (Conflict, NotFound):
                continue
            report.extend(deleted)
            engine.deleted_events(image_id, deleted)
            for entry in deleted:
                if "Deleted" in entry:
                    gc.delete_unreferenced_config(meta, engine.content, entry["Deleted"])
    # What a live lease holds (a build, pull or load under way) stays (engine/gc.py).
    sizes: dict[str, int] = {}
    collected = gc.collect(engine.meta, engine.content, engine.snapshots, sizes)
    report.extend({"Deleted": chain} for chain in collected)
    reclaimed = sum(sizes.values())
    engine.events.publish("image", "prune", "", {"reclaimed": str(reclaimed)})
    return {"ImagesDeleted": report or None, "SpaceReclaimed": reclaimed}
