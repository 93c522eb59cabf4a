"""Compression of layer streams, recognised by magic bytes as Docker's archive package does.

Layer blobs arrive gzip-compressed (the default media type), zstd-compressed
(`application/vnd.oci.image.layer.v1.tar+zstd`, read by Docker since 23.0) or plain; bzip2
and xz cost nothing extra to recognise and still appear in old `docker load` archives.
"""

from __future__ import annotations

import bz2
import enum
import gzip
import io
import lzma
from typing import BinaryIO, cast

import zstandard


class Compression(enum.Enum):
    NONE = "none"
    GZIP = "gzip"
    ZSTD = "zstd"
    BZIP2 = "bzip2"
    XZ = "xz"


_MAGIC: tuple[tuple[bytes, Compression], ...] = (
    (b"\x1f\x8b\x08", Compression.GZIP),
    (b"\x28\xb5\x2f\xfd", Compression.ZSTD),
    (b"BZh", Compression.BZIP2),
    (b"\xfd7zXZ\x00", Compression.XZ),
)
_PEEK = 6


def detect(head: bytes) -> Compression:
    """The compression whose magic number starts `head` (NONE for a plain tar)."""
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    return Compression.NONE


class _PrefixedReader(io.RawIOBase):
    """Gives back the bytes already read for sniffing, then the rest of the stream."""

    def __init__(self, prefix: bytes, stream: BinaryIO) -> None:
        self._prefix = prefix
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._prefix:
            n = min(len(buffer), len(self._prefix))
            buffer[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        data = self._stream.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        return n


def _read_exact(stream: BinaryIO, n: int) -> bytes:
    parts: list[bytes] = []
    got = 0
    while got < n:
        chunk = stream.read(n - got)
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def open_decompressed(stream: BinaryIO) -> BinaryIO:
    """A reader of `stream`'s uncompressed bytes, whatever compression it carries."""
    head = _read_exact(stream, _PEEK)
    raw = cast(BinaryIO, io.BufferedReader(_PrefixedReader(head, stream), 1 << 20))
    kind = detect(head)
    if kind is Compression.NONE:
        return raw
    if kind is Compression.GZIP:
        return cast(BinaryIO, gzip.GzipFile(fileobj=raw, mode="rb"))
    if kind is Compression.ZSTD:
        reader = zstandard.ZstdDecompressor().stream_reader(
            raw, read_size=1 << 20, read_across_frames=True
        )
        return cast(BinaryIO, io.BufferedReader(reader, 1 << 20))
    if kind is Compression.BZIP2:
        return cast(BinaryIO, bz2.BZ2File(raw, mode="rb"))
    return cast(BinaryIO, lzma.LZMAFile(raw, mode="rb"))
