"""Safe extraction of a layer tar into a snapshot directory (DESIGN layer 5).

The target becomes an overlayfs lower dir, so OCI whiteouts (image-spec layer.md) are
stored in overlay form, as Docker's overlay2 driver does (moby overlayWhiteoutConverter
ConvertRead): `.wh.NAME` → character device 0:0 at NAME, `.wh..wh..opq` → xattr
`trusted.overlay.opaque=y` on the directory.

Safety: every member's parent is resolved inside the target as a chroot would
(`fsutil.resolve_in_root`: absolute symlinks restart at the target, `..` is clamped), the
final component is never followed, `..` components in names and link targets are refused,
and a leading "/" is dropped (Docker joins names onto the root). Layers may not set
`trusted.overlay.*` xattrs themselves: that would let a layer forge overlay metadata.

The tar is parsed here rather than with `tarfile`, which silently ends a stream at a bad
header checksum or a truncated header: a corrupt layer must fail, not apply half-way.
Needs root (mknod, lchown, trusted.* xattrs). On failure the target holds partial state;
the caller (the snapshotter) deletes the whole target directory.
"""

from __future__ import annotations

import errno
import hashlib
import lzma
import os
import shutil
import stat
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import zstandard

from dockyard.diff.compression import open_decompressed
from dockyard.diff.fsutil import SymlinkLoop, mkdir_in_root, resolve_in_root, split_components
from dockyard.errors import DockyardError, UnsafeArchive

_BLOCK = 512
_CHUNK = 1 << 20
_ZERO_BLOCK = bytes(_BLOCK)
_WHITEOUT_PREFIX = ".wh."
_WHITEOUT_META_PREFIX = ".wh..wh."
_WHITEOUT_OPAQUE = ".wh..wh..opq"
_OPAQUE_XATTR = "trusted.overlay.opaque"


class ApplyFailed(DockyardError):
    """The kernel refused an operation while a well-formed layer was being extracted."""


@dataclass(frozen=True)
class ApplyResult:
    diff_id: str  # sha256 of the uncompressed tar stream
    size: int  # length of the uncompressed tar stream
    # file contents and symlink targets extracted, as dockerd sizes a layer (TarWriter's
    # content_size); a member replaced by a later one of the same name counts twice
    content_size: int = 0


# --- reading -----------------------------------------------------------------------------


