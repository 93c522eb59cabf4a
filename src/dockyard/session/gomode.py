"""Go's os.FileMode, as fsutil's Stat carries it, to and from POSIX st_mode (Go io/fs)."""

from __future__ import annotations

import stat

MODE_DIR = 1 << 31
MODE_SYMLINK = 1 << 27
MODE_DEVICE = 1 << 26
MODE_NAMED_PIPE = 1 << 25
MODE_SOCKET = 1 << 24
MODE_SETUID = 1 << 23
MODE_SETGID = 1 << 22
MODE_CHAR_DEVICE = 1 << 21
MODE_STICKY = 1 << 20
MODE_IRREGULAR = 1 << 19
MODE_TYPE = (
    MODE_DIR
    | MODE_SYMLINK
    | MODE_NAMED_PIPE
    | MODE_SOCKET
    | MODE_DEVICE
    | MODE_CHAR_DEVICE
    | MODE_IRREGULAR
)


def to_posix(mode: int) -> int:
    out = mode & 0o777
    if mode & MODE_SETUID:
        out |= stat.S_ISUID
    if mode & MODE_SETGID:
        out |= stat.S_ISGID
    if mode & MODE_STICKY:
        out |= stat.S_ISVTX
    if mode & MODE_DIR:
        out |= stat.S_IFDIR
    elif mode & MODE_SYMLINK:
        out |= stat.S_IFLNK
    elif mode & MODE_DEVICE:
        out |= stat.S_IFCHR if mode & MODE_CHAR_DEVICE else stat.S_IFBLK
    elif mode & MODE_NAMED_PIPE:
        out |= stat.S_IFIFO
    elif mode & MODE_SOCKET:
        out |= stat.S_IFSOCK
    else:
        out |= stat.S_IFREG
    return out


def from_posix(st_mode: int) -> int:
    out = st_mode & 0o777
    if st_mode & stat.S_ISUID:
        out |= MODE_SETUID
    if st_mode & stat.S_ISGID:
        out |= MODE_SETGID
    if st_mode & stat.S_ISVTX:
        out |= MODE_STICKY
    fmt = stat.S_IFMT(st_mode)
    if fmt == stat.S_IFDIR:
        out |= MODE_DIR
    elif fmt == stat.S_IFLNK:
        out |= MODE_SYMLINK
    elif fmt == stat.S_IFCHR:
        out |= MODE_DEVICE | MODE_CHAR_DEVICE
    elif fmt == stat.S_IFBLK:
        out |= MODE_DEVICE
    elif fmt == stat.S_IFIFO:
        out |= MODE_NAMED_PIPE
    elif fmt == stat.S_IFSOCK:
        out |= MODE_SOCKET
    return out


def is_regular(mode: int) -> bool:
    """fsutil's fileCanRequestData: only entries with no type bit carry data."""
    return mode & MODE_TYPE == 0
