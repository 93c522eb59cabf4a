"""Mount-table queries shared by the snapshotter and the engine.

os.path.ismount compares a path's device with its parent's, so it misses a bind mount of a
directory of the same filesystem (read-only layer views, the storage root bound onto itself);
the kernel's mount table is the only reliable answer.
"""

from __future__ import annotations

import os
from pathlib import Path


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal (\040 …)
    return (
        field.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
    )


def is_mountpoint(path: Path | str) -> bool:
    target = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        return any(_unescape(line.split()[4]) == target for line in f)


def is_self_bind(path: Path | str) -> bool:
    """True when the topmost mount at `path` is a bind of `path`'s own directory.

    That is what `mount --bind ROOT ROOT` leaves (ours, or a crashed daemon's); a filesystem
    of its own mounted there (a loop device, a tmpfs) has another device or another root.
    """
    target = os.path.realpath(path)
    at: list[str] | None = None
    parent: list[str] | None = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            point = _unescape(fields[4])
            if point == target:
                at = fields
            elif (target.startswith(point.rstrip("/") + "/")) and (
                parent is None or len(point) >= len(_unescape(parent[4]))
            ):
                parent = fields
    if at is None or parent is None or at[2] != parent[2]:
        return False
    rel = os.path.relpath(target, _unescape(parent[4]))
    return _unescape(at[3]) == os.path.normpath(os.path.join(_unescape(parent[3]), rel))


def mounts_under(path: Path | str) -> list[str]:
    """Mount points strictly below `path`, as the kernel lists them."""
    prefix = os.path.realpath(path) + "/"
    with open("/proc/self/mountinfo") as f:
        return [m for line in f if (m := _unescape(line.split()[4])).startswith(prefix)]