class _Source:
    """Buffered reader over the decompressed stream that hashes every byte it reads."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._buf = b""
        self._pos = 0
        self.hash = hashlib.sha256()
        self.size = 0

    def _fill(self) -> bool:
        try:
            chunk = self._raw.read(_CHUNK)
        except (OSError, EOFError, zlib.error, lzma.LZMAError, zstandard.ZstdError) as e:
            raise UnsafeArchive(f"layer stream is corrupt or truncated: {e}") from e
        if not chunk:
            return False
        self.hash.update(chunk)
        self.size += len(chunk)
        self._buf = self._buf[self._pos :] + chunk
        self._pos = 0
        return True

    def read(self, n: int) -> bytes:
        """Up to `n` bytes; fewer only at the end of the stream."""
        while len(self._buf) - self._pos < n:
            if not self._fill():
                break
        data = self._buf[self._pos : self._pos + n]
        self._pos += len(data)
        return data

    def read_some(self, n: int) -> bytes:
        """Between 1 and `n` bytes without copying more than needed; b"" at the end."""
        if self._pos >= len(self._buf) and not self._fill():
            return b""
        data = self._buf[self._pos : self._pos + n]
        self._pos += len(data)
        return data

    def drain(self) -> None:
        self._pos = len(self._buf)
        while self._fill():
            self._pos = len(self._buf)


@dataclass
class _Header:
    name: bytes
    typeflag: bytes
    mode: int
    uid: int
    gid: int
    size: int
    mtime: int
    linkname: bytes
    devmajor: int
    devminor: int
    xattrs: dict[str, bytes] = field(default_factory=dict)


def _cstr(data: bytes) -> bytes:
    return data.split(b"\x00", 1)[0]


def _num(data: bytes, what: str) -> int:
    if data and data[0] & 0x80:
        # GNU base-256: 0x80 marks a positive number, 0xff a negative one.
        if data[0] == 0xFF:
            return int.from_bytes(data, "big", signed=True)
        return int.from_bytes(bytes([data[0] & 0x7F]) + data[1:], "big")
    text = _cstr(data).strip(b" ")
    try:
        return int(text, 8) if text else 0
    except ValueError:
        raise UnsafeArchive(f"invalid tar header: bad {what} field {data!r}") from None


def _parse_pax(data: bytes) -> dict[bytes, bytes]:
    records: dict[bytes, bytes] = {}
    pos = 0
    while pos < len(data):
        if data[pos] == 0:  # some writers pad the data with NULs
            break
        space = data.find(b" ", pos)
        try:
            length = int(data[pos:space]) if space > pos else 0
        except ValueError:
            length = 0
        record = data[pos : pos + length]
        if length <= 0 or len(record) != length or not record.endswith(b"\n"):
            raise UnsafeArchive("invalid tar PAX extended header")
        key, eq, value = record[space - pos + 1 : -1].partition(b"=")
        if not eq:
            raise UnsafeArchive("invalid tar PAX record without '='")
        records[key] = value
        pos += length
    return records


class _TarReader:
    def __init__(self, src: _Source) -> None:
        self._src = src
        self._remaining = 0  # data bytes of the current member not yet read
        self._padding = 0
        self._members = 0

    def _read_exact(self, n: int, what: str) -> bytes:
        data = self._src.read(n)
        if len(data) != n:
            raise UnsafeArchive(f"layer tar is truncated (in {what})")
        return data

    def _skip_rest(self) -> None:
        while self._remaining:
            chunk = self._src.read_some(min(_CHUNK, self._remaining))
            if not chunk:
                raise UnsafeArchive("layer tar is truncated (in file data)")
            self._remaining -= len(chunk)
        if self._padding:
            self._read_exact(self._padding, "padding")
            self._padding = 0

    def _set_data(self, size: int) -> None:
        self._remaining = size
        self._padding = -size % _BLOCK

    def _read_special(self, size: int) -> bytes:
        if size > 64 << 20:
            raise UnsafeArchive(f"tar extended header of {size} bytes is not plausible")
        self._set_data(size)
        data = self._read_exact(size, "extended header")
        self._remaining = 0
        self._skip_rest()
        return data

    def next(self) -> _Header | None:
        """The next member's header (extensions applied), or None at the end of the archive."""
        self._skip_rest()
        pax: dict[bytes, bytes] = {}
        long_name: bytes | None = None
        long_link: bytes | None = None
        while True:
            block = self._src.read(_BLOCK)
            if not block:
                if self._members == 0 and not pax and long_name is None:
                    return None  # an empty stream: Go's archive/tar reads it as no members
                raise UnsafeArchive("layer tar is truncated (no end-of-archive marker)")
            if len(block) != _BLOCK:
                raise UnsafeArchive("layer tar is truncated (in a header)")
            if block == _ZERO_BLOCK:
                second = self._src.read(_BLOCK)
                if second and second != _ZERO_BLOCK:
                    raise UnsafeArchive("invalid tar: a zero block followed by data")
                return None
            stored = _num(block[148:156], "checksum")
            unsigned = sum(block[:148]) + 256 + sum(block[156:])
            if stored != unsigned:
                signed = unsigned - 2 * sum(1 for b in block[:148] + block[156:] if b > 127)
                if stored != signed:
                    raise UnsafeArchive("invalid tar header: checksum mismatch (corrupt layer?)")
            typeflag = block[156:157]
            size = _num(block[124:136], "size")
            if typeflag == b"x":
                pax.update(_parse_pax(self._read_special(size)))
                continue
            if typeflag == b"g":
                self._read_special(size)  # global headers carry nothing a layer needs
                continue
            if typeflag == b"L":
                long_name = _cstr(self._read_special(size))
                continue
            if typeflag == b"K":
                long_link = _cstr(self._read_special(size))
                continue
            break
        name = _cstr(block[0:100])
        if block[257:263] == b"ustar\x00":  # POSIX ustar has a name prefix; GNU does not
            prefix = _cstr(block[345:500])
            if prefix:
                name = prefix + b"/" + name
        h = _Header(
            name=long_name if long_name is not None else name,
            typeflag=typeflag,
            mode=_num(block[100:108], "mode"),
            uid=_num(block[108:116], "uid"),
            gid=_num(block[116:124], "gid"),
            size=size,
            mtime=_num(block[136:148], "mtime"),
            linkname=long_link if long_link is not None else _cstr(block[157:257]),
            devmajor=_num(block[329:337], "devmajor"),
            devminor=_num(block[337:345], "devminor"),
        )
        try:
            for key, value in pax.items():
                if key == b"path":
                    h.name = value
                elif key == b"linkpath":
                    h.linkname = value
                elif key == b"size":
                    h.size = int(value)
                elif key == b"uid":
                    h.uid = int(value)
                elif key == b"gid":
                    h.gid = int(value)
                elif key == b"mtime":
                    h.mtime = int(value.split(b".", 1)[0] or b"0")
                elif key.startswith(b"SCHILY.xattr."):
                    h.xattrs[key[13:].decode("utf-8", "surrogateescape")] = value
        except ValueError:
            raise UnsafeArchive(f"invalid tar PAX header for {h.name!r}") from None
        if h.typeflag in (b"\x00", b"7"):  # pre-POSIX regular file, contiguous file
            h.typeflag = b"5" if h.name.endswith(b"/") else b"0"
        if h.size < 0:
            raise UnsafeArchive(f"invalid tar header: negative size for {h.name!r}")
        self._set_data(h.size)
        self._members += 1
        return h

    def read_data(self) -> bytes:
        """The next piece of the current member's data; b"" once it is all read."""
        if not self._remaining:
            return b""
        chunk = self._src.read_some(min(_CHUNK, self._remaining))
        if not chunk:
            raise UnsafeArchive("layer tar is truncated (in file data)")
        self._remaining -= len(chunk)
        return chunk


