"""The benchmark's harness cannot rot: bench/run.py with tiny sizes, dockyard only (< 30 s),
must give dockyard a figure on every row and time every physical floor; and the verdict
logic (best peer, ratio, target) on made-up figures."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from bench.report import Results, table, verdict
from bench.rows import MEMORY_ROWS, Row, Target, groups
from bench.sampling import Samples
from bench.workloads import TINY

REPO = Path(__file__).resolve().parents[2]


def _samples(*values: float) -> Samples:
    return Samples(list(values))


def test_verdict_against_the_best_peer_and_the_target() -> None:
    row = Row("a cold", "a", "s", Target("≤ 0.5 x best peer", factor=0.5))
    v = verdict(row, {"Docker legacy": _samples(1.0), "BuildKit": _samples(0.4, 0.6, 0.5)})
    assert (v.best_peer, v.best, v.met) == ("BuildKit", 0.5, None)
    v = verdict(row, {"BuildKit": _samples(0.5), "dockyard": _samples(0.3)})
    assert v.ratio == pytest.approx(0.6) and v.met is False  # ahead, but not at 0.5 x
    v = verdict(row, {"BuildKit": _samples(0.5), "dockyard": _samples(0.25)})
    assert v.met is True
    named = Row("f", "f", "s", Target("≤ 0.7 x BuildKit", factor=0.7, peer="BuildKit"))
    v = verdict(
        named, {"BuildKit": _samples(1.0), "Podman": _samples(0.5), "dockyard": _samples(0.6)}
    )
    assert v.best_peer == "Podman" and v.met is False  # on BuildKit's target, behind Podman
    faster = Row("t", "t", "runs/s", Target("≥ best peer", factor=1.0), higher_is_better=True)
    assert verdict(faster, {"Podman": _samples(2.0), "dockyard": _samples(3.0)}).met is True
    assert verdict(faster, {"Podman": _samples(4.0), "dockyard": _samples(3.0)}).met is False
    absolute = Row("b", "b", "s", Target("≤ 0.05 s", absolute=0.05))
    assert verdict(absolute, {"dockyard": _samples(0.06)}).met is False


def test_table_escapes_pipes_and_marks_failures() -> None:
    row = Row("f cold", "f", "s", Target("x", factor=1.0), floor="tar | sha256sum")
    r = Results(["Podman", "dockyard"], [row])
    r.add("f cold", "Podman", 1.0)
    r.fail("f cold", "dockyard", "boom")
    r.floors["tar | sha256sum"] = _samples(0.1)
    line = table(r).splitlines()[-1]
    assert "failed" in line and "tar \\| sha256sum 0.100" in line
    assert (
        line.count(" | ") == len(["row", "Podman", "dockyard", "best", "ratio", "t", "m", "f"]) - 1
    )


@pytest.mark.root
@pytest.mark.slow
def test_tiny_run_gives_every_row_a_figure(tmp_path: Path) -> None:
    out = tmp_path / "RESULTS.md"
    env = dict(
        os.environ, DOCKYARD_TEST_CACHE=os.environ.get("DOCKYARD_TEST_CACHE", "/var/cache/dockyard")
    )
    env.pop("DYBENCH_NETNS", None)
    proc = subprocess.run(
        [
            sys.executable,
            "bench/run.py",
            "--tiny",
            "--runs",
            "1",
            "--engines",
            "dockyard",
            "--settle",
            "0",
            "--out",
            str(out),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = out.read_text()
    assert "## Failures" not in text, text
    labels = [r.label for g in groups(TINY) for r in g.rows] + [r.label for r in MEMORY_ROWS]
    for label in labels:
        line = next((x for x in text.splitlines() if x.startswith(f"| {label} (")), None)
        assert line is not None, f"no row {label!r} in\n{text}"
        assert re.search(r"\*\*\d+\.\d+\*\*", line), line  # dockyard's figure, in bold
    for floor in ("runc run", "tar \\| sha256sum", "curl \\| tar -xz", "HTTP upload"):
        assert re.search(rf"^\| {re.escape(floor)} \| \d+\.\d+", text, re.M), floor
    # the reading taken the moment dockyard's own last workload ended, beside the settled row
    assert re.search(r"own last workload ended .*: dockyard \d+\.\d+ MiB", text), text
