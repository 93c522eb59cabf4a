"""A failed build exits with the failed step's status (errorDetail.code), as docker CLI 28 does
against the same daemon; 1 when the daemon gives no code (docker/cli image/build.go)."""

from __future__ import annotations

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
