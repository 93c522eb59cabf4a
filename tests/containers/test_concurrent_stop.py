"""Many containers stopped at once all stop (issue 9 §5).

Each stop releases the container's address in its network's record (a read-modify-write of
one JSON file from worker threads). With one shared temp name and no lock, one writer's
rename took another's temp file away: its exit was never recorded, `stop` hung and the
container showed "Up" with no process. Three rounds of 50 concurrent stops on one network.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker
import pytest

from tests.conftest import Clients

pytestmark = pytest.mark.root

COUNT = 50
ROUNDS = 3


def test_fifty_concurrent_stops_three_times(fresh_clients: Clients) -> None:
    daemon = fresh_clients.daemon
    api = docker.APIClient(base_url=daemon.host, timeout=180)
    ids = []
    for i in range(COUNT):
        c = api.create_container("busybox", ["sleep", "1000"], name=f"cstop{i}")
        ids.append(c["Id"])
    for round_no in range(ROUNDS):
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(api.start, ids))
        # Every container holds an address on the default bridge: the stops below all
        # write that one record.
        net_files = list((daemon.root / "networks").glob("*.json"))
        allocations = [json.loads(p.read_text()).get("Allocations") or {} for p in net_files]
        assert sum(len(a) for a in allocations) == COUNT

        def stop(cid: str) -> str:
            api.stop(cid, timeout=1)
            return str(api.inspect_container(cid)["State"]["Status"])

        with ThreadPoolExecutor(COUNT) as pool:
            statuses = list(pool.map(stop, ids))
        assert statuses == ["exited"] * COUNT, f"round {round_no}: {statuses}"
        for cid in ids:
            state = api.inspect_container(cid)["State"]
            assert not state["Running"] and state["Pid"] == 0, (round_no, cid, state)
        left = [json.loads(p.read_text()).get("Allocations") for p in net_files]
        assert all(not a for a in left), f"round {round_no}: addresses still held: {left}"
        assert not _stray_temp_files(daemon.root / "networks")
    log = daemon.log.read_text(errors="replace")
    assert "Task exception was never retrieved" not in log
    assert "Traceback" not in log


def _stray_temp_files(path: Path) -> list[str]:
    return [p.name for p in path.iterdir() if p.name.endswith(".tmp")]
