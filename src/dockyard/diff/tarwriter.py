"""A small, fast tar writer for layer tars (POSIX ustar with PAX extended headers).

Python's `tarfile` spends most of a layer commit building headers and looking up user and
group names (pitfalls.md: 1.66 s vs 0.32 s for GNU tar on 20,000 files). Layers need far
less: numeric owners only, ustar headers built with bytes formatting, and a PAX header only
when a field does not fit ustar (long or non-ASCII names, xattrs as `SCHILY.xattr.*`, big
sizes or ids), the way Go's archive/tar (and so Docker) decides it.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol, cast

from dockyard.errors import InvalidArgument

BLOCK = 512
CHUNK = 1 << 20

REGTYPE = b"0"
LNKTYPE = b"1"
SYMTYPE = b"2"
CHRTYPE = b"3"
BLKTYPE = b"4"
DIRTYPE = b"5"
FIFOTYPE = b"6"
XHDTYPE = b"x"

_NUL_BLOCK = bytes(BLOCK)

# The stat(2) file-type bits Docker's archive package puts back into a member's mode
# (moby pkg/archive fillGo18FileTypeBits: Go 1.9's tar.FileInfoHeader stopped writing them).
# A hardlink member has its inode's type: Docker takes the header from the file's stat.
_FILE_TYPE_BITS = {
    REGTYPE: 0o100000,
    LNKTYPE: 0o100000,
    SYMTYPE: 0o120000,
    CHRTYPE: 0o020000,
    BLKTYPE: 0o060000,
    DIRTYPE: 0o040000,
    FIFOTYPE: 0o010000,
}
_MAX7 = 0o7777777
_MAX11 = 0o77777777777


class Writable(Protocol):
    """Anything with `write(bytes)`: a file, a BytesIO, a content-store BlobWriter."""

    def write(self, data: bytes, /) -> int: ...


class Readable(Protocol):
    """A member's contents: a file, or anything with `read(n)`."""

    def read(self, n: int, /) -> bytes: ...


@dataclass(frozen=True)
class TarEntry:
    """One member's header. `name` is relative, without a leading "./"; a directory's name
    ends in "/". Names and link names are bytes as they are on disk (os.fsencode)."""

    name: bytes
    typeflag: bytes
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    mtime: int = 0
    size: int = 0
    linkname: bytes = b""
    devmajor: int = 0
    devminor: int = 0
    xattrs: Mapping[str, bytes] = field(default_factory=dict)
    # Owner names: empty (numeric only) in layers; `cp` out writes the container's names
    uname: bytes = b""
    gname: bytes = b""


def _pax_record(key: bytes, value: bytes) -> bytes:
    # "%d %s=%s\n" where the length counts its own digits (POSIX pax, "extended header").
    body = b" " + key + b"=" + value + b"\n"
    digits = len(str(len(body)))
    length = len(body) + digits
    if len(str(length)) > digits:
        length += 1
    return b"%d" % length + body


def _octal(value: int, width: int) -> bytes:
    return b"%0*o\x00" % (width - 1, value)


def _base256(value: int, width: int) -> bytes:
    # GNU extension for numbers that do not fit in octal; tarfile and GNU tar read it.
    return bytes([0x80]) + value.to_bytes(width - 1, "big")


def _split_ustar(name: bytes) -> tuple[bytes, bytes] | None:
    """Split a 101..256-byte ASCII name into ustar prefix (≤155) and name (≤100), as Go does."""
    length = len(name)
    if length > 156:
        length = 156
    elif name[length - 1 : length] == b"/":
        length -= 1
    i = name.rfind(b"/", 0, length)
    if i <= 0:
        return None
    suffix_len = len(name) - i - 1
    if suffix_len > 100 or suffix_len == 0 or i > 155:
        return None
    return name[:i], name[i + 1 :]


