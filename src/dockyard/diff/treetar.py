"""A tar of a tree inside a root that may be changing (`cp` out of a running container, export).

Modes carry the file-type bits (0o100640), as Docker's archive package writes these tars.

Each entry is reached from its directory's fd with no-follow calls (`diff.inroot`), and a
regular file's contents and header come from the fd that was opened, so a container
swapping a directory for a symlink meanwhile can make an entry vanish or change type, never
make us read the host. Entries that vanish or change mid-walk are skipped, as `tar` skips a
file removed under it; the archive stays well formed.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import BinaryIO

from dockyard.diff.inroot import fd_path, lstat_at, open_dir_at
from dockyard.diff.tarwriter import (
    BLKTYPE,
    CHRTYPE,
    DIRTYPE,
    FIFOTYPE,
    LNKTYPE,
    REGTYPE,
    SYMTYPE,
    Readable,
    TarEntry,
    TarWriter,
    Writable,
)

_GONE = (errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.ENXIO)
_KEPT_XATTR_PREFIXES = ("security.", "user.")


@contextmanager
def regular_entry_at(
    dirfd: int, name: str, member: bytes, xattrs: Callable[[int], Mapping[str, bytes]]
) -> Iterator[tuple[TarEntry, BinaryIO] | None]:
    """Entry `name` of `dirfd` opened as a regular file, with its tar header from the fd
    that was opened (so a swap after an lstat cannot make the header describe another
    file); None if it is no longer a regular file. `xattrs` reads them from the fd."""
    # O_NONBLOCK: if the entry became a FIFO since the lstat, the open must not hang.
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dirfd)
    with os.fdopen(fd, "rb", buffering=0) as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            yield None  # swapped for something else meanwhile
            return
        mode, owner, mtime = stat.S_IMODE(st.st_mode), (st.st_uid, st.st_gid), int(st.st_mtime)
        yield TarEntry(member, REGTYPE, mode, *owner, mtime, st.st_size, xattrs=xattrs(fd)), f


@dataclass(frozen=True)
class OwnerNames:
    """uid → user name and gid → group name for the uname/gname header fields."""

    users: Mapping[int, bytes] = field(default_factory=dict)
    groups: Mapping[int, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class TreeOptions:
    xattrs: bool = False  # security.* and user.* (export keeps them; cp does not)
    one_file_system: bool = False  # a mount point's directory, not what is mounted on it
    skip: frozenset[str] = field(default_factory=frozenset)  # top-level dirs left empty
    names: OwnerNames | None = None  # owner names to write (numeric owners only if None)


class _Walker:
    def __init__(self, tar: TarWriter, opts: TreeOptions, dev: int) -> None:
        self.tar = tar
        self.opts = opts
        self.dev = dev  # the device a one-file-system walk stays on
        self.links: dict[tuple[int, int], bytes] = {}
        names = opts.names
        if names is None:
            self.tar_add = tar.add
        else:

            def add(entry: TarEntry, data: Readable | BinaryIO | None = None) -> None:
                uname = names.users.get(entry.uid, b"")
                gname = names.groups.get(entry.gid, b"")
                tar.add(replace(entry, uname=uname, gname=gname), data)

            self.tar_add = add

    def _xattrs(self, dirfd: int, name: str) -> dict[str, bytes]:
        if not self.opts.xattrs:
            return {}
        # A directory's own (name ""): through its fd, since /proc/self/fd/N not followed
        # would be the magic link's xattrs, not the directory's.
        path: str | int = fd_path(dirfd, name) if name else dirfd
        try:
            keys = os.listxattr(path, follow_symlinks=False) if name else os.listxattr(dirfd)
        except OSError:
            return {}
        out: dict[str, bytes] = {}
        for key in keys:
            if key.startswith(_KEPT_XATTR_PREFIXES):
                try:
                    out[key] = os.getxattr(path, key, follow_symlinks=not name)
                except OSError:
                    continue
        return out

    def entry(self, dirfd: int, name: str, member: bytes, depth: int) -> None:
        try:
            st = lstat_at(dirfd, name)
        except OSError as e:
            if e.errno in _GONE:
                return
            raise
        mode, perm, mtime = st.st_mode, stat.S_IMODE(st.st_mode), int(st.st_mtime)
        owner = (st.st_uid, st.st_gid)
        if stat.S_ISDIR(mode):
            self.directory(dirfd, name, member, depth)
            return
        if st.st_nlink > 1:
            first = self.links.get((st.st_dev, st.st_ino))
            if first is not None:
                self.tar_add(TarEntry(member, LNKTYPE, perm, *owner, mtime, linkname=first))
                return
            self.links[(st.st_dev, st.st_ino)] = member
        if stat.S_ISREG(mode):
            self.regular(dirfd, name, member)
        elif stat.S_ISLNK(mode):
            try:
                target = os.fsencode(os.readlink(name, dir_fd=dirfd))
            except OSError as e:
                if e.errno in (*_GONE, errno.EINVAL):
                    return
                raise
            xattrs = self._xattrs(dirfd, name)
            self.tar_add(
                TarEntry(member, SYMTYPE, perm, *owner, mtime, linkname=target, xattrs=xattrs)
            )
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            kind = CHRTYPE if stat.S_ISCHR(mode) else BLKTYPE
            dev = (os.major(st.st_rdev), os.minor(st.st_rdev))
            xattrs = self._xattrs(dirfd, name)
            self.tar_add(
                TarEntry(
                    member,
                    kind,
                    perm,
                    *owner,
                    mtime,
                    devmajor=dev[0],
                    devminor=dev[1],
                    xattrs=xattrs,
                )
            )
        elif stat.S_ISFIFO(mode):
            xattrs = self._xattrs(dirfd, name)
            self.tar_add(TarEntry(member, FIFOTYPE, perm, *owner, mtime, xattrs=xattrs))
        # Sockets are skipped, as Docker's archive package does.

    def regular(self, dirfd: int, name: str, member: bytes) -> None:
        try:
            with regular_entry_at(dirfd, name, member, lambda fd: self._xattrs(fd, "")) as got:
                if got is not None:
                    entry, f = got
                    self.tar_add(entry, _Padded(f, entry.size))
        except OSError as e:
            if e.errno not in _GONE:
                raise

    def directory(self, dirfd: int, name: str, member: bytes, depth: int) -> None:
        try:
            fd = open_dir_at(dirfd, name)
        except OSError as e:
            if e.errno in _GONE:
                return
            raise
        try:
            st = os.fstat(fd)
            owner = (st.st_uid, st.st_gid)
            dir_name = member if member.endswith(b"/") else member + b"/"
            xattrs = self._xattrs(fd, "") if self.opts.xattrs else {}
            self.tar_add(
                TarEntry(
                    dir_name,
                    DIRTYPE,
                    stat.S_IMODE(st.st_mode),
                    *owner,
                    int(st.st_mtime),
                    xattrs=xattrs,
                )
            )
            if self.opts.one_file_system and st.st_dev != self.dev:
                return
            if depth == 1 and name in self.opts.skip:
                return
            for child in sorted(os.listdir(fd)):
                self.entry(fd, child, dir_name + os.fsencode(child), depth + 1)
        finally:
            os.close(fd)


class _Padded:
    """A file that reads exactly `size` bytes: NULs if it shrank under us (tar must stay
    well formed; Docker's tar writer fails the stream instead, we keep it readable)."""

    def __init__(self, f: BinaryIO, size: int) -> None:
        self._f = f
        self._left = size

    def read(self, n: int) -> bytes:
        n = min(n, self._left)
        data = self._f.read(n) if n else b""
        if len(data) < n:
            data += bytes(n - len(data))
        self._left -= len(data)
        return data

    def readinto(self, buf: memoryview) -> int:
        """`read` into the tar writer's batch, saving a copy of every byte."""
        want = min(len(buf), self._left)
        if not want:
            return 0
        n = os.readv(self._f.fileno(), (buf[:want],))
        if not n:  # shrank: NULs for the rest
            buf[:want] = bytes(want)
            n = want
        self._left -= n
        return n


def write_tree(
    dirfd: int, name: str, arcname: str, out: Writable | BinaryIO, opts: TreeOptions | None = None
) -> None:
    """Write a tar of entry `name` of directory `dirfd` (a tree if it is a directory),
    members named under `arcname` ("." for a directory's contents as "./x")."""
    tar = TarWriter(out, file_type_bits=True)
    walker = _Walker(tar, opts or TreeOptions(), os.fstat(dirfd).st_dev)
    walker.entry(dirfd, name, os.fsencode(arcname), 0)
    tar.close()


def write_contents(dirfd: int, out: Writable | BinaryIO, opts: TreeOptions | None = None) -> None:
    """A tar of everything in the directory `dirfd`, members named without "./" (export)."""
    tar = TarWriter(out, file_type_bits=True)
    walker = _Walker(tar, opts or TreeOptions(), os.fstat(dirfd).st_dev)
    for child in sorted(os.listdir(dirfd)):
        walker.entry(dirfd, child, os.fsencode(child), 1)
    tar.close()
