"""Docker's detach-key syntax and escape matching (moby/term ascii.go, proxy.go), one parser
for the daemon and the CLI."""

from __future__ import annotations

import pytest

from dockyard.runtime.detachkeys import EscapeMatcher, InvalidDetachKeys, parse_detach_keys


def test_keys_as_moby_term_reads_them() -> None:
    assert parse_detach_keys("") == b"\x10\x11"
    assert parse_detach_keys("ctrl-a,a") == bytes([1, 97])
    assert parse_detach_keys("ctrl-@,ctrl-[,~,ctrl-o") == bytes([0, 27, 126, 15])
    assert parse_detach_keys("DEL,+") == bytes([127, 43])
    assert parse_detach_keys("ctrl-\\,ctrl-],ctrl-^,ctrl-_") == bytes([28, 29, 30, 31])


@pytest.mark.parametrize("spec", ["shift-z", "ctrl-A", "ctrl-1", "ctrl-p, ctrl-q", "é", ",", "del"])
def test_refused_keys(spec: str) -> None:
    with pytest.raises(InvalidDetachKeys, match="unknown character: '"):
        parse_detach_keys(spec)


def test_escape_matcher_passes_what_precedes_and_holds_partial_matches() -> None:
    m = EscapeMatcher(b"\x10\x11")
    assert m.feed(b"ab\x10") == b"ab"  # a partial match is held back
    assert m.feed(b"c") == b"\x10c"  # … and released when the next byte breaks it
    assert not m.detached
    assert m.feed(b"x\x10\x11after") == b"x"
    assert m.detached and m.feed(b"more") == b""


def test_escape_matcher_does_not_restart_on_the_breaking_byte() -> None:
    # moby: after a broken partial match the breaking byte is not taken as a new start.
    m = EscapeMatcher(b"\x10\x11")
    assert m.feed(b"\x10\x10\x11") == b"\x10\x10\x11"
    assert not m.detached
