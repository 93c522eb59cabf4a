"""Shared fixtures: a dockyard daemon on temporary paths, base images, client runners.

Integration tests talk to a real daemon through real clients (our CLI, the docker CLI);
they need root, runc and overlayfs and are marked `root`. Base images come from Debian's
busybox-static (tests/support/rootfs.py), imported once per daemon.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.daemons import DockyardDaemon
from tests.support.rootfs import busybox_rootfs_tar

IS_ROOT = os.geteuid() == 0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if IS_ROOT:
        return
    skip = pytest.mark.skip(reason="needs root (runc, overlayfs, mounts)")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)


def short_tmp(prefix: str) -> Path:
    """A short temporary directory (Unix socket paths hold 107 bytes)."""
    path = Path("/tmp") / f"{prefix}{secrets.token_hex(3)}"
    path.mkdir(mode=0o700)
    return path


@dataclass
class Clients:
    """Runs our CLI and the docker CLI against one daemon."""

    daemon: DockyardDaemon

    def dockyard(
        self, *args: str, input: bytes | None = None, cwd: Path | None = None, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        return self._run([sys.executable, "-m", "dockyard.cli.main", *args], input, cwd, timeout)

    def docker(
        self, *args: str, input: bytes | None = None, cwd: Path | None = None, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        return self._run(["docker", *args], input, cwd, timeout)

    def _run(
        self, argv: list[str], input: bytes | None, cwd: Path | None, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            argv,
            env=self.daemon.env(),
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            cwd=cwd,
            timeout=timeout,
        )
        return subprocess.CompletedProcess(
            proc.args,
            proc.returncode,
            proc.stdout.decode(errors="replace"),
            proc.stderr.decode(errors="replace"),
        )

    def ok(self, *args: str, cwd: Path | None = None) -> str:
        """Run our CLI and insist on success; returns stdout."""
        proc = self.dockyard(*args, cwd=cwd)
        assert proc.returncode == 0, (
            f"dockyard {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
        return proc.stdout


def _start_daemon() -> DockyardDaemon:
    return DockyardDaemon(short_tmp("dyt-")).start()


@pytest.fixture(scope="session")
def daemon() -> Iterator[DockyardDaemon]:
    """One daemon for the session (tests use unique names); see `fresh_daemon` for isolation."""
    if not IS_ROOT:
        pytest.skip("needs root")
    d = _start_daemon()
    try:
        yield d
    finally:
        d.cleanup()


@pytest.fixture
def fresh_daemon() -> Iterator[DockyardDaemon]:
    if not IS_ROOT:
        pytest.skip("needs root")
    d = _start_daemon()
    try:
        yield d
    finally:
        d.cleanup()


def with_busybox(daemon: DockyardDaemon) -> Clients:
    """Clients of `daemon`, with busybox:latest imported into it."""
    c = Clients(daemon)
    proc = c.dockyard("import", str(busybox_rootfs_tar()), "busybox:latest")
    assert proc.returncode == 0, proc.stderr
    return c


@contextmanager
def own_daemon(base: Path, extra_args: list[str] | None = None) -> Iterator[Clients]:
    """A daemon of the caller's own on `base` (a test that restarts, crashes or fills it),
    with busybox imported; stopped and everything it left removed afterwards."""
    d = DockyardDaemon(base, extra_args=list(extra_args or []))
    try:
        d.start()
        yield with_busybox(d)
    finally:
        d.cleanup()


@pytest.fixture(scope="session")
def clients(daemon: DockyardDaemon) -> Clients:
    return with_busybox(daemon)


@pytest.fixture
def fresh_clients(fresh_daemon: DockyardDaemon) -> Clients:
    return with_busybox(fresh_daemon)


def write_context(path: Path, dockerfile: str, files: dict[str, str | bytes] | None = None) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "Dockerfile").write_text(dockerfile)
    for name, content in (files or {}).items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)
    return path
