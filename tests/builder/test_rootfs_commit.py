"""A step's root is unmounted while its layer's tar is stored (an overlay's unmount syncs the
whole filesystem), and the layer is recorded only after both; a cancel meanwhile still
waits for both threads and leaves no mount, no active snapshot and no record."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from dockyard.builder.rootfs import OverlayRootfs
from dockyard.store.layers import Unpacked


class Snapshots:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.mounted: set[Path] = set()
        self.events: list[str] = []
        self.storing = threading.Event()
        self.saw_store_while_mounted = False

    def fs(self, snapshot: int) -> Path:
        return self.root / str(snapshot)

    def mount(self, target: Path, lowers: list[int], upper: int | None, **_: Any) -> None:
        target.mkdir(parents=True, exist_ok=True)
        self.mounted.add(target)

    def unmount(self, target: Path) -> None:
        if target in self.mounted:
            # as a real overlay's unmount waits for its sync: is the tar being made meanwhile?
            self.saw_store_while_mounted = self.storing.wait(2)
            self.mounted.remove(target)
            self.events.append("unmounted")


class Layers:
    def __init__(self, snaps: Snapshots, store_seconds: float = 0.0) -> None:
        self.snaps = snaps
        self.active: set[int] = set()
        self.recorded: list[Any] = []
        self.store_seconds = store_seconds

    def chain_for(self, diff_ids: list[str]) -> Any:
        class Chain:
            lowers_top_first: list[int] = []

        return Chain()

    def new_active(self) -> int:
        self.active.add(7)
        self.snaps.fs(7).mkdir(parents=True, exist_ok=True)
        return 7

    def store_active(self, snapshot: int) -> Unpacked:
        self.snaps.storing.set()
        time.sleep(self.store_seconds)
        self.snaps.events.append("stored")
        return Unpacked(snapshot, "sha256:" + "1" * 64, 1)

    def record_active(self, stored: Unpacked, parents: list[str]) -> Any:
        assert not self.snaps.mounted, "recorded before the unmount"
        self.snaps.events.append("recorded")
        self.active.discard(stored.snapshot)
        self.recorded.append(stored)

        class Record:
            diff_id = stored.diff_id

        return Record()

    def commit_active(self, snapshot: int, parents: list[str]) -> Any:
        return self.record_active(self.store_active(snapshot), parents)

    def discard_active(self, snapshot: int) -> None:
        self.snaps.events.append("discarded")
        self.active.discard(snapshot)


async def _write(root: Path, step_id: str) -> None:
    del root, step_id


def _setup(tmp_path: Path, store_seconds: float = 0.0) -> tuple[Snapshots, Layers, OverlayRootfs]:
    snaps = Snapshots(tmp_path / "overlay")
    layers = Layers(snaps, store_seconds)
    return snaps, layers, OverlayRootfs(layers, snaps, tmp_path / "builds")  # type: ignore[arg-type]


def _changed(snaps: Snapshots) -> None:
    (snaps.fs(7) / "new").write_text("x")  # what the step wrote, in its upper dir


def test_the_unmount_and_the_tar_overlap_and_the_record_comes_after_both(tmp_path: Path) -> None:
    snaps, layers, rootfs = _setup(tmp_path)

    async def work(root: Path, step_id: str) -> None:
        _changed(snaps)

    diff_id = asyncio.run(rootfs.with_rootfs([], "abc", work, init=True, keep_empty=False))
    assert diff_id == "sha256:" + "1" * 64
    assert snaps.saw_store_while_mounted
    assert sorted(snaps.events[:2]) == ["stored", "unmounted"] and snaps.events[2] == "recorded"
    assert snaps.mounted == set() and layers.active == set()
    assert list((tmp_path / "builds").iterdir()) == []


def test_an_unchanged_step_is_unmounted_and_discarded(tmp_path: Path) -> None:
    snaps, layers, rootfs = _setup(tmp_path)
    snaps.storing.set()  # nothing is stored: the unmount need not wait for it
    diff_id = asyncio.run(rootfs.with_rootfs([], "abc", _write, init=True, keep_empty=False))
    assert diff_id.startswith("sha256:5f70bf18")  # the empty layer's
    assert snaps.events == ["unmounted", "discarded"] and layers.recorded == []


@pytest.mark.parametrize("cancel_at", [0.05, 0.4])
def test_a_cancel_while_storing_waits_for_both_and_keeps_nothing(
    tmp_path: Path, cancel_at: float
) -> None:
    snaps, layers, rootfs = _setup(tmp_path, store_seconds=0.3)

    async def work(root: Path, step_id: str) -> None:
        _changed(snaps)

    async def main() -> None:
        step = asyncio.ensure_future(
            rootfs.with_rootfs([], "abc", work, init=True, keep_empty=False)
        )
        await asyncio.sleep(cancel_at)
        step.cancel()
        try:
            await step
        except asyncio.CancelledError:
            return
        assert cancel_at > 0.3  # done before the cancel came

    asyncio.run(main())
    assert snaps.mounted == set() and layers.active == set()
    assert list((tmp_path / "builds").iterdir()) == []
    if layers.recorded:  # recorded before the cancel: a layer like any other, kept
        assert "discarded" not in snaps.events
    else:
        assert snaps.events[-1] == "discarded" and "stored" in snaps.events
