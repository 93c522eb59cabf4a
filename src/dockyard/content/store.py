"""Content-addressed blob store (DESIGN layer 1), modelled on containerd's `content` package.

Lifecycle of a blob: **ingest** (a `BlobWriter` writes a temp file under `root/ingest` while
hashing it) → **commit** (fsync, verify the digest, atomic rename to
`root/blobs/sha256/<hex>`) → **read** (`open`, `read_bytes`, `path`, `size`) → **delete**.
A committed blob never changes; readers may hold it open while it is deleted. Committing a
blob that already exists is a no-op, so concurrent writers of the same content do not clash.
Garbage collection (what may be deleted) is decided above this layer, by metadata leases: the
store's owner passes `before_commit`, called with each digest before the blob becomes visible
(or is found to exist already), and the metadata store records it under the current lease, so
no collection can take a blob between its commit and the row that will reference it.
Deleted blobs are renamed into the trash (`root/trash/` unless the owner gives one) and removed
in the background (content/trash.py).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from dockyard.content.trash import Trash
from dockyard.content.writeback import INTERVAL, start_writeback
from dockyard.errors import DigestMismatch, InvalidArgument, NotFound

_DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class BlobInfo:
    digest: str  # "sha256:<hex>"
    size: int


def validate_digest(digest: str) -> str:
    """Return the hex part of a `sha256:<64 lowercase hex>` digest; InvalidArgument otherwise."""
    if not isinstance(digest, str) or not _DIGEST_RE.fullmatch(digest):
        raise InvalidArgument(f"invalid digest {digest!r}: expected sha256: and 64 lowercase hex")
    return digest[7:]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BlobWriter:
    """An open ingest: write bytes, then `commit` (or `abort`). Usable as a context manager,
    which aborts when the block raises or ends without a commit."""

    def __init__(self, store: ContentStore) -> None:
        self._store = store
        fd, name = tempfile.mkstemp(dir=store.ingest_dir, prefix="ingest-")
        self._tmp = Path(name)
        store.open_ingests.add(self._tmp.name)
        self._file: BinaryIO | None = os.fdopen(fd, "wb", buffering=0)
        self._hash = hashlib.sha256()
        self._size = 0
        self._written_back = 0  # where the last start_writeback ended
        self._done = False

    @property
    def size(self) -> int:
        return self._size

    def write(self, data: bytes | bytearray | memoryview, /) -> int:
        if self._file is None:
            raise InvalidArgument("write to a blob writer that was already committed or aborted")
        view = memoryview(data)
        self._hash.update(view)
        # Unbuffered FileIO may write short; loop so the hash and the file never disagree.
        written = 0
        while written < len(view):
            n = self._file.write(view[written:])
            written += n if n is not None else 0
        self._size += written
        if self._size - self._written_back >= INTERVAL:
            start_writeback(
                self._file.fileno(), self._written_back, self._size - self._written_back
            )
            self._written_back = self._size
        return written

    def writable(self) -> bool:
        return self._file is not None

    def flush(self) -> None:
        pass

    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()

    def commit(self, expected: str | None = None) -> BlobInfo:
        """Make the blob visible under its digest. With `expected`, a different digest raises
        DigestMismatch and stores nothing. Returns the blob's digest and size."""
        if expected is not None:
            validate_digest(expected)
        if self._file is None:
            raise InvalidArgument("commit of a blob writer that was already committed or aborted")
        digest = self.digest()
        info = BlobInfo(digest, self._size)
        if expected is not None and expected != digest:
            self.abort()
            raise DigestMismatch(f"content has digest {digest}, expected {expected}; not stored")
        if self._store.before_commit is not None:
            self._store.before_commit(digest)
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._file = None
        target = self._store.blob_path(digest)
        if target.exists():
            self._tmp.unlink(missing_ok=True)
        else:
            # Committed blobs are immutable; read-only mode keeps accidental writers out.
            os.chmod(self._tmp, 0o444)
            os.replace(self._tmp, target)
            _fsync_dir(target.parent)
        self._done = True
        self._store.open_ingests.discard(self._tmp.name)
        return info

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if not self._done:
            self._tmp.unlink(missing_ok=True)
        self._done = True
        self._store.open_ingests.discard(self._tmp.name)

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._done:
            self.abort()


class ContentStore:
    """Blobs by digest under `root/blobs/sha256/<hex>`; ingest → commit → read → delete."""

    def __init__(
        self,
        root: Path,
        *,
        before_commit: Callable[[str], None] | None = None,
        trash: Trash | None = None,
    ) -> None:
        self.root = Path(root)
        self.blobs_dir = self.root / "blobs" / "sha256"
        self.ingest_dir = self.root / "ingest"
        self.blobs_dir.mkdir(parents=True, exist_ok=True)
        self.ingest_dir.mkdir(parents=True, exist_ok=True)
        self.before_commit = before_commit
        # Names in ingest/ that a writer of this process has open; any other file there is a
        # partial blob of a writer that died (engine/fsck.py removes those).
        self.open_ingests: set[str] = set()
        self.trash = trash or Trash(self.root / "trash")

    def blob_path(self, digest: str) -> Path:
        """Where the blob lives (or would live); validates the digest, never checks existence."""
        return self.blobs_dir / validate_digest(digest)

    def writer(self) -> BlobWriter:
        return BlobWriter(self)

    def ingest(self, stream: BinaryIO, expected: str | None = None) -> BlobInfo:
        if expected is not None:
            validate_digest(expected)
        with self.writer() as w:
            while chunk := stream.read(_CHUNK):
                w.write(chunk)
            return w.commit(expected)

    def ingest_bytes(self, data: bytes, expected: str | None = None) -> BlobInfo:
        if expected is not None:
            validate_digest(expected)
        with self.writer() as w:
            w.write(data)
            return w.commit(expected)

    def exists(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def path(self, digest: str) -> Path:
        p = self.blob_path(digest)
        if not p.is_file():
            raise NotFound(f"blob {digest} not found in the content store")
        return p

    def open(self, digest: str) -> BinaryIO:
        try:
            return open(self.blob_path(digest), "rb")
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found in the content store") from None

    def read_bytes(self, digest: str) -> bytes:
        with self.open(digest) as f:
            return f.read()

    def size(self, digest: str) -> int:
        try:
            return self.blob_path(digest).stat().st_size
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found in the content store") from None

    def delete(self, digest: str) -> None:
        """Remove a blob at once from view; its bytes go in the background (the trash)."""
        if not self.trash.put(self.blob_path(digest)):
            raise NotFound(f"blob {digest} not found in the content store")
