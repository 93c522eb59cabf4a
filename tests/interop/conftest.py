"""Fixtures for interop tests: the reference dockerd beside our daemon, and both docker CLIs.

`reference` is Debian's dockerd on temporary paths (tests/support/daemons.py) with the same
busybox root filesystem imported as `busybox:latest`; tests using it are marked `dockerd` and
skip where it is not installed. `Side` runs a docker CLI against one daemon, so a test can run
the same command against both and compare what the user sees.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import IS_ROOT, Clients, short_tmp
from tests.support.daemons import ReferenceDockerd
from tests.support.rootfs import busybox_rootfs_tar

DOCKER_CLIS = {"28": "/usr/local/bin/docker", "20.10": "/usr/bin/docker"}
CLI_VERSIONS = [v for v, path in DOCKER_CLIS.items() if os.path.exists(path)]


@dataclass
class Side:
    """One daemon as the docker CLI sees it."""

    name: str
    env: dict[str, str]

    def docker(
        self,
        cli: str,
        *args: str,
        input: bytes | None = None,
        timeout: float = 120,
        cwd: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [DOCKER_CLIS[cli], *args],
            env=self.env,
            input=input.decode() if input else None,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=cwd,
        )

    def ok(self, cli: str, *args: str, cwd: Path | None = None) -> str:
        proc = self.docker(cli, *args, cwd=cwd)
        assert proc.returncode == 0, (
            f"[{self.name}] docker {' '.join(args)} failed ({proc.returncode}):\n"
            f"{proc.stdout}\n{proc.stderr}"
        )
        return proc.stdout


@pytest.fixture(scope="session")
def reference() -> Iterator[ReferenceDockerd]:
    if not IS_ROOT:
        pytest.skip("needs root")
    if not ReferenceDockerd.available():
        pytest.skip("the reference dockerd (Debian docker.io) is not installed")
    ref = ReferenceDockerd(short_tmp("dkr-")).start()
    try:
        proc = subprocess.run(
            ["docker", "import", str(busybox_rootfs_tar()), "busybox:latest"],
            env=ref.env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        yield ref
    finally:
        ref.cleanup()


@pytest.fixture(scope="session")
def ours(clients: Clients) -> Side:
    return Side("dockyard", clients.daemon.env())


@pytest.fixture(scope="session")
def theirs(reference: ReferenceDockerd) -> Side:
    return Side("dockerd", reference.env())


_NORMALISERS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"sha256:[0-9a-f]{64}"), "sha256:<ID>"),
    (re.compile(r"\b[0-9a-f]{64}\b"), "<ID>"),
    (re.compile(r"\b[0-9a-f]{12}\b"), "<ID>"),
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)"), "<TIME>"),
    (re.compile(r"(About a|About an|Less than a|\d+) (second|minute|hour)s? ago"), "<AGO>"),
    (re.compile(r"Up (About a|About an|Less than a|\d+) (second|minute|hour)s?"), "Up <T>"),
    (re.compile(r"Exited \((\d+)\) <AGO>"), r"Exited (\1) <AGO>"),
    (re.compile(r"\b\d+(\.\d+)?\s?(B|kB|KB|MB|GB)\b"), "<SIZE>"),
    (re.compile(r"[ \t]{2,}"), "  "),
    (re.compile(r"[ \t]+$", re.M), ""),
)


def normalise(text: str, *, names: dict[str, str] | None = None) -> str:
    """What stays when IDs, times, sizes and column padding are taken out."""
    for old, new in (names or {}).items():
        text = text.replace(old, new)
    for pattern, repl in _NORMALISERS:
        text = pattern.sub(repl, text)
    return text


def has_tool(name: str) -> bool:
    return shutil.which(name) is not None
