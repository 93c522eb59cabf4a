"""Load and scale timings (issue 10 §3-§4): big logs, big output, many containers.

Each daemon runs on temporary paths (tests/support/daemons.py) with the same busybox base;
the reference dockerd 20.10 gets the same workload where it applies (`--no-docker` skips it).
- `logs --tail 5` of a 300 MB json-file log, and /_ping's latency while a client streams
  the whole log (the daemon must keep answering), with the daemon's peak RSS;
- a container writing 200 MB to stdout, attached by a fast and by a slow reader: peak RSS;
- 50 containers started at once (create + start in parallel) and stopped at once;
- 200 sequential `run --rm`: the daemon's RSS before and after.
Usage: .venv/bin/python bench/bench_robust.py [--only logs,output,many,runs] [--no-docker]
Not a test: prints what it measured.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import short_tmp
from tests.support.api import PeakRSS, request, rss
from tests.support.daemons import DockyardDaemon, ReferenceDockerd
from tests.support.rootfs import busybox_rootfs_tar


class Side:
    def __init__(self, name: str, env: dict[str, str], sock: Path, pid: int) -> None:
        self.name, self.env, self.sock, self.pid = name, env, sock, pid

    def docker(self, *args: str, stdout: int | None = subprocess.DEVNULL) -> None:
        proc = subprocess.run(
            ["docker", *args], env=self.env, stdout=stdout, stderr=subprocess.PIPE
        )
        if proc.returncode != 0:
            raise SystemExit(f"[{self.name}] docker {' '.join(args)}: {proc.stderr.decode()}")


def median_of(fn: Callable[[], object], runs: int) -> float:
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def bench_logs(side: Side) -> None:
    script = "head -c 300000000 /dev/zero | tr '\\0' x; echo; seq 1000 1004"
    side.docker("run", "--name", "biglog", "busybox", "sh", "-c", script)
    with PeakRSS(side.pid) as peak:
        tail = median_of(
            lambda: request(side.sock, "GET", "/containers/biglog/logs?stdout=1&tail=5"), 5
        )
    print(
        f"[{side.name}] logs --tail 5 of a 300 MB log: {tail * 1000:.1f} ms, peak RSS {peak.peak_mb:.0f} MB"
    )
    pings: list[float] = []
    with PeakRSS(side.pid) as peak, concurrent.futures.ThreadPoolExecutor(1) as pool:
        whole = pool.submit(request, side.sock, "GET", "/containers/biglog/logs?stdout=1&tail=all")
        while not whole.done():
            t0 = time.perf_counter()
            request(side.sock, "GET", "/_ping")
            pings.append(time.perf_counter() - t0)
            time.sleep(0.02)
        size = len(whole.result().body)
    print(
        f"[{side.name}] /_ping while logs of the whole log ({size >> 20} MiB) stream: "
        f"median {statistics.median(pings) * 1000:.1f} ms, max {max(pings) * 1000:.1f} ms "
        f"over {len(pings)} pings; peak RSS {peak.peak_mb:.0f} MB"
    )
    side.docker("rm", "biglog")


def bench_output(side: Side) -> None:
    script = "head -c 200000000 /dev/zero | tr '\\0' x"
    for reader, cmd in (("fast", "cat >/dev/null"), ("slow", "sleep 8; cat >/dev/null")):
        with PeakRSS(side.pid) as peak:
            t0 = time.perf_counter()
            proc = subprocess.Popen(
                ["sh", "-c", f'docker run --rm busybox sh -c "{script}" | ({cmd})'],
                env=side.env,
            )
            proc.wait()
        print(
            f"[{side.name}] 200 MB to stdout, {reader} attached reader: "
            f"{time.perf_counter() - t0:.1f} s, peak RSS {peak.peak_mb:.0f} MB"
        )


def bench_many(side: Side, n: int = 50) -> None:
    names = [f"many{i}" for i in range(n)]
    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        t0 = time.perf_counter()
        list(
            pool.map(
                lambda x: side.docker("run", "-d", "--name", x, "busybox", "sleep", "600"), names
            )
        )
        started = time.perf_counter() - t0
        t0 = time.perf_counter()
        list(pool.map(lambda x: side.docker("stop", "-t", "1", x), names))
        stopped = time.perf_counter() - t0
        list(pool.map(lambda x: side.docker("rm", x), names))
    print(
        f"[{side.name}] {n} containers run -d at once: {started:.1f} s; stopped at once: {stopped:.1f} s"
    )


def bench_runs(side: Side, n: int = 200) -> None:
    side.docker("run", "--rm", "busybox", "true")
    before = rss(side.pid)
    t0 = time.perf_counter()
    for _ in range(n):
        side.docker("run", "--rm", "busybox", "true")
    took = time.perf_counter() - t0
    after = rss(side.pid)
    print(
        f"[{side.name}] {n} sequential run --rm: {took:.1f} s ({took / n * 1000:.0f} ms each); "
        f"RSS {before / 2**20:.1f} -> {after / 2**20:.1f} MB ({(after - before) / 2**20:+.1f})"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="logs,output,many,runs")
    ap.add_argument("--no-docker", action="store_true")
    args = ap.parse_args()
    only = set(args.only.split(","))
    sides: list[tuple[Side, Callable[[], None]]] = []
    d = DockyardDaemon(short_tmp("dybench-")).start()
    assert d.proc is not None
    sides.append((Side("dockyard", d.env(), d.socket, d.proc.pid), d.cleanup))
    if not args.no_docker and ReferenceDockerd.available():
        ref = ReferenceDockerd(short_tmp("dkbench-")).start()
        assert ref.proc is not None
        sides.append((Side("dockerd", ref.env(), ref.socket, ref.proc.pid), ref.cleanup))
    try:
        for side, _ in sides:
            side.docker("import", str(busybox_rootfs_tar()), "busybox:latest")
            for name, fn in (
                ("logs", bench_logs),
                ("output", bench_output),
                ("many", bench_many),
                ("runs", bench_runs),
            ):
                if name in only:
                    fn(side)
    finally:
        for _, cleanup in sides:
            cleanup()


if __name__ == "__main__":
    main()
