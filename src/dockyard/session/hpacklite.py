"""HPACK (RFC 7541) for session/h2lite.py: a whole decoder, and an encoder of plain literals.

Why not the `hpack` package (which h2, and so the daemon, uses): importing it costs the CLI
~35 ms of start-up here (`python -S -c 'import hpack'` 46 ms against 11 ms for `pass`, 10
runs), a third of what the whole cached build may take (issue 17 row b: ≤ 50 ms); it builds
its Huffman decoding state machine at import. This decoder is ~150 lines and imports nothing.

- Decoding has everything the daemon's encoder (hpack's, through h2) may send: the static
  table (Appendix A), the dynamic table with its size updates and evictions (§2.3, §4), the
  five representations (§6), and Huffman-coded strings (§5.2, Appendix B). The Huffman code
  is canonical (codes of one length are consecutive, assigned in symbol order), so the table
  of code lengths below is all it takes: tests/session/test_h2lite.py compares it with the
  `hpack` package's codes.
- Encoding (our response headers and trailers, a handful per call) writes "literal without
  indexing" with plain names and values (§6.2.2): the peer needs no state for them and the
  few bytes saved by Huffman or indexing do not matter here.
"""

from __future__ import annotations


class HPACKError(ValueError):
    """A header block that cannot be decoded: a connection error (COMPRESSION_ERROR)."""


_STATIC_NAMES = [
    ":authority",
    ":method",
    ":method",
    ":path",
    ":path",
    ":scheme",
    ":scheme",
    ":status",
    ":status",
    ":status",
    ":status",
    ":status",
    ":status",
    ":status",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "accept",
    "access-control-allow-origin",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-range",
    "content-type",
    "cookie",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "link",
    "location",
    "max-forwards",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "refresh",
    "retry-after",
    "server",
    "set-cookie",
    "strict-transport-security",
    "transfer-encoding",
    "user-agent",
    "vary",
    "via",
    "www-authenticate",
]
_STATIC_VALUES = {
    2: "GET", 3: "POST", 4: "/", 5: "/index.html", 6: "http", 7: "https", 8: "200", 9: "204",
    10: "206", 11: "304", 12: "400", 13: "404", 14: "500", 16: "gzip, deflate",
}  # fmt: skip
STATIC_TABLE: tuple[tuple[bytes, bytes], ...] = tuple(
    (name.encode(), _STATIC_VALUES.get(i, "").encode())
    for i, name in enumerate(_STATIC_NAMES, start=1)
)
assert len(STATIC_TABLE) == 61

# Appendix B: the code length of each symbol 0-255 and of EOS (256).
HUFFMAN_LENGTHS = bytes.fromhex(
    "0d171c1c1c1c1c1c1c181e1c1c1e1c1c1c1c1c1c1c1c1e1c1c1c1c1c1c1c1c1c"
    "060a0a0c0d06080b0a0a080b080606060505050606060606060607080f060c0a"
    "0d06070707070707070707070707070707070707070707070807080d130d0e06"
    "0f05060506050606060507070606060506070605050607070707070f0b0e0d1c"
    "1416141416161617161717171717181718181617181717171715161716171718"
    "1615141616171715171616181516171715151615171617171416161617161617"
    "1a1a1413161716191a1a1a1b1b1a181913151a1b1b1a1b1815151a1a1c1b1b1b"
    "14181415161515171616191918181a171a1b1a1a1b1b1b1b1b1c1b1b1b1b1b1a"
    "1e"
)


def _huffman_tables() -> tuple[list[int], list[int], list[int], list[int]]:
    """Canonical decoding (RFC 7541 §5.2): for each length, the first code of that length,
    how many codes have it, and where its symbols start in the symbols sorted by
    (length, symbol)."""
    symbols = sorted(range(257), key=lambda s: (HUFFMAN_LENGTHS[s], s))
    first = [0] * 31
    count = [0] * 31
    start = [0] * 31
    code = 0
    prev = HUFFMAN_LENGTHS[symbols[0]]
    for i, sym in enumerate(symbols):
        length = HUFFMAN_LENGTHS[sym]
        if i:
            code = (code + 1) << (length - prev)
        prev = length
        if not count[length]:
            first[length], start[length] = code, i
        count[length] += 1
    return first, count, start, symbols


_HUFFMAN: tuple[list[int], list[int], list[int], list[int]] | None = None


def huffman_codes() -> dict[int, tuple[int, int]]:
    """symbol -> (code, length), for tests."""
    first, count, start, symbols = _huffman_tables()
    out = {}
    for length in range(31):
        for k in range(count[length]):
            out[symbols[start[length] + k]] = (first[length] + k, length)
    return out


