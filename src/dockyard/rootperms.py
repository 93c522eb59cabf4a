"""Who may reach what under the storage root (issue 9 §1; the class of CVE-2021-41091).

The root is 0710 root:root, as dockerd 20.10.9+ makes its data root: a user who is neither
root nor in group 0 cannot even traverse it, so no layer's setuid binary, no container's
merged rootfs, no log and no database is reachable by path. Below it, what holds secrets
is tight on its own too (defence in depth, and what `ls -l` shows an administrator):
- top-level directories 0700; the metadata database and its WAL/SHM 0600 (every
  container's environment is in there; SQLite gives -wal/-shm the database file's mode);
- containers/ID 0700, its container.log 0640, its bundle 0700 with config.json 0600;
- overlay/N (a layer or a container's writable layer) 0700: the `fs` inside keeps the
  image's modes, which the container sees; the kernel resolved the paths at mount time,
  so a non-root process in the container never needs to traverse these directories.
- volumes/NAME 0700: its `_data` keeps the mode the container gave it (it is bind-mounted,
  so the container never traverses volumes/NAME).
Files a container reads by bind mount (hosts, resolv.conf) keep 0644: the mount is of the
file itself, which their ancestors' modes do not guard.

A root made by an older dockyard (0755 everywhere) is tightened by `secure_root` at every
start, before anything is served.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

ROOT_MODE = 0o710
DIR_MODE = 0o700
FILE_MODE = 0o600
LOG_MODE = 0o640
METADATA_FILES = ("metadata.db", "metadata.db-wal", "metadata.db-shm")


def make_root(root: Path) -> None:
    """Create the root if needed, then give it root:root and 0710, whatever it had."""
    root.mkdir(mode=ROOT_MODE, parents=True, exist_ok=True)
    st = root.stat()
    if (st.st_uid, st.st_gid) != (0, 0):
        os.chown(root, 0, 0)
    if stat.S_IMODE(st.st_mode) != ROOT_MODE:
        os.chmod(root, ROOT_MODE)


def _tighten(path: Path, mode: int, kind: int) -> None:
    """chmod `path` to `mode` if it is of `kind` (S_IFDIR/S_IFREG) and wider; never follows
    a symlink (a path under the root is the daemon's, but it must not be turned into a
    chmod of something elsewhere)."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return
    if stat.S_IFMT(st.st_mode) != kind:
        return
    if stat.S_IMODE(st.st_mode) & ~mode:
        os.chmod(path, stat.S_IMODE(st.st_mode) & mode)


def secure_root(root: Path) -> None:
    """Tighten an existing root to the modes above (a no-op on one made by this version)."""
    make_root(root)
    for entry in os.scandir(root):
        path = Path(entry.path)
        if entry.is_dir(follow_symlinks=False):
            _tighten(path, DIR_MODE, stat.S_IFDIR)
        elif entry.is_file(follow_symlinks=False):
            _tighten(path, FILE_MODE, stat.S_IFREG)
    for name in METADATA_FILES:
        _tighten(root / name, FILE_MODE, stat.S_IFREG)
    for sub in (*_subdirs(root / "overlay"), *_subdirs(root / "volumes")):
        _tighten(sub, DIR_MODE, stat.S_IFDIR)
    for sub in _subdirs(root / "containers"):
        _tighten(sub, DIR_MODE, stat.S_IFDIR)
        _tighten(sub / "container.log", LOG_MODE, stat.S_IFREG)
        _tighten(sub / "bundle", DIR_MODE, stat.S_IFDIR)
        _tighten(sub / "bundle" / "config.json", FILE_MODE, stat.S_IFREG)


def _subdirs(parent: Path) -> list[Path]:
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        return [Path(e.path) for e in os.scandir(parent) if e.is_dir(follow_symlinks=False)]
    return []


def private_file(path: Path, mode: int = FILE_MODE) -> None:
    """Create `path` (if missing) with `mode` and narrow it to `mode` if it is wider, before
    a library opens it with its own default (SQLite creates files 0644)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        st = os.fstat(fd)
        if stat.S_IMODE(st.st_mode) & ~mode:
            os.fchmod(fd, stat.S_IMODE(st.st_mode) & mode)
    finally:
        os.close(fd)
