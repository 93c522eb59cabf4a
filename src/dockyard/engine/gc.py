"""Garbage collection of layers and blobs nothing references any more (mark, then sweep).

Runs after `rmi` (Docker reports each removed layer as `Deleted: <chain ID>`) and on prune, in
a worker thread. Roots (what is kept): every image row, the image of every container (a forced
`rmi` of a stopped container's image leaves that container's lower dirs in place, as Docker
does), and whatever a live lease holds (metadata/leases.py: the images, layers and blobs of a
build, pull, load, import or commit in flight). Marked: the chains of the root images, the
held layers, their diff IDs and the held blobs. Swept: every other layer, with its snapshot,
its tar blob and the compressed copies made for pushes.

Order, so that no crash leaves a row that names a missing file (containerd's rule: references
go before what they reference):
1. under the store's lock (no lease can take a hold meanwhile), mark;
2. one transaction deletes the layer rows, their snapshot rows and the compressed-copy rows;
3. still under the lock, the snapshot directories and blobs are renamed into their trash
   (content/trash.py), so a writer that holds a digest after the lock is released finds the
   blob gone and writes it anew rather than losing it to a late delete;
4. the trash is emptied by its reaper thread, off the event loop and off the lock.
A crash between 2 and 3 leaves files no row names: orphans for the start-up sweep, never a
dangling reference. `give_back` is the same sweep limited to what a failed operation made (a
pull that ran out of space gives its space back at once).
"""

from __future__ import annotations

import contextlib

from dockyard.content.store import ContentStore
from dockyard.errors import NotFound
from dockyard.image.config import ImageConfig, chain_ids
from dockyard.metadata.leases import Held, current_lease
from dockyard.metadata.store import LayerRecord, MetadataStore
from dockyard.snapshot.overlay import OverlaySnapshotter


def _config(content: ContentStore, image_id: str) -> ImageConfig | None:
    try:
        return ImageConfig.from_bytes(content.read_bytes(image_id))
    except (NotFound, ValueError):
        return None


def live_chains(meta: MetadataStore, content: ContentStore, held: Held) -> set[str]:
    """Mark: the chains of the root images, and the layers leases hold."""
    roots = set(meta.image_ids()) | meta.container_image_ids() | held.images
    live: set[str] = set(held.layers)
    for image_id in roots:
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
    """Remove unreferenced layers and their blobs; returns the removed layers' chain IDs.
    With `sizes`, each removed layer's disk usage is recorded there first (prune reports
    the sum as SpaceReclaimed, as dockerd sums the released layers' DiffSize)."""
    with meta.exclusive():
        held = meta.held()
        live = live_chains(meta, content, held)
        layers = meta.layers()
        dead = [layer for layer in layers if layer.chain_id not in live]
        if not dead:
            return []
        live_diffs = {layer.diff_id for layer in layers if layer.chain_id in live}
        dead_diffs = {x.diff_id for x in dead} - live_diffs - held.content
        if sizes is not None:
            for layer in dead:
                sizes[layer.chain_id] = snapshots.usage(layer.snapshot)
        compressed = meta.delete_layers(dead, dead_diffs)
        for layer in _children_first(dead, layers):
            snapshots.remove(layer.snapshot)
        for digest in sorted(dead_diffs) + [d for d in compressed if d not in held.content]:
            _delete_blob(content, digest)
    return [layer.chain_id for layer in _children_first(dead, layers)]


def give_back(
    meta: MetadataStore,
    content: ContentStore,
    snapshots: OverlaySnapshotter,
    chains: list[str],
    blobs: list[str],
) -> None:
    """What a failed operation made (`chains` in the order made, `blobs` it downloaded) and
    nothing else holds goes, in the same order as `collect`. Called under the operation's
    own lease, which is not counted: only roots and other leases keep anything."""
    with meta.exclusive():
        held = meta.held(exclude=current_lease.get())
        live = live_chains(meta, content, held)
        layers = {x.chain_id: x for x in meta.layers()}
        doomed = [layers[c] for c in reversed(chains) if c in layers and c not in live]
        gone = {x.chain_id for x in doomed}
        kept_diffs = {x.diff_id for x in layers.values() if x.chain_id not in gone}
        dead_diffs = {x.diff_id for x in doomed} - kept_diffs - held.content
        compressed = meta.delete_layers(doomed, dead_diffs) if doomed else []
        for layer in doomed:
            snapshots.remove(layer.snapshot)
        recorded = meta.distribution.compressed_digests()
        downloaded = {b for b in blobs if b not in recorded and b not in held.content}
        for digest in sorted(dead_diffs | downloaded) + compressed:
            _delete_blob(content, digest)


def delete_unreferenced_config(meta: MetadataStore, content: ContentStore, image_id: str) -> None:
    """Drop a deleted image's config blob unless an image row, a container or a lease holds it."""
    with meta.exclusive():
        held = meta.held()
        if (
            meta.has_image(image_id)
            or image_id in meta.container_image_ids()
            or image_id in held.images
            or image_id in held.content
        ):
            return
        _delete_blob(content, image_id)


def _children_first(dead: list[LayerRecord], layers: list[LayerRecord]) -> list[LayerRecord]:
    """Deepest chains first: Docker reports a removed image's layers top down."""
    parents = {x.chain_id: x.parent for x in layers}
    return sorted(dead, key=lambda layer: _depth(layer.chain_id, parents), reverse=True)


def _depth(chain_id: str, parents: dict[str, str | None]) -> int:
    depth = 0
    current: str | None = chain_id
    while current is not None and depth < 10_000:
        current = parents.get(current)
        depth += 1
    return depth


def _delete_blob(content: ContentStore, digest: str) -> None:
    with contextlib.suppress(NotFound):
        content.delete(digest)
