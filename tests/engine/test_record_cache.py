"""The records in memory (engine/container_records.py), the rendered `ps` entries
(container_views.ListEntries) and the network records' texts (NetworkManager): each change
their one writer makes shows in the next read, and they always say what the stores on disk
say. On the manager's fakes (tests/engine/fakes.py), no root needed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dockyard.engine.container_records import ContainerRecords
from dockyard.engine.network import NetworkManager
from dockyard.errors import InvalidArgument, NotFound
from tests.engine.fakes import Fakes
from tests.engine.fakes import run_with_fakes as run


def create(f: Fakes, name: str | None = None, **host_config: Any) -> str:
    cid, _ = f.mgr.create(
        {"Image": "img", "Cmd": ["sleep", "1 d"], "HostConfig": host_config}, name
    )
    return cid


def listed(f: Fakes, **kw: Any) -> list[dict[str, Any]]:
    """GET /containers/json's body, checked byte for byte against `json.dumps` of the
    entries rendered afresh (what the handler answered before the entries were kept)."""
    all_ = kw.pop("all_", True)
    body = f.mgr.list_json(all_, kw.get("filters"), kw.get("limit", -1))
    assert body == json.dumps(f.mgr.list(all_, kw.get("filters"), kw.get("limit", -1))).encode()
    entries: list[dict[str, Any]] = json.loads(body)
    return entries


def on_disk(f: Fakes) -> list[dict[str, Any]]:
    """The records as the metadata store holds them, parsed anew."""
    return [rec.to_row().__dict__ for rec in ContainerRecords(f.meta.containers()).view()]


def in_memory(f: Fakes) -> list[dict[str, Any]]:
    return [rec.to_row().__dict__ for rec in f.mgr.records.view()]


def test_every_write_shows_in_the_next_list_and_inspect(tmp_path: Path) -> None:
    async def body(f: Fakes) -> None:
        cid = create(f, "one")
        create(f, "two")
        assert [e["Names"] for e in listed(f)] == [["/two"], ["/one"]]
        assert [e["State"] for e in listed(f)] == ["created", "created"]
        await f.mgr.start(cid)
        assert listed(f)[1]["State"] == "running"
        assert listed(f)[1]["Status"].startswith("Up ")
        assert f.mgr.inspect("one")["State"]["Running"] is True
        await f.mgr.pause(cid)
        assert listed(f)[1]["Status"].endswith("(Paused)")
        assert f.mgr.inspect(cid[:12])["State"]["Status"] == "paused"
        await f.mgr.unpause(cid)
        f.mgr.rename("one", "uno")
        assert listed(f)[1]["Names"] == ["/uno"]
        assert f.mgr.inspect("uno")["Id"] == cid
        with pytest.raises(NotFound):
            f.mgr.inspect("one")  # the old name is free again
        assert [e["Names"] for e in listed(f, all_=False)] == [["/uno"]]
        exited = f.mgr.begin_wait(cid, "next-exit")
        f.runtime.processes[cid].exit(3)
        await exited
        assert listed(f)[1]["Status"].startswith("Exited (3) ")
        assert listed(f, all_=False) == []
        assert in_memory(f) == on_disk(f)
        await f.mgr.remove(cid, force=False)
        assert len(f.mgr._list_entries) == 1  # a removed container's entry is not kept
        assert [e["Names"] for e in listed(f)] == [["/two"]]
        with pytest.raises(NotFound):
            f.mgr.inspect(cid)
        assert in_memory(f) == on_disk(f)

    run(tmp_path, body)


def test_an_entry_follows_the_networks_it_shows(tmp_path: Path) -> None:
    async def body(f: Fakes) -> None:
        net_id = f.networks.add("web")
        create(f, "cc", NetworkMode="web")
        assert list(listed(f)[0]["NetworkSettings"]["Networks"]) == ["web"]
        del f.networks.nets[net_id]  # the network went: the entry shows no network
        assert listed(f)[0]["NetworkSettings"]["Networks"] == {}

    run(tmp_path, body)


def test_a_readers_copy_is_its_own(tmp_path: Path) -> None:
    async def body(f: Fakes) -> None:
        cid = create(f, "cc")
        rec = f.mgr.resolve("cc")
        rec.state.set_running(4242, "2026-01-01T00:00:00Z")
        rec.name = "changed"
        rec.networks.clear()
        for other in (f.mgr.get(cid), f.mgr.all()[0], f.mgr.resolve(cid)):
            assert other is not None
            assert (other.name, other.state.status) == ("cc", "created")
            assert other.networks
        assert listed(f)[0]["State"] == "created"
        assert in_memory(f) == on_disk(f)

    run(tmp_path, body)


def test_lookups_by_id_name_and_prefix(tmp_path: Path) -> None:
    async def body(f: Fakes) -> None:
        ids = [create(f, f"c{k}") for k in range(20)]
        for k, cid in enumerate(ids):
            assert f.mgr.resolve(cid).name == f"c{k}"
            assert f.mgr.resolve(f"/c{k}").id == cid
        unique = next(cid[:8] for cid in ids if sum(o.startswith(cid[:8]) for o in ids) == 1)
        assert f.mgr.resolve(unique).id.startswith(unique)
        shared = next(p for p in "0123456789abcdef" if sum(cid.startswith(p) for cid in ids) > 1)
        with pytest.raises(InvalidArgument, match="multiple IDs"):
            f.mgr.resolve(shared)
        with pytest.raises(NotFound):
            f.mgr.resolve("")

    run(tmp_path, body)


def test_a_restarted_manager_reads_what_the_first_stored(tmp_path: Path) -> None:
    async def body(f: Fakes) -> None:
        cid = create(f, "cc")
        await f.mgr.start(cid)
        from tests.engine.test_manager_units import fake_manager_on

        again = fake_manager_on(f)
        assert in_memory(again) == in_memory(f) == on_disk(f)
        assert again.mgr.inspect("cc")["State"]["Status"] == "running"
        await again.mgr.shutdown()

    run(tmp_path, body)


def test_network_records_follow_their_writer(tmp_path: Path) -> None:
    mgr = NetworkManager(tmp_path / "networks", tmp_path)
    net_id = mgr.create("web", subnet="10.77.0.0/24")
    assert mgr.get("web")["Id"] == net_id
    ip = mgr.allocate(mgr.get(net_id), "c1")
    assert mgr.get(net_id)["Allocations"] == {"c1": ip}
    mine = mgr.get(net_id)
    mine["Allocations"]["c2"] = "10.77.0.9"  # a caller's dict, not saved: not the record
    assert mgr.get(net_id)["Allocations"] == {"c1": ip}
    mgr.release(net_id, "c1")
    assert mgr.get(net_id)["Allocations"] == {}
    again = NetworkManager(tmp_path / "networks", tmp_path)
    assert again.list() == mgr.list()
    mgr.remove("web", [])
    with pytest.raises(NotFound):
        mgr.get("web")
    assert [n["Name"] for n in NetworkManager(tmp_path / "networks", tmp_path).list()] == [
        n["Name"] for n in mgr.list()
    ]
    assert sorted(n["Name"] for n in mgr.list()) == ["bridge", "host", "none"]
