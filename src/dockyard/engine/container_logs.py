"""`docker logs`: the json-file log the monitor writes, read back with Docker's options.

The log can be hundreds of megabytes, so it is never read whole: `tail` finds where its last
N complete lines start by scanning backwards from the end, and every read (and the JSON
decoding of its lines) happens in a worker thread, a bounded batch at a time, so the event
loop keeps answering other requests and memory stays flat whatever the size. `since`/`until`
compare each entry's own timestamp; `follow` keeps reading appended lines until the container
has exited (and its last output is read), waking on the container's exit instead of only
polling. A json-file log with max-size/max-file (runtime/monitor.py's rotation) is read
across its rotated files, oldest first, and followed across a rotation.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from dockyard.errors import DockyardError

if TYPE_CHECKING:
    from dockyard.engine.container_record import Container
    from dockyard.engine.containers import ContainerManager

# Bytes of log read (and decoded) per worker-thread call.
_BATCH = 1 << 20
_BLOCK = 64 << 10  # the backwards scan's step


def tail_count(tail: str) -> int | None:
    """Docker's `tail`: N lines, or None for all ("all", empty, negative or not a number:
    moby's strconv.Atoi fallback, measured on dockerd 20.10)."""
    try:
        n = int(tail)
    except ValueError:
        return None
    return n if n >= 0 else None


def complete_end(f: BinaryIO) -> int:
    """The offset just past the last newline: what follows is a line still being written."""
    pos = f.seek(0, 2)
    while pos > 0:
        step = min(_BLOCK, pos)
        pos -= step
        f.seek(pos)
        block = f.read(step)
        i = block.rfind(b"\n")
        if i >= 0:
            return pos + i + 1
    return 0


def tail_start(f: BinaryIO, end: int, n: int) -> int:
    """Where the last `n` complete lines before `end` begin, scanning backwards."""
    if n == 0:
        return end
    pos = end - 1  # the last line's own newline is not a boundary
    while pos > 0:
        step = min(_BLOCK, pos)
        pos -= step
        f.seek(pos)
        block = f.read(step)
        j = len(block)
        while (j := block.rfind(b"\n", 0, j)) >= 0:
            n -= 1
            if n == 0:
                return pos + j + 1
    return 0


class _Filter:
    def __init__(
        self, stdout: bool, stderr: bool, timestamps: bool, since: float, until: float
    ) -> None:
        self.stdout, self.stderr, self.timestamps = stdout, stderr, timestamps
        self.since, self.until = since, until

    def items(self, lines: list[bytes]) -> list[tuple[int, bytes]]:
        out = []
        for line in lines:
            item = log_item(line, self.stdout, self.stderr, self.timestamps, self.since, self.until)
            if item is not None:
                out.append(item)
        return out


def read_batch(
    f: BinaryIO, offset: int, end: int | None, keep: _Filter
) -> tuple[list[tuple[int, bytes]], int]:
    """Complete lines from `offset` (up to `end`, or to the end of the file), about _BATCH
    bytes of them, decoded; and the offset after the last one."""
    f.seek(offset)
    limit = None if end is None else end - offset
    data = f.read(_BATCH if limit is None else min(_BATCH, limit))
    cut = data.rfind(b"\n") + 1
    while cut == 0 and data and (limit is None or len(data) < limit):
        # One line longer than a batch (the monitor splits at 16 KiB of output, so rare).
        more = f.read(_BATCH if limit is None else min(_BATCH, limit - len(data)))
        if not more:
            break
        data += more
        cut = data.rfind(b"\n") + 1
    return keep.items(data[:cut].split(b"\n")[:-1]), offset + cut


def _open(path: Path) -> BinaryIO | None:
    try:
        return path.open("rb")
    except FileNotFoundError:
        return None


class LogsNotReadable(DockyardError):
    """moby logger.ErrReadLogsNotSupported: a NotImplemented error, so 501."""

    status = 501


def check_readable(rec: Container) -> None:
    """A container logging to `none` has no log to read (dockerd: 501, before any output)."""
    if (rec.host_config.received.get("LogConfig") or {}).get("Type") == "none":
        raise LogsNotReadable("configured logging driver does not support reading")


def rotated_logs(path: Path) -> list[Path]:
    """`container.log.N` … `container.log.1`: oldest first."""
    numbered = []
    for p in path.parent.glob(path.name + ".*"):
        suffix = p.name[len(path.name) + 1 :]
        if suffix.isdigit():
            numbered.append((int(suffix), p))
    return [p for _, p in sorted(numbered, reverse=True)]


def _count_lines(f: BinaryIO, start: int, end: int) -> int:
    f.seek(start)
    return f.read(end - start).count(b"\n")  # rotated files are bounded by max-size


def _rotated(path: Path, f: BinaryIO) -> bool:
    """Whether the file we hold was rotated away: the monitor always starts a new file."""
    try:
        return os.stat(path).st_ino != os.fstat(f.fileno()).st_ino
    except FileNotFoundError:
        return False


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
    check_readable(rec)
    path = mgr.root / rec.id / "container.log"
    keep = _Filter(stdout, stderr, timestamps, since, until)
    count = tail_count(tail)
    older: list[tuple[BinaryIO, int, int]] = []  # rotated files to read first, oldest first

    def position() -> tuple[BinaryIO | None, int, int]:
        f = _open(path)
        end = complete_end(f) if f is not None else 0
        start = 0 if count is None or f is None else tail_start(f, end, count)
        if start == 0:
            # The current file holds fewer lines than asked for: the rest is in the rotated
            # ones, newest (.1) first.
            remaining = None
            if count is not None:
                remaining = count - (_count_lines(f, 0, end) if f is not None else 0)
            for old_path in reversed(rotated_logs(path)):
                if remaining == 0:
                    break
                o = _open(old_path)
                if o is None:
                    continue
                o_end = complete_end(o)
                o_start = 0 if remaining is None else tail_start(o, o_end, remaining)
                if remaining is not None:
                    remaining -= _count_lines(o, o_start, o_end)
                older.insert(0, (o, o_start, o_end))
        return f, start, end

    f, offset, end = await asyncio.to_thread(position)
    try:
        for o, o_offset, o_end in older:
            while o_offset < o_end:
                items, o_offset = await asyncio.to_thread(read_batch, o, o_offset, o_end, keep)
                for item in items:
                    yield item
        while f is not None and offset < end:
            items, offset = await asyncio.to_thread(read_batch, f, offset, end, keep)
            for item in items:
                yield item
        if not follow:
            return
        live = mgr._live(rec.id)
        while True:
            current = mgr.get(rec.id)
            running = current is not None and current.state.running
            generation = live.exit_generation
            if f is None:
                f = await asyncio.to_thread(_open, path)
            items = []
            before = offset
            if f is not None:
                items, offset = await asyncio.to_thread(read_batch, f, offset, None, keep)
            for item in items:
                yield item
            if until and time.time() > until:
                return
            if offset != before:
                continue  # more may be waiting: read on before sleeping
            if f is not None and await asyncio.to_thread(_rotated, path, f):
                # max-size reached: the rest of the file we hold (written before the
                # rotation), then the new file from its start.
                while True:
                    items, after = await asyncio.to_thread(read_batch, f, offset, None, keep)
                    for item in items:
                        yield item
                    if after == offset:
                        break
                    offset = after
                f.close()
                f, offset = None, 0
                continue
            if not running:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(mgr._exited_after(live, generation), 0.2)
    finally:
        if f is not None:
            f.close()
        for o, _, _ in older:
            o.close()


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
