"""Container state as dockerd reports it, through the engine's in-process API (real runc).

- A restarting container is `Running: true` and `Restarting: true` (moby container/state.go
  SetRestarting); it reported `Running: false` before the State was typed.
- A removed container leaves nothing in the manager: its live entry (fan-out, waiters, locks)
  and its last exit code are dropped, while a `wait condition=removed` still gets the code.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from dockyard.engine.engine import Engine
from tests.support.rootfs import busybox_rootfs_tar

pytestmark = pytest.mark.root


async def _busybox(engine: Engine) -> None:
    with busybox_rootfs_tar().open("rb") as f:
        await engine.import_image(f, repo="busybox", tag="latest")


async def _state_becomes(engine: Engine, cid: str, status: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state: dict[str, Any] = engine.containers.inspect(cid)["State"]
        if state["Status"] == status:
            return state
        await asyncio.sleep(0.01)
    raise AssertionError(f"{cid[:12]} never became {status}")


def test_a_restarting_container_is_running_and_restarting(engine_root: Path) -> None:
    engine = Engine(engine_root)

    async def main() -> None:
        await _busybox(engine)
        cid, _ = engine.containers.create(
            {
                "Image": "busybox",
                "Cmd": ["sh", "-c", "exit 3"],
                "HostConfig": {"RestartPolicy": {"Name": "always"}, "NetworkMode": "none"},
            },
            "restarter",
        )
        await engine.containers.start(cid)
        state = await _state_becomes(engine, cid, "restarting")
        # moby SetRestarting: Running stays true ("all the checks around rm/stop/etc").
        assert state["Running"] is True and state["Restarting"] is True
        assert state["Paused"] is False and state["Pid"] == 0 and state["ExitCode"] == 3
        listed = engine.containers.list(False)  # `docker ps` without -a shows it, as dockerd
        assert [c["Id"] for c in listed] == [cid] and listed[0]["State"] == "restarting"
        await engine.containers.stop(cid, 1)
        state = await _state_becomes(engine, cid, "exited")
        assert state["Running"] is False and state["Restarting"] is False
        await engine.containers.remove(cid, force=True)
        await engine.close()

    asyncio.run(main())


def test_a_removed_container_leaves_nothing_in_the_manager(engine_root: Path) -> None:
    engine = Engine(engine_root)
    mgr = engine.containers

    async def main() -> None:
        await _busybox(engine)
        cid, _ = mgr.create(
            {
                "Image": "busybox",
                "Cmd": ["sh", "-c", "exit 7"],
                "HostConfig": {"NetworkMode": "none"},
            },
            None,
        )
        removed = mgr.begin_wait(cid, "removed")
        exited = mgr.begin_wait(cid, "next-exit")
        await mgr.start(cid)
        assert (await exited)["StatusCode"] == 7
        assert cid in mgr.live
        await mgr.remove(cid, force=False)
        assert (await removed)["StatusCode"] == 7
        assert cid not in mgr.live
        assert mgr.get(cid) is None and mgr.all() == []
        # and nothing comes back for a name of the gone container
        assert mgr.write(cid, lambda c: None) is None
        assert cid not in mgr.live
        await engine.close()

    asyncio.run(main())
