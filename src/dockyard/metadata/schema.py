"""The one owner of metadata.db's schema: every table, its version, and the way up to it.

As containerd's metadata/db.go keeps `schemaVersion`, the database records the version of the
schema it was written in (SQLite's `PRAGMA user_version`), and opening it runs each migration
above that version in a transaction of its own, so a crash mid-upgrade leaves the previous
version intact and the next start resumes. A database newer than this code is refused rather
than half-understood. Other modules never create tables or run SQL of their own: they call
the typed methods of `MetadataStore` (and of the record classes it hands out).

Versions
1  the baseline: the tables dockyard wrote before the schema had a version (stores made then
   carry `user_version` 0 and all of them, so every statement is `IF NOT EXISTS`)
   - images, layers, tags, containers, build_cache, snapshots (the core)
   - dist_repo_digests, dist_blobs, dist_blob_sources (pulls and pushes)
   - builder_cachelog (`--explain-cache`)
2  leases (containerd's leases: what an operation in flight holds against garbage collection)
3  link_cache: `COPY --link`'s parent-free step key → an image whose top layer that step made
   (builder/executor.py: the layer is stacked again on any other parent)
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from dockyard.errors import DockyardError


@dataclass(frozen=True)
class Migration:
    version: int
    why: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "baseline: the unversioned format",
        (
            """CREATE TABLE IF NOT EXISTS images (
                id TEXT PRIMARY KEY,
                created TEXT NOT NULL,
                parent TEXT
            )""",
            """CREATE TABLE IF NOT EXISTS layers (
                chain_id TEXT PRIMARY KEY,
                diff_id TEXT NOT NULL,
                parent TEXT,
                snapshot INTEGER NOT NULL,
                size INTEGER NOT NULL
            )""",
            """CREATE TABLE IF NOT EXISTS tags (
                name TEXT PRIMARY KEY,
                image_id TEXT NOT NULL REFERENCES images(id)
            )""",
            """CREATE TABLE IF NOT EXISTS containers (
                id TEXT PRIMARY KEY,
                name TEXT UNIQUE NOT NULL,
                image_id TEXT NOT NULL,
                created TEXT NOT NULL,
                config TEXT NOT NULL,
                state TEXT NOT NULL
            )""",
            """CREATE TABLE IF NOT EXISTS build_cache (
                key TEXT PRIMARY KEY,
                image_id TEXT NOT NULL
            )""",
            """CREATE TABLE IF NOT EXISTS snapshots (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                committed INTEGER NOT NULL DEFAULT 0,
                created TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
            )""",
            "CREATE INDEX IF NOT EXISTS tags_by_image ON tags(image_id)",
            "CREATE INDEX IF NOT EXISTS cache_by_image ON build_cache(image_id)",
            """CREATE TABLE IF NOT EXISTS dist_repo_digests (
                repository TEXT NOT NULL,
                digest TEXT NOT NULL,
                image_id TEXT NOT NULL,
                PRIMARY KEY (repository, digest)
            )""",
            """CREATE TABLE IF NOT EXISTS dist_blobs (
                diff_id TEXT NOT NULL,
                digest TEXT NOT NULL,
                size INTEGER NOT NULL,
                media_type TEXT NOT NULL,
                PRIMARY KEY (diff_id, digest)
            )""",
            """CREATE TABLE IF NOT EXISTS dist_blob_sources (
                digest TEXT NOT NULL,
                domain TEXT NOT NULL,
                repository TEXT NOT NULL,
                PRIMARY KEY (digest, domain, repository)
            )""",
            """CREATE TABLE IF NOT EXISTS builder_cachelog (
                build TEXT NOT NULL,
                step TEXT NOT NULL,
                inputs TEXT NOT NULL,
                PRIMARY KEY (build, step)
            )""",
        ),
    ),
    Migration(
        2,
        "leases",
        (
            """CREATE TABLE leases (
                id TEXT PRIMARY KEY,
                created TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
            )""",
            # kind: image | layer | content | snapshot (metadata/leases.py)
            """CREATE TABLE lease_resources (
                lease TEXT NOT NULL REFERENCES leases(id) ON DELETE CASCADE,
                kind TEXT NOT NULL,
                ref TEXT NOT NULL,
                PRIMARY KEY (lease, kind, ref)
            )""",
        ),
    ),
    Migration(
        3,
        "COPY --link's layers reused across parents",
        (
            """CREATE TABLE link_cache (
                key TEXT PRIMARY KEY,
                image_id TEXT NOT NULL
            )""",
            "CREATE INDEX link_cache_by_image ON link_cache(image_id)",
        ),
    ),
)
SCHEMA_VERSION = MIGRATIONS[-1].version


class SchemaTooNew(DockyardError):
    """metadata.db was written by a newer dockyard: refuse it rather than corrupt it."""


def schema_version(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def migrate(db: sqlite3.Connection) -> int:
    """Bring an open database (autocommit mode) up to SCHEMA_VERSION; returns the version it had."""
    found = schema_version(db)
    if found > SCHEMA_VERSION:
        raise SchemaTooNew(
            f"metadata.db has schema version {found}, newer than this dockyard knows "
            f"({SCHEMA_VERSION}): run the dockyard that wrote it"
        )
    for m in MIGRATIONS:
        if m.version <= found:
            continue
        db.execute("BEGIN IMMEDIATE")
        try:
            for stmt in m.statements:
                db.execute(stmt)
            # user_version lives in the database header, so it commits with the tables.
            db.execute(f"PRAGMA user_version = {m.version:d}")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
    return found
