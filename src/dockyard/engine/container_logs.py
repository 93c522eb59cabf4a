"""`docker logs`: the json-file log the monitor writes, read back with Docker's options.

`tail` counts complete lines from the end; `since`/`until` compare each entry's own
timestamp; `follow` keeps reading appended lines until the container has exited (and its
last output is read), waking on the container's exit instead of only polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from dockyard.errors import InvalidArgument

if TYPE_CHECKING:
    from dockyard.engine.containers import ContainerManager


async def read_logs(
    mgr: ContainerManager,
    name_or_id: str,
    *,
    stdout: bool,
    stderr: bool,
    tail: str,
    timestamps: bool,
    follow: bool = False,
    since: float = 0.0,
    until: float = 0.0,
) -> AsyncIterator[tuple[int, bytes]]:
    rec = mgr.resolve(name_or_id)
    path = mgr.root / rec.id / "container.log"
    lines: list[bytes] = []
    offset = 0
    if path.exists():
        with path.open("rb") as f:
            data = f.read()
        offset = len(data)
        complete = data[: data.rfind(b"\n") + 1]
        offset = len(complete)
        lines = complete.splitlines()
    if tail not in ("", "all"):
        try:
            n = int(tail)
        except ValueError:
            raise InvalidArgument(f"invalid tail value {tail!r}") from None
        lines = lines[-n:] if n > 0 else []
    for line in lines:
        item = log_item(line, stdout, stderr, timestamps, since, until)
        if item is not None:
            yield item
    if not follow:
        return
    live = mgr._live(rec.id)
    buf = b""
    while True:
        current = mgr.meta.get_container(rec.id)
        running = current is not None and (
            current.state.get("Running") or current.state.get("Restarting")
        )
        generation = live.exit_generation
        try:
            with path.open("rb") as f:
                f.seek(offset)
                chunk = f.read()
        except FileNotFoundError:
            chunk = b""
        offset += len(chunk)
        buf += chunk
        *complete_lines, buf = buf.split(b"\n")
        for line in complete_lines:
            item = log_item(line, stdout, stderr, timestamps, since, until)
            if item is not None:
                yield item
        if until and time.time() > until:
            return
        if not running and not chunk:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(mgr._exited_after(live, generation), 0.2)


def log_item(
    line: bytes, stdout: bool, stderr: bool, timestamps: bool, since: float, until: float
) -> tuple[int, bytes] | None:
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    stream = 2 if entry.get("stream") == "stderr" else 1
    if (stream == 1 and not stdout) or (stream == 2 and not stderr):
        return None
    ts = entry.get("time", "")
    if since or until:
        t = parse_time(ts)
        if since and t < since:
            return None
        if until and t > until:
            return None
    data = entry.get("log", "")
    if timestamps:
        data = f"{ts} {data}"
    return stream, data.encode()


def parse_time(ts: str) -> float:
    from datetime import datetime

    if not ts:
        return 0.0
    base, _, frac = ts.rstrip("Z").partition(".")
    try:
        secs = datetime.fromisoformat(base + "+00:00").timestamp()
    except ValueError:
        return 0.0
    return secs + (float("0." + frac) if frac else 0.0)
