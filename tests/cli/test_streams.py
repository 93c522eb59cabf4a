"""Multiplexed-stream demux and NDJSON error detection."""

from __future__ import annotations

import pytest

from dockyard.cli.streams import (
    STDERR,
    STDOUT,
    Demuxer,
    StreamError,
    encode_frame,
    format_message,
    iter_messages,
)


def test_demux_observed_wire_bytes() -> None:
    # Frames captured from dockerd (anchors §2.4).
    data = b"\x01\x00\x00\x00\x00\x00\x00\x03hi\n\x02\x00\x00\x00\x00\x00\x00\x02e\n"
    assert Demuxer().feed(data) == [(STDOUT, b"hi\n"), (STDERR, b"e\n")]


def test_demux_frames_split_at_every_byte() -> None:
    payload = (
        encode_frame(STDOUT, b"hello")
        + encode_frame(STDERR, b"")
        + encode_frame(STDERR, b"x" * 70000)
    )
    d = Demuxer()
    frames = []
    for i in range(len(payload)):
        frames += d.feed(payload[i : i + 1])
    assert frames == [(STDOUT, b"hello"), (STDERR, b""), (STDERR, b"x" * 70000)]
    assert d.pending == 0


def test_demux_reports_a_cut_frame() -> None:
    d = Demuxer()
    assert d.feed(encode_frame(STDOUT, b"abcdef")[:10]) == []
    assert d.pending == 10


def test_messages_across_chunks_and_error_after_200() -> None:
    chunks = [
        b'{"stream":"Step 1/2 : FROM x"}\n{"stre',
        b'am":"\\n"}\n',
        b'{"aux":{"ID":"sha256:1"}}',
    ]
    msgs = list(iter_messages(chunks))
    assert [format_message(m) for m in msgs] == ["Step 1/2 : FROM x", "\n", ""]
    bad = [b'{"stream":"ok\\n"}\n{"errorDetail":{"message":"boom"},"error":"boom"}\n']
    with pytest.raises(StreamError, match="boom"):
        list(iter_messages(bad))


def test_status_lines_format_like_jsonmessage() -> None:
    assert format_message({"status": "Pulling fs layer", "id": "abc"}) == "abc: Pulling fs layer\n"
    assert format_message({"status": "sha256:123"}) == "sha256:123\n"


def test_error_keeps_the_code_docker_build_exits_with() -> None:
    coded = [b'{"errorDetail":{"code":100,"message":"returned a non-zero code: 100"}}\n']
    with pytest.raises(StreamError) as exc:
        list(iter_messages(coded))
    assert exc.value.code == 100
    with pytest.raises(StreamError) as exc:
        list(iter_messages([b'{"errorDetail":{"message":"no code"},"error":"no code"}\n']))
    assert exc.value.code == 0
