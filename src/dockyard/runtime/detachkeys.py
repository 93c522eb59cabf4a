"""Docker's `--detach-keys` syntax, shared by the daemon (attach/exec streams) and the CLI.

moby/term `ToBytes`: a comma-separated list where each key is one character taken as is,
one of `ctrl-@`, `ctrl-a` … `ctrl-z`, `ctrl-[`, `ctrl-\\`, `ctrl-]`, `ctrl-^`, `ctrl-_`
(ASCII 0 … 31, lower case only), or `DEL` (127). Nothing is trimmed: `ctrl-p, ctrl-q` is
refused for its space, as Docker refuses it. An empty spec means the default, ctrl-p ctrl-q.
Kept in the runtime layer, below both the API and the CLI, and free of imports so the CLI's
start does not pay for it.
"""

from __future__ import annotations

DEFAULT_DETACH_KEYS = b"\x10\x11"  # ctrl-p, ctrl-q (docker/cli hijack.go defaultEscapeKeys)

_CONTROL = "@abcdefghijklmnopqrstuvwxyz[\\]^_"  # ctrl-<c> is ASCII code _CONTROL.index(c)


class InvalidDetachKeys(ValueError):
    """A key that is not in Docker's list; the message is moby/term's."""


def parse_detach_keys(spec: str) -> bytes:
    """The byte sequence `spec` names (`""` → ctrl-p ctrl-q)."""
    if spec == "":
        return DEFAULT_DETACH_KEYS
    out = bytearray()
    for key in spec.split(","):
        if len(key.encode("utf-8")) == 1:  # Go's len(): one byte, so ASCII only
            out += key.encode()
        elif key.startswith("ctrl-") and len(key) == 6 and key[5] in _CONTROL:
            out.append(_CONTROL.index(key[5]))
        elif key == "DEL":
            out.append(127)
        else:
            raise InvalidDetachKeys(f"unknown character: '{key}'")
    return bytes(out)


class EscapeMatcher:
    """Finds the detach sequence in a terminal's input, as moby/term's EscapeProxy does.

    Bytes before the sequence pass through; a partial match is held back and released as
    typed if the next byte breaks it (that byte is not taken as a new start, as in moby).
    Once the sequence is complete, `detached` is set and later input is dropped.
    """

    def __init__(self, keys: bytes) -> None:
        if not keys:
            raise ValueError("an escape sequence needs at least one key")
        self.keys = keys
        self.matched = 0
        self.detached = False

    def feed(self, data: bytes) -> bytes:
        """The part of `data` to forward to the container."""
        if self.detached:
            return b""
        out = bytearray()
        keys = self.keys
        for b in data:
            if b == keys[self.matched]:
                self.matched += 1
                if self.matched == len(keys):
                    self.detached = True
                    return bytes(out)
                continue
            if self.matched:
                out += keys[: self.matched]
                self.matched = 0
            out.append(b)
        return bytes(out)
