"""Garbage collection of layers and blobs no image or container references any more.

Runs after `rmi` (Docker reports each removed layer as `Deleted: <chain ID>`) and on prune.
What is kept: every layer in the chain of an image row, and of the image of every container
(a forced `rmi` of a stopped container's image leaves that container's lower dirs in place,
as Docker does). A layer is dropped with its snapshot directory, its uncompressed tar blob
and any compressed copies made for pushes. Collection is skipped while an operation that
creates layers before it records their image (a build, pull, load or import) is in flight:
those layers are not yet referenced, and the next collection gets whatever is left.
"""

from __future__ import annotations

import contextlib
import sqlite3

from dockyard.content.store import ContentStore
from dockyard.errors import NotFound
from dockyard.image.config import ImageConfig, chain_ids
from dockyard.metadata.store import MetadataStore
from dockyard.snapshot.overlay import OverlaySnapshotter


def _config(content: ContentStore, image_id: str) -> ImageConfig | None:
    try:
        return ImageConfig.from_bytes(content.read_bytes(image_id))
    except (NotFound, ValueError):
        return None


def live_chains(meta: MetadataStore, content: ContentStore) -> set[str]:
    """Chain IDs of every layer an image or a container's image references."""
    live_images = set(meta.image_ids()) | {rec.image_id for rec in meta.containers()}
    live: set[str] = set()
    for image_id in live_images:
        cfg = _config(content, image_id)
        if cfg is not None:
            live.update(chain_ids(cfg.diff_ids))
    return live


def collect(
    meta: MetadataStore,
    content: ContentStore,
    snapshots: OverlaySnapshotter,
    sizes: dict[str, int] | None = None,
) -> list[str]:
    """Remove unreferenced layers and config blobs; returns the removed layers' chain IDs.
    With `sizes`, each removed layer's disk usage is recorded there first (prune reports
    the sum as SpaceReclaimed, as dockerd sums the released layers' DiffSize)."""
    live = live_chains(meta, content)
    layers = meta.layers()
    dead = [layer for layer in layers if layer.chain_id not in live]
    # Children first, so a parent chain is never gone while a child still names it.
    parents = {x.chain_id: x.parent for x in layers}
    dead.sort(key=lambda layer: _depth(layer.chain_id, parents), reverse=True)
    live_diffs = {layer.diff_id for layer in layers if layer.chain_id in live}
    removed: list[str] = []
    for layer in dead:
        if sizes is not None:
            sizes[layer.chain_id] = snapshots.usage(layer.snapshot)
        meta.delete_layer(layer.chain_id)
        snapshots.remove(layer.snapshot)
        meta.delete_snapshot(layer.snapshot)
        if layer.diff_id not in live_diffs:
            delete_blob(content, layer.diff_id)
            for digest in _compressed_copies(meta, layer.diff_id):
                delete_blob(content, digest)
        removed.append(layer.chain_id)
    return removed


def delete_unreferenced_config(meta: MetadataStore, content: ContentStore, image_id: str) -> None:
    """Drop a deleted image's config blob unless a container still runs from it."""
    if meta.has_image(image_id) or any(rec.image_id == image_id for rec in meta.containers()):
        return
    delete_blob(content, image_id)


def _depth(chain_id: str, parents: dict[str, str | None]) -> int:
    depth = 0
    current: str | None = chain_id
    while current is not None and depth < 10_000:
        current = parents.get(current)
        depth += 1
    return depth


def delete_blob(content: ContentStore, digest: str) -> None:
    with contextlib.suppress(NotFound):
        content.delete(digest)


def _compressed_copies(meta: MetadataStore, diff_id: str) -> list[str]:
    """Compressed blobs the distribution layer made from `diff_id` (its table, if present)."""
    try:
        with meta.transaction() as db:
            rows = db.execute(
                "SELECT digest FROM dist_blobs WHERE diff_id = ?", (diff_id,)
            ).fetchall()
            db.execute("DELETE FROM dist_blobs WHERE diff_id = ?", (diff_id,))
    except sqlite3.OperationalError:  # no such table: nothing was ever pushed
        return []
    return [r[0] for r in rows]
