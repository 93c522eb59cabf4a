"""Memory accounting from /proc: PSS and RSS of processes, and which processes an engine owns.

PSS (proportional set size) splits shared pages among their users, so N copies of one binary
or one shared library are not counted N times; it is the figure the per-container cost uses
(issue 17: cost = (PSS with N containers - PSS with none) / N).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Usage:
    pss_kib: int
    rss_kib: int

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.pss_kib + other.pss_kib, self.rss_kib + other.rss_kib)


NOTHING = Usage(0, 0)


def usage(pid: int) -> Usage:
    """PSS and RSS of one process (NOTHING if it is gone)."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return NOTHING
    fields = {}
    for line in text.splitlines()[1:]:
        name, _, rest = line.partition(":")
        fields[name] = int(rest.split()[0])
    return Usage(fields.get("Pss", 0), fields.get("Rss", 0))


def total(pids: list[int]) -> Usage:
    out = NOTHING
    for pid in pids:
        out = out + usage(pid)
    return out


def _parents() -> dict[int, int]:
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # the command name is in parentheses and may hold spaces: split after its end
        out[int(entry.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
    return out


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _in_our_pid_namespace(pid: int) -> bool:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid") == os.readlink("/proc/self/ns/pid")
    except OSError:
        return False


def owned_processes(roots: list[int], marker: str) -> list[int]:
    """The processes an engine runs beside its containers: `roots` (its daemons) and their
    descendants, plus any process whose command line names `marker` (the engine's private
    directory: a reparented containerd-shim or conmon names its state paths there). Container
    processes are left out: they live in pid namespaces of their own."""
    parents = _parents()
    owned = set(roots)
    changed = True
    while changed:
        changed = False
        for pid, ppid in parents.items():
            if ppid in owned and pid not in owned:
                owned.add(pid)
                changed = True
    tag = marker.encode()
    for pid in parents:
        if pid not in owned and tag in _cmdline(pid):
            owned.add(pid)
    return sorted(p for p in owned if p in parents and _in_our_pid_namespace(p))
