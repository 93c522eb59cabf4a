"""Helpers for container tests: the docker CLI that must succeed, a pty driver, leftovers."""

from __future__ import annotations

import json
import os
import pty
import select
import struct
import subprocess
import termios
import time
from pathlib import Path
from typing import Any

from tests.conftest import Clients
from tests.support.daemons import mounts_under


def docker_ok(clients: Clients, *args: str, input: bytes | None = None) -> str:
    proc = clients.docker(*args, input=input, timeout=120)
    assert proc.returncode == 0, f"docker {' '.join(args)} ({proc.returncode}):\n{proc.stderr}"
    return proc.stdout


def inspect(clients: Clients, name: str) -> dict[str, Any]:
    data: list[dict[str, Any]] = json.loads(docker_ok(clients, "inspect", name))
    return data[0]


def wait_for(predicate: Any, timeout: float = 15.0, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


class PtyProcess:
    """A client command on a real terminal (what `docker run -it` needs)."""

    def __init__(self, argv: list[str], env: dict[str, str], rows: int = 24, cols: int = 80):
        self.master, slave = pty.openpty()
        self.set_size(rows, cols)
        self.proc = subprocess.Popen(
            argv,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            start_new_session=True,
            preexec_fn=lambda: __import__("fcntl").ioctl(0, termios.TIOCSCTTY, 0),
        )
        os.close(slave)
        self.output = b""

    def set_size(self, rows: int, cols: int) -> None:
        import fcntl

        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def read_until(self, needle: bytes, timeout: float = 15.0, start: int = 0) -> bytes:
        """Read until `needle` is in the output from offset `start` on."""
        deadline = time.monotonic() + timeout
        while needle not in self.output[start:]:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{needle!r} not seen; output so far: {self.output!r}")
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"EOF before {needle!r}; output: {self.output!r}")
                self.output += chunk
        return self.output

    def until_shell_answers(self, prompt: bytes = b"# ", tries: int = 30) -> None:
        """Press Enter until the attached shell prints its prompt anew: input typed before
        the client has put the terminal in raw mode and connected is echoed by the terminal
        itself and may never reach the container, so a fixed sleep before typing is a race
        on a loaded machine."""
        for _ in range(tries):
            mark = len(self.output)
            self.send(b"\r")
            try:
                self.read_until(prompt, timeout=0.5, start=mark)
                return
            except AssertionError as exc:
                if "EOF" in str(exc):
                    raise
        raise AssertionError(f"the shell never answered; output: {self.output!r}")

    def wait(self, timeout: float = 20.0) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if ready:
                try:
                    self.output += os.read(self.master, 4096)
                except OSError:
                    pass
        code = self.proc.wait(max(0.1, deadline - time.monotonic()))
        while select.select([self.master], [], [], 0.2)[0]:
            try:
                chunk = os.read(self.master, 4096)
            except OSError:
                break
            if not chunk:
                break
            self.output += chunk
        os.close(self.master)
        return code


def host_links() -> set[str]:
    return set(os.listdir("/sys/class/net"))


def iptables_rules() -> str:
    out = []
    for table in ("filter", "nat"):
        out.append(
            subprocess.run(
                ["iptables", "-w", "-t", table, "-S"], capture_output=True, text=True
            ).stdout
        )
    return "".join(out)


def daemon_bridges(root: Path) -> list[str]:
    out = []
    for p in (root / "networks").glob("*.json"):
        bridge = json.loads(p.read_text()).get("Bridge")
        if bridge:
            out.append(bridge)
    return sorted(out)


def bridge_ports(root: Path) -> list[str]:
    """veth ends plugged into this daemon's bridges (other daemons may run beside us)."""
    ports: list[str] = []
    for br in daemon_bridges(root):
        brif = Path(f"/sys/class/net/{br}/brif")
        if brif.exists():
            ports += sorted(os.listdir(brif))
    return ports


def _our_cgroups(root: Path) -> list[str]:
    """cgroups (any hierarchy, v1 or v2) named after this daemon's containers."""
    ours = (
        {p.name for p in (root / "containers").iterdir()}
        if (root / "containers").exists()
        else set()
    )
    found = set()
    base = Path("/sys/fs/cgroup")
    for parent in [base / "dockyard", *base.glob("*/dockyard")]:
        if parent.is_dir():
            found |= {d.name for d in parent.iterdir() if d.is_dir() and d.name in ours}
    return sorted(found)


def snapshot_leftovers(root: Path) -> dict[str, Any]:
    """What a failed operation must not add: mounts, links, rules, runc state, netns files."""
    runc_state = root / "runc"
    bridges = daemon_bridges(root)
    return {
        "mounts": sorted(mounts_under(root)),
        "links": bridge_ports(root),
        "rules": [r for r in iptables_rules().splitlines() if any(b in r for b in bridges)],
        "runc": sorted(p.name for p in runc_state.iterdir() if p.is_dir())
        if runc_state.exists()
        else [],
        "netns": sorted(str(p) for p in (root / "containers").glob("*/netns")),
        "cgroups": _our_cgroups(root),
    }


def settled_leftovers(root: Path, timeout: float = 5.0) -> dict[str, Any]:
    """snapshot_leftovers once two reads 0.2 s apart agree: a container that just went
    (`run --rm` returned) may still have its runc state for a moment, since the monitor
    reports the exit first and runs `runc delete` after it (dockyard-monitor.c, issue 17 row d)."""
    import time

    deadline = time.monotonic() + timeout
    last = snapshot_leftovers(root)
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = snapshot_leftovers(root)
        if now == last:
            return now
        last = now
    return last


def leftovers_back_to(root: Path, before: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
    """The snapshot once it equals `before`, or the last one read after `timeout` (what a
    failed operation left for good); transient state (a runc delete in flight) gets its time."""
    import time

    deadline = time.monotonic() + timeout
    now = snapshot_leftovers(root)
    while now != before and time.monotonic() < deadline:
        time.sleep(0.2)
        now = snapshot_leftovers(root)
    return now