# name, mode+uid+gid+size+mtime, chksum, typeflag, linkname, magic+version, uname, gname,
# devmajor+devminor, prefix, 12 bytes of padding: the ustar header (POSIX pax "ustar Interchange
# Format"). `s` fields are NUL-padded by struct, so one pack builds the block.
_USTAR = struct.Struct("100s48s8sc100s8s32s32s16s155s12x")
_MAGIC = b"ustar\x0000"
# The checksum is computed with its own field as eight spaces (ustar spec); NUL padding adds 0.
_CHKSUM_BASE = 8 * 32 + sum(_MAGIC)
_NUMBERS = b"%07o\x00%07o\x00%07o\x00%011o\x00%011o\x00"  # mode uid gid size mtime
_DEVICES = b"%07o\x00%07o\x00"


def _ustar_block(
    name: bytes,
    prefix: bytes,
    typeflag: bytes,
    numbers: bytes,
    linkname: bytes,
    devices: bytes,
    uname: bytes = b"",
    gname: bytes = b"",
) -> bytes:
    """`numbers`: the mode, uid, gid, size and mtime fields (48 bytes); `devices`: devmajor
    and devminor (16 bytes)."""
    chksum = (
        _CHKSUM_BASE
        + sum(name)
        + sum(numbers)
        + typeflag[0]
        + sum(linkname)
        + sum(uname)
        + sum(gname)
        + sum(devices)
        + sum(prefix)
    )
    return _USTAR.pack(
        name,
        numbers,
        b"%06o\x00 " % chksum,
        typeflag,
        linkname,
        _MAGIC,
        uname,
        gname,
        devices,
        prefix,
    )


def encode_header(entry: TarEntry, file_type_bits: bool = False) -> bytes:
    """The header block(s) for `entry`: an optional PAX 'x' header, then the ustar header."""
    name, linkname, uid, gid, size, mtime = (
        entry.name,
        entry.linkname,
        entry.uid,
        entry.gid,
        entry.size,
        entry.mtime,
    )
    typeflag = entry.typeflag
    mode = entry.mode & 0o7777
    if file_type_bits:
        mode |= _FILE_TYPE_BITS.get(typeflag, 0)
    # Most members need no PAX record: one format and one pack (a layer has thousands).
    if (
        len(name) <= 100
        and len(linkname) <= 100
        and 0 <= uid <= _MAX7
        and 0 <= gid <= _MAX7
        and size <= _MAX11
        and 0 <= mtime <= _MAX11
        and entry.devmajor <= _MAX7
        and entry.devminor <= _MAX7
        and not entry.xattrs
        and len(entry.uname) <= 32
        and len(entry.gname) <= 32
        and name.isascii()
        and linkname.isascii()
        and entry.uname.isascii()
        and entry.gname.isascii()
    ):
        return _ustar_block(
            name,
            b"",
            typeflag,
            _NUMBERS % (mode, uid, gid, size, mtime),
            linkname,
            _DEVICES % (entry.devmajor, entry.devminor),
            entry.uname,
            entry.gname,
        )
    return _encode_pax(entry, mode)


