"""The overlayfs snapshotter: numbered directories that are layers or containers' writable tops.

Lifecycle of a snapshot (containerd's model, on overlay2's directory layout):
  prepare → (mount, use, unmount)* → commit, or prepare → remove.
- A snapshot is `<root>/<n>/fs` (its files) plus, while active, `<root>/<n>/work` (overlay's
  scratch dir, which must sit on the same filesystem as the upper dir).
- An *active* snapshot is the upper dir of an overlay mount whose lower dirs are committed
  snapshots. Committing drops the work dir; the upper dir as overlay left it (whiteouts as 0:0
  character devices, opaque dirs as `trusted.overlay.opaque`) becomes a lower dir as it is.
- Directory names are short numbers. Lower dirs go to mount(2) as absolute paths while the
  option string fits its one page (no `mount` process per container start, issue 17), and
  beyond that relative to `<root>` from a mount helper that runs there, so deep images fit.
- `init` is the shared init layer (empty mount points runc would otherwise create inside the
  rootfs, which would then land in the upper dir and so in the next layer, pitfalls.md).
Mount options turn off redirect_dir, metacopy and index so the upper dir is a faithful diff.
Removing a snapshot renames it into the trash (content/trash.py), so the caller never waits for
the deletion of a big tree; a reaper thread deletes it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dockyard.content.trash import Trash
from dockyard.errors import RuntimeFailure
from dockyard.rootperms import DIR_MODE
from dockyard.snapshot import mountcall
from dockyard.snapshot.mountinfo import is_mountpoint

_FAITHFUL_DIFF_OPTIONS = "redirect_dir=off,metacopy=off,index=off"
_OPTIONS_MAX = 4000  # the option string must fit one page with room for the kernel's own

# Mount points Docker's init layer holds (moby daemon/initlayer), as (path, kind).
_INIT_ENTRIES: tuple[tuple[str, str], ...] = (
    ("dev", "dir"),
    ("dev/pts", "dir"),
    ("dev/shm", "dir"),
    ("dev/console", "file"),
    ("proc", "dir"),
    ("sys", "dir"),
    ("etc", "dir"),
    ("etc/hosts", "file"),
    ("etc/hostname", "file"),
    ("etc/resolv.conf", "file"),
    (".dockerenv", "file"),
)
# BuildKit's RUN sandbox sees none of Docker's init files (no /.dockerenv, /etc/mtab or
# /etc/hostname; measured on dockerd 20.10's and 26.1's BuildKit): only the mount points its
# executor binds, here so that runc's stubs never reach (or copy up a parent into) the layer
_SANDBOX_INIT_ENTRIES: tuple[tuple[str, str], ...] = (
    ("dev", "dir"),
    ("proc", "dir"),
    ("sys", "dir"),
    ("etc", "dir"),
    ("etc/hosts", "file"),
    ("etc/resolv.conf", "file"),
)


class OverlaySnapshotter:
    def __init__(self, root: Path, *, trash: Trash | None = None) -> None:
        self.root = root
        root.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        self.trash = trash or Trash(root.parent / f"{root.name}.trash")
        self._make_init_layer()

    # layout ------------------------------------------------------------------------------
    def fs(self, snapshot: int | str) -> Path:
        return self.root / str(snapshot) / "fs"

    def create(self, snapshot: int, active: bool) -> Path:
        """Make the directories of snapshot `snapshot` (ID allocated by the metadata store)."""
        base = self.root / str(snapshot)
        self.trash.put(base)  # a leftover of a crash under a reused number
        base.mkdir(mode=DIR_MODE)  # other users never reach a layer (rootperms.py)
        (base / "fs").mkdir()
        os.chmod(base / "fs", 0o755)
        if active:
            (base / "work").mkdir()
        return base / "fs"

    def commit(self, snapshot: int) -> None:
        shutil.rmtree(self.root / str(snapshot) / "work", ignore_errors=True)

    def remove(self, snapshot: int) -> None:
        """Out of view at once (unmount it first); the files go in the background."""
        self.trash.put(self.root / str(snapshot))

    def usage(self, snapshot: int | str) -> int:
        """Bytes the snapshot's files hold, as overlay2's DiffSize counts them."""
        return tree_size(self.fs(snapshot))

    # mounts ------------------------------------------------------------------------------
    def mount(
        self,
        target: Path,
        lowers: list[int],
        upper: int | None,
        *,
        with_init: bool = True,
        sandbox: bool = False,
        volatile: bool = False,
    ) -> None:
        """Mount an overlay of `lowers` (top first) under `upper` at `target`, over Docker's
        init layer (`with_init`; BuildKit's sandbox's mount points instead with `sandbox`).

        Without an upper dir the view is read-only (a single lower dir is bind-mounted, since
        overlayfs wants two lower dirs when it has no upper).

        `volatile` (an upper dir used for this one mount and then thrown away: a --rm
        container's) skips every sync of the upper filesystem, the one at the unmount
        included (0.3-10 ms here); such an upper dir is never a layer. Overlayfs then marks
        the work dir (work/incompat/volatile) and refuses it for a second mount until the
        mark goes: it goes here, since nothing kept depends on that upper dir.
        """
        lower_names = [f"{n}/fs" for n in lowers]
        if with_init:
            lower_names.insert(0, "init-sandbox/fs" if sandbox else "init/fs")
        if not lower_names:
            lower_names = ["empty/fs"]
        target.mkdir(parents=True, exist_ok=True)
        if upper is None and len(lower_names) == 1:
            source = self.root / lower_names[0]
            self._call(mountcall.mount, source, target, None, mountcall.MS_BIND)
            flags = mountcall.MS_REMOUNT | mountcall.MS_BIND | mountcall.MS_RDONLY
            self._call(mountcall.mount, "", target, None, flags)
            return
        # mount(2) itself with absolute paths while they fit in the one-page option string
        # (most images); the relative names from a helper run in the root beyond that.
        extra = ""
        if volatile and upper is not None:
            extra = ",volatile"
            shutil.rmtree(self.root / str(upper) / "work" / "work" / "incompat", ignore_errors=True)
        absolute = self._options([f"{self.root}/{n}" for n in lower_names], upper, f"{self.root}/")
        if len(absolute) + len(extra) <= _OPTIONS_MAX:
            self._call(mountcall.mount, "overlay", target, "overlay", 0, absolute + extra)
            return
        opts = self._options(lower_names, upper, "") + extra
        if len(opts) > _OPTIONS_MAX:
            raise RuntimeFailure(f"image has too many layers to mount ({len(lowers)})")
        self._run(["mount", "-t", "overlay", "overlay", "-o", opts, str(target)])

    @staticmethod
    def _options(lower_names: list[str], upper: int | None, prefix: str) -> str:
        opts = f"lowerdir={':'.join(lower_names)}"
        if upper is not None:
            opts += f",upperdir={prefix}{upper}/fs,workdir={prefix}{upper}/work"
        return f"{opts},{_FAITHFUL_DIFF_OPTIONS}"

    def unmount(self, target: Path) -> None:
        if is_mountpoint(target):
            self._call(mountcall.umount, target)

    @staticmethod
    def _call(fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except OSError as e:
            raise RuntimeFailure(str(e.strerror or e)) from None

    def _run(self, argv: list[str]) -> None:
        proc = subprocess.run(argv, cwd=self.root, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeFailure(f"{' '.join(argv[:3])}: {proc.stderr.strip() or proc.returncode}")

    # set-up ------------------------------------------------------------------------------
    def _make_init_layer(self) -> None:
        self._make_init("init", _INIT_ENTRIES, mtab=True)
        self._make_init("init-sandbox", _SANDBOX_INIT_ENTRIES, mtab=False)
        (self.root / "empty").mkdir(mode=DIR_MODE, exist_ok=True)
        (self.root / "empty" / "fs").mkdir(exist_ok=True)

    def _make_init(self, name: str, entries: tuple[tuple[str, str], ...], *, mtab: bool) -> None:
        if (self.root / name / "fs").exists():
            return
        tmp = self.root / f"{name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(mode=DIR_MODE)
        (tmp / "fs").mkdir()
        os.chmod(tmp / "fs", 0o755)
        for rel, kind in entries:
            p = tmp / "fs" / rel
            if kind == "dir":
                p.mkdir(mode=0o755, exist_ok=True)
            else:
                # Docker's init layer makes /.dockerenv and /dev/console 0755
                p.touch(mode=0o755 if rel in ("dev/console", ".dockerenv") else 0o644)
        if mtab:
            (tmp / "fs" / "etc" / "mtab").symlink_to("/proc/mounts")
        os.rename(tmp, self.root / name)


def tree_size(path: Path) -> int:
    """moby's pkg/directory.Size: the apparent size of every non-directory entry under
    `path` (symlinks count their own length), each hardlinked inode once."""
    seen: set[int] = set()
    total = 0
    for dirpath, dirnames, filenames in os.walk(path):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if st.st_size == 0 or st.st_ino in seen:
                continue
            seen.add(st.st_ino)
            total += st.st_size
    return total
