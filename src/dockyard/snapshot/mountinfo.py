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
