"""Bench row f: a 200 MiB / 5,000-file build context, `COPY . /ctx/`, cold and cached.

Every row builds `FROM bench-base` + `COPY . /ctx/`:
- cold: the context copied into a new directory with one file changed (a new directory is a
  new session shared key, so nothing is kept, and the COPY misses the cache): everything
  travels, is hashed, copied and committed;
- cached: the same directory built again, unchanged: nothing should travel, every step cached;
- one changed: one file of the 5,000 rewritten (the COPY re-runs; only that file travels).
Clients and daemons (each daemon on temporary paths, tests/support/daemons.py):
- `dockyard build` against dockyard (our legacy endpoint on a session);
- Debian's docker 20.10 client with DOCKER_BUILDKIT=1 against dockerd 20.10 (BuildKit) and
  against dockyard;
- both dockyard rows again with the daemon in a mount namespace of its own in which the
  client's directory is hidden under an empty tmpfs (`unshare -m`): nothing may read the
  context by path;
- the references: Debian's docker 20.10 client against dockerd 20.10 without BuildKit (the
  legacy tar upload) and with it, and against trixie's dockerd 26.1 with BuildKit
  (tests/support/trixie.py; skipped if scripts/trixie-clients.sh has not fetched it).
Usage (root): .venv/bin/python bench/bench_context.py [--runs N] [--mib M] [--files N]
Not a test: prints medians (seconds) and the load average before and after.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import short_tmp
from tests.support.daemons import DockyardDaemon, ReferenceDockerd, hidden_from_daemon
from tests.support.rootfs import busybox_rootfs_tar
from tests.support.trixie import trixie_tools

DOCKER_2010 = "/usr/bin/docker"
DOCKERFILE = "FROM bench-base\nCOPY . /ctx/\n"


def make_context(root: Path, mib: int, files: int) -> None:
    size = (mib << 20) // files
    per_dir = 100
    for i in range(files):
        d = root / f"d{i // per_dir:03}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:05}.bin").write_bytes(os.urandom(size))
    (root / "Dockerfile").write_text(DOCKERFILE)


def run(argv: list[str], env: dict[str, str]) -> None:
    proc = subprocess.run(argv, env=env, capture_output=True, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{proc.stdout.decode()}{proc.stderr.decode()}")


def median_of(fn: Callable[[int], None], runs: int) -> float:
    samples = []
    for i in range(runs):
        t0 = time.perf_counter()
        fn(i)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def bench_client(
    label: str, client: list[str], env: dict[str, str], work: Path, master: Path, runs: int
) -> dict[str, float]:
    out: dict[str, float] = {}
    dirs: list[Path] = []

    def cold(i: int) -> None:
        d = work / f"{label}-cold{i}"
        shutil.rmtree(d, ignore_errors=True)
        subprocess.run(["cp", "-a", str(master), str(d)], check=True)
        (d / "stamp").write_text(f"{label} {i} {time.time_ns()}\n")
        dirs.append(d)
        t0 = time.perf_counter()
        run([*client, "build", "-t", "bench-f", str(d)], env)
        samples.append(time.perf_counter() - t0)

    samples: list[float] = []
    for i in range(runs):
        cold(i)
    out["cold"] = statistics.median(samples)
    last = dirs[-1]
    run([*client, "build", "-t", "bench-f", str(last)], env)  # warm whatever warms
    out["cached"] = median_of(
        lambda _i: run([*client, "build", "-t", "bench-f", str(last)], env), runs
    )
    target = last / "d000" / "f00000.bin"

    def one(i: int) -> None:
        target.write_bytes(os.urandom(target.stat().st_size))

    samples = []
    for i in range(runs):
        one(i)
        t0 = time.perf_counter()
        run([*client, "build", "-t", "bench-f", str(last)], env)
        samples.append(time.perf_counter() - t0)
    out["one changed"] = statistics.median(samples)
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--mib", type=int, default=200)
    p.add_argument("--files", type=int, default=5000)
    p.add_argument("--only", default="", help="comma list of: dy,dy-docker,ns,ref,legacy,26")
    args = p.parse_args()
    only = set(filter(None, args.only.split(",")))
    base = short_tmp("dyctx-")
    # the clients' files live under `client/`, hidden from the namespaced daemon
    client_dir = base / "client"
    master = client_dir / "master"
    make_context(master, args.mib, args.files)
    cli = str(Path(sys.executable).with_name("dockyard"))
    results: dict[str, dict[str, float]] = {}
    load_before = os.getloadavg()

    def dockyard_rows(tag: str, wrapper: list[str]) -> None:
        d = DockyardDaemon(base / f"dy{tag}", wrapper=wrapper).start()
        try:
            env = d.env()
            run([cli, "import", str(busybox_rootfs_tar()), "bench-base:latest"], env)
            if not only or "dy" in only or (tag and "ns" in only):
                results[f"dockyard build -> dockyard{tag}"] = bench_client(
                    f"dy{tag}", [cli], env, client_dir, master, args.runs
                )
            if not only or "dy-docker" in only or (tag and "ns" in only):
                env_bk = dict(env, DOCKER_BUILDKIT="1", BUILDKIT_PROGRESS="plain")
                results[f"docker 20.10 BuildKit -> dockyard{tag}"] = bench_client(
                    f"dk{tag}", [DOCKER_2010], env_bk, client_dir, master, args.runs
                )
        finally:
            d.cleanup()

    try:
        if not only or only & {"dy", "dy-docker"}:
            dockyard_rows("", [])
        if not only or "ns" in only:
            hide = hidden_from_daemon(client_dir)
            dockyard_rows(" (client fs hidden)", hide)
        if (not only or only & {"ref", "legacy"}) and ReferenceDockerd.available():
            ref = ReferenceDockerd(base / "ref").start()
            try:
                env = ref.env()
                run([DOCKER_2010, "import", str(busybox_rootfs_tar()), "bench-base:latest"], env)
                if not only or "legacy" in only:
                    results["docker 20.10 legacy -> dockerd 20.10"] = bench_client(
                        "leg", [DOCKER_2010], env, client_dir, master, args.runs
                    )
                if not only or "ref" in only:
                    env = dict(env, DOCKER_BUILDKIT="1", BUILDKIT_PROGRESS="plain")
                    results["docker 20.10 BuildKit -> dockerd 20.10"] = bench_client(
                        "ref", [DOCKER_2010], env, client_dir, master, args.runs
                    )
            finally:
                ref.cleanup()
        tools = trixie_tools()
        if (not only or "26" in only) and tools is not None:
            ref26 = ReferenceDockerd(base / "r26", binary=str(tools.dockerd)).start()
            try:
                env = dict(ref26.env(), DOCKER_BUILDKIT="1", BUILDKIT_PROGRESS="plain")
                run([DOCKER_2010, "import", str(busybox_rootfs_tar()), "bench-base:latest"], env)
                results["docker 20.10 BuildKit -> dockerd 26.1"] = bench_client(
                    "r26", [DOCKER_2010], env, client_dir, master, args.runs
                )
            finally:
                ref26.cleanup()
    finally:
        subprocess.run(["rm", "-rf", str(base)])
    load_after = os.getloadavg()
    rows = ["cold", "cached", "one changed"]
    print(f"row f: {args.mib} MiB in {args.files} files, median of {args.runs} (seconds)")
    print(f"{'':44}" + "".join(f"{r:>14}" for r in rows))
    for name, r in results.items():
        print(f"{name:44}" + "".join(f"{r.get(k, float('nan')):>14.3f}" for k in rows))
    before = " ".join(f"{x:.2f}" for x in load_before)
    after = " ".join(f"{x:.2f}" for x in load_after)
    print(f"load average before {before}, after {after} ({os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
