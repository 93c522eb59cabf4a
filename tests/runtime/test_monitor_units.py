"""Pure parts of the monitor: json-file log format, framing, runc error mapping."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dockyard.runtime import monitor_protocol as proto
from dockyard.runtime.monitor import JsonFileLog, rfc3339nano
from dockyard.runtime.runc import clean_message, start_exit_code


def test_json_file_log_splits_like_docker(tmp_path: Path) -> None:
    log = JsonFileLog(tmp_path / "c.log")
    log.write("stdout", b"one\ntw")
    log.write("stderr", b"<err>\n")
    log.write("stdout", b"o\n" + b"x" * (16 * 1024 + 5))
    log.close()
    raw = (tmp_path / "c.log").read_text().splitlines()
    assert raw[1].startswith('{"log":"\\u003cerr\\u003e\\n","stream":"stderr","time":"')
    entries = [json.loads(line) for line in raw]
    assert [(e["stream"], e["log"]) for e in entries] == [
        ("stdout", "one\n"),
        ("stderr", "<err>\n"),
        ("stdout", "two\n"),
        ("stdout", "x" * 16 * 1024),
        ("stdout", "xxxxx"),
    ]


def test_rfc3339nano_trims_trailing_zeros() -> None:
    assert rfc3339nano(1_700_000_000_120_000_000) == "2023-11-14T22:13:20.12Z"
    assert rfc3339nano(1_700_000_000_000_000_000) == "2023-11-14T22:13:20Z"


def test_frames_round_trip_across_chunk_boundaries() -> None:
    data = proto.frame(proto.STDOUT, b"hello") + proto.control(proto.STARTED, {"pid": 42})
    decoder = proto.FrameDecoder()
    frames = [f for i in range(len(data)) for f in decoder.feed(data[i : i + 1])]
    assert frames == [(proto.STDOUT, b"hello"), (proto.STARTED, b'{"pid": 42}')]
    with pytest.raises(ValueError):
        proto.FrameDecoder().feed(proto.HEADER.pack(proto.STDIN, proto.MAX_PAYLOAD + 1))


@pytest.mark.parametrize(
    ("raw", "message", "code"),
    [
        (
            'runc create failed: unable to start container process: exec: "x": '
            "executable file not found in $PATH",
            'exec: "x": executable file not found in $PATH',
            127,
        ),
        (
            'runc run failed: unable to start container process: exec: "/etc/passwd": '
            "permission denied",
            'exec: "/etc/passwd": permission denied',
            126,
        ),
        ("runc create failed: cgroup weirdness", "cgroup weirdness", 125),
    ],
)
def test_runc_errors_map_to_docker_exit_codes(raw: str, message: str, code: int) -> None:
    assert clean_message(raw) == message
    assert start_exit_code(message) == code


def test_json_file_log_cuts_long_lines_even_with_their_newline(tmp_path: Path) -> None:
    # moby's copier: a 16 KiB buffer that fills without a newline is logged as a partial line,
    # whether or not the newline arrives in the same read.
    log = JsonFileLog(tmp_path / "c.log")
    log.write("stdout", b"y" * 40000 + b"\nshort\n")
    log.close()
    entries = [json.loads(line) for line in (tmp_path / "c.log").read_text().splitlines()]
    assert [len(e["log"]) for e in entries] == [16384, 16384, 7233, 6]