def _encode_pax(entry: TarEntry, mode: int) -> bytes:
    pax: list[tuple[bytes, bytes]] = []
    name = entry.name
    prefix = b""
    if len(name) > 100 or not name.isascii():
        split = _split_ustar(name) if name.isascii() else None
        if split is None:
            pax.append((b"path", name))
            name = name[:100]
        else:
            prefix, name = split
    linkname = entry.linkname
    if len(linkname) > 100 or not linkname.isascii():
        pax.append((b"linkpath", linkname))
        linkname = linkname[:100]
    if 0 <= entry.uid <= _MAX7:
        uid = _octal(entry.uid, 8)
    else:
        pax.append((b"uid", b"%d" % entry.uid))
        uid = _octal(0, 8)
    if 0 <= entry.gid <= _MAX7:
        gid = _octal(entry.gid, 8)
    else:
        pax.append((b"gid", b"%d" % entry.gid))
        gid = _octal(0, 8)
    if entry.size <= _MAX11:
        size = _octal(entry.size, 12)
    else:
        pax.append((b"size", b"%d" % entry.size))
        size = _octal(0, 12)
    if 0 <= entry.mtime <= _MAX11:
        mtime = _octal(entry.mtime, 12)
    else:
        pax.append((b"mtime", b"%d" % entry.mtime))
        mtime = _octal(0, 12)
    devmajor = _octal(entry.devmajor, 8) if entry.devmajor <= _MAX7 else _base256(entry.devmajor, 8)
    devminor = _octal(entry.devminor, 8) if entry.devminor <= _MAX7 else _base256(entry.devminor, 8)
    # Go's tar writer: a name that fits the 32-byte field goes there, else in PAX
    owner_names = []
    for pax_key, owner_name in ((b"uname", entry.uname), (b"gname", entry.gname)):
        if len(owner_name) > 32 or not owner_name.isascii():
            pax.append((pax_key, owner_name))
            owner_name = b""
        owner_names.append(owner_name)
    for key in sorted(entry.xattrs):
        if "=" in key or "\n" in key:
            raise InvalidArgument(f"xattr name {key!r} cannot be stored in a tar PAX header")
        pax.append((b"SCHILY.xattr." + key.encode("utf-8", "surrogateescape"), entry.xattrs[key]))

    header = _ustar_block(
        name,
        prefix,
        entry.typeflag,
        _octal(mode, 8) + uid + gid + size + mtime,
        linkname,
        devmajor + devminor,
        *owner_names,
    )
    if not pax:
        return header
    pax.sort()
    # Non-UTF-8 names go in raw, without POSIX's hdrcharset=BINARY: Go (so Docker) does
    # the same, GNU tar 1.34 warns about hdrcharset, and Python's tarfile reads both.
    data = b"".join(_pax_record(k, v) for k, v in pax)
    # Go names the extended header "<dir>/PaxHeaders.0/<base>"; readers ignore the name.
    stripped = entry.name.rstrip(b"/")
    d, _, base = stripped.rpartition(b"/")
    pax_name = (d + b"/" if d else b"") + b"PaxHeaders.0/" + base
    pax_name = pax_name.decode("ascii", "replace").encode("ascii", "replace")[:100]
    pax_header = _ustar_block(
        pax_name,
        b"",
        XHDTYPE,
        _NUMBERS % (0, 0, 0, len(data), 0),
        b"",
        _DEVICES % (0, 0),
    )
    return pax_header + data + _padding(len(data)) + header


def _padding(size: int) -> bytes:
    rem = size % BLOCK
    return bytes(BLOCK - rem) if rem else b""


