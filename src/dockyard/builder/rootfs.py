"""Root filesystems for build steps: a writable one per step, read-only views of images.

`with_rootfs` mounts the parent's layers under a new active snapshot (plus the init layer, so
runc's mount points for /etc/hosts and friends stay out of the layer), runs the step's work,
unmounts, and commits the upper dir as the new layer (no copy: DESIGN "What a commit
writes"). A step that changed nothing keeps no layer and returns the empty diff ID, as Docker
20.10 records `RUN true` with `empty_layer`; BuildKit keeps it as a layer (an empty tar,
whose diff ID is EMPTY_LAYER_DIFF_ID), so `keep_empty` commits it. `image_tree` is the read-only view that
`COPY --from` and `RUN --mount from=` read.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, Protocol, TypeVar

from dockyard.builder.kept import StepCommandFailed
from dockyard.image.config import EMPTY_LAYER_DIFF_ID
from dockyard.metadata.store import LayerRecord
from dockyard.snapshot.overlay import OverlaySnapshotter
from dockyard.store.layers import LayerStore, Unpacked

T = TypeVar("T")

# A step's writes into its mounted root: (rootfs, the step's container ID).
Work = Callable[[Path, str], Awaitable[None]]


# Then, in a worker thread, on the step's unmounted upper dir (before the commit).
UpperWork = Callable[[Path], None]


# A step's container left to the engine (builder/kept.py): (its active snapshot, exit code)
Keep = Callable[[int, int], None]


class Rootfs(Protocol):
    async def with_rootfs(
        self,
        diff_ids: Sequence[str],
        step_id: str,
        work: Work,
        *,
        init: bool,
        keep_empty: bool,
        sandbox: bool = False,
        keep: Keep | None = None,
        keep_done: bool = False,
        upper_work: UpperWork | None = None,
    ) -> str:
        """Run `work` on a writable root over `diff_ids` (and an init layer: Docker's, or
        with `sandbox` BuildKit's RUN sandbox's); return the new layer's diff ID
        (EMPTY_LAYER_DIFF_ID when nothing changed; with `keep_empty` that layer is stored).
        With `keep`: a command that failed (StepCommandFailed) gives `keep` its snapshot, and
        with `keep_done` a step that succeeded gives it a copy of its writes. `upper_work`
        runs on the upper dir once `work` is done and the root unmounted."""

    async def with_empty_root(
        self, diff_ids: Sequence[str], step_id: str, work: Work, *, keep_empty: bool
    ) -> str:
        """Run `work` on an empty root and commit what it wrote as a layer on top of
        `diff_ids` (`COPY --link`); returns its diff ID as `with_rootfs` does."""

    async def stack(self, diff_ids: Sequence[str], diff_id: str) -> None:
        """Make the stored layer `diff_id` available on top of `diff_ids` (a `COPY --link`
        layer reused on another parent)."""

    def image_tree(self, diff_ids: Sequence[str]) -> AbstractAsyncContextManager[Path]:
        """A read-only view of the image made of `diff_ids`."""


class OverlayRootfs:
    def __init__(self, layers: LayerStore, snapshots: OverlaySnapshotter, scratch: Path) -> None:
        self.layers = layers
        self.snapshots = snapshots
        self.scratch = scratch

    async def with_rootfs(
        self,
        diff_ids: Sequence[str],
        step_id: str,
        work: Work,
        *,
        init: bool,
        keep_empty: bool,
        sandbox: bool = False,
        keep: Keep | None = None,
        keep_done: bool = False,
        upper_work: UpperWork | None = None,
    ) -> str:
        chain = self.layers.chain_for(list(diff_ids))
        snapshot = self.layers.new_active()
        rootfs = self.scratch / step_id / "rootfs"
        layer: LayerRecord | None = None
        kept = False  # the snapshot is a container's now

        def commit() -> None:
            nonlocal layer
            layer = self.layers.commit_active(snapshot, list(diff_ids))

        try:
            await _settled(
                asyncio.to_thread(
                    self.snapshots.mount,
                    rootfs,
                    chain.lowers_top_first,
                    snapshot,
                    with_init=init,
                    sandbox=sandbox,
                )
            )
            try:
                await work(rootfs, step_id)
            except StepCommandFailed as failed:
                if keep is None:
                    raise
                await _settled(asyncio.to_thread(self.snapshots.unmount, rootfs))
                keep(snapshot, failed.exit_code)
                kept = True
                _remove_dirs(rootfs)
                raise
            if upper_work is None and not (keep is not None and keep_done):
                stored = await self._unmount_and_store(rootfs, snapshot, keep_empty)
                if stored is None:
                    _remove_dirs(rootfs)
                    return EMPTY_LAYER_DIFF_ID

                def record() -> None:
                    nonlocal layer
                    layer = self.layers.record_active(stored, list(diff_ids))

                await _settled(asyncio.to_thread(record))
                _remove_dirs(rootfs)
                assert layer is not None
                return layer.diff_id
            await _settled(asyncio.to_thread(self.snapshots.unmount, rootfs))
            if upper_work is not None:
                await _settled(asyncio.to_thread(upper_work, self.snapshots.fs(snapshot)))
            if keep is not None and keep_done:
                keep(await _settled(asyncio.to_thread(self._copy_of, snapshot)), 0)
            with os.scandir(self.snapshots.fs(snapshot)) as entries:
                unchanged = next(entries, None) is None
            if unchanged and not keep_empty:
                # Nothing changed: Docker records no layer for that (an empty_layer history
                # entry), so none is kept here either, not even an unreferenced one.
                self.layers.discard_active(snapshot)
                _remove_dirs(rootfs)
                return EMPTY_LAYER_DIFF_ID
            await _settled(asyncio.to_thread(commit))
            _remove_dirs(rootfs)
            assert layer is not None
            return layer.diff_id
        except BaseException:
            # The client went away or the step failed: undo all of it, even when cancelled
            # again meanwhile (a half-done undo left an empty builds/<id>/rootfs behind).
            # A layer committed just before the cancel stays: it is a layer like any other,
            # and unreferenced ones are the collector's.
            if kept:
                pass
            elif layer is None:
                await _settled(asyncio.to_thread(self._undo, rootfs, snapshot))
            else:
                _remove_dirs(rootfs)
            raise

    async def _unmount_and_store(
        self, rootfs: Path, snapshot: int, keep_empty: bool
    ) -> Unpacked | None:
        """Unmount the step's root and store its upper dir's tar at once: an overlay's
        unmount syncs the whole filesystem under its upper dir (overlayfs' sync_fs on the way
        out), 2-5 ms on this machine and 25-40 ms while others write to the disk (measured),
        and the tar only reads the upper dir, which nothing writes any more (the step's
        processes died with its pid namespace; COPY's work is done). The caller records the
        layer only after both, so a crash sees the order of unmount-then-commit. None when
        the step changed nothing (its snapshot discarded, no layer kept)."""
        unmounting = asyncio.ensure_future(asyncio.to_thread(self.snapshots.unmount, rootfs))
        with os.scandir(self.snapshots.fs(snapshot)) as entries:
            unchanged = next(entries, None) is None
        if unchanged and not keep_empty:
            # Nothing changed: Docker records no layer for that (an empty_layer history
            # entry), so none is kept here either, not even an unreferenced one.
            await _settled(unmounting)
            self.layers.discard_active(snapshot)
            return None
        storing = asyncio.ensure_future(asyncio.to_thread(self.layers.store_active, snapshot))
        await _settled(_all_of(unmounting, storing))
        return storing.result()

    async def with_empty_root(
        self, diff_ids: Sequence[str], step_id: str, work: Work, *, keep_empty: bool
    ) -> str:
        # The new snapshot's own directory is the root: nothing is mounted, so nothing of
        # the parents can be read or followed (BuildKit's --link: "COPY/ADD commands are not
        # allowed to read any files from the previous state"). What it holds has no
        # whiteouts, so it stacks on the parents as it is.
        self.layers.chain_for(list(diff_ids))  # the parents exist
        snapshot = self.layers.new_active()
        layer: LayerRecord | None = None

        def commit() -> None:
            nonlocal layer
            layer = self.layers.commit_active(snapshot, list(diff_ids))

        try:
            root = self.snapshots.fs(snapshot)
            await work(root, step_id)
            with os.scandir(root) as entries:
                unchanged = next(entries, None) is None
            if unchanged and not keep_empty:
                self.layers.discard_active(snapshot)
                return EMPTY_LAYER_DIFF_ID
            await _settled(asyncio.to_thread(commit))
            assert layer is not None
            return layer.diff_id
        except BaseException:
            if layer is None:
                with contextlib.suppress(Exception):
                    self.layers.discard_active(snapshot)
            raise

    async def stack(self, diff_ids: Sequence[str], diff_id: str) -> None:
        await _settled(asyncio.to_thread(self.layers.restack, diff_id, list(diff_ids)))

    def _copy_of(self, snapshot: int) -> int:
        """A new active snapshot holding what `snapshot` holds: whiteouts (0:0 devices),
        opaque markers (trusted.* xattrs), owners and times kept, as `cp -a` copies them."""
        copy = self.layers.new_active()
        src, dst = self.snapshots.fs(snapshot), self.snapshots.fs(copy)
        subprocess.run(["cp", "-a", "--", f"{src}/.", str(dst)], check=True, capture_output=True)
        return copy

    def _undo(self, rootfs: Path, snapshot: int) -> None:
        with contextlib.suppress(Exception):
            self.snapshots.unmount(rootfs)
        with contextlib.suppress(Exception):
            self.layers.discard_active(snapshot)
        _remove_dirs(rootfs)

    @contextlib.asynccontextmanager
    async def image_tree(self, diff_ids: Sequence[str]) -> AsyncIterator[Path]:
        chain = self.layers.chain_for(list(diff_ids))
        view = self.scratch / f"ro-{secrets.token_hex(8)}"
        try:
            await _settled(
                asyncio.to_thread(
                    self.snapshots.mount, view, chain.lowers_top_first, None, with_init=False
                )
            )
            yield view
        finally:
            await _settled(asyncio.to_thread(self._unmount_view, view))

    def _unmount_view(self, view: Path) -> None:
        with contextlib.suppress(Exception):
            self.snapshots.unmount(view)
        with contextlib.suppress(OSError):
            view.rmdir()


async def _settled(work: Awaitable[T]) -> T:
    """Await `work` (a mount, an unmount, a commit in a worker thread) to its end even if the
    caller is cancelled meanwhile, then let the cancellation through: a cancel that returned
    while the thread still mounted left a mount or a directory nobody would remove."""
    task = asyncio.ensure_future(work)
    cancelled = False
    while True:
        try:
            result = await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done() and task.cancelled():
                raise
            if not task.done():
                cancelled = True
                continue
            raise
        if cancelled:
            raise asyncio.CancelledError
        return result


async def _all_of(*futures: asyncio.Future[Any]) -> None:
    """Wait for every one of `futures` (worker threads that cannot be stopped), then raise
    the first failure."""
    await asyncio.wait(futures)
    for f in futures:
        f.result()


def _remove_dirs(rootfs: Path) -> None:
    """The step's `rootfs` mount point and its builds/<id> directory."""
    with contextlib.suppress(OSError):
        rootfs.rmdir()
    with contextlib.suppress(OSError):
        rootfs.parent.rmdir()
