"""Layers: committed snapshots keyed by chain ID, each with its uncompressed tar as a blob.

Two ways in, both ending in one metadata transaction (`put_layer`):
- `apply`: a tar stream (an import, a loaded archive, a pulled blob) is teed into the content
  store while it is extracted into a fresh snapshot directory; the digest of the uncompressed
  stream is the diff ID.
- `commit_active`: a RUN/COPY step's upper dir becomes the committed snapshot as it is (no
  copy, no extraction) and its tar is streamed once into the content store while hashed.
If the chain already exists (same parent chain + same diff ID), the new directory is dropped and
the existing layer is used, so identical layers are stored once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from dockyard.content.store import ContentStore
from dockyard.image.config import chain_ids
from dockyard.metadata.store import LayerRecord, MetadataStore
from dockyard.snapshot.overlay import OverlaySnapshotter


class _TeeReader:
    """A read-only stream that copies everything read through it into a blob writer."""

    def __init__(self, source: BinaryIO, sink: object) -> None:
        self._source = source
        self._sink = sink

    def read(self, n: int = -1) -> bytes:
        data = self._source.read(n)
        if data:
            self._sink.write(data)  # type: ignore[attr-defined]
        return data

    def readable(self) -> bool:
        return True


@dataclass(frozen=True)
class Unpacked:
    """A layer extracted into its snapshot and its tar kept, not yet recorded: `snapshot`
    is committed on disk but no layer row names it (a crash leaves it to the start-up sweep, engine/fsck.py)."""

    snapshot: int
    diff_id: str
    size: int


@dataclass(frozen=True)
class LayerChain:
    """The layers of an image, bottom first, as snapshot IDs for mounting."""

    snapshots: list[int]

    @property
    def lowers_top_first(self) -> list[int]:
        return list(reversed(self.snapshots))


class LayerStore:
    def __init__(
        self, content: ContentStore, meta: MetadataStore, snapshots: OverlaySnapshotter
    ) -> None:
        self.content = content
        self.meta = meta
        self.snapshots = snapshots

    def chain_for(self, diff_ids: list[str]) -> LayerChain:
        """Snapshot IDs for an image's layers; every layer must be present."""
        out: list[int] = []
        for chain_id in chain_ids(diff_ids):
            layer = self.meta.get_layer(chain_id)
            if layer is None:
                from dockyard.errors import NotFound

                raise NotFound(f"layer {chain_id} is missing from the layer store")
            out.append(layer.snapshot)
        return LayerChain(out)

    def apply(self, stream: BinaryIO, parent_diff_ids: list[str]) -> LayerRecord:
        """Extract a (possibly compressed) layer tar on top of `parent_diff_ids`."""
        return self.record(self.unpack(stream), parent_diff_ids)

    def unpack(self, stream: BinaryIO) -> Unpacked:
        """First half of `apply`: extract a layer into a fresh snapshot and keep its
        uncompressed tar, without recording it. A committed snapshot holds only its own
        layer's files (overlay stacks them at mount time), so the layers of one image can be
        unpacked at the same time, in any order; `record` then names them bottom first.
        The caller owns the result until `record` or `discard`."""
        # The tar code (applier, decompressors with zstandard, differ: 1.3 MiB of RSS) loads
        # with the first layer in or out, not in every idle daemon (issue 17, row h)
        from dockyard.diff.applier import apply_layer
        from dockyard.diff.compression import open_decompressed

        snapshot = self.meta.new_snapshot()
        target = self.snapshots.create(snapshot, active=False)
        try:
            with self.content.writer() as blob:
                plain = open_decompressed(stream)
                result = apply_layer(_TeeReader(plain, blob), target)  # type: ignore[arg-type]
                # apply_layer may stop at the end-of-archive marker; keep the blob identical
                # to the stream that was hashed by draining what is left.
                while plain.read(1 << 20):
                    pass
                info = blob.commit()
            # The blob's digest covers trailing padding too (Docker's diff ID does); the
            # layer's size is what it holds, as dockerd's DiffSize, not the tar's length.
            return Unpacked(snapshot, info.digest, result.content_size)
        except BaseException:
            self._drop(snapshot)
            raise

    def restack(self, diff_id: str, parent_diff_ids: list[str]) -> LayerRecord:
        """The layer `diff_id` (whose tar the content store holds) on other parents: a
        `COPY --link` layer reused after its base changed. Its tar is extracted again into
        a snapshot of the new chain; the blob stays the same bytes."""
        chain = chain_ids([*parent_diff_ids, diff_id])[-1]
        existing = self.meta.get_layer(chain)
        if existing is not None:
            return existing
        with self.content.open(diff_id) as stream:
            return self.apply(stream, parent_diff_ids)

    def record(self, unpacked: Unpacked, parent_diff_ids: list[str]) -> LayerRecord:
        """Second half of `apply`: record an unpacked layer on top of `parent_diff_ids`
        (the existing layer if that chain is already there; the new snapshot is dropped)."""
        try:
            return self._record(unpacked.diff_id, unpacked.size, parent_diff_ids, unpacked.snapshot)
        except BaseException:
            self._drop(unpacked.snapshot)
            raise

    def discard(self, unpacked: Unpacked) -> None:
        """Give up an unpacked layer that will not be recorded (its diff ID was not the one
        expected, or the pull failed); its blob stays until garbage collection."""
        self._drop(unpacked.snapshot)

    def new_active(self) -> int:
        snapshot = self.meta.new_snapshot()
        self.snapshots.create(snapshot, active=True)
        return snapshot

    def discard_active(self, snapshot: int) -> None:
        """Forget a snapshot and remove its files (in the background: overlay.py's trash)."""
        self._drop(snapshot)

    def _drop(self, snapshot: int) -> None:
        # The row first: a crash in between leaves a directory nothing names (swept at
        # start), never a row naming a missing directory.
        self.meta.delete_snapshot(snapshot)
        self.snapshots.remove(snapshot)

    def commit_active(self, snapshot: int, parent_diff_ids: list[str]) -> LayerRecord:
        """Turn an unmounted active snapshot into a committed layer."""
        try:
            stored = self.store_active(snapshot)
        except BaseException:
            self.discard_active(snapshot)
            raise
        return self.record_active(stored, parent_diff_ids)

    def store_active(self, snapshot: int) -> Unpacked:
        """First half of `commit_active`: the active snapshot's tar streamed into the content
        store while hashed (its digest is the diff ID). It only reads the upper dir, so it may
        run while the snapshot is still mounted, once nothing writes it any more (a build
        step's processes gone), beside its unmount. The caller owns the snapshot until
        `record_active` (or discards it)."""
        from dockyard.diff.differ import commit_upper

        info, size = commit_upper(self.snapshots.fs(snapshot), self.content)
        return Unpacked(snapshot, info.digest, size)

    def record_active(self, stored: Unpacked, parent_diff_ids: list[str]) -> LayerRecord:
        """Second half of `commit_active`, once the snapshot is unmounted: it is committed
        (its overlay work dir goes) and recorded on top of `parent_diff_ids`."""
        try:
            self.snapshots.commit(stored.snapshot)
            return self._record(stored.diff_id, stored.size, parent_diff_ids, stored.snapshot)
        except BaseException:
            self.discard_active(stored.snapshot)
            raise

    def _record(
        self, diff_id: str, size: int, parent_diff_ids: list[str], snapshot: int
    ) -> LayerRecord:
        chain = chain_ids([*parent_diff_ids, diff_id])
        parent = chain[-2] if len(chain) > 1 else None
        record = LayerRecord(chain[-1], diff_id, parent, snapshot, size)
        if not self.meta.put_layer(record):
            self._drop(snapshot)
            existing = self.meta.get_layer(record.chain_id)
            assert existing is not None
            return existing
        return record

    def layer_path(self, diff_id: str) -> Path:
        return self.content.path(diff_id)
