"""COPY from a kept context by hardlink: the layer shares the context's inodes, no bytes copied.

A COPY step writes through the overlay mount of its root, where a file of the context on the
host's filesystem cannot be linked (another filesystem). So `copy.py` leaves out a regular
file it could share (`defer`) and, once the root is unmounted, `apply` links the context's
file into the step's upper dir under the same name: what the overlay would have held after a
copy, the same inode as the context's. Sharing is exact only when the copy would have given
the file the source's own metadata; otherwise the file is copied as before:
- owner, permission bits and mtime as the copy sets them (COPY's owner is 0:0 or --chown,
  the legacy builder truncates mtimes to seconds: a client's own files rarely qualify there);
- no setuid/setgid bits (the legacy chown clears them) and no xattrs (a copy drops them);
- a name that nothing in the merged root had (a replaced lower file stays a copy, as overlay
  needs the unlink's whiteout first); each context inode once per step unless the context
  itself hardlinks the names (a copy gives two files, a link one).

Why this is safe: nothing ever writes a kept context's file in place (session/filesync.py
replaces a changed file by a new inode, metadata changes included, and a tar context is
extracted once and removed), so a layer sharing an inode never sees a later sync. Linking
moves the context file's ctime, which its digest index keys on (builder/digests.py): the
index is told, so the next build does not re-hash what was only linked.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dockyard.builder.copy import CopyOptions
    from dockyard.builder.digests import DigestIndex

# Overlay's whiteout: a character device 0:0 in the upper dir (pitfalls.md).
_WHITEOUT_RDEV = 0


@dataclass
class LinkPlan:
    """The files of one COPY step to link instead of copy. `defer` runs in the mounted root,
    `apply` on the unmounted upper dir; both in the step's worker thread, one after the
    other."""

    tree: Path  # the context's root
    digests: DigestIndex | None = None  # the kept context's index, told about new ctimes
    rootfs: Path | None = None  # the mount the copy writes through (set by the step)
    # destination relative to the root -> (source path, its lstat when deferred)
    pending: dict[str, tuple[str, os.stat_result]] = field(default_factory=dict)
    _inodes: dict[tuple[int, int], str] = field(default_factory=dict)  # -> first dest
    linked: int = 0  # files linked (tests, benchmarks)
    copied: int = 0  # deferred files copied after all (another filesystem)

    def defer(self, src: Path, st: os.stat_result, dst: Path, opts: CopyOptions) -> bool:
        """Leave the regular file `src` out of the copy to `dst` (a path under the mounted
        root) if it can be linked with the same result; False: copy it."""
        assert self.rootfs is not None
        rel = os.path.relpath(dst, self.rootfs)
        self.pending.pop(rel, None)  # a later source of the same name wins
        if (
            not stat.S_ISREG(st.st_mode)
            or st.st_mode & (stat.S_ISUID | stat.S_ISGID)
            or opts.owner(st) != (st.st_uid, st.st_gid)
            or opts.mode(st) != stat.S_IMODE(st.st_mode)
            or opts.mtime(st) != st.st_mtime_ns
            or (st.st_dev, st.st_ino) in self._inodes
            or os.path.lexists(dst)
            or _has_xattrs(src)
        ):
            return False
        self.pending[rel] = (str(src), st)
        self._inodes[(st.st_dev, st.st_ino)] = rel
        return True

    def deferred(self, dst: Path) -> bool:
        assert self.rootfs is not None
        return os.path.relpath(dst, self.rootfs) in self.pending

    def link_name(self, first: Path, dst: Path) -> None:
        """`dst` names the same context inode as the deferred `first` (the context's own
        hardlinks, which a copy of the directory keeps as links)."""
        assert self.rootfs is not None
        src, st = self.pending[os.path.relpath(first, self.rootfs)]
        self.pending[os.path.relpath(dst, self.rootfs)] = (src, st)

    def apply(self, upper: Path) -> None:
        """Link every deferred file into the unmounted upper dir `upper`, leaving each
        directory's times as the copy left them."""
        if not self.pending:
            return
        parents: dict[str, os.stat_result] = {}
        for rel in self.pending:
            parent = os.path.join(upper, os.path.dirname(rel))
            if parent not in parents:
                try:
                    parents[parent] = os.lstat(parent)
                except FileNotFoundError:
                    # the copy made or touched every directory it wrote into, so overlay
                    # copied each up: a missing one is a bug, never a silent change
                    missing = os.path.dirname(rel)
                    raise RuntimeError(f"COPY: {missing} is not in the layer") from None
        for rel, (src, st) in self.pending.items():
            target = os.path.join(upper, rel)
            try:
                now = os.lstat(target)
            except FileNotFoundError:
                pass
            else:
                if not (stat.S_ISCHR(now.st_mode) and now.st_rdev == _WHITEOUT_RDEV):
                    continue  # something the copy wrote later under this name won
                os.unlink(target)
            try:
                os.link(src, target)
                self.linked += 1
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                    raise
                _copy_file(src, target, st)
                self.copied += 1
        for parent, pst in parents.items():
            os.utime(parent, ns=(pst.st_atime_ns, pst.st_mtime_ns))
        if self.digests is not None:
            sources = dict(self.pending.values())  # a context's hardlinks: one inode
            for src, st in sources.items():
                self.digests.relinked(os.path.relpath(src, self.tree), st, os.lstat(src))


def _has_xattrs(path: Path) -> bool:
    try:
        return bool(os.listxattr(path, follow_symlinks=False))
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EPERM):
            return False
        raise


def _copy_file(src: str, target: str, st: os.stat_result) -> None:
    """What the copy would have written, straight into the upper dir (no link possible:
    the context on another filesystem)."""
    with open(src, "rb") as fsrc, open(target, "xb") as fdst:
        offset = 0
        while offset < st.st_size:
            n = os.sendfile(fdst.fileno(), fsrc.fileno(), offset, st.st_size - offset)
            if n == 0:
                break
            offset += n
    os.lchown(target, st.st_uid, st.st_gid)
    os.chmod(target, stat.S_IMODE(st.st_mode))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
