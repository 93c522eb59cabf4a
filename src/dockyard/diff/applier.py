"""Safe extraction of a layer tar into a snapshot directory (DESIGN layer 5).

The target becomes an overlayfs lower dir, so OCI whiteouts (image-spec layer.md) are
stored in overlay form, as Docker's overlay2 driver does (moby overlayWhiteoutConverter
ConvertRead): `.wh.NAME` → character device 0:0 at NAME, `.wh..wh..opq` → xattr
`trusted.overlay.opaque=y` on the directory.

Safety: every member's parent is resolved inside the target as a chroot would, by the kernel
(`diff.inroot`: openat2 RESOLVE_IN_ROOT; absolute symlinks restart at the target, `..` is
clamped), each write names one final component relative to that directory's fd and never
follows it (so a running container cannot race a write out of its root), `..` components in names and link targets are refused,
and a leading "/" is dropped (Docker joins names onto the root). Layers may not set
`trusted.overlay.*` xattrs themselves: that would let a layer forge overlay metadata.

The tar is parsed here rather than with `tarfile`, which silently ends a stream at a bad
header checksum or a truncated header: a corrupt layer must fail, not apply half-way.
Needs root (mknod, lchown, trusted.* xattrs). On failure the target holds partial state;
the caller (the snapshotter) deletes the whole target directory.
"""

from __future__ import annotations

import contextlib
import errno
import json
import lzma
import os
import stat
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import zstandard

from dockyard.diff.compression import open_decompressed
from dockyard.diff.fsutil import split_components
from dockyard.diff.inroot import DirCache, Root, chmod_at, fd_path, lstat_at, remove_at
from dockyard.errors import DockyardError, InvalidArgument, UnsafeArchive

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
    # No digest: the one caller that needs the diff ID (store/layers.py, a pulled or loaded
    # layer) hashes the stream in the content store's writer as it keeps the tar, and a
    # second sha256 here cost a full pass over every layer (issue 17 §5).
    size: int  # length of the uncompressed tar stream
    # file contents and symlink targets extracted, as dockerd sizes a layer (TarWriter's
    # content_size); a member replaced by a later one of the same name counts twice
    content_size: int = 0


# --- reading -----------------------------------------------------------------------------


