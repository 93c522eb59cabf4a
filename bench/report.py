"""bench/RESULTS.md: the machine, the versions, the load, and one table of every row."""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from pathlib import Path

from bench.rows import Row
from bench.sampling import Samples

DOCKYARD = "dockyard"


@dataclass
class Results:
    engines: list[str]
    rows: list[Row]
    cells: dict[str, dict[str, Samples]] = field(default_factory=dict)
    failures: dict[str, dict[str, str]] = field(default_factory=dict)
    floors: dict[str, Samples] = field(default_factory=dict)

    def add(self, row: str, engine: str, value: float) -> None:
        self.cells.setdefault(row, {}).setdefault(engine, Samples()).add(value)

    def fail(self, row: str, engine: str, why: str) -> None:
        self.failures.setdefault(row, {})[engine] = why


@dataclass(frozen=True)
class Verdict:
    best_peer: str | None
    best: float | None
    ratio: float | None
    met: bool | None  # None: dockyard has no figure


def verdict(row: Row, cells: dict[str, Samples]) -> Verdict:
    ours = cells.get(DOCKYARD)
    peers = {n: s.median for n, s in cells.items() if n != DOCKYARD and s.values}
    if not peers:
        best_name, best_val = None, None
    else:
        pick = max if row.higher_is_better else min
        best_name = pick(peers, key=lambda n: peers[n])
        best_val = peers[best_name]
    if ours is None or not ours.values:
        return Verdict(best_name, best_val, None, None)
    v = ours.median

    def within(bound: float) -> bool:
        return v >= bound if row.higher_is_better else v <= bound

    ahead = best_val is None or within(best_val)
    t = row.target
    if t.absolute is not None:
        on_target = within(t.absolute)
    else:
        ref = peers.get(t.peer) if t.peer else best_val
        if ref is None:
            on_target = True
        elif row.higher_is_better:
            on_target = v >= (t.factor or 1.0) * ref
        else:
            on_target = v <= (t.factor or 1.0) * ref
    ratio = v / best_val if best_val else None
    return Verdict(best_name, best_val, ratio, ahead and on_target)


def _digits(row: Row) -> int:
    return 1 if row.unit in ("MiB", "runs/s") else 3


def _cell(text: str) -> str:
    return text.replace("|", "\\|")  # a pipe inside a Markdown table cell


def table(results: Results) -> str:
    head = ["row", *results.engines, "best peer", "dockyard / best", "target", "met", "floor"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in results.rows:
        cells = results.cells.get(row.key, {})
        fails = results.failures.get(row.key, {})
        out = [f"{row.label} ({row.unit})"]
        for name in results.engines:
            if name in fails:
                out.append("failed")
            elif name in cells:
                text = cells[name].cell(_digits(row))
                out.append(f"**{text}**" if name == DOCKYARD else text)
            else:
                out.append("—")
        v = verdict(row, cells)
        out.append(f"{v.best_peer} {v.best:.{_digits(row)}f}" if v.best_peer and v.best else "—")
        out.append(f"{v.ratio:.2f}" if v.ratio is not None else "—")
        out.append(row.target.text)
        out.append({True: "yes", False: "**no**", None: "—"}[v.met])
        floor = results.floors.get(row.floor) if row.floor else None
        out.append(f"{row.floor} {floor.median:.3f}" if floor and floor.values else "")
        lines.append("| " + " | ".join(_cell(c) for c in out) + " |")
    return "\n".join(lines)


def machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
        mem_gib = f"{int(mem) / 2**20:.1f} GiB"
    except OSError:
        mem_gib = "?"
    import os

    return f"{platform.node()}: {os.cpu_count()} x {cpu}, {mem_gib} RAM, Linux {platform.release()}"


def write(
    path: Path,
    results: Results,
    *,
    title_note: str,
    date: str,
    versions: dict[str, str],
    load_start: str,
    load_end: str,
    runs: int,
    command: str,
    notes: list[str],
) -> str:
    floors = "\n".join(
        f"| {_cell(name)} | {s.cell()} |" for name, s in results.floors.items() if s.values
    )
    failures = "\n".join(
        f"- {row} / {engine}: {why}"
        for row, by in results.failures.items()
        for engine, why in by.items()
    )
    text = f"""# Benchmark results

{title_note}

- Date: {date}
- Machine: {machine()}
- Load average (1, 5, 15 min) at the start: {load_start}; at the end: {load_end}
- Command: `{command}`; medians of {runs} run(s), (min-max) beside; engines alternate run by run
- Versions: {"; ".join(f"{k} {v}" for k, v in versions.items())}

{table(results)}

"met": dockyard at or ahead of the best peer and at the target. "dockyard / best" is
dockyard's median over the best peer's (for runs/s, above 1 is ahead).

## Physical floors (seconds)

| floor | median (min-max) |
|---|---:|
{floors}

## Notes

{chr(10).join(f"- {n}" for n in notes)}
"""
    if failures:
        text += f"\n## Failures\n\n{failures}\n"
    path.write_text(text)
    return text