def huffman_decode(data: bytes) -> bytes:
    global _HUFFMAN
    if _HUFFMAN is None:
        _HUFFMAN = _huffman_tables()
    first, count, start, symbols = _HUFFMAN
    out = bytearray()
    code = length = 0
    for byte in data:
        for shift in (7, 6, 5, 4, 3, 2, 1, 0):
            code = (code << 1) | ((byte >> shift) & 1)
            length += 1
            if length >= 5:
                k = code - first[length]
                if 0 <= k < count[length]:
                    sym = symbols[start[length] + k]
                    if sym == 256:
                        raise HPACKError("EOS symbol in a Huffman-coded string")
                    out.append(sym)
                    code = length = 0
                elif length >= 30:
                    raise HPACKError("invalid Huffman code")
    # §5.2: the padding is the most significant bits of EOS (all ones), under 8 bits
    if length > 7 or code != (1 << length) - 1:
        raise HPACKError("invalid Huffman padding")
    return bytes(out)


def _integer(data: bytes, i: int, prefix: int) -> tuple[int, int]:
    """§5.1: an integer with an N-bit prefix starting at data[i]; (value, next index)."""
    mask = (1 << prefix) - 1
    value = data[i] & mask
    i += 1
    if value < mask:
        return value, i
    shift = 0
    while True:
        if i >= len(data):
            raise HPACKError("truncated integer")
        b = data[i]
        i += 1
        value += (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return value, i
        if shift > 28:
            raise HPACKError("integer too large")


def _string(data: bytes, i: int) -> tuple[bytes, int]:
    if i >= len(data):
        raise HPACKError("truncated string")
    huffman = data[i] & 0x80
    n, i = _integer(data, i, 7)
    if i + n > len(data):
        raise HPACKError("truncated string")
    raw = data[i : i + n]
    return (huffman_decode(raw) if huffman else raw), i + n


class Decoder:
    """One connection's decoding context (its dynamic table lives across header blocks)."""

    def __init__(self, max_table_size: int = 4096, max_list_size: int = 1 << 20) -> None:
        self.limit = max_table_size  # our SETTINGS_HEADER_TABLE_SIZE
        self.max_size = max_table_size
        self.max_list_size = max_list_size
        self.table: list[tuple[bytes, bytes]] = []  # newest first
        self.size = 0

    def _get(self, index: int) -> tuple[bytes, bytes]:
        if 1 <= index <= 61:
            return STATIC_TABLE[index - 1]
        if 62 <= index < 62 + len(self.table):
            return self.table[index - 62]
        raise HPACKError(f"header index {index} out of range")

    def _add(self, name: bytes, value: bytes) -> None:
        size = len(name) + len(value) + 32
        self.table.insert(0, (name, value))
        self.size += size
        self._evict()

    def _evict(self) -> None:
        while self.size > self.max_size and self.table:
            name, value = self.table.pop()
            self.size -= len(name) + len(value) + 32

    def decode(self, block: bytes) -> list[tuple[bytes, bytes]]:
        out: list[tuple[bytes, bytes]] = []
        total = 0
        i, n = 0, len(block)
        while i < n:
            b = block[i]
            if b & 0x80:  # §6.1 indexed
                index, i = _integer(block, i, 7)
                if index == 0:
                    raise HPACKError("header index 0")
                header = self._get(index)
            elif b & 0xE0 == 0x20:  # §6.3 dynamic table size update
                size, i = _integer(block, i, 5)
                if size > self.limit:
                    raise HPACKError(f"table size {size} over the limit {self.limit}")
                self.max_size = size
                self._evict()
                continue
            else:
                indexing = b & 0xC0 == 0x40  # §6.2.1, else §6.2.2/§6.2.3
                index, i = _integer(block, i, 6 if indexing else 4)
                if index:
                    name = self._get(index)[0]
                else:
                    name, i = _string(block, i)
                value, i = _string(block, i)
                header = (name, value)
                if indexing:
                    self._add(name, value)
            total += len(header[0]) + len(header[1]) + 32
            if total > self.max_list_size:
                raise HPACKError("header list too large")
            out.append(header)
        return out


def encode(headers: list[tuple[str, str]]) -> bytes:
    """Literals without indexing, names and values as plain strings (§6.2.2)."""
    out = bytearray()
    for name, value in headers:
        out.append(0)
        for raw in (name.encode("latin-1"), value.encode("latin-1")):
            out += _encode_int(len(raw), 7)
            out += raw
    return bytes(out)


def _encode_int(value: int, prefix: int) -> bytes:
    mask = (1 << prefix) - 1
    if value < mask:
        return bytes((value,))
    out = bytearray((mask,))
    value -= mask
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)