# --- writing -----------------------------------------------------------------------------


def _clean(name: bytes, member: bytes) -> list[str]:
    text = os.fsdecode(name)
    if "\x00" in text:
        raise UnsafeArchive(f"layer member {os.fsdecode(member)!r} has a NUL byte in its name")
    comps = split_components(text)
    if ".." in comps:
        raise UnsafeArchive(
            f"layer member {os.fsdecode(member)!r} has a '..' path component; refusing to extract"
        )
    return comps


def _remove(path: str) -> None:
    if stat.S_ISDIR(os.lstat(path).st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


@dataclass(frozen=True)
class ApplyOptions:
    """How an archive lands; layers use the defaults.

    `whiteouts`: `.wh.` entries become overlay whiteouts (a layer's directory); off, they are
    applied as deletions, the only meaning they can have in a live (mounted) tree: ADD of a
    local archive into a step's root, where the kernel itself records what is deleted.
    """

    whiteouts: bool = True


class _Extractor:
    def __init__(self, root: Path, opts: ApplyOptions) -> None:
        self.root = root
        self.opts = opts
        self.parents: dict[str, str] = {}  # member parent → resolved host dir
        self.dirs: dict[str, tuple[int, int]] = {}  # host dir → (mode, mtime), set last
        self.content_size = 0

    def _parent(self, rel: str) -> str:
        cached = self.parents.get(rel)
        if cached is None:
            cached = str(mkdir_in_root(self.root, rel))
            self.parents[rel] = cached
        return cached

    def _forget(self) -> None:
        # Removing an entry or creating a symlink can change how later paths resolve.
        self.parents.clear()

    def apply(self, h: _Header, reader: _TarReader) -> None:
        comps = _clean(h.name, h.name)
        if not comps:
            return  # the root itself ("./"): Docker leaves the target's root alone
        base = comps[-1]
        parent_rel = "/".join(comps[:-1])
        if base.startswith(_WHITEOUT_PREFIX):
            self._whiteout(h, base, parent_rel)
            return
        parent = self._parent(parent_rel)
        dest = os.path.join(parent, base)
        try:
            st: os.stat_result | None = os.lstat(dest)
        except FileNotFoundError:
            st = None
        t = h.typeflag
        if st is not None and not (stat.S_ISDIR(st.st_mode) and t == b"5"):
            # Docker's applier replaces whatever is there, except that a directory over a
            # directory merges.
            _remove(dest)
            self._forget()
            st = None
        perm = h.mode & 0o7777
        if t == b"5":
            if st is None:
                os.mkdir(dest, 0o700)
            os.lchown(dest, h.uid, h.gid)
            self._xattrs(dest, h)
            self.dirs[dest] = (perm, h.mtime)
            return
        if t == b"1":
            self._hardlink(h, dest)
            return
        self.content_size += h.size if t == b"0" else len(h.linkname) if t == b"2" else 0
        if t == b"0":
            fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            try:
                while chunk := reader.read_data():
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
        elif t == b"2":
            os.symlink(os.fsdecode(h.linkname), dest)
            self._forget()
        elif t in (b"3", b"4"):
            kind = stat.S_IFCHR if t == b"3" else stat.S_IFBLK
            os.mknod(dest, kind | 0o600, os.makedev(h.devmajor, h.devminor))
        elif t == b"6":
            os.mkfifo(dest, 0o600)
        else:
            raise UnsafeArchive(
                f"layer member {os.fsdecode(h.name)!r} has unsupported tar type {t!r}"
            )
        # Order matters: chown clears setuid bits and security.capability, so it goes first,
        # then the mode, then xattrs, and the mtime after everything that could touch it.
        os.lchown(dest, h.uid, h.gid)
        if t != b"2":
            os.chmod(dest, perm)
        self._xattrs(dest, h)
        os.utime(dest, ns=(h.mtime * 10**9, h.mtime * 10**9), follow_symlinks=False)

    def _whiteout(self, h: _Header, base: str, parent_rel: str) -> None:
        if base == _WHITEOUT_OPAQUE:
            d = self._parent(parent_rel)
            if self.opts.whiteouts:
                os.setxattr(d, _OPAQUE_XATTR, b"y", follow_symlinks=False)
            else:
                # In a live tree "opaque" means: what was there before this archive goes.
                for name in os.listdir(d):
                    _remove(os.path.join(d, name))
                self._forget()
            return
        if base.startswith(_WHITEOUT_META_PREFIX):
            return  # AUFS bookkeeping (.wh..wh.plnk etc.), never part of the tree
        name = base[len(_WHITEOUT_PREFIX) :]
        if name in ("", ".", ".."):
            raise UnsafeArchive(f"layer member {os.fsdecode(h.name)!r} is not a valid whiteout")
        dest = os.path.join(self._parent(parent_rel), name)
        if os.path.lexists(dest):
            _remove(dest)
            self._forget()
        if not self.opts.whiteouts:
            return
        # Overlayfs's own whiteout: a 0:0 character device with mode 0.
        os.mknod(dest, stat.S_IFCHR, 0)
        os.lchown(dest, h.uid, h.gid)
        # Keeping the whiteout's mtime makes diffing the extracted tree give the same tar.
        os.utime(dest, ns=(h.mtime * 10**9, h.mtime * 10**9), follow_symlinks=False)

    def _hardlink(self, h: _Header, dest: str) -> None:
        comps = _clean(h.linkname, h.name)
        if not comps:
            raise UnsafeArchive(f"hardlink {os.fsdecode(h.name)!r} points at the root")
        target_dir = resolve_in_root(self.root, "/".join(comps[:-1]))
        source = os.path.join(target_dir, comps[-1])
        try:
            st = os.lstat(source)
        except (FileNotFoundError, NotADirectoryError):
            raise UnsafeArchive(
                f"hardlink {os.fsdecode(h.name)!r} points at {os.fsdecode(h.linkname)!r}, "
                "which is not in the layer"
            ) from None
        if stat.S_ISDIR(st.st_mode):
            raise UnsafeArchive(f"hardlink {os.fsdecode(h.name)!r} points at a directory")
        # follow_symlinks=False: a link to a symlink links the symlink, never its target.
        os.link(source, dest, follow_symlinks=False)
        self._forget()

    def _xattrs(self, dest: str, h: _Header) -> None:
        for key, value in h.xattrs.items():
            if key.startswith("trusted.overlay."):
                continue
            try:
                os.setxattr(dest, key, value, follow_symlinks=False)
            except OSError as e:
                # Docker also skips what the filesystem cannot hold; user.* is not allowed on
                # symlinks and device nodes.
                if e.errno == errno.ENOTSUP or (e.errno == errno.EPERM and key.startswith("user.")):
                    continue
                raise

    def finish(self) -> None:
        for path, (mode, mtime) in reversed(self.dirs.items()):
            try:
                if not stat.S_ISDIR(os.lstat(path).st_mode):
                    continue
            except FileNotFoundError:
                continue
            os.chmod(path, mode)
            os.utime(path, ns=(mtime * 10**9, mtime * 10**9), follow_symlinks=False)


def apply_layer(stream: BinaryIO, target: Path, opts: ApplyOptions | None = None) -> ApplyResult:
    """Extract the layer tar in `stream` (plain, gzip, zstd, bzip2 or xz) into `target`.

    Returns the diff ID (sha256 of the uncompressed stream, trailing padding included) and
    its length. Raises UnsafeArchive for a hostile, corrupt or truncated tar and ApplyFailed
    when the kernel refuses an operation; either way the caller must delete `target`.
    """
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    src = _Source(open_decompressed(stream))
    reader = _TarReader(src)
    extractor = _Extractor(target, opts or ApplyOptions())
    h: _Header | None = None
    try:
        while (h := reader.next()) is not None:
            extractor.apply(h, reader)
        extractor.finish()
    except SymlinkLoop as e:
        raise UnsafeArchive(f"layer member {os.fsdecode(h.name) if h else '?'!r}: {e}") from e
    except OSError as e:
        where = f" extracting {os.fsdecode(h.name)!r}" if h else ""
        if e.errno in (errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.ELOOP, errno.ENOENT):
            raise UnsafeArchive(f"layer is not well formed{where}: {e}") from e
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            # Docker's words (Go's errno text), which clients and scripts look for
            raise ApplyFailed(f"cannot apply layer{where}: no space left on device") from e
        raise ApplyFailed(f"cannot apply layer{where}: {e}") from e
    src.drain()
    return ApplyResult("sha256:" + src.hash.hexdigest(), src.size, extractor.content_size)
