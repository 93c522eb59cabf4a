"""Leases in the engine: what a build in flight has made survives a concurrent rmi and prune.

The build is held between two steps (after its first layer is committed, before the image that
references it is recorded), and garbage collection runs exactly then: an ordering, not a race.
Before leases the API middleware's request counter was all that protected it, so an in-process
build lost that layer.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import pytest

from dockyard.builder.builder import BuildOptions
from dockyard.engine.engine import Engine
from tests.engine.conftest import context_tar, hold_after_first_commit, tar_of
from tests.support.rootfs import busybox_rootfs_tar

pytestmark = pytest.mark.root


def test_a_build_in_flight_keeps_its_layers_through_rmi_and_prune(engine_root: Path) -> None:
    engine = Engine(engine_root)
    committed, go = hold_after_first_commit(engine)

    async def main() -> None:
        with busybox_rootfs_tar().open("rb") as f:
            await engine.import_image(f, repo="busybox", tag="latest")
        other = await engine.import_image(io.BytesIO(tar_of({"x": b"x" * 1000})), repo="other")
        messages: list[dict[str, Any]] = []
        build = asyncio.create_task(
            engine.build(
                context_tar("FROM busybox\nCOPY a /a\nCOPY b /b\n", {"a": b"A" * 5000, "b": b"B"}),
                BuildOptions(tags=["built:1"]),
                messages.append,
            )
        )
        try:
            assert await asyncio.to_thread(committed.wait, 60)
            fresh = {layer.chain_id for layer in engine.meta.layers()}
            # The build's new layer is referenced by no image yet; rmi and prune run now.
            deleted = await engine.delete_image("other", force=False, prune=True)
            assert {"Deleted": other} in deleted
            await engine.collect_garbage()
            survivors = {layer.chain_id for layer in engine.meta.layers()}
            assert len(fresh - survivors) == 1  # only `other`'s layer went
        finally:
            go.set()
        image_id = await build
        image = engine.images.get(image_id)
        chain = engine.layers.chain_for(image.config.diff_ids)  # every layer is there
        for n, diff_id in zip(chain.snapshots, image.config.diff_ids, strict=True):
            assert engine.snapshots.fs(n).is_dir()
            assert engine.content.exists(diff_id)
        assert (engine.snapshots.fs(chain.snapshots[-1]) / "b").read_bytes() == b"B"
        assert engine.meta.leases() == []  # the build's lease went with it
        await engine.close()

    asyncio.run(main())
