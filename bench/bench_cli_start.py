"""CLI start-up: what `python -X importtime` charges each common command.

Starts a dockyard daemon on temporary paths (so `ps` has a daemon to ask and nothing
autostarts on the default root), then runs each command N times with `-X importtime` and
reports medians of: the import time summed over top-level imports (µs), the number of
modules imported, and the wall time of the whole process.
Usage: .venv/bin/python bench/bench_cli_start.py [--runs N] [--json]
Not a test: prints a table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import short_tmp
from tests.support.daemons import DockyardDaemon

COMMANDS: list[list[str]] = [
    ["--help"],
    ["ps"],
    ["run", "--help"],
    ["images"],
    ["ps", "--format", "{{.ID}} {{.Names}}"],
    ["ps", "--format", "table {{.ID}}\t{{.Status}}"],
]


def measure(argv: list[str], env: dict[str, str]) -> tuple[int, int, float] | None:
    """(summed top-level import µs, modules imported, wall seconds) of one run; None: failed."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "dockyard.cli.main", *argv],
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t0
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
    return total, modules, wall


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    daemon = DockyardDaemon(short_tmp("dyb-")).start()
    results: dict[str, dict[str, float]] = {}
    try:
        env = daemon.env()
        for argv in COMMANDS:
            runs = [measure(argv, env) for _ in range(args.runs)]
            samples = [s for s in runs if s is not None]
            if not samples:
                print(f"dockyard {' '.join(argv)}: fails", file=sys.stderr)
                continue
            results[" ".join(argv)] = {
                "import_us": statistics.median(s[0] for s in samples),
                "modules": statistics.median(s[1] for s in samples),
                "wall_ms": statistics.median(s[2] for s in samples) * 1000,
            }
    finally:
        daemon.cleanup()
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{'command':45} {'imports (ms)':>12} {'modules':>8} {'wall (ms)':>10}")
    for name, r in results.items():
        print(f"{name:45} {r['import_us'] / 1000:12.1f} {r['modules']:8.0f} {r['wall_ms']:10.1f}")


if __name__ == "__main__":
    main()
