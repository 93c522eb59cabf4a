"""Daemons for tests: a dockyard daemon and the reference dockerd, each on temporary paths.

Both run in the foreground as children of the test process and are stopped by the test;
neither touches the default socket or storage (DESIGN.md, "Docker as the reference in tests").
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def wait_for_socket(
    path: Path, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"daemon exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        if path.exists():
            s = socket.socket(socket.AF_UNIX)
            try:
                s.connect(str(path))
                return
            except OSError:
                pass
            finally:
                s.close()
        time.sleep(0.05)
    raise RuntimeError(f"daemon did not listen on {path}:\n{log.read_text()[-3000:]}")


def mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve())
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mnt = line.split()[4]
            if mnt == prefix or mnt.startswith(prefix + "/"):
                out.append(mnt)
    return out


def unmount_all_under(path: Path) -> None:
    for mnt in sorted(mounts_under(path), key=len, reverse=True):
        subprocess.run(["umount", "-l", mnt], capture_output=True)


def hidden_from_daemon(path: Path) -> list[str]:
    """A DockyardDaemon wrapper: the daemon runs in a mount namespace of its own in which
    `path` is an empty tmpfs, so it cannot read what a client keeps there (by path or
    through /proc/PID/root)."""
    return [
        "unshare",
        "-m",
        "--propagation",
        "private",
        "--",
        "sh",
        "-c",
        'mount -t tmpfs -o size=1m,mode=700 hidden "$0" && exec "$@"',
        str(path),
    ]


@dataclass
class DockyardDaemon:
    """A dockyard daemon on `base/root` serving `base/dockyard.sock`."""

    base: Path
    extra_args: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    # argv the daemon's command is appended to (`unshare -m …` for a daemon in a mount
    # namespace of its own)
    wrapper: list[str] = field(default_factory=list)

    @property
    def root(self) -> Path:
        return self.base / "root"

    @property
    def socket(self) -> Path:
        return self.base / "dockyard.sock"

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    @property
    def log(self) -> Path:
        return self.base / "daemon.log"

    def env(self) -> dict[str, str]:
        """Environment for clients: our CLI and the docker CLI both point at this daemon."""
        env = dict(os.environ)
        env.update(
            DOCKYARD_HOST=self.host,
            DOCKYARD_ROOT=str(self.root),
            DOCKER_HOST=self.host,
            DOCKER_BUILDKIT="0",
            DOCKER_CONFIG=str(self.base / "docker-config"),
        )
        return env

    def start(self) -> DockyardDaemon:
        self.base.mkdir(parents=True, exist_ok=True)
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [
                *self.wrapper,
                sys.executable,
                "-m",
                "dockyard.api.daemon",
                "--root",
                str(self.root),
                "--host",
                self.host,
                *self.extra_args,
            ],
            stdout=logf,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        logf.close()
        wait_for_socket(self.socket, self.proc, self.log)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def cleanup(self) -> None:
        """Stop the daemon, then remove whatever its containers left (tests end clean)."""
        self.stop()
        kill_containers_of(self.root)
        # A daemon stopped while containers run keeps their bridges; tests leave no network
        from dockyard.engine.network import remove_daemon_bridges

        remove_daemon_bridges(self.root)
        unmount_all_under(self.base)
        shutil.rmtree(self.base, ignore_errors=True)


def kill_containers_of(root: Path) -> None:
    """Kill monitors and runc containers that a daemon on `root` left running."""
    state = root / "runc"
    if state.exists():
        out = subprocess.run(
            ["runc", "--root", str(state), "list", "-q"], capture_output=True, text=True
        )
        for cid in out.stdout.split():
            subprocess.run(["runc", "--root", str(state), "kill", cid, "KILL"], capture_output=True)
            time.sleep(0.05)
            subprocess.run(["runc", "--root", str(state), "delete", "-f", cid], capture_output=True)
    containers = root / "containers"
    if containers.exists():
        for pidfile in containers.glob("*/monitor.pid"):
            with contextlib.suppress(ValueError, OSError):
                os.kill(int(pidfile.read_text().strip()), signal.SIGKILL)


@dataclass
class ReferenceDockerd:
    """Debian's dockerd (docker.io) on temporary paths, leaving the host's networking alone:
    without a bridge or iptables rules, or (`netns`) inside a network namespace the caller
    made, where its default bridge and rules touch nothing of the host's."""

    base: Path
    netns: str = ""
    extra_args: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    # another dockerd binary: trixie's 26.1 (tests/support/trixie.py) as the current reference
    binary: str = "dockerd"

    @property
    def socket(self) -> Path:
        return self.base / "docker.sock"

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            DOCKER_HOST=self.host,
            DOCKER_BUILDKIT="0",
            DOCKER_CONFIG=str(self.base / "docker-config"),
        )
        return env

    @staticmethod
    def available() -> bool:
        return shutil.which("dockerd") is not None

    def start(self) -> ReferenceDockerd:
        self.base.mkdir(parents=True, exist_ok=True)
        log = self.base / "dockerd.log"
        logf = open(log, "ab")
        # nsenter, not `ip netns exec`: that remounts /sys and hides the cgroup mounts
        prefix = ["nsenter", f"--net=/run/netns/{self.netns}"] if self.netns else []
        isolation = [] if self.netns else ["--iptables=false", "--bridge=none"]
        self.proc = subprocess.Popen(
            [
                *prefix,
                self.binary,
                "--host",
                self.host,
                "--data-root",
                str(self.base / "data"),
                "--exec-root",
                str(self.base / "exec"),
                "--pidfile",
                str(self.base / "pid"),
                *isolation,
                *self.extra_args,
            ],
            stdout=logf,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        logf.close()
        wait_for_socket(self.socket, self.proc, log, timeout=60)
        return self

    def cleanup(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            # dockerd's shutdown stops each running container with its stop timeout (10 s
            # for a PID 1 that ignores SIGTERM); the tests' containers hold nothing to save
            self._kill_running()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        unmount_all_under(self.base)
        shutil.rmtree(self.base, ignore_errors=True)

    def _kill_running(self) -> None:
        docker = shutil.which("docker")
        if docker is None:
            return
        env = self.env()
        ids = subprocess.run(
            [docker, "ps", "-q"], env=env, capture_output=True, text=True, timeout=30
        ).stdout.split()
        if ids:
            subprocess.run([docker, "kill", *ids], env=env, capture_output=True, timeout=60)
