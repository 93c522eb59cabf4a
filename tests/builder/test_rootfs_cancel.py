"""A build step cancelled (its client went away) while its root is being mounted leaves
nothing: the mount is waited for, then undone, and builds/<id>/rootfs is removed (issue 10
§1: an empty builds/<id>/rootfs was left after a client disconnected mid-build)."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from dockyard.builder.rootfs import OverlayRootfs


class SlowSnapshots:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.mounted: set[Path] = set()
        self.events: list[str] = []
        self.lock = threading.Lock()

    def fs(self, snapshot: int) -> Path:
        return self.root / str(snapshot)

    def mount(self, target: Path, lowers: list[int], upper: int | None, **_: Any) -> None:
        target.mkdir(parents=True, exist_ok=True)
        time.sleep(0.3)  # cancelled meanwhile
        with self.lock:
            self.mounted.add(target)
            self.events.append("mounted")

    def unmount(self, target: Path) -> None:
        with self.lock:
            if target in self.mounted:
                self.mounted.remove(target)
                self.events.append("unmounted")


class Layers:
    def __init__(self, snaps: SlowSnapshots) -> None:
        self.snaps = snaps
        self.active: set[int] = set()

    def chain_for(self, diff_ids: list[str]) -> Any:
        class Chain:
            lowers_top_first: list[int] = []

        return Chain()

    def new_active(self) -> int:
        self.active.add(7)
        return 7

    def discard_active(self, snapshot: int) -> None:
        self.snaps.events.append("discarded")
        self.active.discard(snapshot)


@pytest.mark.parametrize("cancel_at", [0.1, 0.35])
def test_a_step_cancelled_while_mounting_leaves_nothing(tmp_path: Path, cancel_at: float) -> None:
    snaps = SlowSnapshots(tmp_path / "overlay")
    layers = Layers(snaps)
    rootfs = OverlayRootfs(layers, snaps, tmp_path / "builds")  # type: ignore[arg-type]

    async def work(root: Path, step_id: str) -> None:
        await asyncio.sleep(10)

    async def main() -> None:
        step = asyncio.ensure_future(
            rootfs.with_rootfs([], "abc", work, init=True, keep_empty=False)
        )
        await asyncio.sleep(cancel_at)
        step.cancel()
        await asyncio.sleep(0.05)
        step.cancel()  # and again, as the build's stage tasks are cancelled in turn
        with pytest.raises(asyncio.CancelledError):
            await step

    asyncio.run(main())
    assert snaps.events == ["mounted", "unmounted", "discarded"]
    assert snaps.mounted == set() and layers.active == set()
    assert list((tmp_path / "builds").iterdir()) == []