class _Source:
    """Buffered reader over the decompressed stream that counts every byte it reads."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._buf = b""
        self._pos = 0
        self.size = 0

    def _fill(self) -> bool:
        try:
            chunk = self._raw.read(_CHUNK)
        except (OSError, EOFError, zlib.error, lzma.LZMAError, zstandard.ZstdError) as e:
            raise UnsafeArchive(f"layer stream is corrupt or truncated: {e}") from e
        if not chunk:
            return False
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


@dataclass(frozen=True)
class ApplyOptions:
    """How an archive lands in a container (`docker cp`); layers use the defaults.

    `owner`: every entry gets this uid:gid (cp without -a: moby's ChownOpts 0:0).
    `chown`: off, entries keep the extracting user as owner (the docker CLI's NoLchown).
    `no_overwrite_dir_nondir`: replacing a directory with a non-directory (or the other way)
    is an error, as the docker CLI asks on every copy (`noOverwriteDirNonDir=true`).
    `whiteouts`: `.wh.` entries become overlay whiteouts (a layer's directory); off, they are
    applied as deletions, the only meaning they can have in a live (mounted) tree: ADD of a
    local archive into a step's root, where the kernel itself records what is deleted.
    `whiteouts_as_files`: `.wh.` entries are ordinary files, as moby's plain Untar (docker
    cp) writes them: measured on dockerd 20.10, an archive's `.wh.x` lands in a running
    container as an empty file `.wh.x` and `x` stays.
    `confine_symlinks`: a symlink whose target, taken lexically from its directory, leaves
    the extraction directory is refused (moby createTarFile's breakout check).
    `rebase`: (old, new): each name and hardlink target has its first `old` replaced by
    `new` (moby RebaseArchiveEntries; `old` "/" means: put `new` in front).
    `where`: the target's path as the user knows it, for messages that name a member.
    """

    owner: tuple[int, int] | None = None
    chown: bool = True
    no_overwrite_dir_nondir: bool = False
    whiteouts: bool = True
    whiteouts_as_files: bool = False
    confine_symlinks: bool = False
    rebase: tuple[str, str] | None = None
    where: str = ""


class _Extractor:
    """Writes members through directory fds of `root` (diff.inroot): a member's parent is
    resolved by the kernel inside the target, and each operation names one final component
    relative to that fd without following it, so a concurrent rename can never point a
    write outside the target (the extraction target may be a running container's)."""

    def __init__(self, root: Root, opts: ApplyOptions) -> None:
        self.root = root
        self.opts = opts
        self.parents = DirCache(root)
        self.dirs: dict[str, tuple[int, int]] = {}  # member dir → (mode, mtime), set last
        self.content_size = 0

    def _owner(self, h: _Header) -> tuple[int, int]:
        return self.opts.owner if self.opts.owner is not None else (h.uid, h.gid)

    def _chown(self, parent: int, base: str, h: _Header, fd: int | None = None) -> None:
        if not self.opts.chown:
            return
        if fd is not None:
            os.fchown(fd, *self._owner(h))
        else:
            os.chown(base, *self._owner(h), dir_fd=parent, follow_symlinks=False)

    def _rebase(self, h: _Header) -> None:
        assert self.opts.rebase is not None
        old, new = (os.fsencode(x) for x in self.opts.rebase)
        if old == b"/":
            old = b""
        h.name = h.name.replace(old, new, 1)
        if h.typeflag == b"1":
            h.linkname = h.linkname.replace(old, new, 1)

    def _check_symlink(self, h: _Header, comps: list[str]) -> None:
        target = os.path.normpath(os.path.join("/".join(comps[:-1]), os.fsdecode(h.linkname)))
        if target == ".." or target.startswith("../"):
            # moby's wording, with Go's %q quoting of the path it would have written.
            path = os.path.join(self.opts.where or "/", *comps)
            link = os.fsdecode(h.linkname)
            raise UnsafeArchive(f"invalid symlink {json.dumps(path)} -> {json.dumps(link)}")

    def apply(self, h: _Header, reader: _TarReader) -> None:
        if self.opts.rebase is not None:
            self._rebase(h)
        comps = _clean(h.name, h.name)
        if not comps:
            return  # the root itself ("./"): Docker leaves the target's root alone
        base = comps[-1]
        parent_rel = "/".join(comps[:-1])
        if base.startswith(_WHITEOUT_PREFIX) and not self.opts.whiteouts_as_files:
            self._whiteout(h, base, parent_rel)
            return
        if h.typeflag == b"2" and self.opts.confine_symlinks:
            # Go's filepath.Join takes an absolute target as relative too: those always pass.
            self._check_symlink(h, comps)
        parent = self.parents.get(parent_rel)
        try:
            st: os.stat_result | None = lstat_at(parent, base)
        except FileNotFoundError:
            st = None
        t = h.typeflag
        if st is not None and not (stat.S_ISDIR(st.st_mode) and t == b"5"):
            if self.opts.no_overwrite_dir_nondir:
                self._check_overwrite(st, t, h)
            # Docker's applier replaces whatever is there, except that a directory over a
            # directory merges.
            remove_at(parent, base)
            self.parents.invalidate()
            st = None
        perm = h.mode & 0o7777
        if t == b"5":
            if st is None:
                os.mkdir(base, 0o700, dir_fd=parent)
            self._chown(parent, base, h)
            # The mode now, as moby's createTarFile does (a copy that fails later leaves
            # what Docker leaves), and again at the end with the mtime.
            chmod_at(parent, base, perm)
            self._xattrs(parent, base, h)
            self.dirs["/".join(comps)] = (perm, h.mtime)
            return
        if t == b"1":
            self._hardlink(h, parent, base)
            return
        self.content_size += h.size if t == b"0" else len(h.linkname) if t == b"2" else 0
        if t == b"0":
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(base, flags, 0o600, dir_fd=parent)
            try:
                while chunk := reader.read_data():
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view) :]
                # Order matters: chown clears setuid bits and security.capability, so it goes
                # first, then the mode, then xattrs, and the mtime after all that touch it.
                self._chown(parent, base, h, fd)
                os.fchmod(fd, perm)
                self._xattrs(parent, base, h, fd)
                os.utime(fd, ns=(h.mtime * 10**9, h.mtime * 10**9))
            finally:
                os.close(fd)
            return
        if t == b"2":
            os.symlink(os.fsdecode(h.linkname), base, dir_fd=parent)
            self.parents.invalidate()
        elif t in (b"3", b"4"):
            kind = stat.S_IFCHR if t == b"3" else stat.S_IFBLK
            os.mknod(base, kind | 0o600, os.makedev(h.devmajor, h.devminor), dir_fd=parent)
        elif t == b"6":
            os.mkfifo(base, 0o600, dir_fd=parent)
        else:
            raise UnsafeArchive(
                f"layer member {os.fsdecode(h.name)!r} has unsupported tar type {t!r}"
            )
        self._chown(parent, base, h)
        if t != b"2":
            chmod_at(parent, base, perm)
        self._xattrs(parent, base, h)
        ns = h.mtime * 10**9
        os.utime(base, ns=(ns, ns), dir_fd=parent, follow_symlinks=False)

    @staticmethod
    def _check_overwrite(st: os.stat_result, t: bytes, h: _Header) -> None:
        # moby pkg/archive createTarFile's wording (the docker CLI shows it as is).
        name = os.fsdecode(h.name)
        if stat.S_ISDIR(st.st_mode) and t != b"5":
            raise InvalidArgument(f"cannot overwrite directory {name!r} with non-directory")
        if not stat.S_ISDIR(st.st_mode) and t == b"5":
            raise InvalidArgument(f"cannot overwrite non-directory {name!r} with directory")

    def _whiteout(self, h: _Header, base: str, parent_rel: str) -> None:
        if base == _WHITEOUT_OPAQUE:
            d = self.parents.get(parent_rel)
            if self.opts.whiteouts:
                os.setxattr(d, _OPAQUE_XATTR, b"y")
            else:
                # In a live tree "opaque" means: what was there before this archive goes.
                for name in os.listdir(d):
                    remove_at(d, name)
                self.parents.invalidate()
            return
        if base.startswith(_WHITEOUT_META_PREFIX):
            return  # AUFS bookkeeping (.wh..wh.plnk etc.), never part of the tree
        name = base[len(_WHITEOUT_PREFIX) :]
        if name in ("", ".", ".."):
            raise UnsafeArchive(f"layer member {os.fsdecode(h.name)!r} is not a valid whiteout")
        parent = self.parents.get(parent_rel)
        with contextlib.suppress(FileNotFoundError):
            remove_at(parent, name)
            self.parents.invalidate()
        if not self.opts.whiteouts:
            return
        # Overlayfs's own whiteout: a 0:0 character device with mode 0.
        os.mknod(name, stat.S_IFCHR, 0, dir_fd=parent)
        self._chown(parent, name, h)
        # Keeping the whiteout's mtime makes diffing the extracted tree give the same tar.
        ns = h.mtime * 10**9
        os.utime(name, ns=(ns, ns), dir_fd=parent, follow_symlinks=False)

    def _hardlink(self, h: _Header, parent: int, base: str) -> None:
        comps = _clean(h.linkname, h.name)
        if not comps:
            raise UnsafeArchive(f"hardlink {os.fsdecode(h.name)!r} points at the root")
        try:
            src_dir = self.root.open_dir("/".join(comps[:-1]))
        except (FileNotFoundError, NotADirectoryError):
            src_dir = -1
        try:
            try:
                if src_dir < 0:
                    raise FileNotFoundError
                st = lstat_at(src_dir, comps[-1])
            except (FileNotFoundError, NotADirectoryError):
                raise UnsafeArchive(
                    f"hardlink {os.fsdecode(h.name)!r} points at {os.fsdecode(h.linkname)!r}, "
                    "which is not in the layer"
                ) from None
            if stat.S_ISDIR(st.st_mode):
                raise UnsafeArchive(f"hardlink {os.fsdecode(h.name)!r} points at a directory")
            # follow_symlinks=False: a link to a symlink links the symlink, never its target.
            os.link(comps[-1], base, src_dir_fd=src_dir, dst_dir_fd=parent, follow_symlinks=False)
        finally:
            if src_dir >= 0:
                os.close(src_dir)
        self.parents.invalidate()
        # moby's createTarFile gives a hardlink entry's owner, mode, xattrs and mtime to the
        # inode it shares (lchown always; mode and times unless it links a symlink): a link
        # entry of another owner changes its target's owner too (measured on 20.10).
        self._chown(parent, base, h)
        if not stat.S_ISLNK(st.st_mode):
            chmod_at(parent, base, h.mode & 0o7777)
        self._xattrs(parent, base, h)
        if not stat.S_ISLNK(st.st_mode):
            ns = h.mtime * 10**9
            os.utime(base, ns=(ns, ns), dir_fd=parent, follow_symlinks=False)

    def _xattrs(self, parent: int, base: str, h: _Header, fd: int | None = None) -> None:
        if not h.xattrs:
            return
        path = fd_path(parent, base)
        for key, value in h.xattrs.items():
            if key.startswith("trusted.overlay."):
                continue
            try:
                if fd is not None:
                    os.setxattr(fd, key, value)
                else:
                    os.setxattr(path, key, value, follow_symlinks=False)
            except OSError as e:
                # Docker also skips what the filesystem cannot hold; user.* is not allowed on
                # symlinks and device nodes.
                if e.errno == errno.ENOTSUP or (e.errno == errno.EPERM and key.startswith("user.")):
                    continue
                raise

    def finish(self) -> None:
        self.parents.clear()
        for rel, (mode, mtime) in reversed(self.dirs.items()):
            try:
                fd = self.root.open(rel, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
            except (FileNotFoundError, NotADirectoryError):
                continue
            except OSError as e:
                if e.errno == errno.ELOOP:
                    continue  # replaced by a symlink later in the archive
                raise
            try:
                os.fchmod(fd, mode)
                os.utime(fd, ns=(mtime * 10**9, mtime * 10**9))
            finally:
                os.close(fd)


def apply_layer(
    stream: BinaryIO, target: Path | Root, opts: ApplyOptions | None = None
) -> ApplyResult:
    """Extract the layer tar in `stream` (plain, gzip, zstd, bzip2 or xz) into `target`.

    `target` is a directory (made if missing) or an open `Root` (the caller keeps it).
    Reads the stream to its end (trailing padding included: a caller that hashes what it
    reads gets the diff ID) and returns its uncompressed length. Raises UnsafeArchive for a hostile, corrupt or truncated tar and ApplyFailed
    when the kernel refuses an operation; either way the caller must delete `target`.
    """
    if isinstance(target, Root):
        return _apply(stream, target, opts or ApplyOptions())
    Path(target).mkdir(parents=True, exist_ok=True)
    with Root.at(target) as root:
        return _apply(stream, root, opts or ApplyOptions())


def _apply(stream: BinaryIO, root: Root, opts: ApplyOptions) -> ApplyResult:
    src = _Source(open_decompressed(stream))
    reader = _TarReader(src)
    extractor = _Extractor(root, opts)
    h: _Header | None = None
    try:
        while (h := reader.next()) is not None:
            extractor.apply(h, reader)
        extractor.finish()
    except OSError as e:
        where = f" extracting {os.fsdecode(h.name)!r}" if h else ""
        if e.errno == errno.ELOOP:
            raise UnsafeArchive(f"layer member{where}: too many levels of symbolic links") from e
        if e.errno in (errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.ENOENT):
            raise UnsafeArchive(f"layer is not well formed{where}: {e}") from e
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            # Docker's words (Go's errno text), which clients and scripts look for
            raise ApplyFailed(f"cannot apply layer{where}: no space left on device") from e
        raise ApplyFailed(f"cannot apply layer{where}: {e}") from e
    finally:
        extractor.parents.clear()
    src.drain()
    return ApplyResult(src.size, extractor.content_size)
