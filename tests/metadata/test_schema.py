"""The metadata schema's one owner: versions, migrations, a store of the previous format, leases.

`fixtures/store-v0.sql` is a dump of a metadata.db written by dockyard at commit 6bd76ee (the
format before the schema had a version), made by `fixtures/make_store_v0.py` with that
commit's own code: the rows are what it wrote, not what we think it wrote.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from dockyard.metadata import schema
from dockyard.metadata.distribution import CompressedBlob
from dockyard.metadata.leases import Kind, current_lease
from dockyard.metadata.schema import SCHEMA_VERSION, SchemaTooNew
from dockyard.metadata.store import LayerRecord, MetadataStore

FIXTURE = Path(__file__).parent / "fixtures" / "store-v0.sql"
BUSYBOX_ID = "sha256:278de971a8b9d22f59279b40af5bbc1a77d006cac066aef8b1255405b901f6c5"
CHILD_ID = "sha256:42d52b8fbbf80c96484babf13a9b89fce7e14adaa649cc53912d45963a0d0a55"


def _tables(path: Path) -> set[str]:
    db = sqlite3.connect(path)
    try:
        return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        db.close()


def _old_store(tmp_path: Path) -> Path:
    path = tmp_path / "metadata.db"
    db = sqlite3.connect(path)
    db.executescript(FIXTURE.read_text())
    db.close()
    return path


def test_a_fresh_store_has_every_table_at_the_current_version(tmp_path: Path) -> None:
    meta = MetadataStore(tmp_path / "metadata.db")
    assert meta.found_version == 0
    meta.close()
    db = sqlite3.connect(tmp_path / "metadata.db")
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    db.close()
    assert _tables(tmp_path / "metadata.db") >= {
        "images",
        "layers",
        "tags",
        "containers",
        "build_cache",
        "snapshots",
        "dist_repo_digests",
        "dist_blobs",
        "dist_blob_sources",
        "builder_cachelog",
        "leases",
        "lease_resources",
    }
    again = MetadataStore(tmp_path / "metadata.db")
    assert again.found_version == SCHEMA_VERSION  # nothing to migrate the second time
    again.close()


def test_a_store_of_the_previous_format_opens_with_its_rows(tmp_path: Path) -> None:
    path = _old_store(tmp_path)
    assert "leases" not in _tables(path)
    meta = MetadataStore(path)
    try:
        assert meta.found_version == 0
        assert set(meta.image_ids()) == {BUSYBOX_ID, CHILD_ID}
        assert meta.resolve_tag("docker.io/library/busybox:latest") == BUSYBOX_ID
        assert meta.resolve_tag("docker.io/fixture/child:v1") == CHILD_ID
        assert meta.image_parent(CHILD_ID) == BUSYBOX_ID
        assert meta.cache_lookup("sha256:" + "c" * 64) == CHILD_ID
        [layer] = meta.layers()
        assert layer.parent is None and layer.size > 0
        names = {rec.name for rec in meta.containers()}
        assert names == {"fixture-ran", "fixture-created"}
        assert meta.container_image_ids() == {BUSYBOX_ID, CHILD_ID}
        assert meta.distribution.repo_digests(BUSYBOX_ID) == [
            ("docker.io/library/busybox", "sha256:" + "d" * 64)
        ]
        [blob] = meta.distribution.compressed(layer.diff_id)
        assert blob.digest == "sha256:" + "e" * 64 and blob.size == 1234
        assert meta.distribution.sources(blob.digest, "docker.io") == ["library/busybox"]
        inputs = meta.cachelog_get("build-1", "0:1")
        assert inputs is not None and inputs["instruction"] == "ENV A=1"
        # and it is writable in the new format
        with meta.lease():
            meta.hold(Kind.IMAGE, [CHILD_ID])
            assert meta.held().images == {CHILD_ID}
    finally:
        meta.close()
    reopened = MetadataStore(path)
    assert reopened.found_version == SCHEMA_VERSION
    reopened.close()


def test_a_store_of_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "metadata.db"
    MetadataStore(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(SchemaTooNew, match="newer than this dockyard knows"):
        MetadataStore(path)


def test_a_failing_migration_leaves_the_previous_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _old_store(tmp_path)
    broken = schema.Migration(2, "broken", ("CREATE TABLE leases (id TEXT)", "NOT SQL"))
    monkeypatch.setattr(schema, "MIGRATIONS", (schema.MIGRATIONS[0], broken))
    with pytest.raises(sqlite3.OperationalError):
        MetadataStore(path)
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == 1  # the baseline committed
    db.close()
    assert "leases" not in _tables(path)  # the broken step rolled back whole
    monkeypatch.undo()
    MetadataStore(path).close()  # and the next start resumes
    assert "leases" in _tables(path)


def test_leases_hold_what_is_made_under_them_and_go_with_them(tmp_path: Path) -> None:
    meta = MetadataStore(tmp_path / "metadata.db")
    outside = meta.new_snapshot()
    with meta.lease() as lease:
        assert current_lease.get() == lease and meta.leases() == [lease]
        snap = meta.new_snapshot()
        meta.put_layer(LayerRecord("sha256:" + "1" * 64, "sha256:" + "2" * 64, None, snap, 1))
        meta.put_image("sha256:" + "3" * 64, "2024-01-01T00:00:00Z")
        meta.hold_blob("sha256:" + "4" * 64)
        with meta.lease() as inner:  # a nested lease joins the outer one
            assert inner == lease
        held = meta.held()
        assert held.snapshots == {snap} and outside not in held.snapshots
        assert held.layers == {"sha256:" + "1" * 64}
        assert held.images == {"sha256:" + "3" * 64}
        assert held.content == {"sha256:" + "4" * 64}
    assert current_lease.get() is None
    assert meta.leases() == [] and meta.held().snapshots == set()
    # outside a lease nothing is recorded
    meta.hold(Kind.CONTENT, ["sha256:" + "5" * 64])
    assert meta.held().content == set()
    meta.close()


def test_a_lease_reaches_worker_threads_and_tasks_but_not_other_tasks(tmp_path: Path) -> None:
    meta = MetadataStore(tmp_path / "metadata.db")

    async def main() -> None:
        gate = asyncio.Event()

        async def other() -> None:
            await gate.wait()
            meta.hold(Kind.IMAGE, ["sha256:other"])  # not under the lease

        bystander = asyncio.create_task(other())
        with meta.lease():
            await asyncio.to_thread(meta.hold, Kind.IMAGE, ["sha256:thread"])
            await asyncio.create_task(asyncio.to_thread(meta.hold, Kind.IMAGE, ["sha256:task"]))
            gate.set()
            await bystander
            assert meta.held().images == {"sha256:thread", "sha256:task"}

    asyncio.run(main())
    meta.close()


def test_clear_leases_drops_what_a_dead_daemon_held(tmp_path: Path) -> None:
    path = tmp_path / "metadata.db"
    dying = MetadataStore(path)
    with dying.lease():
        dying.hold(Kind.LAYER, ["sha256:" + "9" * 64])
        # What the next daemon finds in the file while the first one never left its lease.
        again = MetadataStore(path)
        assert again.held().layers == {"sha256:" + "9" * 64}
        assert again.clear_leases() == 1
        assert again.held().layers == set() and again.leases() == []
        again.close()
    dying.close()


def test_distribution_records_are_typed(tmp_path: Path) -> None:
    meta = MetadataStore(tmp_path / "metadata.db")
    blob = CompressedBlob("sha256:" + "a" * 64, "sha256:" + "b" * 64, 10, "m")
    meta.distribution.record(
        "docker.io/x/y", "sha256:" + "c" * 64, "sha256:i", [blob], "docker.io", "x/y"
    )
    assert (
        meta.distribution.image_for_repo_digest("docker.io/x/y", "sha256:" + "c" * 64) == "sha256:i"
    )
    assert meta.distribution.compressed(blob.diff_id) == [blob]
    layer = LayerRecord("sha256:" + "d" * 64, blob.diff_id, None, meta.new_snapshot(), 1)
    meta.put_layer(layer)
    assert meta.delete_layers([layer], {blob.diff_id}) == [blob.digest]
    assert meta.distribution.compressed(blob.diff_id) == [] and meta.layers() == []
    meta.close()
