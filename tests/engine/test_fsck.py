"""`system check` (engine/fsck.py) on an in-process engine: a store with planted damage of
every kind is reported, `--repair` removes what can be removed, a check while a build is in
flight takes nothing of the build for an orphan, and daemon start sweeps a dead daemon's
leftovers. The kills of a real daemon are tests/integration/test_crash.py's."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest

from dockyard.builder.builder import BuildOptions
from dockyard.engine.engine import Engine
from dockyard.engine.fsck import Report
from dockyard.metadata.store import LayerRecord
from tests.engine.conftest import context_tar, hold_after_first_commit, tar_of
from tests.support.rootfs import busybox_rootfs_tar

pytestmark = pytest.mark.root


def kinds(report: Report) -> list[tuple[str, str]]:
    return sorted((p.kind, p.subject) for p in report.problems)


async def _base(engine: Engine) -> str:
    with busybox_rootfs_tar().open("rb") as f:
        return await engine.import_image(f, repo="busybox", tag="latest")


def test_planted_damage_is_reported_and_repaired(engine_root: Path) -> None:
    engine = Engine(engine_root)

    async def main() -> None:
        await _base(engine)
        other = await engine.import_image(io.BytesIO(tar_of({"o": b"o" * 3000})), repo="other")
        assert kinds(await engine.system_check(repair=False)) == []

        content, meta = engine.content, engine.meta
        (content.ingest_dir / "ingest-dead").write_bytes(b"p" * 5000)
        stray_blob = content.ingest_bytes(b"nobody's").digest
        (engine.snapshots.root / "4242" / "fs").mkdir(parents=True)
        row = meta.new_snapshot()  # an active snapshot of a dead build: a row, no directory
        (engine_root / "builds" / "deadbeef" / "rootfs").mkdir(parents=True)
        # an rmi killed between the image row and the collection: a layer row nothing reaches
        orphan_chain = engine.images.get(other).config.diff_ids[0]
        meta.delete_image(other)
        # a layer an image needs, lost; and a referenced blob whose bytes rotted
        lost = meta.put_layer(LayerRecord("sha256:" + "1" * 64, "sha256:" + "2" * 64, None, 999, 1))
        assert lost
        busybox = engine.images.get("busybox")
        tar_blob = busybox.config.diff_ids[0]
        with content.blob_path(tar_blob).open("r+b") as f:  # as root: the mode does not stop it
            f.write(b"rot")
        engine.started = engine.started + 3600  # the builds/ entry is a dead daemon's

        found = kinds(await engine.system_check(repair=False))
        for expected in [
            ("orphan ingest", "ingest-dead"),
            ("orphan blob", stray_blob),
            ("orphan snapshot", "4242"),
            ("orphan snapshot", str(row)),
            ("orphan temp", str(engine_root / "builds" / "deadbeef")),
            ("orphan layer", orphan_chain),
            ("orphan layer", "sha256:" + "1" * 64),
            ("layer without its snapshot", "sha256:" + "1" * 64),
            ("layer without its tar blob", "sha256:" + "1" * 64),
            ("corrupt blob", tar_blob),
        ]:
            assert expected in found, (expected, found)

        repaired = await engine.system_check(repair=True)
        assert {p.kind for p in repaired.repaired} >= {
            "orphan ingest",
            "orphan blob",
            "orphan snapshot",
            "orphan temp",
            "orphan layer",
            "corrupt blob",
        }
        # what is left cannot be brought back by a repair: the layer whose tar went
        left = kinds(await engine.system_check(repair=False))
        busybox_chain = busybox.config.diff_ids[0]  # a base layer's chain ID is its diff ID
        assert left == [("layer without its tar blob", busybox_chain)], left
        assert list(content.ingest_dir.iterdir()) == []
        assert list((engine_root / "builds").iterdir()) == []
        assert not content.exists(stray_blob)
        await engine.close()

    asyncio.run(main())


def test_a_check_during_a_build_takes_nothing_of_it(engine_root: Path) -> None:
    """Held between two steps (its first layer committed, no image yet): its layer, blobs,
    active snapshot and builds/ directory are the build's, not orphans, and a repair then
    leaves the build able to finish."""
    engine = Engine(engine_root)
    committed, go = hold_after_first_commit(engine)

    async def main() -> None:
        await _base(engine)
        build = asyncio.create_task(
            engine.build(
                context_tar("FROM busybox\nCOPY a /a\nRUN cat /a > /b\n", {"a": b"A" * 50000}),
                BuildOptions(tags=["built:1"]),
                lambda m: None,
            )
        )
        try:
            assert await asyncio.to_thread(committed.wait, 60)
            report = await engine.system_check(repair=True)
            assert report.problems == [] and report.repaired == [], report.as_json()
        finally:
            go.set()
        image_id = await build
        assert (await engine.system_check(repair=False)).problems == []
        image = engine.images.get(image_id)
        chain = engine.layers.chain_for(image.config.diff_ids)
        assert (engine.snapshots.fs(chain.snapshots[-1]) / "b").read_bytes() == b"A" * 50000
        await engine.close()

    asyncio.run(main())


def test_start_sweeps_what_a_dead_daemon_left(engine_root: Path) -> None:
    engine = Engine(engine_root)

    async def first() -> None:
        await _base(engine)
        # as a daemon killed mid-pull, mid-build and mid-collection leaves them
        (engine.content.ingest_dir / "ingest-partial").write_bytes(b"x" * 100_000)
        engine.content.ingest_bytes(b"a compressed blob nothing recorded")
        engine.meta.new_snapshot()
        (engine_root / "builds" / "cafe" / "rootfs").mkdir(parents=True)
        (engine_root / "steps" / "cafe").mkdir(parents=True)
        engine.meta.close()  # no orderly close: the daemon died

    asyncio.run(first())

    again = Engine(engine_root)

    async def second() -> None:
        await again.start()
        assert (await again.system_check(repair=False)).problems == []
        assert list(again.content.ingest_dir.iterdir()) == []
        assert list((engine_root / "builds").iterdir()) == []
        assert list((engine_root / "steps").iterdir()) == []
        await again.close()

    asyncio.run(second())
