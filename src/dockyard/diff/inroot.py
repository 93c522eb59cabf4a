"""File operations confined to a root directory that something else may be changing.

`fsutil.resolve_in_root` computes a host path in user space; using that path later is a
check-then-use race when the tree belongs to a running container: the container can swap a
directory for a symlink to `/` between the check and the use, and the daemon then writes
(or reads) the host (CVE-2018-15664, `docker cp`). Here every lookup is done by the kernel
relative to an open directory: `openat2(2)` with `RESOLVE_IN_ROOT` resolves absolute symlinks
and `..` against that directory as a chroot would, and `RESOLVE_NO_MAGICLINKS` refuses
`/proc/*/fd`-style links out of it. Operations then take the resulting directory fd plus one
final component, with no-follow calls (`*at(2)`), so no path component is ever looked up
twice. Kernels before 5.6 (ENOSYS) get a user-space walk with the same rules, one `O_NOFOLLOW`
component at a time, `..` popping a stack of fds that never goes above the root.

A directory fd stays inside the container's filesystems even if the container renames it:
a rename cannot cross a mount, and everything the container can reach is below its root.
Python has no `os.openat2`; the syscall is reached through ctypes (437 on every Linux
architecture, since 5.6 uses the unified syscall table).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import stat
from collections import OrderedDict
from pathlib import Path

from dockyard.diff.fsutil import MAX_SYMLINKS, split_components

SYS_OPENAT2 = 437
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10
_IN_ROOT = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS
_RETRIES = 64  # openat2 says EAGAIN when a rename raced with the lookup: try again


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long
_have_openat2: bool | None = None


def _openat2(dirfd: int, path: str, flags: int, mode: int, resolve: int) -> int:
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    raw = os.fsencode(path)
    for _ in range(_RETRIES):
        fd = _syscall(
            ctypes.c_long(SYS_OPENAT2),
            ctypes.c_int(dirfd),
            ctypes.c_char_p(raw),
            ctypes.byref(how),
            ctypes.c_size_t(ctypes.sizeof(how)),
        )
        if fd >= 0:
            return int(fd)
        err = ctypes.get_errno()
        if err in (errno.EAGAIN, errno.EINTR):
            continue
        raise OSError(err, os.strerror(err), path)
    raise OSError(errno.EAGAIN, "path lookup kept racing with renames", path)


def _walk(
    rootfd: int,
    path: str,
    flags: int,
    mode: int,
    names: list[str] | None,
    mkdirs: tuple[int, tuple[int, int] | None] | None = None,
) -> int:
    """openat2(RESOLVE_IN_ROOT) in user space: one O_NOFOLLOW component at a time.

    `names`, if given, receives the components of the path it resolved to. `mkdirs`
    (mode, owner) creates missing directories on the way, through dangling symlinks too,
    as `mkdir -p` in a chroot does.
    """
    pending = split_components(path)
    stack: list[int] = []  # fds of the directories below the root, innermost last
    seen: list[str] = []  # their names
    links = 0
    try:
        while pending:
            comp = pending.pop(0)
            cur = stack[-1] if stack else rootfd
            if comp == "..":
                if stack:
                    os.close(stack.pop())
                    seen.pop()
                continue
            last = not pending
            try:
                st = os.stat(comp, dir_fd=cur, follow_symlinks=False)
            except FileNotFoundError:
                if mkdirs is not None:
                    _mkdir_at(cur, comp, *mkdirs)
                    pending.insert(0, comp)
                    continue
                if last and flags & os.O_CREAT:
                    if names is not None:
                        names[:] = [*seen, comp]
                    return os.open(comp, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=cur)
                raise
            if stat.S_ISLNK(st.st_mode) and not (last and flags & os.O_NOFOLLOW):
                links += 1
                if links > MAX_SYMLINKS:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
                target = os.readlink(comp, dir_fd=cur)
                if target.startswith("/"):
                    while stack:
                        os.close(stack.pop())
                    seen.clear()
                pending[:0] = split_components(target)
                continue
            if last:
                if names is not None:
                    names[:] = [*seen, comp]
                return os.open(comp, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=cur)
            stack.append(
                os.open(comp, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=cur)
            )
            seen.append(comp)
        if names is not None:
            names[:] = seen
        return os.open(".", flags | os.O_CLOEXEC, mode, dir_fd=stack[-1] if stack else rootfd)
    finally:
        for fd in stack:
            os.close(fd)


def _mkdir_at(dirfd: int, name: str, mode: int, owner: tuple[int, int] | None) -> None:
    try:
        os.mkdir(name, mode, dir_fd=dirfd)
    except FileExistsError:
        return  # made meanwhile: the caller looks again
    if owner is not None:
        os.chown(name, *owner, dir_fd=dirfd, follow_symlinks=False)
    chmod_at(dirfd, name, mode)  # mkdir's mode went through the umask


def resolved_name(rootfd: int, path: str) -> str:
    """The absolute path inside the root that `path` names with every symlink followed (what
    Docker reports as a symlink's `linkTarget`); computed with fds, so it cannot be raced."""
    names: list[str] = []
    os.close(_walk(rootfd, path.lstrip("/") or ".", os.O_PATH, 0, names))
    return "/" + "/".join(names)


def open_in_root(rootfd: int, path: str, flags: int, mode: int = 0) -> int:
    """An fd for `path` looked up inside the directory `rootfd` as if it were `/`."""
    global _have_openat2
    rel = path.lstrip("/") or "."
    if _have_openat2 is not False:
        try:
            return _openat2(rootfd, rel, flags, mode, _IN_ROOT)
        except OSError as e:
            if e.errno != errno.ENOSYS:
                raise
            _have_openat2 = False
    return _walk(rootfd, rel, flags, mode, None)


def fd_path(dirfd: int, name: str = "") -> str:
    """A path naming `name` in the directory `dirfd` for calls without a dir_fd argument
    (xattrs, chmod of a node): only our own fd's magic link is followed, never `name`."""
    return f"/proc/self/fd/{dirfd}/{name}" if name else f"/proc/self/fd/{dirfd}"


def lstat_at(dirfd: int, name: str) -> os.stat_result:
    return os.stat(name, dir_fd=dirfd, follow_symlinks=False)


def chmod_at(dirfd: int, name: str, mode: int) -> None:
    """chmod without following a final symlink (glibc's fchmodat(AT_SYMLINK_NOFOLLOW) way)."""
    fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dirfd)
    try:
        if stat.S_ISLNK(os.fstat(fd).st_mode):
            return  # a symlink has no mode of its own on Linux
        os.chmod(fd_path(fd), mode)
    finally:
        os.close(fd)


