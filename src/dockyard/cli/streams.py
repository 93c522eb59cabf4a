"""Decoding the daemon's streams: multiplexed stdio frames and NDJSON progress messages."""

from __future__ import annotations

import struct

TYPE_CHECKING = False  # typing itself costs ~1.5 ms of start-up; mypy honours this name

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from typing import Any

STDIN, STDOUT, STDERR, SYSTEMERR = 0, 1, 2, 3
_HEADER = struct.Struct(">BxxxI")


class StreamError(Exception):
    """The daemon reported an error inside a stream that had already answered 200.

    `code` is the message's `errorDetail.code` (a failed RUN's exit status; 0 when absent):
    `docker build` exits with it, or 1 without one (docker/cli image/build.go).
    """

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.code = code


class Demuxer:
    """Incremental decoder of Docker's multiplexed stream (API "Stream format").

    Each frame is an 8-byte header — stream type, three zero bytes, big-endian uint32
    payload size — then the payload. `feed` takes arbitrary chunks and returns the
    complete frames as (stream, payload) pairs; frames split across chunks are kept.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._want: tuple[int, int] | None = None

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buf += data
        frames: list[tuple[int, bytes]] = []
        while True:
            if self._want is None:
                if len(self._buf) < _HEADER.size:
                    return frames
                self._want = _HEADER.unpack_from(self._buf)
                del self._buf[: _HEADER.size]
            stream, size = self._want
            if len(self._buf) < size:
                return frames
            frames.append((stream, bytes(self._buf[:size])))
            del self._buf[:size]
            self._want = None

    @property
    def pending(self) -> int:
        """Bytes of an unfinished frame (a stream that ends with pending > 0 was cut)."""
        return len(self._buf) + (_HEADER.size if self._want else 0)


def encode_frame(stream: int, payload: bytes) -> bytes:
    """One multiplexed frame (the inverse of Demuxer; used by tests and fakes)."""
    return _HEADER.pack(stream, len(payload)) + payload


def iter_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Newline-delimited records from a chunked body (a last unterminated one included)."""
    buf = b""
    for chunk in chunks:
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            if line.strip():
                yield line
    if buf.strip():
        yield buf


def iter_messages(chunks: Iterable[bytes]) -> Iterator[dict[str, Any]]:
    """JSON messages of a build/pull/push/load/import stream.

    A `{"errorDetail": {...}, "error": ...}` message raises StreamError: the daemon says
    so after the 200 header, and every docker client treats it as the call failing.
    """
    from dockyard.cli.cjson import raw_decode  # json's, without json's `re` (a line may hold
    # several documents)

    for line in iter_lines(chunks):
        text = line.decode("utf-8", "replace").strip()
        # Some daemons put several objects on one line; decode them one by one.
        pos = 0
        while pos < len(text):
            msg, end = raw_decode(text, pos)
            pos = end
            while pos < len(text) and text[pos].isspace():
                pos += 1
            if not isinstance(msg, dict):
                continue
            raise_for_error(msg)
            yield msg


def raise_for_error(msg: dict[str, Any]) -> None:
    detail = msg.get("errorDetail")
    if isinstance(detail, dict) and detail.get("message"):
        code = detail.get("code")
        raise StreamError(str(detail["message"]), code if isinstance(code, int) else 0)
    if msg.get("error"):
        raise StreamError(str(msg["error"]))


def format_message(msg: dict[str, Any]) -> str:
    """A message as the docker CLI prints it on a non-terminal (jsonmessage.Display)."""
    if "stream" in msg:
        return str(msg["stream"])
    out = ""
    if msg.get("id"):
        out += f"{msg['id']}: "
    if msg.get("status"):
        out += str(msg["status"])
        return out + "\n"
    return ""


def response_chunks(resp: Any, size: int = 65536) -> Iterator[bytes]:
    """Chunks of a response body as they arrive (read1 does not wait to fill a buffer)."""
    while True:
        data = resp.read1(size)
        if not data:
            return
        yield data
