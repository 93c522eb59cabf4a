"""The step runner's clean-up: `runc delete` only when runc may still hold the container.

No runc runs here: a fake driver records the subcommands, and its `run` leaves (or not) the
state directory runc keeps under its root until a container is destroyed.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from dockyard.builder.runner import StepProcess, StepRunner
from dockyard.runtime.runc import Runc


class _Runc(Runc):
    def __init__(self, state_root: Path, *, leaves_state: bool = False, hang: bool = False):
        super().__init__("runc-not-run", state_root)
        self.calls: list[str] = []
        self.leaves_state = leaves_state
        self.hang = hang

    async def run(  # type: ignore[override]
        self, container_id: str, bundle: Path, *, stdin: int | None, stdout: int, stderr: int
    ) -> int:
        self.calls.append("run")
        # runc's libcontainer keeps <root>/<id>/state.json while the container exists
        (self.state_root / container_id).mkdir(parents=True)
        if self.hang:
            await asyncio.sleep(3600)
        if not self.leaves_state:
            (self.state_root / container_id).rmdir()  # `runc run` destroyed it at the exit
        return 3

    async def delete(self, container_id: str, force: bool = False) -> None:
        self.calls.append("delete")
        (self.state_root / container_id).rmdir()


def _proc() -> StepProcess:
    return StepProcess(argv=["/bin/sh", "-c", "true"], env=["PATH=/bin"], workdir="/", user="")


def _rootfs(tmp_path: Path) -> Path:
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    (rootfs / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    return rootfs


def _runner(tmp_path: Path, runc: _Runc) -> StepRunner:
    return StepRunner(runc, tmp_path / "steps")


def test_a_run_that_returned_its_exit_code_needs_no_runc_delete(tmp_path: Path) -> None:
    runc = _Runc(tmp_path / "runc")
    code = asyncio.run(_runner(tmp_path, runc).run("c1", _rootfs(tmp_path), _proc(), print))
    assert code == 3
    assert runc.calls == ["run"]
    assert not (tmp_path / "steps" / "c1").exists()


def test_a_container_runc_still_knows_is_deleted(tmp_path: Path) -> None:
    runc = _Runc(tmp_path / "runc", leaves_state=True)
    asyncio.run(_runner(tmp_path, runc).run("c2", _rootfs(tmp_path), _proc(), print))
    assert runc.calls == ["run", "delete"]
    assert not (tmp_path / "runc" / "c2").exists()


def _cancel_while_running(tmp_path: Path, runc: _Runc, container_id: str) -> None:
    """Start a step whose `runc run` hangs, cancel it once runc runs, see it cancelled."""

    async def main() -> None:
        task = asyncio.ensure_future(
            _runner(tmp_path, runc).run(container_id, _rootfs(tmp_path), _proc(), print)
        )
        while "run" not in runc.calls:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())


def test_a_cancelled_run_is_deleted(tmp_path: Path) -> None:
    runc = _Runc(tmp_path / "runc", hang=True)

    _cancel_while_running(tmp_path, runc, "c3")
    # killed while the readers drain, then deleted again in the clean-up (runc says "does
    # not exist" to the second, which is ignored)
    assert runc.calls == ["run", "delete", "delete"]
    assert not (tmp_path / "runc" / "c3").exists()


def test_the_cgroup_attach_is_warmed_before_runc_runs(tmp_path: Path) -> None:
    # runtime/cgroupwarm.py: the grace period runc's cgroup write would wait starts as the
    # step begins, before the bundle is written and runc started
    from dockyard.runtime.cgroupwarm import AttachWarmer

    runc = _Runc(tmp_path / "runc")

    class Warmer(AttachWarmer):
        def kick(self) -> None:
            runc.calls.append("warm")

    runner = StepRunner(runc, tmp_path / "steps", warmer=Warmer())
    assert asyncio.run(runner.run("c1", _rootfs(tmp_path), _proc(), print)) == 3
    assert runc.calls == ["warm", "run"]


class _RefusingRunc(_Runc):
    """`runc delete --force` refuses once (as runc may while the container's state is in
    flux); `runc kill --all` then stops it."""

    def __init__(self, state_root: Path) -> None:
        super().__init__(state_root, hang=True)
        self.refusals = 1

    async def delete(self, container_id: str, force: bool = False) -> None:
        if self.refusals:
            self.refusals -= 1
            self.calls.append("delete refused")
            from dockyard.errors import RuntimeFailure

            raise RuntimeFailure("runc delete: container is being modified")
        await super().delete(container_id, force)

    async def kill(self, container_id: str, signal: int = 15, all: bool = False) -> None:
        self.calls.append(f"kill {signal}{' --all' if all else ''}")


def test_a_cancelled_step_whose_delete_fails_is_killed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # a refused delete was swallowed silently: the step's process could run on after its
    # build was cancelled, and nothing said why
    runc = _RefusingRunc(tmp_path / "runc")

    with caplog.at_level("WARNING", logger="dockyard.builder"):
        _cancel_while_running(tmp_path, runc, "c4")
    assert runc.calls[:4] == ["run", "delete refused", "kill 9 --all", "delete"]
    assert not (tmp_path / "runc" / "c4").exists()
    assert "killing it" in caplog.text
