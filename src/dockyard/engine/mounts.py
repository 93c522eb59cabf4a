"""Mount propagation for the daemon's storage root.

The root is bind-mounted onto itself and made private, as Docker's overlay2 does with its home
directory, so overlay mounts made for containers and build steps never propagate to other
mount namespaces (and the host's unmounts never reach into ours). A root that is a filesystem
of its own (a loop-mounted disk, a tmpfs) is only made private: shutdown must not unmount it,
or the next start would see an empty store (issue 9 §4).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from dockyard.errors import RuntimeFailure
from dockyard.snapshot.mountinfo import is_mountpoint, is_self_bind


def _mount(*argv: str) -> None:
    proc = subprocess.run(["mount", *argv], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeFailure(f"mount {' '.join(argv)}: {proc.stderr.strip()}")


def make_private(root: Path) -> bool:
    """Make the root a private mount; True when its mount is a self-bind for shutdown to undo.

    The bind is ours when made now, and also when a daemon that died left it behind.
    """
    ours = True
    if not is_mountpoint(root):
        _mount("--bind", str(root), str(root))
    else:
        ours = is_self_bind(root)
    _mount("--make-private", str(root))
    return ours


def release_private(root: Path, ours: bool) -> None:
    """Undo `make_private` at shutdown, detaching whatever is still mounted beneath.

    Only a bind that start-up made (`ours`) is unmounted; a root on its own filesystem stays.
    """
    if ours and is_mountpoint(root):
        subprocess.run(["umount", "-l", str(root)], capture_output=True)
