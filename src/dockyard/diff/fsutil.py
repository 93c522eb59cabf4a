"""Path resolution confined to a root directory, as if the process were chroot'ed into it.

Layer extraction and COPY destinations name paths inside an image's root filesystem, where
an absolute symlink such as `etc -> /host/etc` means `<root>/host/etc`, never the host's.
Docker gets this from chroot (chrootarchive) and containerd from `fs.RootPath`; we walk the
path one component at a time with lstat, substituting symlink targets and clamping `..` at
the root. The result contains no symlinks, so operating on it (with no-follow calls for the
final component) cannot leave the root. This assumes nothing else changes the tree while
we work on it, which holds for snapshots being extracted and for stopped build containers.
"""

from __future__ import annotations

import os
import stat
from collections import deque
from pathlib import Path

from dockyard.errors import InvalidArgument

MAX_SYMLINKS = 40  # Linux's limit on symlinks followed in one lookup (ELOOP)


class SymlinkLoop(InvalidArgument):
    """A path inside the root goes through more than MAX_SYMLINKS symlinks."""


def split_components(path: str) -> list[str]:
    """The non-empty, non-"." components of `path` ("/a//./b/" → ["a", "b"]); ".." is kept."""
    return [c for c in path.split("/") if c and c != "."]


def resolve_in_root(root: Path, path: str) -> Path:
    """The host path that `path` names inside `root`, following symlinks as a chroot would.

    Absolute symlink targets restart at `root`; `..` never climbs above it. Components that
    do not exist are kept literally, so the result may name a file not yet created (what a
    COPY destination or a tar member needs). Raises SymlinkLoop after MAX_SYMLINKS links.
    """
    root = Path(root)
    pending = deque(split_components(path))
    resolved: list[str] = []
    links = 0
    missing = False  # once a component is absent, the rest cannot be symlinks
    while pending:
        comp = pending.popleft()
        if comp == "..":
            if resolved:
                resolved.pop()
            continue
        if missing:
            resolved.append(comp)
            continue
        candidate = os.path.join(root, *resolved, comp)
        try:
            st = os.lstat(candidate)
        except (FileNotFoundError, NotADirectoryError):
            missing = True
            resolved.append(comp)
            continue
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > MAX_SYMLINKS:
                raise SymlinkLoop(f"too many levels of symbolic links resolving {path!r}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved.clear()
            pending.extendleft(reversed(split_components(target)))
            continue
        resolved.append(comp)
    return root.joinpath(*resolved)


def mkdir_in_root(root: Path, path: str, mode: int = 0o755) -> Path:
    """Resolve `path` inside `root` and create it and any missing parents as directories
    (like `mkdir -p` inside a chroot). Returns the resolved host path."""
    # Components past the first missing one are literal, so creating them all at once
    # gives the same path a component-by-component walk would.
    target = resolve_in_root(root, path)
    try:
        os.makedirs(target, mode, exist_ok=True)
    except FileExistsError:
        raise NotADirectoryError(f"{path!r} exists and is not a directory") from None
    return target
