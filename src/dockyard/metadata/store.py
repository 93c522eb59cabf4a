"""One SQLite database (WAL) holding every piece of dockyard's state that is not a blob.

Lifecycle: open at daemon start (schema created or checked), one connection shared by the
engine and guarded by a lock (SQLite allows one writer; statements here are sub-millisecond),
closed at shutdown. Each public method is one transaction, so a crash leaves either the old or
the new state: an image row is written together with its tag and build-cache key, never apart.

Tables
- images:     image ID (= config digest) → created time, parent image (builder lineage)
- layers:     chain ID → diff ID, snapshot directory, content size (dockerd's DiffSize), parent
- tags:       full reference (`docker.io/library/x:latest`) → image ID
- containers: container ID → name, image, JSON config/state documents
- build_cache: cache key → image ID
- snapshots:  numbered snapshot directories and whether they are committed (a layer) or active
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    id TEXT PRIMARY KEY,
    created TEXT NOT NULL,
    parent TEXT
);
CREATE TABLE IF NOT EXISTS layers (
    chain_id TEXT PRIMARY KEY,
    diff_id TEXT NOT NULL,
    parent TEXT,
    snapshot INTEGER NOT NULL,
    size INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS tags (
    name TEXT PRIMARY KEY,
    image_id TEXT NOT NULL REFERENCES images(id)
);
CREATE TABLE IF NOT EXISTS containers (
    id TEXT PRIMARY KEY,
    name TEXT UNIQUE NOT NULL,
    image_id TEXT NOT NULL,
    created TEXT NOT NULL,
    config TEXT NOT NULL,
    state TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS build_cache (
    key TEXT PRIMARY KEY,
    image_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS snapshots (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    committed INTEGER NOT NULL DEFAULT 0,
    created TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);
CREATE INDEX IF NOT EXISTS tags_by_image ON tags(image_id);
CREATE INDEX IF NOT EXISTS cache_by_image ON build_cache(image_id);
"""


@dataclass(frozen=True)
class LayerRecord:
    chain_id: str
    diff_id: str
    parent: str | None
    snapshot: int
    size: int


@dataclass(frozen=True)
class ContainerRecord:
    id: str
    name: str
    image_id: str
    created: str
    config: dict[str, Any]
    state: dict[str, Any]


class MetadataStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(SCHEMA)
        self._lock = threading.RLock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return list(self._db.execute(sql, args).fetchall())

    # snapshots ---------------------------------------------------------------------------
    def new_snapshot(self) -> int:
        with self.transaction() as db:
            cur = db.execute("INSERT INTO snapshots (committed) VALUES (0)")
            assert cur.lastrowid is not None
            return int(cur.lastrowid)

    def mark_snapshot_committed(self, snapshot: int) -> None:
        with self.transaction() as db:
            db.execute("UPDATE snapshots SET committed = 1 WHERE id = ?", (snapshot,))

    def delete_snapshot(self, snapshot: int) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM snapshots WHERE id = ?", (snapshot,))

    def snapshots(self) -> list[tuple[int, bool]]:
        return [(int(r[0]), bool(r[1])) for r in self._rows("SELECT id, committed FROM snapshots")]

    # layers ------------------------------------------------------------------------------
    def get_layer(self, chain_id: str) -> LayerRecord | None:
        rows = self._rows(
            "SELECT chain_id, diff_id, parent, snapshot, size FROM layers WHERE chain_id = ?",
            (chain_id,),
        )
        return LayerRecord(*rows[0]) if rows else None

    def put_layer(self, layer: LayerRecord) -> bool:
        """Record a committed layer; False if the chain already existed (the caller drops its copy)."""
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM layers WHERE chain_id = ?", (layer.chain_id,)).fetchone():
                return False
            db.execute(
                "INSERT INTO layers VALUES (?, ?, ?, ?, ?)",
                (layer.chain_id, layer.diff_id, layer.parent, layer.snapshot, layer.size),
            )
            db.execute("UPDATE snapshots SET committed = 1 WHERE id = ?", (layer.snapshot,))
            return True

    def layers(self) -> list[LayerRecord]:
        return [
            LayerRecord(*r)
            for r in self._rows("SELECT chain_id, diff_id, parent, snapshot, size FROM layers")
        ]

    def delete_layer(self, chain_id: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM layers WHERE chain_id = ?", (chain_id,))

    # images and tags ---------------------------------------------------------------------
    def put_image(
        self,
        image_id: str,
        created: str,
        parent: str | None = None,
        tags: list[str] | None = None,
        cache_key: str | None = None,
    ) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO images (id, created, parent) VALUES (?, ?, ?)",
                (image_id, created, parent),
            )
            for tag in tags or []:
                db.execute("INSERT OR REPLACE INTO tags VALUES (?, ?)", (tag, image_id))
            if cache_key:
                db.execute(
                    "INSERT OR REPLACE INTO build_cache VALUES (?, ?)", (cache_key, image_id)
                )

    def has_image(self, image_id: str) -> bool:
        return bool(self._rows("SELECT 1 FROM images WHERE id = ?", (image_id,)))

    def image_ids(self) -> list[str]:
        return [r[0] for r in self._rows("SELECT id FROM images ORDER BY created DESC")]

    def image_parent(self, image_id: str) -> str | None:
        rows = self._rows("SELECT parent FROM images WHERE id = ?", (image_id,))
        return rows[0][0] if rows else None

    def image_children(self, image_id: str) -> list[str]:
        return [r[0] for r in self._rows("SELECT id FROM images WHERE parent = ?", (image_id,))]

    def find_images_by_prefix(self, prefix: str) -> list[str]:
        return [r[0] for r in self._rows("SELECT id FROM images WHERE id LIKE ?", (prefix + "%",))]

    def delete_image(self, image_id: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM tags WHERE image_id = ?", (image_id,))
            db.execute("DELETE FROM build_cache WHERE image_id = ?", (image_id,))
            db.execute("UPDATE images SET parent = NULL WHERE parent = ?", (image_id,))
            db.execute("DELETE FROM images WHERE id = ?", (image_id,))

    def tag(self, name: str, image_id: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO tags VALUES (?, ?)", (name, image_id))

    def untag(self, name: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM tags WHERE name = ?", (name,))

    def resolve_tag(self, name: str) -> str | None:
        rows = self._rows("SELECT image_id FROM tags WHERE name = ?", (name,))
        return rows[0][0] if rows else None

    def tags_of(self, image_id: str) -> list[str]:
        return [
            r[0]
            for r in self._rows(
                "SELECT name FROM tags WHERE image_id = ? ORDER BY name", (image_id,)
            )
        ]

    # build cache -------------------------------------------------------------------------
    def cache_lookup(self, key: str) -> str | None:
        rows = self._rows("SELECT image_id FROM build_cache WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    # containers --------------------------------------------------------------------------
    def put_container(self, rec: ContainerRecord) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO containers VALUES (?, ?, ?, ?, ?, ?)",
                (
                    rec.id,
                    rec.name,
                    rec.image_id,
                    rec.created,
                    json.dumps(rec.config),
                    json.dumps(rec.state),
                ),
            )

    def name_in_use(self, name: str) -> str | None:
        rows = self._rows("SELECT id FROM containers WHERE name = ?", (name,))
        return rows[0][0] if rows else None

    def update_container_state(self, container_id: str, state: dict[str, Any]) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE containers SET state = ? WHERE id = ?", (json.dumps(state), container_id)
            )

    def get_container(self, container_id: str) -> ContainerRecord | None:
        rows = self._rows(
            "SELECT id, name, image_id, created, config, state FROM containers WHERE id = ?",
            (container_id,),
        )
        return self._container(rows[0]) if rows else None

    def containers(self) -> list[ContainerRecord]:
        rows = self._rows(
            "SELECT id, name, image_id, created, config, state FROM containers ORDER BY created DESC"
        )
        return [self._container(r) for r in rows]

    def delete_container(self, container_id: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM containers WHERE id = ?", (container_id,))

    @staticmethod
    def _container(row: tuple[Any, ...]) -> ContainerRecord:
        return ContainerRecord(
            row[0], row[1], row[2], row[3], json.loads(row[4]), json.loads(row[5])
        )
