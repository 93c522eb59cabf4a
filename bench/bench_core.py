"""Core workflow timings: dockyard against the reference dockerd (Debian docker.io 20.10).

Runs each daemon on temporary paths (tests/support/daemons.py), gives both the same busybox
base, and times with the same client where it makes sense (the docker CLI 28 speaks to both):
- CLI start-up (`dockyard --help`, `dockyard ps`) against `docker ps`;
- a cold build of a small Dockerfile and a no-op rebuild (every step cached);
- a build whose RUN writes a large layer (commit cost: diff + hash);
- `run --rm busybox true` round trips.
Usage: .venv/bin/python bench/bench_core.py [--runs N] [--layer-mib M] [--no-docker]
Not a test: prints a table of medians (seconds).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import short_tmp, write_context
from tests.support.daemons import DockyardDaemon, ReferenceDockerd
from tests.support.rootfs import busybox_rootfs_tar

DOCKERFILE = """\
FROM bench-base
RUN echo one > /one
ENV A=1
WORKDIR /app
COPY . /app/
RUN ls -R /app > /listing
CMD ["cat", "/listing"]
"""


def timed(fn: Callable[[], object], runs: int) -> float:
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def run(argv: list[str], env: dict[str, str]) -> None:
    proc = subprocess.run(argv, env=env, capture_output=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{proc.stderr.decode()}")


def bench_daemon(
    name: str, client: list[str], env: dict[str, str], ctx: Path, args: argparse.Namespace
) -> dict[str, float]:
    out: dict[str, float] = {}
    run([*client, "import", str(busybox_rootfs_tar()), "bench-base:latest"], env)
    out["ps"] = timed(lambda: run([*client, "ps"], env), args.runs)
    counter = iter(range(10_000))

    def cold() -> None:
        (ctx / "stamp").write_text(str(next(counter)))  # a changed COPY source: rebuild from COPY
        run([*client, "build", "--no-cache", "-t", "bench-img", str(ctx)], env)

    out["cold build"] = timed(cold, args.runs)
    out["no-op rebuild"] = timed(
        lambda: run([*client, "build", "-t", "bench-img", str(ctx)], env), args.runs
    )
    big = write_context(
        ctx.parent / f"{name}-big",
        f"FROM bench-base\nRUN dd if=/dev/urandom of=/big bs=1M count={args.layer_mib} 2>/dev/null\n",
    )
    out[f"build {args.layer_mib} MiB layer"] = timed(
        lambda: run([*client, "build", "--no-cache", "-t", "bench-big", str(big)], env),
        max(1, args.runs // 2),
    )
    out["run --rm true"] = timed(
        lambda: run([*client, "run", "--rm", "bench-base", "true"], env), args.runs
    )
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--layer-mib", type=int, default=256)
    p.add_argument("--no-docker", action="store_true")
    args = p.parse_args()
    base = short_tmp("dybench-")
    ctx = write_context(base / "ctx", DOCKERFILE, {f"src/f{i}.txt": f"{i}\n" for i in range(200)})
    results: dict[str, dict[str, float]] = {}
    cli = Path(sys.executable).with_name("dockyard")
    results["dockyard (CLI: dockyard)"] = {}
    d = DockyardDaemon(base / "dy").start()
    try:
        env = d.env()
        results["dockyard (CLI: dockyard)"] = bench_daemon("dy", [str(cli)], env, ctx, args)
        results["dockyard (CLI: dockyard)"]["dockyard --help"] = timed(
            lambda: run([str(cli), "--help"], env), args.runs
        )
        results["dockyard (CLI: docker 28)"] = {
            "run --rm true": timed(
                lambda: run(["docker", "run", "--rm", "bench-base", "true"], env), args.runs
            )
        }
    finally:
        d.cleanup()
    if not args.no_docker and ReferenceDockerd.available():
        ref = ReferenceDockerd(base / "ref").start()
        try:
            results["dockerd 20.10 (CLI: docker 28)"] = bench_daemon(
                "ref", ["docker"], ref.env(), ctx, args
            )
        finally:
            ref.cleanup()
    rows = sorted({k for r in results.values() for k in r})
    cols = list(results)
    print(f"{'median seconds':28}" + "".join(f"{c:>32}" for c in cols))
    for row in rows:
        print(f"{row:28}" + "".join(f"{results[c].get(row, float('nan')):>32.3f}" for c in cols))
    subprocess.run(["rm", "-rf", str(base)])


if __name__ == "__main__":
    main()
