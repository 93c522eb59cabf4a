"""Reading a json-file log from its end: where the last N lines start, in bounded batches."""

from __future__ import annotations

import io
import json

import pytest

from dockyard.engine import container_logs as cl


def _log(lines: list[str], partial: str = "") -> io.BytesIO:
    body = "".join(json.dumps({"log": t, "stream": "stdout", "time": ""}) + "\n" for t in lines)
    return io.BytesIO(body.encode() + partial.encode())


@pytest.mark.parametrize("block", [7, 64, 1 << 16])
def test_tail_start_counts_complete_lines_from_the_end(
    monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    monkeypatch.setattr(cl, "_BLOCK", block)
    lines = [f"line {i}\n" for i in range(50)]
    f = _log(lines, partial='{"log":"half')
    end = cl.complete_end(f)
    assert end == len(f.getvalue()) - len('{"log":"half')
    keep = cl._Filter(True, True, False, 0.0, 0.0)
    for n in (0, 1, 2, 49, 50, 51, 1000):
        start = cl.tail_start(f, end, n)
        got, offset = cl.read_batch(f, start, end, keep)
        assert offset == end or n == 0
        assert [data.decode() for _, data in got] == lines[len(lines) - min(n, 50) :], n


def test_batches_are_bounded_and_resume(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cl, "_BATCH", 200)
    lines = [f"{i:04d}\n" for i in range(100)]
    f = _log(lines)
    end = cl.complete_end(f)
    keep = cl._Filter(True, False, False, 0.0, 0.0)
    offset, seen, calls = 0, [], 0
    while offset < end:
        got, offset = cl.read_batch(f, offset, end, keep)
        seen += [d.decode() for _, d in got]
        calls += 1
    assert seen == lines and calls > 10


def test_a_line_longer_than_a_batch_is_read_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cl, "_BATCH", 16)
    f = _log(["x" * 100 + "\n", "y\n"])
    got, offset = cl.read_batch(f, 0, None, cl._Filter(True, True, False, 0.0, 0.0))
    assert [d for _, d in got] == [b"x" * 100 + b"\n"]
    got, _ = cl.read_batch(f, offset, None, cl._Filter(True, True, False, 0.0, 0.0))
    assert [d for _, d in got] == [b"y\n"]


def test_tail_values() -> None:
    assert [cl.tail_count(v) for v in ("5", "0", "all", "", "-1", "x")] == [
        5,
        0,
        None,
        None,
        None,
        None,
    ]
