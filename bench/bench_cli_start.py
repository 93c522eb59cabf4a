"""CLI start-up: what `python -X importtime` charges each common command, and our CLI's wall
time beside docker CLI 28's for the same command against the same daemon.

Starts a dockyard daemon on temporary paths (so `ps` has a daemon to ask and nothing
autostarts on the default root) with busybox imported, then runs each command N times and
reports medians of: the import time summed over top-level imports (µs, from a run with
`-X importtime`), the number of modules imported, our CLI's wall time (a run without
`-X importtime`: the tracing itself costs time) and its CPU time (user + system: what the
command costs whatever else the machine runs) as the quickstart installs it (the launcher of
cli/launcher.py, written into the temporary directory), the wall time of
`python -m dockyard.cli.main` (how the tests run it), and the same two of docker CLI 28 for
the same words (where a docker CLI is on PATH). Runs alternate between the CLIs so that load
on the machine falls on all alike.
Usage: .venv/bin/python bench/bench_cli_start.py [--runs N] [--json]
Not a test: prints a table.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import short_tmp
from tests.support.daemons import DockyardDaemon

COMMANDS: list[list[str]] = [
    ["--help"],
    ["ps"],
    ["ps", "-a", "--format", "{{.ID}} {{.Names}}"],
    ["ps", "--format", "table {{.ID}}\t{{.Status}}"],
    ["images"],
    ["images", "--format", "{{json .}}"],
    ["run", "--help"],
    ["run", "--rm", "--network", "none", "busybox", "true"],
    ["version"],
]
DOCKER = shutil.which("docker")
OURS = [sys.executable, "-m", "dockyard.cli.main"]


def importtime(argv: list[str], env: dict[str, str]) -> tuple[int, int] | None:
    """(summed top-level import µs, modules imported) of one run; None: it failed."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "dockyard.cli.main", *argv],
        env=env,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        return None
    total = modules = 0
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        parts = line[len("import time:") :].split("|")
        cumulative, name = parts[1], parts[2]
        modules += 1
        if not name.startswith("  "):  # depth 0: its cumulative time includes its children
            total += int(cumulative)
    return total, modules


def wall(cli: list[str], argv: list[str], env: dict[str, str]) -> tuple[float, float] | None:
    """(wall seconds, CPU seconds) of one run; the CPU time (user + system of the process)
    is what the command costs whatever else the machine runs; None: it failed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([*cli, *argv], env=env, capture_output=True)
    took = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return (took, cpu) if proc.returncode == 0 else None


def _ms(samples: list[float | None], of: Callable[[list[float]], float]) -> float | None:
    ok = [s for s in samples if s is not None]
    return of(ok) * 1000 if ok else None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    daemon = DockyardDaemon(short_tmp("dyb-")).start()
    results: dict[str, dict[str, float | None]] = {}
    try:
        env = dict(daemon.env(), DOCKER_BUILDKIT="0")
        from tests.interop.test_cli_scenario import _import_busybox

        _import_busybox(env)
        from dockyard.cli import launcher

        installed = [str(daemon.base / "dockyard")]
        launcher.write(installed[0])
        for argv in COMMANDS:
            traced = [importtime(argv, env) for _ in range(args.runs)]
            ours: list[tuple[float, float] | None] = []
            module: list[tuple[float, float] | None] = []
            theirs: list[tuple[float, float] | None] = []
            for _ in range(args.runs):
                ours.append(wall(installed, argv, env))
                module.append(wall(OURS, argv, env))
                if DOCKER:
                    theirs.append(wall([DOCKER], argv, env))
            samples = [s for s in traced if s is not None]
            if not samples:
                print(f"dockyard {' '.join(argv)}: fails", file=sys.stderr)
                continue
            results[" ".join(argv)] = {
                "import_us": statistics.median(s[0] for s in samples),
                "modules": statistics.median(s[1] for s in samples),
                "wall_ms": _ms([o and o[0] for o in ours], statistics.median),
                "cpu_ms": _ms([o and o[1] for o in ours], statistics.median),
                "python_m_wall_ms": _ms([o and o[0] for o in module], statistics.median),
                "docker_wall_ms": _ms([t and t[0] for t in theirs], statistics.median),
                "docker_cpu_ms": _ms([t and t[1] for t in theirs], statistics.median),
            }
    finally:
        daemon.cleanup()
    if args.json:
        print(json.dumps(results, indent=2))
        return

    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f}"

    print(
        f"{'command':42} {'imports ms':>10} {'modules':>7} {'ours wall':>9} {'cpu':>6} "
        f"{'-m wall':>7} {'docker wall':>11} {'cpu':>6}"
    )
    for name, r in results.items():
        print(
            f"{name:42} {ms((r['import_us'] or 0) / 1000):>10} {r['modules']:7.0f} "
            f"{ms(r['wall_ms']):>9} {ms(r['cpu_ms']):>6} {ms(r['python_m_wall_ms']):>7} "
            f"{ms(r['docker_wall_ms']):>11} {ms(r['docker_cpu_ms']):>6}"
        )


if __name__ == "__main__":
    main()
