"""Our CLI against the reference dockerd, beside docker CLI 28 on the same daemon, for the
commands whose endpoints dockyard's daemon does not serve yet (events, system df): the CLI
side is checked where the daemon side exists. DOCKER_API_VERSION pins 1.41 for both."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.interop.conftest import Side

pytestmark = [pytest.mark.root, pytest.mark.dockerd]


def _ours(theirs: Side, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(theirs.env, DOCKYARD_HOST=theirs.env["DOCKER_HOST"], DOCKER_API_VERSION="1.41")
    return subprocess.run(
        [sys.executable, "-m", "dockyard.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _docker(theirs: Side, *args: str) -> subprocess.CompletedProcess[str]:
    return theirs.docker("28", *args)


def test_events_default_and_format(theirs: Side) -> None:
    since = f"{time.time() - 1:.0f}"
    name = f"ev-{time.monotonic_ns() % 100000}"
    theirs.ok("28", "create", "--name", name, "--label", "z=1", "--label", "a=2", "busybox", "true")
    theirs.ok("28", "rm", name)
    time.sleep(1.1)
    until = f"{time.time():.0f}"
    for extra in (
        [],
        ["--format", "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}"],
        ["--format", "json"],
        ["--filter", "event=destroy", "--format", "{{json .Actor.Attributes}}"],
    ):
        args = ["events", "--since", since, "--until", until, *extra]
        ours, docker = _ours(theirs, *args), _docker(theirs, *args)
        assert (ours.returncode, ours.stdout) == (docker.returncode, docker.stdout), (
            args,
            ours.stderr,
            docker.stderr,
        )
        assert name in ours.stdout


def test_system_df_summary_and_format(theirs: Side) -> None:
    for extra in ([], ["--format", "{{.Type}}: {{.TotalCount}} {{.Active}}"], ["--format", "json"]):
        ours, docker = (
            _ours(theirs, "system", "df", *extra),
            _docker(theirs, "system", "df", *extra),
        )
        assert ours.returncode == docker.returncode == 0, (ours.stderr, docker.stderr)
        assert ours.stdout == docker.stdout, (extra, ours.stdout, docker.stdout)


def test_system_prune_output(theirs: Side) -> None:
    name = f"pr-{time.monotonic_ns() % 100000}"
    theirs.ok("28", "create", "--name", name, "busybox", "true")
    ours = _ours(theirs, "system", "prune", "-f")
    assert ours.returncode == 0, ours.stderr
    assert (
        ours.stdout.startswith("Deleted Containers:\n") and "Total reclaimed space:" in ours.stdout
    )
    again, docker = _ours(theirs, "system", "prune", "-f"), _docker(theirs, "system", "prune", "-f")
    assert again.stdout == docker.stdout == "Total reclaimed space: 0B\n"
    cancelled = _ours(theirs, "system", "prune")
    assert cancelled.returncode != 0 and "cancelled" in cancelled.stderr
