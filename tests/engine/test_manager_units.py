"""The container manager's rules on in-memory fakes (tests/engine/fakes.py): no root, no runc,
no overlay, no veths; each test runs in milliseconds. What the real pieces do is tested in
tests/containers and tests/integration; this is the logic between them: state transitions as
dockerd reports them, the restart policy and its back-off, AutoRemove, what a failed start
undoes, and recovery after a daemon restart.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dockyard.errors import Conflict, InvalidArgument
from dockyard.runtime.runc import start_error
from tests.engine.fakes import Fakes
from tests.engine.fakes import run_with_fakes as run


def state(f: Fakes, cid: str) -> dict[str, Any]:
    doc: dict[str, Any] = f.mgr.inspect(cid)["State"]
    return doc


async def until(check: Callable[[], bool]) -> None:
    while not check():
        await asyncio.sleep(0)


def create(f: Fakes, host_config: dict[str, Any] | None = None, **config: Any) -> str:
    cid, _ = f.mgr.create({"Image": "img", "HostConfig": host_config or {}, **config}, None)
    return cid


def test_create_and_start_warm_the_cgroup_attach_before_the_spawn(tmp_path: Path) -> None:
    # runtime/cgroupwarm.py: the kernel's grace period for runc's cgroup write starts at the
    # create and again as the start begins, never after the monitor is spawned
    async def body(f: Fakes) -> None:
        cid = create(f)
        assert [c[0] for c in f.runtime.calls] == ["prepare_start"]
        await f.mgr.start(cid)
        names = [c[0] for c in f.runtime.calls]
        assert names[:3] == ["prepare_start", "prepare_start", "spawn"]

    run(tmp_path, body)


def test_start_exit_and_the_state_dockerd_reports(tmp_path: Path) -> None:
    async def body(f: Fakes) -> None:
        cid = create(f)
        assert state(f, cid)["Status"] == "created"
        exited = f.mgr.begin_wait(cid, "next-exit")
        await f.mgr.start(cid)
        proc = f.runtime.processes[cid]
        doc = state(f, cid)
        assert (doc["Status"], doc["Running"], doc["Pid"]) == ("running", True, proc.pid)
        assert doc["StartedAt"] != "0001-01-01T00:00:00Z"
        await f.mgr.start(cid)  # starting a running container is a no-op, as dockerd
        assert [c for c in f.runtime.calls if c[0] == "spawn"] == [("spawn", cid)]
        proc.exit(3)
        assert (await exited)["StatusCode"] == 3
        doc = state(f, cid)
        assert (doc["Status"], doc["Running"], doc["Pid"], doc["ExitCode"]) == (
            "exited",
            False,
            0,
            3,
        )
        assert not f.snapshots.mounted  # the root filesystem went with the process

    run(tmp_path, body)


def test_pause_unpause_and_what_needs_a_running_container(tmp_path: Path) -> None:
    async def body(f: Fakes) -> None:
        cid = create(f)
        with pytest.raises(Conflict, match="is not running"):
            await f.mgr.pause(cid)
        with pytest.raises(Conflict, match="is not running"):
            await f.mgr.kill(cid, "KILL")
        await f.mgr.start(cid)
        await f.mgr.pause(cid)
        doc = state(f, cid)
        assert (doc["Status"], doc["Running"], doc["Paused"]) == ("paused", True, True)
        with pytest.raises(Conflict, match="already paused"):
            await f.mgr.pause(cid)
        with pytest.raises(Conflict, match="You cannot remove a running container"):
            await f.mgr.remove(cid, force=False)
        await f.mgr.unpause(cid)
        assert state(f, cid)["Status"] == "running"
        with pytest.raises(Conflict, match="is not paused"):
            await f.mgr.unpause(cid)

    run(tmp_path, body)


def test_stop_sends_the_stop_signal_then_kills_after_the_timeout(tmp_path: Path) -> None:
    async def body(f: Fakes) -> None:
        cid = create(f, StopSignal="SIGUSR1")
        await f.mgr.start(cid)
        await f.mgr.stop(cid, None)
        assert ("kill", cid, signal.SIGUSR1) in f.runtime.calls
        assert state(f, cid)["ExitCode"] == 128 + signal.SIGUSR1
        # a process that ignores SIGTERM is killed when the timeout runs out
        f.runtime.ignores.add(signal.SIGTERM)
        other = create(f)
        await f.mgr.start(other)
        await f.mgr.stop(other, 0)
        kills = [c[2] for c in f.runtime.calls if c[:2] == ("kill", other)]
        assert kills == [signal.SIGTERM, signal.SIGKILL]
        assert state(f, other)["ExitCode"] == 137
        assert f.mgr.inspect(other)["HostConfig"]["RestartPolicy"]["Name"] == "no"

    run(tmp_path, body)


def test_stop_of_a_paused_container_resumes_it_first(tmp_path: Path) -> None:
    async def body(f: Fakes) -> None:
        cid = create(f)
        await f.mgr.start(cid)
        await f.mgr.pause(cid)
        await f.mgr.stop(cid, 5)
        mine = [c[0] for c in f.runtime.calls if c[1] == cid]
        assert mine[-3:] == ["pause", "resume", "kill"]
        doc = state(f, cid)
        assert (doc["Status"], doc["Paused"], doc["ExitCode"]) == ("exited", False, 143)

    run(tmp_path, body)


def test_on_failure_restarts_with_back_off_up_to_its_count(tmp_path: Path) -> None:
    async def body(f: Fakes) -> None:
        cid = create(f, {"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 2}})
        await f.mgr.start(cid)
        for n in range(3):
            proc = f.runtime.processes[cid]
            proc.exit(1)
            if n < 2:
                # the next process once the back-off has passed
                await until(lambda p=proc: f.runtime.processes[cid] is not p)
        await until(lambda: state(f, cid)["Status"] == "exited")
        doc = f.mgr.inspect(cid)
        assert doc["RestartCount"] == 2 and doc["State"]["ExitCode"] == 1
        # moby restartmanager: 100 ms, doubling per restart
        assert f.delays == [0.1, 0.2]
        assert len([c for c in f.runtime.calls if c[0] == "spawn"]) == 3

    run(tmp_path, body)


def test_restarting_is_reported_as_dockerd_and_stop_cancels_it(tmp_path: Path) -> None:
    async def body(f: Fakes) -> None:
        gate = asyncio.Event()

        async def held(seconds: float) -> None:
            f.delays.append(seconds)
            await gate.wait()

        f.mgr.restart_sleep = held
        cid = create(f, {"RestartPolicy": {"Name": "always"}})
        await f.mgr.start(cid)
        f.runtime.processes[cid].exit(0)  # `always` restarts a clean exit too
        await until(lambda: state(f, cid)["Status"] == "restarting")
        doc = state(f, cid)
        assert (doc["Running"], doc["Restarting"], doc["Pid"], doc["ExitCode"]) == (
            True,
            True,
            0,
            0,
        )
        assert [c["Id"] for c in f.mgr.list(False)] == [cid]  # `docker ps` shows it
        await f.mgr.stop(cid, 1)
        doc = state(f, cid)
        assert (doc["Status"], doc["Running"], doc["Restarting"]) == ("exited", False, False)
        gate.set()
        await asyncio.sleep(0)
        assert len([c for c in f.runtime.calls if c[0] == "spawn"]) == 1

    run(tmp_path, body)


def test_a_fatal_kill_disables_the_restart_policy_a_usr1_does_not(tmp_path: Path) -> None:
    async def body(f: Fakes) -> None:
        cid = create(f, {"RestartPolicy": {"Name": "always"}})
        await f.mgr.start(cid)
        await f.mgr.kill(cid, "USR1")
        first = f.runtime.processes[cid]
        await until(lambda: f.runtime.processes[cid] is not first)  # it came back
        await until(lambda: state(f, cid)["Status"] == "running")
        exited = f.mgr.begin_wait(cid, "next-exit")
        await f.mgr.kill(cid, "KILL")
        assert (await exited)["StatusCode"] == 137
        assert state(f, cid)["Status"] == "exited"
        assert f.mgr.inspect(cid)["RestartCount"] == 1

    run(tmp_path, body)


def test_a_failed_start_undoes_every_step_and_keeps_the_container_created(
    tmp_path: Path,
) -> None:
    async def body(f: Fakes) -> None:
        f.runtime.fail_start = lambda cid: start_error(
            'exec: "nope": executable file not found in $PATH'
        )
        cid = create(f, {"PortBindings": {"80/tcp": [{"HostPort": ""}]}}, Cmd=["nope"])
        with pytest.raises(Exception, match="executable file not found"):
            await f.mgr.start(cid)
        doc = state(f, cid)
        assert (doc["Status"], doc["ExitCode"], doc["Running"]) == ("created", 127, False)
        assert "executable file not found" in doc["Error"]
        # namespace, endpoint and root filesystem were given back
        assert not f.networks.netns and not f.networks.plugged and not f.snapshots.mounted
        assert not f.networks.published

    run(tmp_path, body)


def test_auto_remove_after_a_failed_start_and_after_an_exit(tmp_path: Path) -> None:
    async def body(f: Fakes) -> None:
        f.runtime.fail_start = lambda cid: start_error("exec: no such file or directory")
        cid = create(f, {"AutoRemove": True})
        with pytest.raises(Exception, match="no such file"):
            await f.mgr.start(cid)
        assert f.mgr.get(cid) is None and cid not in f.mgr.live  # dockerd daemon/start.go
        f.runtime.fail_start = lambda cid: None
        cid = create(f, {"AutoRemove": True}, Volumes={"/data": {}})
        volume = f.mgr.inspect(cid)["Mounts"][0]["Name"]
        removed = f.mgr.begin_wait(cid, "removed")
        await f.mgr.start(cid)
        f.runtime.processes[cid].exit(5)
        assert (await removed)["StatusCode"] == 5
        assert f.mgr.root / cid / "rootfs" in f.snapshots.volatile  # its upper goes with it
        assert f.mgr.get(cid) is None and cid not in f.mgr.live
        assert not f.mgr.volumes.exists(volume)  # --rm takes its anonymous volumes along
        assert not (f.mgr.root / cid).exists()

    run(tmp_path, body)


def test_network_endpoints_and_ports_live_as_long_as_the_process(tmp_path: Path) -> None:
    async def body(f: Fakes) -> None:
        cid = create(
            f, {"PortBindings": {"80/tcp": [{"HostPort": "8080"}]}}, ExposedPorts={"80/tcp": {}}
        )
        bridge = f.networks.get("bridge")["Id"]
        assert f.mgr.network_users(bridge) == []  # asked for, not yet plugged in
        assert bridge in f.mgr.networks_in_use(attached_only=False)
        await f.mgr.start(cid)
        assert f.mgr.network_users(bridge) == [cid]
        settings = f.mgr.inspect(cid)["NetworkSettings"]
        assert settings["Networks"]["bridge"]["IPAddress"] == "10.99.0.2"
        assert settings["Ports"]["80/tcp"] == [{"HostIp": "0.0.0.0", "HostPort": "8080"}]
        assert f.networks.published[cid] == [(80, "tcp", "", 8080)]
        exited = f.mgr.begin_wait(cid, "next-exit")
        f.runtime.processes[cid].exit(0)
        await exited
        assert not f.networks.plugged and not f.networks.netns and not f.networks.published
        assert f.mgr.network_users(bridge) == []
        assert f.mgr.inspect(cid)["NetworkSettings"]["Networks"]["bridge"]["IPAddress"] == ""

    run(tmp_path, body)


def test_recovery_rejoins_the_living_and_records_the_dead(tmp_path: Path) -> None:
    async def body(f: Fakes) -> None:
        alive = create(f)
        died = create(f)
        lost = create(f, {"RestartPolicy": {"Name": "unless-stopped"}})
        for cid in (alive, died, lost):
            await f.mgr.start(cid)
        # the daemon stops: containers outlive it under their monitors
        await f.mgr.shutdown()
        f.runtime.processes[died].exit(9)
        f.runtime.recorded_exits[f.mgr.root / died] = 9  # its monitor wrote exit.json
        f.runtime.processes[lost].exit(1)  # and this one's monitor died with it

        again = fake_manager_on(f)
        await again.mgr.recover()
        assert state(again, alive)["Status"] == "running"
        assert again.mgr.live[alive].monitor is f.runtime.processes[alive]
        doc = state(again, died)
        assert (doc["Status"], doc["ExitCode"]) == ("exited", 9)
        # its exit went unseen (255, the monitor died too); unless-stopped restarts it
        await until(lambda: state(again, lost)["Status"] == "running")
        assert again.mgr.inspect(lost)["RestartCount"] == 1
        assert ("delete", lost) in f.runtime.calls
        exited = again.mgr.begin_wait(alive, "next-exit")
        f.runtime.processes[alive].exit(0)
        assert (await exited)["StatusCode"] == 0
        await again.mgr.shutdown()

    run(tmp_path, body)


def fake_manager_on(f: Fakes) -> Fakes:
    """A second manager (a restarted daemon) on the same store and the same fakes."""
    from dockyard.engine.containers import ContainerManager

    mgr = ContainerManager(
        f.mgr.root,
        f.meta,
        f.mgr.images,
        f.mgr.layers,
        f.snapshots,
        f.runtime,
        networks=f.networks,
        volumes=f.mgr.volumes,
        dns=f.mgr.dns,
        restart_sleep=f.mgr.restart_sleep,
    )
    return Fakes(mgr, f.runtime, f.snapshots, f.networks, f.meta, f.delays)


def test_remove_leaves_nothing_behind(tmp_path: Path) -> None:
    async def body(f: Fakes) -> None:
        cid = create(f, Volumes={"/data": {}})
        rec = f.mgr.get(cid)
        assert rec is not None and f.snapshots.fs(rec.snapshot).exists()
        volume = f.mgr.inspect(cid)["Mounts"][0]["Name"]
        await f.mgr.start(cid)
        f.mgr.subscribe(cid)
        await f.mgr.remove(cid, force=True)
        assert f.mgr.get(cid) is None and cid not in f.mgr.live
        assert not f.snapshots.fs(rec.snapshot).exists() and not (f.mgr.root / cid).exists()
        assert f.mgr.volumes.exists(volume)  # without -v an anonymous volume stays (Docker)
        assert f.runtime.processes[cid].exited  # force killed it

    run(tmp_path, body)


def test_rm_f_and_stop_during_a_restart_leave_no_process_behind(tmp_path: Path) -> None:
    # A restart already inside its start is let finish and then killed: cancelled there,
    # the monitor would carry on and run the container with nobody to collect it.
    async def body(f: Fakes) -> None:
        for how in ("rm", "stop"):
            cid = create(f, {"RestartPolicy": {"Name": "always"}})
            await f.mgr.start(cid)
            f.runtime.hold_start = asyncio.Event()
            first = f.runtime.processes[cid]
            first.exit(1)
            await until(lambda c=cid, p=first: f.runtime.processes[c] is not p)  # in runc
            if how == "rm":
                ending = asyncio.create_task(f.mgr.remove(cid, force=True))
            else:
                ending = asyncio.create_task(f.mgr.stop(cid, 1))
            for _ in range(20):
                await asyncio.sleep(0)
            f.runtime.hold_start.set()
            f.runtime.hold_start = None
            await ending
            assert f.runtime.processes[cid].exited, how
            if how == "rm":
                assert f.mgr.get(cid) is None
            else:
                assert state(f, cid)["Status"] == "exited"

    run(tmp_path, body)


def test_update_applies_limits_live_and_refuses_what_it_cannot(tmp_path: Path) -> None:
    async def body(f: Fakes) -> None:
        cid = create(f, {"AutoRemove": True})
        with pytest.raises(InvalidArgument, match="AutoRemove"):
            await f.mgr.update(cid, {"RestartPolicy": {"Name": "always"}})
        cid = create(f)
        with pytest.raises(InvalidArgument, match="update of Devices is not supported"):
            await f.mgr.update(cid, {"Devices": [{"PathOnHost": "/dev/null"}]})
        await f.mgr.update(cid, {"Memory": 0, "Devices": []})  # unset values are no change
        await f.mgr.start(cid)
        await f.mgr.update(cid, {"Memory": 64 << 20, "RestartPolicy": {"Name": "always"}})
        (applied,) = [c for c in f.runtime.calls if c[0] == "update"]
        assert json.loads(applied[2])["memory"]["limit"] == 64 << 20
        hc = f.mgr.inspect(cid)["HostConfig"]
        assert hc["Memory"] == 64 << 20 and hc["RestartPolicy"]["Name"] == "always"

    run(tmp_path, body)


def test_peers_on_a_user_network_name_each_other_in_etc_hosts(tmp_path: Path) -> None:
    async def body(f: Fakes) -> None:
        f.networks.add("web")
        one = create(f, {"NetworkMode": "web"})
        two = create(f, {"NetworkMode": "web"})
        await f.mgr.start(one)
        await f.mgr.start(two)
        name_two = f.mgr.inspect(two)["Name"].lstrip("/")
        hosts = (f.mgr.root / one / "hosts").read_text()
        assert f"10.99.3.3\t{name_two} {two[:12]}" in hosts
        assert f.mgr.dns_lookup(f.networks.get("web")["Id"], name_two) == "10.99.3.3"
        exited = f.mgr.begin_wait(two, "next-exit")
        f.runtime.processes[two].exit(0)
        await exited
        assert name_two not in (f.mgr.root / one / "hosts").read_text()

    run(tmp_path, body)


def test_a_crash_between_an_exit_and_its_removal_leaves_nothing_after_a_restart(
    tmp_path: Path,
) -> None:
    """moby daemon.restore: an AutoRemove container found stopped is removed at start (the
    daemon died after recording the exit, before removing it); a state directory no record
    names (it died between the record's deletion and the directory's) goes too."""

    async def body(f: Fakes) -> None:
        cid = create(f, {"AutoRemove": True})
        await f.mgr.start(cid)
        await f.mgr.shutdown()
        f.runtime.processes[cid].exit(0)

        def exited(c: Any) -> None:
            c.state.set_stopped(0, "", False, "2026-12-03T16:00:00Z")

        f.mgr.write(cid, exited)  # recorded, then the daemon died
        orphan = f.mgr.root / ("0" * 64)
        (orphan / "bundle").mkdir(parents=True)
        kept = create(f)  # a stopped container without AutoRemove stays

        again = fake_manager_on(f)
        await again.mgr.recover()
        assert again.mgr.get(cid) is None and not (again.mgr.root / cid).exists()
        assert not orphan.exists()
        assert again.mgr.get(kept) is not None and (again.mgr.root / kept).is_dir()
        assert again.mgr.trash.wait_empty(10)

    run(tmp_path, body)
