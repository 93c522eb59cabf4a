"""Samples, their summary, and running a command as a timed step."""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from dataclasses import dataclass, field


class StepFailed(RuntimeError):
    """A benchmarked command failed: the row is reported as failed, not as a number."""


@dataclass
class Samples:
    """One engine's values for one row (seconds, MiB or runs/s: the row says which)."""

    values: list[float] = field(default_factory=list)

    def add(self, v: float) -> None:
        self.values.append(v)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def cell(self, digits: int = 3) -> str:
        if not self.values:
            return "—"
        med = f"{self.median:.{digits}f}"
        if len(self.values) == 1:
            return med
        return f"{med} ({min(self.values):.{digits}f}-{max(self.values):.{digits}f})"


def sh(argv: list[str], env: dict[str, str] | None = None, timeout: float = 900) -> str:
    """Run a command to its end; its stdout, or StepFailed naming it with its stderr."""
    proc = subprocess.run(
        argv, env=env, capture_output=True, stdin=subprocess.DEVNULL, timeout=timeout
    )
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).decode(errors="replace")[-2000:]
        raise StepFailed(f"{' '.join(argv)} exited {proc.returncode}:\n{tail}")
    return proc.stdout.decode(errors="replace")


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    """Wall seconds of one command, from fork to exit (what a user waits for)."""
    t0 = time.perf_counter()
    sh(argv, env)
    return time.perf_counter() - t0


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())
