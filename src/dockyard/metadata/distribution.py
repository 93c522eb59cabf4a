"""What pulls and pushes learnt about registries, in the `dist_*` tables (schema.py).

- repo digests: (repository, manifest digest) → image ID, for `RepoDigests` and `x@sha256:…`
- compressed blobs: diff ID → a compressed copy (digest, size, media type) kept for pushes
- blob sources: blob digest → the (registry domain, repository) it is known to live in, so a
  push can mount it across repositories instead of uploading it again
Used by engine/distribution.py (writes), store/images.py (repo digests) and engine/gc.py
(compressed copies of dropped layers), each through these methods only.
"""

from __future__ import annotations

import sqlite3
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol


class Database(Protocol):
    """What a record class needs of MetadataStore (its reads and its write transactions)."""

    def rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]: ...

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]: ...


@dataclass(frozen=True)
class CompressedBlob:
    diff_id: str
    digest: str
    size: int
    media_type: str


class DistributionRecords:
    def __init__(self, store: Database) -> None:
        self._store = store

    def repo_digests(self, image_id: str) -> list[tuple[str, str]]:
        """(repository, manifest digest) pairs the image was pulled or pushed as, sorted."""
        return [
            (str(r[0]), str(r[1]))
            for r in self._store.rows(
                "SELECT repository, digest FROM dist_repo_digests WHERE image_id = ? "
                "ORDER BY repository, digest",
                (image_id,),
            )
        ]

    def image_for_repo_digest(self, repository: str, digest: str) -> str | None:
        rows = self._store.rows(
            "SELECT image_id FROM dist_repo_digests WHERE repository = ? AND digest = ?",
            (repository, digest),
        )
        return str(rows[0][0]) if rows else None

    def remove_repo_digest(self, repository: str, digest: str) -> None:
        """Forget one `repository@digest` name (rmi of it, or of the image's last tag)."""
        with self._store.transaction() as db:
            db.execute(
                "DELETE FROM dist_repo_digests WHERE repository = ? AND digest = ?",
                (repository, digest),
            )

    def record(
        self,
        repository: str,
        manifest_digest: str,
        image_id: str,
        blobs: list[CompressedBlob],
        domain: str,
        path: str,
    ) -> None:
        """A finished pull or push: its manifest digest, its blobs, and where they live."""
        with self._store.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO dist_repo_digests VALUES (?, ?, ?)",
                (repository, manifest_digest, image_id),
            )
            for b in blobs:
                db.execute(
                    "INSERT OR IGNORE INTO dist_blobs VALUES (?, ?, ?, ?)",
                    (b.diff_id, b.digest, b.size, b.media_type),
                )
                db.execute(
                    "INSERT OR IGNORE INTO dist_blob_sources VALUES (?, ?, ?)",
                    (b.digest, domain, path),
                )

    def add_compressed(self, blob: CompressedBlob) -> None:
        with self._store.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO dist_blobs VALUES (?, ?, ?, ?)",
                (blob.diff_id, blob.digest, blob.size, blob.media_type),
            )

    def compressed(self, diff_id: str) -> list[CompressedBlob]:
        return [
            CompressedBlob(diff_id, str(r[0]), int(r[1]), str(r[2]))
            for r in self._store.rows(
                "SELECT digest, size, media_type FROM dist_blobs WHERE diff_id = ?", (diff_id,)
            )
        ]

    def compressed_digests(self) -> set[str]:
        """Every compressed copy recorded (a blob named here belongs to a layer)."""
        return {str(r[0]) for r in self._store.rows("SELECT digest FROM dist_blobs")}

    def sources(self, digest: str, domain: str) -> list[str]:
        """Repositories of `domain` the blob is known to be in."""
        return [
            str(r[0])
            for r in self._store.rows(
                "SELECT repository FROM dist_blob_sources WHERE digest = ? AND domain = ?",
                (digest, domain),
            )
        ]

    @staticmethod
    def forget_compressed(db: sqlite3.Connection, diff_ids: set[str]) -> list[str]:
        """Inside the caller's transaction: drop the compressed copies of `diff_ids`; returns
        their digests (the caller removes the blobs once the transaction is committed)."""
        digests: list[str] = []
        for diff_id in sorted(diff_ids):
            rows = db.execute("SELECT digest FROM dist_blobs WHERE diff_id = ?", (diff_id,))
            digests.extend(str(r[0]) for r in rows.fetchall())
            db.execute("DELETE FROM dist_blobs WHERE diff_id = ?", (diff_id,))
        return digests