def remove_at(dirfd: int, name: str) -> None:
    """Delete `name` (a whole tree for a directory) without following any symlink."""
    if stat.S_ISDIR(lstat_at(dirfd, name).st_mode):
        shutil.rmtree(name, dir_fd=dirfd)
    else:
        os.unlink(name, dir_fd=dirfd)


def open_dir_at(dirfd: int, name: str) -> int:
    """The directory `name` of `dirfd` (never through a symlink)."""
    return os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dirfd)


class Root:
    """An open directory to resolve paths in; `close()` (or `with`) releases it."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    @classmethod
    def at(cls, path: Path | str) -> Root:
        """The root itself is trusted (a snapshot we made, /proc/PID/root): follow it."""
        return cls(os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Root:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self, path: str, flags: int, mode: int = 0) -> int:
        return open_in_root(self.fd, path, flags, mode)

    def open_dir(self, path: str) -> int:
        return self.open(path, os.O_RDONLY | os.O_DIRECTORY)

    def sub(self, path: str) -> Root:
        """The directory `path` as a root of its own (an extraction target)."""
        return Root(self.open_dir(path))

    def parent(self, path: str) -> tuple[int, str]:
        """(fd of the directory holding `path`'s last component, that component).

        The last component is not followed, so the caller can look at a symlink itself; for
        the root (or a path ending in `..`) the name is "." and the fd is the directory.
        """
        comps = split_components(path)
        if not comps or comps[-1] == "..":
            return self.open_dir(path), "."
        return self.open_dir("/".join(comps[:-1])), comps[-1]

    def mkdir_all(self, path: str, mode: int = 0o755, owner: tuple[int, int] | None = None) -> int:
        """`mkdir -p` inside the root; an fd of the directory. Created directories get `mode`
        and, if given, `owner`; a component that exists and is not a directory fails
        with ENOTDIR."""
        try:
            # The common case, everything there already: one syscall.
            return self.open_dir(path)
        except FileNotFoundError:
            pass
        rel = path.lstrip("/") or "."
        return _walk(self.fd, rel, os.O_RDONLY | os.O_DIRECTORY, 0, None, (mode, owner))


class DirCache:
    """A few directory fds of a root by path, for extractors that touch one directory many
    times (a bounded LRU: a layer may hold more directories than the open-files limit)."""

    def __init__(self, root: Root, size: int = 64) -> None:
        self.root = root
        self.size = size
        self._fds: OrderedDict[str, int] = OrderedDict()
        self._stale = False

    def get(self, rel: str, *, create: bool = True) -> int:
        """The directory's fd, valid until the next `get` after an `invalidate`."""
        if self._stale:
            self.clear()
        fd = self._fds.get(rel)
        if fd is not None:
            self._fds.move_to_end(rel)
            return fd
        fd = self.root.mkdir_all(rel) if create else self.root.open_dir(rel)
        self._fds[rel] = fd
        if len(self._fds) > self.size:
            _, old = self._fds.popitem(last=False)
            os.close(old)
        return fd

    def invalidate(self) -> None:
        """Removing an entry or making a symlink changes what paths name: forget every fd
        at the next lookup (the fds handed out so far stay open until then)."""
        self._stale = True

    def clear(self) -> None:
        self._stale = False
        while self._fds:
            _, fd = self._fds.popitem()
            with contextlib.suppress(OSError):
                os.close(fd)
