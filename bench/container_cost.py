"""What a running container costs dockyard (issue 17, row h, last line).

cost = (PSS of the daemon and of every per-container process — monitor, port proxy — with N
containers running, each with `-p`, minus the same with none) / N. PSS (proportional set size)
splits shared pages among their users, so N copies of one static binary are not counted N
times. Also prints `run --rm true` latency on the bridge and with `--network none`.

Usage: .venv/bin/python bench/container_cost.py [-n 50] [--python]   (--python: the Python
monitor and port proxy, for the before/after comparison). Not a test; prints numbers only.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import short_tmp
from tests.support.daemons import DockyardDaemon
from tests.support.rootfs import busybox_rootfs_tar

from bench.memory import usage

PER_CONTAINER = (b"dockyard-monitor-", b"dockyard.runtime.monitor", b"dockyard-portproxy-")
PER_CONTAINER += (b"dockyard.runtime.portproxy",)


def smaps_kib(pid: int) -> tuple[int, int]:
    """(PSS, RSS) of a process in KiB; (0, 0) if it is gone (bench/memory.py reads them)."""
    u = usage(pid)
    return u.pss_kib, u.rss_kib


def processes_of(root: Path) -> dict[int, bytes]:
    """Monitors and port proxies whose command line names this daemon's root or containers."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if any(tag in cmdline for tag in PER_CONTAINER) and str(root).encode() in cmdline:
            out[int(entry.name)] = cmdline
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("-n", type=int, default=50)
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--python", action="store_true")
    args = p.parse_args()
    if args.python:
        os.environ["DOCKYARD_MONITOR"] = os.environ["DOCKYARD_PORTPROXY"] = "python"
    daemon = DockyardDaemon(short_tmp("dycost-")).start()
    env = daemon.env()
    cli = [sys.executable, "-m", "dockyard.cli.main"]

    def run(*argv: str) -> str:
        proc = subprocess.run([*cli, *argv], env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"{argv} failed: {proc.stderr}")
        return proc.stdout.strip()

    try:
        run("import", str(busybox_rootfs_tar()), "bb:latest")
        run("run", "--rm", "bb", "true")  # warm: bridge made, binaries found
        for net in ("bridge", "none"):
            samples = []
            for _ in range(args.runs):
                t0 = time.perf_counter()
                run("run", "--rm", "--network", net, "bb", "true")
                samples.append(time.perf_counter() - t0)
            print(
                f"run --rm --network {net} true: median {statistics.median(samples):.3f} s "
                f"(min {min(samples):.3f}, max {max(samples):.3f}, n={args.runs})"
            )
        assert daemon.proc is not None
        time.sleep(1)
        idle_pss, _ = smaps_kib(daemon.proc.pid)
        ids = [run("run", "-d", "-p", "80", "bb", "sleep", "3600") for _ in range(args.n)]
        time.sleep(2)
        procs = processes_of(daemon.root)
        # port proxies name the container, not the root, in their command line
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    cmdline = (entry / "cmdline").read_bytes()
                except OSError:
                    continue
                if b"portproxy" in cmdline and any(i.encode() in cmdline for i in ids):
                    procs[int(entry.name)] = cmdline
        busy_pss, _ = smaps_kib(daemon.proc.pid)
        monitors = [smaps_kib(pid) for pid, c in procs.items() if b"monitor" in c]
        proxies = [smaps_kib(pid) for pid, c in procs.items() if b"portproxy" in c]
        for name, group in (("monitor", monitors), ("port proxy", proxies)):
            if group:
                pss = sum(g[0] for g in group) / len(group)
                rss = sum(g[1] for g in group) / len(group)
                print(f"{name}: {len(group)} processes, PSS {pss:.0f} KiB, RSS {rss:.0f} KiB each")
        total = sum(g[0] for g in monitors + proxies) + busy_pss - idle_pss
        print(f"daemon PSS: {idle_pss} KiB with none, {busy_pss} KiB with {args.n}")
        print(f"cost per running container: {total / args.n:.0f} KiB PSS (n={args.n})")
        run("rm", "-f", *ids)
    finally:
        daemon.cleanup()


if __name__ == "__main__":
    main()
