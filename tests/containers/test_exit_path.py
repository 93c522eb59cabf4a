"""A container's exit as the monitor reports it: before its `runc delete` (issue 17 row d).

The daemon here runs a runc whose `delete` from the monitor takes a second, so what depends on the order shows:
a start again must wait for the previous run's delete of the same runc ID, or that delete
would take the new run down with it.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import IS_ROOT, Clients, own_daemon, short_tmp
from tests.containers.helpers import docker_ok, wait_for

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def slow_delete() -> Iterator[Clients]:
    if not IS_ROOT:
        pytest.skip("needs root")
    base = short_tmp("dyexit-")
    wrapper = base / "slow-delete-runc"
    base.mkdir(parents=True, exist_ok=True)
    # Only the monitor's delete is slow (it passes --log; the daemon's own runc calls do not).
    wrapper.write_text(
        '#!/bin/sh\ncase " $* " in *" --log "*" delete "*) sleep 1;; esac\nexec runc "$@"\n'
    )
    wrapper.chmod(0o755)
    with own_daemon(base, ["--runtime", str(wrapper)]) as c:
        yield c


def _runc_ids(c: Clients) -> list[str]:
    root = Path(c.daemon.root) / "runc"
    out = subprocess.run(["runc", "--root", str(root), "list", "-q"], capture_output=True)
    return out.stdout.decode().split()


def test_a_start_right_after_the_exit_waits_for_the_previous_delete(slow_delete: Clients) -> None:
    c = slow_delete
    name = "again"
    run = c.docker("run", "--name", name, "busybox", "sh", "-c", "sleep 1.5; exit 3")
    assert run.returncode == 3, run.stderr
    # Started again at once: the first run's delete (1 s late) must not take this one down.
    again = c.docker("start", "-a", name)
    assert again.returncode == 3, again.stderr
    assert docker_ok(c, "inspect", "-f", "{{.State.ExitCode}}", name).strip() == "3"
    docker_ok(c, "rm", name)
    wait_for(lambda: not _runc_ids(c), timeout=10)


def test_run_rm_returns_with_the_container_gone_and_its_name_free(slow_delete: Clients) -> None:
    """Docker's `run --rm` answers after the removal: `ps -a` right after does not show it
    and its name is free, though here its monitor's `runc delete` is still running."""
    c = slow_delete
    run = c.docker("run", "--rm", "--name", "gone", "busybox", "true")
    assert run.returncode == 0, run.stderr
    assert docker_ok(c, "ps", "-a", "-q", "--filter", "name=gone") == ""
    cid = docker_ok(c, "create", "--name", "gone", "busybox", "true").strip()
    docker_ok(c, "rm", cid)
    states = Path(c.daemon.root) / "containers"
    wait_for(lambda: not any(states.iterdir()), timeout=10)
    wait_for(lambda: not _runc_ids(c), timeout=10)


def _mount_options(rootfs: Path) -> str:
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[4] == str(rootfs):
            return line.split(" - ", 1)[1]
    return ""


def test_a_rm_containers_upper_dir_is_volatile_and_only_its(slow_delete: Clients) -> None:
    """Its upper dir goes with it, so nothing in it is ever synced, at the unmount neither
    (overlayfs `volatile`); a container that stays keeps a faithful, synced upper dir."""
    c = slow_delete
    states = Path(c.daemon.root) / "containers"
    rm = docker_ok(c, "run", "-d", "--rm", "busybox", "sleep", "30").strip()
    kept = docker_ok(c, "run", "-d", "busybox", "sleep", "30").strip()
    try:
        assert "volatile" in _mount_options((states / rm / "rootfs").resolve())
        kept_options = _mount_options((states / kept / "rootfs").resolve())
        assert kept_options and "volatile" not in kept_options
    finally:
        docker_ok(c, "rm", "-f", rm, kept)


def test_a_start_failing_before_runc_leaves_no_monitor(slow_delete: Clients) -> None:
    """The monitor starts while the bundle is made (held until it is); a start that fails
    before runc (a bind source gone) calls it off: no monitor, no runc container."""
    c = slow_delete
    src = short_tmp("dyexit-src-")
    src.mkdir(parents=True, exist_ok=True)
    cid = docker_ok(
        c, "create", "--mount", f"type=bind,source={src},target=/x", "busybox", "true"
    ).strip()
    src.rmdir()
    assert c.docker("start", cid).returncode != 0
    state = Path(c.daemon.root) / "containers" / cid
    wait_for(lambda: not (state / "monitor.pid").exists(), timeout=10)
    assert not (state / "exit.json").exists()
    assert cid not in _runc_ids(c)
    docker_ok(c, "rm", cid)
