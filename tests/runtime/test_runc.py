"""The runc driver against real runc on a busybox root filesystem."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from dockyard.runtime.runc import ContainerStartError, Runc
from tests.runtime.conftest import BundleFactory

pytestmark = pytest.mark.root


def run_capture(runc: Runc, cid: str, bundle: Path, tmp_path: Path) -> tuple[int, str, str]:
    out, err = tmp_path / f"{cid}.out", tmp_path / f"{cid}.err"
    with out.open("wb") as o, err.open("wb") as e:
        code = asyncio.run(runc.run(cid, bundle, stdin=None, stdout=o.fileno(), stderr=e.fileno()))
    return code, out.read_text(), err.read_text()


def test_run_output_and_exit_code(runc: Runc, make_bundle: BundleFactory, tmp_path: Path) -> None:
    cid, bundle = make_bundle("sh", "-c", "echo hello; echo oops >&2")
    assert run_capture(runc, cid, bundle, tmp_path) == (0, "hello\n", "oops\n")
    cid, bundle = make_bundle("sh", "-c", "exit 3")
    assert run_capture(runc, cid, bundle, tmp_path)[0] == 3
    assert asyncio.run(runc.state(cid)) is None


def test_missing_command_is_127(runc: Runc, make_bundle: BundleFactory, tmp_path: Path) -> None:
    cid, bundle = make_bundle("no-such-command")
    with pytest.raises(ContainerStartError, match="no-such-command") as info:
        run_capture(runc, cid, bundle, tmp_path)
    assert info.value.exit_code == 127
    assert "runc run failed" not in str(info.value)


def test_not_executable_is_126(runc: Runc, make_bundle: BundleFactory, tmp_path: Path) -> None:
    cid, bundle = make_bundle("/etc/passwd")
    with pytest.raises(ContainerStartError) as info:
        run_capture(runc, cid, bundle, tmp_path)
    assert info.value.exit_code == 126


def test_confinement_inside(runc: Runc, make_bundle: BundleFactory, tmp_path: Path) -> None:
    script = (
        "grep -E '^(CapEff|CapBnd|CapInh|Seccomp):' /proc/self/status; "
        "wc -c < /proc/timer_list; ls /sys/firmware | wc -l; hostname; ls /sys/class/net; ulimit -n; "
        "touch /proc/sysrq-trigger 2>/dev/null || echo sysrq-ro"
    )
    cid, bundle = make_bundle(
        "sh", "-c", script, hostname="boxy", cgroups_path=f"/dockyard-test/{tmp_path.name}"
    )
    try:
        code, out, err = run_capture(runc, cid, bundle, tmp_path)
    finally:
        # runc removes the container's own cgroup, never the parent we named.
        for parent in Path("/sys/fs/cgroup").glob("*/dockyard-test"):
            parent.rmdir()
    assert code == 0, err
    lines = out.split()
    status = dict(zip(lines[0:8:2], lines[1:8:2], strict=True))
    assert status == {
        "CapInh:": "0000000000000000",
        "CapEff:": "00000000a80425fb",
        "CapBnd:": "00000000a80425fb",
        "Seccomp:": "2",
    }
    # /proc/kcore does not exist on this kernel; timer_list and /sys/firmware are masked too.
    assert lines[8:] == ["0", "0", "boxy", "lo", lines[12], "sysrq-ro"]
    assert 0 < int(lines[12]) <= 1048576


def test_kill_gives_128_plus_signal(runc: Runc, make_bundle: BundleFactory, tmp_path: Path) -> None:
    cid, bundle = make_bundle("sleep", "30")

    async def scenario() -> int:
        run = asyncio.create_task(runc.run(cid, bundle, stdin=None, stdout=1, stderr=2))
        for _ in range(100):
            state = await runc.state(cid)
            if state is not None and state["status"] == "running":
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("container never ran")
        assert cid in [c["id"] for c in await runc.list()]
        await runc.kill(cid, 9)
        return await asyncio.wait_for(run, 10)

    assert asyncio.run(scenario()) == 137


def test_run_detached_then_delete_lifecycle(
    runc: Runc, make_bundle: BundleFactory, tmp_path: Path
) -> None:
    cid, bundle = make_bundle("sleep", "30")

    async def scenario() -> None:
        # the monitors' one runc call per start: created and started by one process
        await runc.run_detached(cid, bundle, stdin=None, stdout=1, stderr=2)
        state = await runc.state(cid)
        assert state is not None and state["status"] == "running" and state["pid"] > 0
        await runc.delete(cid, force=True)
        assert await runc.state(cid) is None
        assert await runc.list() == []

    asyncio.run(scenario())
