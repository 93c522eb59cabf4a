"""Base root filesystems for tests, made offline from Debian's busybox-static.

The busybox tree is tiny (one static binary plus applet symlinks) and is cached as a tarball
outside the repository so that every test session imports the same bytes.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

CACHE_DIR = Path(os.environ.get("DOCKYARD_TEST_CACHE", "/var/cache/dockyard"))
BUSYBOX = Path("/bin/busybox")


def make_busybox_tree(root: Path) -> Path:
    """Lay out a minimal busybox root filesystem in `root` (created if missing)."""
    for d in (
        "bin",
        "sbin",
        "usr/bin",
        "usr/sbin",
        "etc",
        "tmp",
        "root",
        "proc",
        "sys",
        "dev",
        "var",
    ):
        (root / d).mkdir(parents=True, exist_ok=True)
    os.chmod(root / "tmp", 0o1777)
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    applets = subprocess.run(
        [str(BUSYBOX), "--list-full"], check=True, capture_output=True, text=True
    ).stdout.split()
    for applet in applets:
        link = root / applet
        if link.exists() or link.is_symlink():
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to("/bin/busybox")
    (root / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\n"
        "daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
    )
    (root / "etc" / "group").write_text("root:x:0:\ndaemon:x:1:\nnogroup:x:65534:\n")
    return root


def busybox_rootfs_tar() -> Path:
    """Path to a cached tarball of the busybox tree (built on first use)."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    out = CACHE_DIR / "busybox-rootfs.tar"
    if out.exists():
        return out
    work = CACHE_DIR / f"busybox-tree.{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    make_busybox_tree(work)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(work.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(work)), recursive=False)
    shutil.rmtree(work, ignore_errors=True)
    tmp = out.with_suffix(f".tmp{os.getpid()}")
    tmp.write_bytes(buf.getvalue())
    tmp.rename(out)
    return out
