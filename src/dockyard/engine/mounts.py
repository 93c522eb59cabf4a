"""Mount propagation for the daemon's storage root.

The root is bind-mounted onto itself and made private, as Docker's overlay2 does with its home
directory, so overlay mounts made for containers and build steps never propagate to other
mount namespaces (and the host's unmounts never reach into ours).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from dockyard.errors import RuntimeFailure
from dockyard.snapshot.mountinfo import is_mountpoint


def _mount(*argv: str) -> None:
    proc = subprocess.run(["mount", *argv], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeFailure(f"mount {' '.join(argv)}: {proc.stderr.strip()}")


def make_private(root: Path) -> None:
    if not is_mountpoint(root):
        _mount("--bind", str(root), str(root))
    _mount("--make-private", str(root))


def release_private(root: Path) -> None:
    """Undo `make_private` at shutdown, detaching whatever is still mounted beneath."""
    if is_mountpoint(root):
        subprocess.run(["umount", "-l", str(root)], capture_output=True)
