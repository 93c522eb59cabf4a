"""Framing between a container monitor and its daemon-side peer.

Each frame is one type byte, a big-endian uint32 payload length, then the payload. Output and
stdin frames carry raw bytes; control frames carry a JSON object.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

HEADER = struct.Struct(">BI")

# the files in a container's monitor directory
SOCKET_NAME = "monitor.sock"
LOG_NAME = "container.log"
EXIT_NAME = "exit.json"
PID_NAME = "init.pid"
CONSOLE_NAME = "console.sock"
MONITOR_PID_NAME = "monitor.pid"


@dataclass(frozen=True)
class LogOptions:
    """What the monitor does with output: Docker's json-file log (with moby's max-size and
    max-file rotation) or, for the `none` driver, nothing."""

    driver: str = "json-file"  # json-file | none
    max_size: int = -1  # bytes; -1: the file grows without limit
    max_file: int = 1  # files kept, the current one included

    def argv(self) -> list[str]:
        """The monitors' (C and Python) arguments for these options."""
        if self.driver == "none":
            return ["--log-driver", "none"]
        if self.max_size < 0:
            return []
        return ["--log-max-size", str(self.max_size), "--log-max-file", str(self.max_file)]


# monitor → daemon
STDOUT = 1
STDERR = 2
STARTED = 3  # {"pid": int}
START_FAILED = 4  # {"message": str, "exit_code": int}
EXITED = 5  # {"exit_code": int, "finished_at": str}
# daemon → monitor
STDIN = 16
STDIN_CLOSE = 17
RESIZE = 18  # {"height": int, "width": int}, terminal containers only
# A monitor started with --hold waits for this before it runs runc: the daemon starts it while
# it still prepares the bundle (issue 17 row d); the connection's end instead calls it off.
GO = 19

MAX_PAYLOAD = 1 << 24


def frame(kind: int, payload: bytes = b"") -> bytes:
    return HEADER.pack(kind, len(payload)) + payload


def control(kind: int, body: dict[str, Any]) -> bytes:
    return frame(kind, json.dumps(body).encode())


class FrameDecoder:
    """Incremental decoder: feed bytes, get whole frames."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buf += data
        out: list[tuple[int, bytes]] = []
        while len(self._buf) >= HEADER.size:
            kind, length = HEADER.unpack_from(self._buf)
            if length > MAX_PAYLOAD:
                raise ValueError(f"monitor frame of {length} bytes is too large")
            end = HEADER.size + length
            if len(self._buf) < end:
                break
            out.append((kind, bytes(self._buf[HEADER.size : end])))
            del self._buf[:end]
        return out
