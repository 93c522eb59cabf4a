"""Shutdown undoes only what start-up did to the root's mounts (issue 9 §4).

A root on a filesystem of its own (here a loop-mounted ext4 image) must still be mounted,
with its store, after the daemon stops; a root that start-up bound onto itself is unbound,
and so is a self-bind that a killed daemon left behind.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import Clients
from tests.support.daemons import DockyardDaemon, mounts_under, unmount_all_under
from tests.support.rootfs import busybox_rootfs_tar

pytestmark = pytest.mark.root


def _mounted_at(path: Path) -> list[str]:
    return [m for m in mounts_under(path) if m == str(path.resolve())]


def test_a_loop_mounted_root_stays_mounted_with_its_store(base: Path) -> None:
    image = base / "disk.img"
    subprocess.run(["truncate", "-s", "256M", str(image)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True, capture_output=True)
    root = base / "root"
    root.mkdir()
    subprocess.run(["mount", "-o", "loop", str(image), str(root)], check=True)
    try:
        (root / "marker").write_text("mine\n")
        daemon = DockyardDaemon(base).start()
        clients = Clients(daemon)
        clients.ok("import", str(busybox_rootfs_tar()), "busybox:latest")
        daemon.stop()
        assert len(_mounted_at(root)) == 1, "the loop mount was undone at shutdown"
        assert (root / "marker").read_text() == "mine\n"
        assert (root / "metadata.db").exists()
        # The next start sees the same store.
        daemon = DockyardDaemon(base).start()
        try:
            assert "busybox" in Clients(daemon).ok("images")
        finally:
            daemon.stop()
        assert len(_mounted_at(root)) == 1
    finally:
        unmount_all_under(base)  # `mount -o loop` sets autoclear: the loop device goes too


def test_a_self_bind_is_undone_whether_made_now_or_left_behind(base: Path) -> None:
    root = base / "root"
    root.mkdir()
    daemon = DockyardDaemon(base).start()
    assert len(_mounted_at(root)) == 1  # start-up's bind
    daemon.stop()
    assert _mounted_at(root) == []
    # A daemon killed with SIGKILL leaves its bind: the next one takes it as its own.
    subprocess.run(["mount", "--bind", str(root), str(root)], check=True)
    daemon = DockyardDaemon(base).start()
    daemon.stop()
    assert _mounted_at(root) == []
