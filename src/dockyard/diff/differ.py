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
from dockyard.errors import InvalidArgument

WHITEOUT_PREFIX = b".wh."
WHITEOUT_OPAQUE = b".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
# Only these namespaces describe the file itself; trusted.overlay.* is overlayfs's own
# bookkeeping and would corrupt any overlay the layer is later mounted in.
_KEPT_XATTR_PREFIXES = ("security.", "user.")


def _xattrs(path: bytes) -> dict[str, bytes]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.EPERM):
            return {}
        raise
    out: dict[str, bytes] = {}
    for name in names:
        if name.startswith(_KEPT_XATTR_PREFIXES):
            try:
                out[name] = os.getxattr(path, name, follow_symlinks=False)
            except OSError as e:
                if e.errno not in (errno.ENODATA, errno.ENOTSUP, errno.EPERM):
                    raise
    return out


def _is_opaque(path: bytes) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError as e:
        if e.errno in (errno.ENODATA, errno.ENOTSUP):
            return False
        raise


class _LayerWalker:
    def __init__(self, upper: bytes, tar: TarWriter) -> None:
        self.upper = upper
        self.tar = tar
        self.seen_inodes: dict[tuple[int, int], bytes] = {}

    def walk(self, rel: bytes) -> None:
        base = self.upper + b"/" + rel
        with os.scandir(base) as it:
            names = sorted(e.name for e in it)
        for name in names:
            member = rel + name
            path = base + name
            st = os.lstat(path)
            if self.add(member, path, st):
                self.walk(member + b"/")

    def add(self, member: bytes, path: bytes, st: os.stat_result) -> bool:
        """Write the member's entry; True if it is a directory to descend into."""
        mode = st.st_mode
        perm = stat.S_IMODE(mode)
        mtime = int(st.st_mtime)
        tar = self.tar
        # Whiteouts first: on this kernel every whiteout is a hardlink of one shared inode
        # (pitfalls.md), so hardlink grouping must never see them.
        if stat.S_ISCHR(mode) and st.st_rdev == 0:
            d, _, name = member.rpartition(b"/")
            wh = (d + b"/" if d else b"") + WHITEOUT_PREFIX + name
            tar.add(TarEntry(wh, REGTYPE, 0o600, st.st_uid, st.st_gid, mtime))
            return False
        if stat.S_ISDIR(mode):
            tar.add(
                TarEntry(
                    member + b"/", DIRTYPE, perm, st.st_uid, st.st_gid, mtime, xattrs=_xattrs(path)
                )
            )
            if _is_opaque(path):
                opq = member + b"/" + WHITEOUT_OPAQUE
                tar.add(TarEntry(opq, REGTYPE, perm & 0o777, st.st_uid, st.st_gid, 0))
            return True
        if st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            first = self.seen_inodes.get(key)
            if first is not None:
                tar.add(
                    TarEntry(member, LNKTYPE, perm, st.st_uid, st.st_gid, mtime, linkname=first)
                )
                return False
            self.seen_inodes[key] = member
        if stat.S_ISREG(mode):
            entry = TarEntry(
                member,
                REGTYPE,
                perm,
                st.st_uid,
                st.st_gid,
                mtime,
                size=st.st_size,
                xattrs=_xattrs(path),
            )
            tar.add_path(entry, path)
        elif stat.S_ISLNK(mode):
            tar.add(
                TarEntry(
                    member,
                    SYMTYPE,
                    perm,
                    st.st_uid,
                    st.st_gid,
                    mtime,
                    linkname=os.readlink(path),
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
        return False


def write_layer_tar(upper: os.PathLike[str] | str, out: Writable | BinaryIO) -> int:
    """Stream the layer tar of overlay upper dir `upper` into `out` (not closed).

    Returns the content size of what it wrote (TarWriter.content_size).
    Entry names are relative without "./" (`etc/`, `etc/foo`) and there is no entry for the
    root, so an empty upper dir gives 1024 zero bytes: Docker's empty layer, diff ID
    sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef.
    """
    root = os.fsencode(upper).rstrip(b"/") or b"/"
    if not os.path.isdir(root):
        raise InvalidArgument(f"upper dir {os.fsdecode(root)!r} is not a directory")
    tar = TarWriter(out)
    _LayerWalker(root, tar).walk(b"")
    tar.close()
    return tar.content_size


def commit_upper(upper: os.PathLike[str] | str, store: ContentStore) -> tuple[BlobInfo, int]:
    """Store the upper dir's layer tar as a blob; its digest is the layer's diff ID.
    Also returns the layer's content size (TarWriter.content_size)."""
    with store.writer() as w:
        size = write_layer_tar(upper, w)
        return w.commit(), size