class TarWriter:
    """Writes tar members to `out`, batching small writes into 1 MiB chunks.

    Call `add` per member (with the file's contents for regular files), then `close`, which
    writes the two zero blocks that end an archive and flushes. `out` is not closed.

    `file_type_bits` writes modes as Docker's archive package does for `docker cp`, export
    and GET /archive (0o100640, 0o40755, 0o120777); layer tars leave them out, as BuildKit
    (dockerd 26.1) writes its layers. dockerd 20.10's legacy layers carry them, but a
    layer's bytes differ from 20.10's anyway (times), and one cache serves both builders.

    The batch is one buffer allocated once, and file contents are read straight into it.
    With `lend_buffer`, `out.write` gets a view of that buffer, which is reused once it
    returns: only for a sink that is done with its argument when `write` returns, as
    io's own write contract says (the content store's BlobWriter hashes and writes it).
    Other sinks (a queue to a response, a spool) get a copy. Measured on a 200 MiB,
    5,000-file layer: the old growing batch (`+=`, then `bytes()`) copied every byte twice
    and page-faulted a fresh MiB per chunk, 0.26 of the commit's 0.55 s of CPU.
    """

    def __init__(
        self, out: Writable | BinaryIO, *, file_type_bits: bool = False, lend_buffer: bool = False
    ) -> None:
        self._out = out
        self._file_type_bits = file_type_bits
        self._lend = lend_buffer
        self._buf = bytearray(CHUNK)
        self._view = memoryview(self._buf)
        self._pos = 0
        self.bytes_written = 0
        # What the members hold on disk, as dockerd sizes a layer (pkg/directory.Size:
        # apparent sizes of non-directories, a hardlinked inode once; a symlink is its
        # target's length): regular files' sizes plus symlink targets. Hardlink entries add
        # nothing, whiteout markers are empty.
        self.content_size = 0

    def _emit(self, data: bytes) -> None:
        n = len(data)
        pos = self._pos
        if pos + n > CHUNK:
            self._flush()
            pos = 0
            if n > CHUNK:  # a PAX header with huge xattrs
                self._write(data)
                return
        self._view[pos : pos + n] = data
        self._pos = pos + n

    def _write(self, data: bytes) -> None:
        self._out.write(data)
        self.bytes_written += len(data)

    def _flush(self) -> None:
        if self._pos:
            batch = self._view[: self._pos]
            # Lent, the view goes out as is: the sink promised not to keep it (see above).
            self._write(cast(bytes, batch) if self._lend else bytes(batch))
            self._pos = 0

    def _header(self, entry: TarEntry) -> None:
        self._emit(encode_header(entry, self._file_type_bits))
        if entry.typeflag == SYMTYPE:
            self.content_size += len(entry.linkname)
        elif entry.typeflag == REGTYPE:
            self.content_size += entry.size

    def add(self, entry: TarEntry, data: Readable | BinaryIO | None = None) -> None:
        """Add one member. A regular file with `size` > 0 needs `data`, of which exactly
        `size` bytes are stored; a file that shrank meanwhile is an error, not a corrupt tar."""
        self._header(entry)
        if entry.typeflag != REGTYPE or entry.size == 0:
            return
        if data is None:
            raise InvalidArgument(f"tar member {entry.name!r} has size {entry.size} but no data")
        readinto = getattr(data, "readinto", None)
        if entry.size < CHUNK and readinto is not None:
            self._read_small(entry, readinto)
            return
        remaining = entry.size
        # A file of a chunk or more goes to `out` in the chunks read, after what is batched:
        # copying 512 MiB through the batch cost a memcpy per byte.
        direct = remaining >= CHUNK
        if direct:
            self._flush()
        while remaining:
            chunk = data.read(min(CHUNK, remaining))
            if not chunk:
                raise InvalidArgument(
                    f"{os.fsdecode(entry.name)!r} changed size while it was archived"
                )
            if direct:
                self._write(chunk)
            else:
                self._emit(chunk)
            remaining -= len(chunk)
        self._emit(_padding(entry.size))

    def add_fd(self, entry: TarEntry, fd: int) -> None:
        """`add` for a regular file open as `fd` (read from its current offset)."""
        self.add(entry, _FdReader(fd))

    def _read_small(self, entry: TarEntry, readinto: Callable[[memoryview], int | None]) -> None:
        # The contents and their padding, read into the batch where they will be written.
        size = entry.size
        end = size + (-size % BLOCK)
        if self._pos + end > CHUNK:
            self._flush()
        view = self._view
        pos = self._pos
        stop = pos + size
        while pos < stop:
            n = readinto(view[pos:stop])
            if not n:
                raise InvalidArgument(
                    f"{os.fsdecode(entry.name)!r} changed size while it was archived"
                )
            pos += n
        view[stop : self._pos + end] = _NUL_BLOCK[: end - size]
        self._pos += end

    def add_path(self, entry: TarEntry, path: bytes | str) -> None:
        """Add a regular file whose contents are read from `path`."""
        if entry.size == 0:
            self.add(entry)
            return
        with open(path, "rb", buffering=0) as f:
            self.add(entry, f)

    def close(self) -> None:
        self._emit(_NUL_BLOCK + _NUL_BLOCK)
        self._flush()


class _FdReader:
    """An open file descriptor as a `Readable` with `readinto`, without a FileIO object."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def read(self, n: int) -> bytes:
        return os.read(self._fd, n)

    def readinto(self, buf: memoryview) -> int:
        return os.readv(self._fd, (buf,))
