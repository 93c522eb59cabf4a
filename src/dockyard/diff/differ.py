"""Layer tar from an overlayfs upper dir (DESIGN layer 5, "what a commit writes").

Only the upper dir is walked: it already is the diff against the lower layers, as long as
the overlay was mounted with `redirect_dir=off,metacopy=off` (pitfalls.md). Overlay facts
become OCI whiteouts (image-spec layer.md "Whiteouts"), written the way Docker's overlay2
driver writes them (moby pkg/archive overlayWhiteoutConverter.ConvertWrite):

- a character device 0:0 is a deleted entry → empty regular file `dir/.wh.NAME`, mode
  0600, owner and mtime of the device;
- a directory with `trusted.overlay.opaque=y` → the directory entry, then an empty regular
  file `dir/.wh..wh..opq` with the directory's permission bits and owner, mtime 0.

The walk is depth-first with each directory's names in byte order, like Go's filepath.Walk
in Docker's differ, so the same upper dir always gives the same tar and diff ID.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import BinaryIO

from dockyard.content.store import BlobInfo, ContentStore
from dockyard.diff.inroot import fd_path, lstat_at, open_dir_at
from dockyard.diff.tarwriter import (
    BLKTYPE,
    CHRTYPE,
    DIRTYPE,
    FIFOTYPE,
    LNKTYPE,
    REGTYPE,
    SYMTYPE,
    TarEntry,
    TarWriter,
    Writable,
)
from dockyard.diff.treetar import regular_entry_at
from dockyard.errors import InvalidArgument

WHITEOUT_PREFIX = b".wh."
WHITEOUT_OPAQUE = b".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
# Only these namespaces describe the file itself; trusted.overlay.* is overlayfs's own
# bookkeeping and would corrupt any overlay the layer is later mounted in.
_KEPT_XATTR_PREFIXES = ("security.", "user.")


_GONE = (errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.ENXIO)
_OPEN_REGULAR = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def _first(pair: tuple[bytes, object]) -> bytes:
    return pair[0]


def _xattrs(path: str | int) -> dict[str, bytes]:
    """A path's (never followed at its end) or an open fd's kept xattrs."""
    nofollow = isinstance(path, str)
    try:
        names = os.listxattr(path, follow_symlinks=not nofollow)
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.EPERM):
            return {}
        raise
    out: dict[str, bytes] = {}
    for name in names:
        if name.startswith(_KEPT_XATTR_PREFIXES):
            try:
                out[name] = os.getxattr(path, name, follow_symlinks=not nofollow)
            except OSError as e:
                if e.errno not in (errno.ENODATA, errno.ENOTSUP, errno.EPERM):
                    raise
    return out


def _is_opaque(dirfd: int) -> bool:
    try:
        return os.getxattr(dirfd, OPAQUE_XATTR) == b"y"
    except OSError as e:
        if e.errno in (errno.ENODATA, errno.ENOTSUP):
            return False
        raise


class _LayerWalker:
    """Walks the upper dir through directory fds with no-follow calls (diff.inroot): a
    container committed without a pause may swap a directory for a symlink to `/` under
    us, which must never put a host file in the layer. An entry that vanishes or changes
    type meanwhile is left out, as tar leaves out a file removed under it."""

    def __init__(self, tar: TarWriter) -> None:
        self.tar = tar
        self.seen_inodes: dict[tuple[int, int], bytes] = {}

    def walk(self, dirfd: int, rel: bytes) -> None:
        with os.scandir(dirfd) as it:
            # Byte order of the names, as Go's filepath.Walk (the diff ID depends on it)
            entries = sorted(((os.fsencode(e.name), e) for e in it), key=_first)
        for raw, entry in entries:
            try:
                # The directory's d_type says regular file: the open's fstat describes it,
                # so the lstat before it is saved (5,000 syscalls in a 5,000-file COPY).
                if entry.is_file(follow_symlinks=False):
                    self.regular(dirfd, entry.name, rel + raw)
                else:
                    self.add(dirfd, entry.name, rel + raw)
            except OSError as e:
                if e.errno not in _GONE:
                    raise

    def regular(self, dirfd: int, name: str, member: bytes) -> None:
        """A regular file (as its directory entry says): header and contents from the fd
        opened, so a swap after the listing cannot make them describe another file."""
        # O_NONBLOCK: if the entry became a FIFO since the listing, the open must not hang.
        fd = os.open(name, _OPEN_REGULAR, dir_fd=dirfd)
        try:
            st = os.fstat(fd)
            mode = st.st_mode
            if not stat.S_ISREG(mode):
                return  # swapped for something else meanwhile: left out
            perm, uid, gid, mtime = stat.S_IMODE(mode), st.st_uid, st.st_gid, int(st.st_mtime)
            tar = self.tar
            if st.st_nlink > 1:
                key = (st.st_dev, st.st_ino)
                first = self.seen_inodes.get(key)
                if first is not None:
                    tar.add(TarEntry(member, LNKTYPE, perm, uid, gid, mtime, linkname=first))
                    return
                self.seen_inodes[key] = member
            size = st.st_size
            entry = TarEntry(member, REGTYPE, perm, uid, gid, mtime, size, xattrs=_xattrs(fd))
            if size:
                tar.add_fd(entry, fd)
            else:
                tar.add(entry)
        finally:
            os.close(fd)

    def add(self, dirfd: int, name: str, member: bytes) -> None:
        st = lstat_at(dirfd, name)
        mode = st.st_mode
        perm = stat.S_IMODE(mode)
        mtime = int(st.st_mtime)
        tar = self.tar
        # Whiteouts first: on this kernel every whiteout is a hardlink of one shared inode
        # (pitfalls.md), so hardlink grouping must never see them.
        if stat.S_ISCHR(mode) and st.st_rdev == 0:
            d, _, base = member.rpartition(b"/")
            wh = (d + b"/" if d else b"") + WHITEOUT_PREFIX + base
            tar.add(TarEntry(wh, REGTYPE, 0o600, st.st_uid, st.st_gid, mtime))
            return
        if stat.S_ISDIR(mode):
            fd = open_dir_at(dirfd, name)
            try:
                st = os.fstat(fd)  # the directory we hold, whatever the name means now
                perm = stat.S_IMODE(st.st_mode)
                tar.add(
                    TarEntry(
                        member + b"/",
                        DIRTYPE,
                        perm,
                        st.st_uid,
                        st.st_gid,
                        int(st.st_mtime),
                        xattrs=_xattrs(fd),
                    )
                )
                if _is_opaque(fd):
                    opq = member + b"/" + WHITEOUT_OPAQUE
                    tar.add(TarEntry(opq, REGTYPE, perm & 0o777, st.st_uid, st.st_gid, 0))
                self.walk(fd, member + b"/")
            finally:
                os.close(fd)
            return
        if st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            first = self.seen_inodes.get(key)
            if first is not None:
                tar.add(
                    TarEntry(member, LNKTYPE, perm, st.st_uid, st.st_gid, mtime, linkname=first)
                )
                return
            self.seen_inodes[key] = member
        if stat.S_ISREG(mode):
            with regular_entry_at(dirfd, name, member, _xattrs) as got:
                if got is not None:
                    entry, f = got
                    tar.add(entry, f if entry.size else None)
            return
        path = fd_path(dirfd, name)  # only our fd's magic link is followed, never `name`
        if stat.S_ISLNK(mode):
            try:
                target = os.readlink(name, dir_fd=dirfd)
            except OSError as e:
                if e.errno == errno.EINVAL:
                    return  # no longer a symlink: swapped for something else meanwhile
                raise
            tar.add(
                TarEntry(
                    member,
                    SYMTYPE,
                    perm,
                    st.st_uid,
                    st.st_gid,
                    mtime,
                    linkname=os.fsencode(target),
                    xattrs=_xattrs(path),
                )
            )
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            tar.add(
                TarEntry(
                    member,
                    CHRTYPE if stat.S_ISCHR(mode) else BLKTYPE,
                    perm,
                    st.st_uid,
                    st.st_gid,
                    mtime,
                    devmajor=os.major(st.st_rdev),
                    devminor=os.minor(st.st_rdev),
                    xattrs=_xattrs(path),
                )
            )
        elif stat.S_ISFIFO(mode):
            tar.add(
                TarEntry(member, FIFOTYPE, perm, st.st_uid, st.st_gid, mtime, xattrs=_xattrs(path))
            )
        # Sockets are skipped, as Docker's archive package does: they cannot be archived.


def write_layer_tar(
    upper: os.PathLike[str] | str, out: Writable | BinaryIO, *, lend_buffer: bool = False
) -> int:
    """Stream the layer tar of overlay upper dir `upper` into `out` (not closed).
    `lend_buffer`: `out` is done with what `write` gets when it returns (TarWriter).

    Returns the content size of what it wrote (TarWriter.content_size).
    Entry names are relative without "./" (`etc/`, `etc/foo`) and there is no entry for the
    root, so an empty upper dir gives 1024 zero bytes: Docker's empty layer, diff ID
    sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef.
    """
    try:
        rootfd = os.open(upper, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        raise InvalidArgument(f"upper dir {os.fsdecode(upper)!r} is not a directory") from None
    try:
        tar = TarWriter(out, lend_buffer=lend_buffer)
        _LayerWalker(tar).walk(rootfd, b"")
        tar.close()
    finally:
        os.close(rootfd)
    return tar.content_size


def commit_upper(upper: os.PathLike[str] | str, store: ContentStore) -> tuple[BlobInfo, int]:
    """Store the upper dir's layer tar as a blob; its digest is the layer's diff ID.
    Also returns the layer's content size (TarWriter.content_size)."""
    with store.writer() as w:
        size = write_layer_tar(upper, w, lend_buffer=True)
        return w.commit(), size
