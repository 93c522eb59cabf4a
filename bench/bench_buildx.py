"""Builds through buildx (docker CLI 28 + buildx 0.13, docker driver) against dockyard and against
the reference dockerd 26.1 (trixie's; BuildKit 0.13), in the same run (issue 14; issue 17's rows):
- a: a cold 3-step build (`--no-cache`), b: the same cached;
- c: a cold 12-step build, and the same cached;
- f: COPY of a 200 MiB context, cold (a new context directory each run, so nothing of it is
  known to either daemon) and cached (the same directory again: the incremental context).
Engines alternate run by run; medians of N with min and max, and dockyard / dockerd ratios.
Usage: .venv/bin/python bench/bench_buildx.py [--runs N] [--context-mib M]
Not a test: prints a table (seconds).
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

from tests.conftest import short_tmp, write_context
from tests.support.daemons import DockyardDaemon, ReferenceDockerd
from tests.support.rootfs import busybox_rootfs_tar
from tests.support.trixie import trixie_tools

CLI = "/usr/local/bin/docker"

ROW_A = 'FROM bench-base\nRUN echo one > /one\nCOPY f.txt /f.txt\nCMD ["cat", "/one"]\n'
ROW_C = """\
FROM bench-base
ENV A=1 B=2
WORKDIR /app
COPY src/ /app/src/
RUN ls -R /app > /listing
ARG V=1
RUN echo $V > /v
LABEL bench=c
COPY f.txt /app/f.txt
RUN cat /app/f.txt /v > /both
USER daemon
RUN id > /tmp/id
CMD ["cat", "/listing"]
"""
ROW_F = "FROM bench-base\nCOPY . /ctx/\n"


def build(env: dict[str, str], ctx: Path, tag: str, *extra: str) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(
        [CLI, "build", "--network", "host", "-q", "-t", tag, *extra, str(ctx)],
        env=env,
        capture_output=True,
        stdin=subprocess.DEVNULL,
    )
    took = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"build of {ctx} failed:\n{proc.stderr.decode()[-2000:]}")
    return took


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--context-mib", type=int, default=200)
    args = p.parse_args()
    tools = trixie_tools()
    if tools is None:
        raise SystemExit("scripts/trixie-clients.sh has not fetched dockerd 26.1 and buildx")
    base = short_tmp("dybx-")
    a = write_context(base / "a", ROW_A, {"f.txt": "f\n"})
    c = write_context(
        base / "c", ROW_C, {"f.txt": "f\n", **{f"src/f{i}.txt": f"{i}\n" for i in range(50)}}
    )
    f_dir = base / "f-0"
    write_context(f_dir, ROW_F)
    for i in range(args.context_mib):
        (f_dir / "data" / f"{i // 50}").mkdir(parents=True, exist_ok=True)
        (f_dir / "data" / f"{i // 50}" / f"blob{i}").write_bytes(os.urandom(1 << 20))
    ours = DockyardDaemon(base / "dy").start()
    ref = ReferenceDockerd(base / "ref", binary=str(tools.dockerd)).start()
    envs: dict[str, dict[str, str]] = {}
    try:
        for name, env in (("dockyard", ours.env()), ("dockerd 26.1", ref.env())):
            env = dict(env)
            env.pop("DOCKER_BUILDKIT", None)
            env["DOCKER_CONFIG"] = str(tools.docker_config(base / f"cfg-{name[:2]}"))
            subprocess.run(
                [CLI, "import", str(busybox_rootfs_tar()), "bench-base:latest"],
                env=env,
                check=True,
                capture_output=True,
            )
            envs[name] = env
            build(env, a, "bench-a")  # warm-up: the driver, the base, the session
        samples: dict[str, dict[str, list[float]]] = {n: {} for n in envs}
        for run in range(args.runs):
            order = list(envs) if run % 2 == 0 else list(reversed(envs))
            fresh = base / f"f-{run + 1}"
            f_dir.rename(fresh)  # a directory neither daemon has seen: a cold context
            f_dir = fresh
            for name in order:
                env = envs[name]
                s = samples[name]
                s.setdefault("a cold 3-step", []).append(build(env, a, "bench-a", "--no-cache"))
                s.setdefault("b cached 3-step", []).append(build(env, a, "bench-a"))
                s.setdefault("c cold 12-step", []).append(build(env, c, "bench-c", "--no-cache"))
                s.setdefault("c cached 12-step", []).append(build(env, c, "bench-c"))
            for name in order:
                env = envs[name]
                s = samples[name]
                s.setdefault(f"f COPY {args.context_mib} MiB cold", []).append(
                    build(env, f_dir, "bench-f", "--no-cache")
                )
                s.setdefault(f"f COPY {args.context_mib} MiB cached", []).append(
                    build(env, f_dir, "bench-f")
                )
    finally:
        ref.cleanup()
        ours.cleanup()
        subprocess.run(["rm", "-rf", str(base)])
    names = list(samples)
    rows = list(samples[names[0]])
    print(
        f"buildx 0.13 + docker CLI 28, medians of {args.runs} (min-max), seconds; {tools.versions}"
    )
    print(f"{'row':28}" + "".join(f"{n:>26}" for n in names) + f"{'ratio':>8}")
    for row in rows:
        cells = []
        meds = []
        for n in names:
            v = samples[n][row]
            med = statistics.median(v)
            meds.append(med)
            cells.append(f"{med:.3f} ({min(v):.3f}-{max(v):.3f})")
        print(f"{row:28}" + "".join(f"{c:>26}" for c in cells) + f"{meds[0] / meds[1]:>8.2f}")


if __name__ == "__main__":
    main()
