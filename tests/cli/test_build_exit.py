"""A failed build exits with the failed step's status (errorDetail.code), as docker CLI 28 does
against the same daemon; 1 when the daemon gives no code (docker/cli image/build.go)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import Clients, write_context

pytestmark = pytest.mark.root


@pytest.mark.parametrize("quiet", [False, True])
def test_failed_run_step_exit_status(clients: Clients, tmp_path: Path, quiet: bool) -> None:
    write_context(tmp_path, "FROM busybox\nRUN echo about to fail && exit 100\n")
    args = ["build", *(["-q"] if quiet else []), str(tmp_path)]
    ours, docker = clients.dockyard(*args), clients.docker(*args)
    assert ours.returncode == docker.returncode == 100, (ours.stderr, docker.stderr)
    assert "returned a non-zero code: 100" in ours.stderr
    if quiet:  # -q shows the step's output only on failure, on stderr
        assert "about to fail" in ours.stderr and "about to fail" in docker.stderr


def test_failure_without_a_code_exits_1(clients: Clients, tmp_path: Path) -> None:
    write_context(tmp_path, "FROM busybox\nCOPY missing.txt /\n")
    ours, docker = clients.dockyard("build", str(tmp_path)), clients.docker("build", str(tmp_path))
    assert ours.returncode == docker.returncode == 1, (ours.stderr, docker.stderr)


def test_ctrl_c_exits_130_and_the_daemon_ends_the_step(clients: Clients, tmp_path: Path) -> None:
    """Ctrl-C of `dockyard build` mid-RUN: the CLI exits 130 at once (docker's status for
    SIGINT) and the daemon, seeing the build's connection and session go, kills the step's
    process rather than letting it run on (moby cancels the build's context)."""
    marker = f"{os.getpid() % 1000 + 4000}"  # a sleep no other test runs
    write_context(tmp_path, f"FROM busybox\nRUN echo started && exec sleep {marker}\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "dockyard.cli.main", "build", "--no-cache", str(tmp_path)],
        env=clients.daemon.env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        # a worker may have been started with SIGINT ignored, which the child would inherit
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if b"started" in line:
                break
        else:
            pytest.fail("the RUN step never started")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 130
    finally:
        proc.kill()
        proc.wait()

    def step_running() -> bool:
        found = subprocess.run(["pgrep", "-f", f"sleep {marker}"], capture_output=True)
        return found.returncode == 0

    deadline = time.monotonic() + 15
    while step_running() and time.monotonic() < deadline:
        time.sleep(0.2)
    if step_running():
        # seen twice under the suite's load, never alone: say what held the step
        ps = subprocess.run(["ps", "-eo", "pid,ppid,stat,etimes,args"], capture_output=True)
        lines = [x for x in ps.stdout.decode().splitlines() if "sleep" in x or "runc" in x]
        log = clients.daemon.log.read_text(errors="replace")[-6000:]
        pytest.fail("the daemon left the cancelled step running:\n" + "\n".join(lines) + "\n" + log)
