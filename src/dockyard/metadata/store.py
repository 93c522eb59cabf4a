"""One SQLite database (WAL) holding every piece of dockyard's state that is not a blob.

Lifecycle: open at daemon start (the schema migrated to its current version by
metadata/schema.py, which owns every table), one connection shared by the engine and guarded by
a lock (SQLite allows one writer; statements here are sub-millisecond), closed at shutdown.
Each public method is one transaction, so a crash leaves either the old or the new state: an
image row is written together with its tag and build-cache key, never apart.

Tables (schema.py has their columns and versions)
- images:     image ID (= config digest) → created time, parent image (builder lineage)
- layers:     chain ID → diff ID, snapshot directory, content size (dockerd's DiffSize), parent
- tags:       full reference (`docker.io/library/x:latest`) → image ID
- containers: container ID → name, image, JSON config/state documents
- build_cache: cache key → image ID; builder_cachelog: each step's inputs (`--explain-cache`)
- link_cache: a `COPY --link` step's parent-free key → an image whose top layer it made
- snapshots:  numbered snapshot directories and whether they are committed (a layer) or active
- dist_*:     what pulls and pushes learnt (`DistributionRecords`, metadata/distribution.py)
- leases, lease_resources: what operations in flight hold (metadata/leases.py)
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dockyard.metadata.distribution import DistributionRecords
from dockyard.metadata.leases import Held, Kind, current_lease
from dockyard.metadata.schema import migrate
from dockyard.rootperms import private_file


@dataclass(frozen=True)
class LayerRecord:
    chain_id: str
    diff_id: str
    parent: str | None
    snapshot: int
    size: int


@dataclass(frozen=True)
class ContainerRow:
    """A container as stored: two JSON documents, typed by engine/container_record.py (their
    owner); this package only keeps them."""

    id: str
    name: str
    image_id: str
    created: str
    config: dict[str, Any]
    state: dict[str, Any]


class MetadataStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Every container's environment is in here: 0600 before SQLite opens it (it would
        # create it 0644), and SQLite gives the -wal and -shm files the database's mode.
        private_file(path)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._lock = threading.RLock()
        self.found_version = migrate(self._db)
        self.distribution = DistributionRecords(self)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction. For the metadata package's own record classes only: the rest
        of dockyard calls typed methods (tests/architecture holds them to it)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """A read; for the metadata package's record classes, like `transaction`."""
        with self._lock:
            return list(self._db.execute(sql, args).fetchall())

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the store's lock across several calls (garbage collection decides and moves
        files under it, so no lease can take a hold in between; see engine/gc.py)."""
        with self._lock:
            yield

    # leases ------------------------------------------------------------------------------
    @contextmanager
    def lease(self) -> Iterator[str]:
        """Run the block under a lease (metadata/leases.py); inside another lease, join it."""
        outer = current_lease.get()
        if outer is not None:
            yield outer
            return
        lease_id = secrets.token_hex(16)
        with self.transaction() as db:
            db.execute("INSERT INTO leases (id) VALUES (?)", (lease_id,))
        token = current_lease.set(lease_id)
        try:
            yield lease_id
        finally:
            current_lease.reset(token)
            self.delete_lease(lease_id)

    def hold(self, kind: Kind, refs: Iterable[str | int]) -> None:
        """Record `refs` under the current lease; nothing to do outside one."""
        lease_id = current_lease.get()
        if lease_id is None:
            return
        with self.transaction() as db:
            self._hold(db, lease_id, kind, refs)

    @staticmethod
    def _hold(
        db: sqlite3.Connection, lease_id: str | None, kind: Kind, refs: Iterable[str | int]
    ) -> None:
        if lease_id is None:
            return
        db.executemany(
            "INSERT OR IGNORE INTO lease_resources VALUES (?, ?, ?)",
            [(lease_id, str(kind), str(r)) for r in refs],
        )

    def hold_blob(self, digest: str) -> None:
        """The content store's `before_commit`: a blob about to become visible is held."""
        self.hold(Kind.CONTENT, [digest])

    def held(self, *, exclude: str | None = None) -> Held:
        """What the live leases hold (all of them, or all but `exclude`)."""
        by_kind: dict[str, set[str]] = {str(k): set() for k in Kind}
        rows = self.rows("SELECT kind, ref FROM lease_resources WHERE lease != ?", (exclude or "",))
        for kind, ref in rows:
            by_kind.setdefault(kind, set()).add(ref)
        return Held(
            images=frozenset(by_kind[Kind.IMAGE]),
            layers=frozenset(by_kind[Kind.LAYER]),
            content=frozenset(by_kind[Kind.CONTENT]),
            snapshots=frozenset(int(r) for r in by_kind[Kind.SNAPSHOT]),
        )

    def leases(self) -> list[str]:
        return [r[0] for r in self.rows("SELECT id FROM leases ORDER BY created")]

    def delete_lease(self, lease_id: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM lease_resources WHERE lease = ?", (lease_id,))
            db.execute("DELETE FROM leases WHERE id = ?", (lease_id,))

    def clear_leases(self) -> int:
        """Daemon start: the operations that held leases died with the last daemon."""
        with self.transaction() as db:
            db.execute("DELETE FROM lease_resources")
            return int(db.execute("DELETE FROM leases").rowcount)

    # snapshots ---------------------------------------------------------------------------
    def new_snapshot(self) -> int:
        with self.transaction() as db:
            cur = db.execute("INSERT INTO snapshots (committed) VALUES (0)")
            assert cur.lastrowid is not None
            self._hold(db, current_lease.get(), Kind.SNAPSHOT, [cur.lastrowid])
            return int(cur.lastrowid)

    def mark_snapshot_committed(self, snapshot: int) -> None:
        with self.transaction() as db:
            db.execute("UPDATE snapshots SET committed = 1 WHERE id = ?", (snapshot,))

    def delete_snapshot(self, snapshot: int) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM snapshots WHERE id = ?", (snapshot,))

    def snapshots(self) -> list[tuple[int, bool]]:
        return [(int(r[0]), bool(r[1])) for r in self.rows("SELECT id, committed FROM snapshots")]

    # layers ------------------------------------------------------------------------------
    def get_layer(self, chain_id: str) -> LayerRecord | None:
        rows = self.rows(
            "SELECT chain_id, diff_id, parent, snapshot, size FROM layers WHERE chain_id = ?",
            (chain_id,),
        )
        return LayerRecord(*rows[0]) if rows else None

    def put_layer(self, layer: LayerRecord) -> bool:
        """Record a committed layer; False if the chain already existed (the caller drops its copy).
        Either way the chain is held by the current lease."""
        with self.transaction() as db:
            self._hold(db, current_lease.get(), Kind.LAYER, [layer.chain_id])
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
            for r in self.rows("SELECT chain_id, diff_id, parent, snapshot, size FROM layers")
        ]

    def delete_layer(self, chain_id: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM layers WHERE chain_id = ?", (chain_id,))

    def delete_layers(self, layers: list[LayerRecord], dead_diff_ids: set[str]) -> list[str]:
        """Garbage collection's one transaction: the layer rows, their snapshot rows and the
        compressed copies recorded for diff IDs no layer is left with. Returns the digests of
        those compressed copies (their blobs go next, after the rows: a crash in between
        leaves only files nothing names, never a row naming a missing file)."""
        with self.transaction() as db:
            db.executemany("DELETE FROM layers WHERE chain_id = ?", [(x.chain_id,) for x in layers])
            db.executemany("DELETE FROM snapshots WHERE id = ?", [(x.snapshot,) for x in layers])
            return self.distribution.forget_compressed(db, dead_diff_ids)

    # images and tags ---------------------------------------------------------------------
    def put_image(
        self,
        image_id: str,
        created: str,
        parent: str | None = None,
        tags: list[str] | None = None,
        cache_key: str | None = None,
        link_key: str | None = None,
    ) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO images (id, created, parent) VALUES (?, ?, ?)",
                (image_id, created, parent),
            )
            self._hold(db, current_lease.get(), Kind.IMAGE, [image_id])
            for tag in tags or []:
                db.execute("INSERT OR REPLACE INTO tags VALUES (?, ?)", (tag, image_id))
            if cache_key:
                db.execute(
                    "INSERT OR REPLACE INTO build_cache VALUES (?, ?)", (cache_key, image_id)
                )
            if link_key:
                db.execute("INSERT OR REPLACE INTO link_cache VALUES (?, ?)", (link_key, image_id))

    def has_image(self, image_id: str) -> bool:
        return bool(self.rows("SELECT 1 FROM images WHERE id = ?", (image_id,)))

    def image_ids(self) -> list[str]:
        return [r[0] for r in self.rows("SELECT id FROM images ORDER BY created DESC")]

    def image_parent(self, image_id: str) -> str | None:
        rows = self.rows("SELECT parent FROM images WHERE id = ?", (image_id,))
        return rows[0][0] if rows else None

    def image_children(self, image_id: str) -> list[str]:
        return [r[0] for r in self.rows("SELECT id FROM images WHERE parent = ?", (image_id,))]

    def find_images_by_prefix(self, prefix: str) -> list[str]:
        return [r[0] for r in self.rows("SELECT id FROM images WHERE id LIKE ?", (prefix + "%",))]

    def delete_image(self, image_id: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM tags WHERE image_id = ?", (image_id,))
            db.execute("DELETE FROM build_cache WHERE image_id = ?", (image_id,))
            db.execute("DELETE FROM link_cache WHERE image_id = ?", (image_id,))
            db.execute("UPDATE images SET parent = NULL WHERE parent = ?", (image_id,))
            db.execute("DELETE FROM images WHERE id = ?", (image_id,))

    def tag(self, name: str, image_id: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO tags VALUES (?, ?)", (name, image_id))

    def untag(self, name: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM tags WHERE name = ?", (name,))

    def resolve_tag(self, name: str) -> str | None:
        rows = self.rows("SELECT image_id FROM tags WHERE name = ?", (name,))
        return rows[0][0] if rows else None

    def tags_of(self, image_id: str) -> list[str]:
        return [
            r[0]
            for r in self.rows(
                "SELECT name FROM tags WHERE image_id = ? ORDER BY name", (image_id,)
            )
        ]

    def tags_in_repository(self, repository: str) -> list[str]:
        """The tags (`x` of `repo:x`) of one repository, sorted."""
        prefix = repository + ":"
        rows = self.rows(
            "SELECT name FROM tags WHERE substr(name, 1, ?) = ? ORDER BY name",
            (len(prefix), prefix),
        )
        return [r[0][len(prefix) :] for r in rows]

    # build cache -------------------------------------------------------------------------
    def cache_lookup(self, key: str) -> str | None:
        rows = self.rows("SELECT image_id FROM build_cache WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def link_lookup(self, key: str) -> str | None:
        """An image made by the `COPY --link` step of parent-free key `key`, on any parent."""
        rows = self.rows("SELECT image_id FROM link_cache WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def cachelog_get(self, build: str, step: str) -> dict[str, Any] | None:
        """The inputs recorded for a build step (builder/cachelog.py gives them their type)."""
        rows = self.rows(
            "SELECT inputs FROM builder_cachelog WHERE build = ? AND step = ?", (build, step)
        )
        return json.loads(rows[0][0]) if rows else None

    def cachelog_put(self, build: str, step: str, inputs: dict[str, Any]) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO builder_cachelog VALUES (?, ?, ?)",
                (build, step, json.dumps(inputs, sort_keys=True)),
            )

    def cache_entries(self) -> list[tuple[str, str]]:
        """Every (cache key, image ID) of the step cache."""
        return [(r[0], r[1]) for r in self.rows("SELECT key, image_id FROM build_cache")]

    def cache_delete(self, key: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM build_cache WHERE key = ?", (key,))

    # containers --------------------------------------------------------------------------
    def put_container(self, rec: ContainerRow) -> None:
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

    def container_image_ids(self) -> set[str]:
        return {r[0] for r in self.rows("SELECT DISTINCT image_id FROM containers")}

    def name_in_use(self, name: str) -> str | None:
        rows = self.rows("SELECT id FROM containers WHERE name = ?", (name,))
        return rows[0][0] if rows else None

    def containers(self) -> list[ContainerRow]:
        rows = self.rows(
            "SELECT id, name, image_id, created, config, state FROM containers ORDER BY created DESC"
        )
        return [self._container(r) for r in rows]

    def delete_container(self, container_id: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM containers WHERE id = ?", (container_id,))

    @staticmethod
    def _container(row: tuple[Any, ...]) -> ContainerRow:
        return ContainerRow(row[0], row[1], row[2], row[3], json.loads(row[4]), json.loads(row[5]))
