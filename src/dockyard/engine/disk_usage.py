"""`GET /system/df`: what images, containers, volumes and the build cache hold on disk.

Sizes are measured on the disk as dockerd measures them (pkg/directory.Size: apparent sizes
of files, each hardlinked inode once): a layer is its snapshot directory, a container's
`SizeRw` its writable upper dir, a volume its data directory. Committed layers never change,
so their sizes are remembered per chain ID for the daemon's lifetime.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import TYPE_CHECKING, Any

from dockyard.errors import InvalidArgument
from dockyard.image.config import chain_ids
from dockyard.snapshot.overlay import tree_size

if TYPE_CHECKING:
    from dockyard.engine.engine import Engine

TYPES = ("container", "image", "volume", "build-cache")


class DiskUsage:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._layer_sizes: dict[str, int] = {}

    def layer_size(self, chain_id: str) -> int:
        if chain_id not in self._layer_sizes:
            rec = self.engine.meta.get_layer(chain_id)
            if rec is None:
                return 0
            self._layer_sizes[chain_id] = self.engine.snapshots.usage(rec.snapshot)
        return self._layer_sizes[chain_id]

    async def report(self, types: list[str]) -> dict[str, Any]:
        for t in types:
            if t not in TYPES:
                raise InvalidArgument(f"unknown object type: {t}")
        want = set(types or TYPES)
        doc: dict[str, Any] = {}
        if "image" in want:
            doc.update(await asyncio.to_thread(self._images))
        if "container" in want:
            doc["Containers"] = await self._containers()
        if "volume" in want:
            doc["Volumes"] = await asyncio.to_thread(self._volumes)
        if "build-cache" in want:
            # imported here: the builder's cache mounts, the frontend's mount parser and csv,
            # 0.23 MiB an idle daemon need not hold
            from dockyard.engine import build_cache

            recs = await asyncio.to_thread(build_cache.records, self.engine.build_caches)
            doc["BuildCache"] = [r.to_json() for r in recs]
            # dockerd 20.10 still sends the deprecated total (moby getDiskUsage BuilderSize)
            doc["BuilderSize"] = sum(r.size for r in recs)
        return doc

    def _images(self) -> dict[str, Any]:
        engine = self.engine
        meta = engine.meta
        chains_of: dict[str, list[str]] = {}
        refs: Counter[str] = Counter()
        for image_id in meta.image_ids():
            chains = chain_ids(engine.images.config(image_id).diff_ids)
            chains_of[image_id] = chains
            refs.update(set(chains))
        used_by = Counter(rec.image_id for rec in meta.containers())
        images = []
        for image_id, chains in chains_of.items():
            if not meta.tags_of(image_id) and meta.image_children(image_id):
                continue  # intermediate images are not listed, as in `docker images`
            summary = engine.images.summary(image_id)
            size = sum(self.layer_size(c) for c in chains)
            shared = sum(self.layer_size(c) for c in chains if refs[c] > 1)
            summary.update(
                Size=size, VirtualSize=size, SharedSize=shared, Containers=used_by[image_id]
            )
            images.append(summary)
        layers = sum(self.layer_size(layer.chain_id) for layer in meta.layers())
        return {"LayersSize": layers, "Images": images}

    async def _containers(self) -> list[dict[str, Any]]:
        containers = self.engine.containers
        out = containers.list(True)
        for item in out:
            item.update(await containers.sizes(item["Id"]))
        return out

    def _volumes(self) -> list[dict[str, Any]]:
        containers = self.engine.containers
        vols = containers.volumes.list()
        for vol in vols:
            vol["UsageData"] = {
                "Size": tree_size(containers.volumes.path(vol["Name"])),
                "RefCount": len(containers.volume_users(vol["Name"])),
            }
        return vols
