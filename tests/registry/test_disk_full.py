"""A pull that fills the disk: "no space left on device" in the stream (not a broken
response), the space given back, the daemon alive. The daemon's root is a small tmpfs."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Clients, own_daemon, short_tmp
from tests.registry.support import Registry, layer_tar, make_image
from tests.support.api import request

pytestmark = pytest.mark.root

TMPFS_MB = 48


@pytest.fixture
def small_disk() -> Iterator[Clients]:
    base = short_tmp("dyfull-")
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_MB}m,mode=0700", "tmpfs", str(base)],
        check=True,
    )
    try:
        # the daemon's cleanup unmounts everything under base, the tmpfs included
        with own_daemon(base) as c:
            yield c
    finally:
        subprocess.run(["umount", "-l", str(base)], capture_output=True)
        base.rmdir() if base.exists() else None


def _store(root: Path) -> dict[str, object]:
    st = os.statvfs(root)
    return {
        "free_mb": st.f_bavail * st.f_frsize // (1 << 20),
        "blobs": sorted(p.name for p in (root / "content/blobs/sha256").iterdir()),
        "ingest": sorted(p.name for p in (root / "content/ingest").iterdir()),
        "snapshots": sorted(p.name for p in (root / "overlay").iterdir()),
    }


@pytest.mark.parametrize(
    ("what", "layer"),
    [
        # incompressible: the download itself does not fit
        ("download", lambda: layer_tar({"big": os.urandom((TMPFS_MB + 16) << 20)})),
        # a few KiB of gzip that unpack to more than the disk holds
        ("extract", lambda: layer_tar({"zeros": bytes((TMPFS_MB - 12) << 20)})),
    ],
)
def test_pull_out_of_space_reports_and_gives_back(
    small_disk: Clients, registry: Registry, what: str, layer: object
) -> None:
    c = small_disk
    small = layer_tar({"small": b"s" * 1000})
    img = make_image([small, layer()])  # type: ignore[operator]
    registry.put_image("full", "latest", img)
    root = c.daemon.root
    before = _store(root)
    proc = c.docker("pull", f"{registry.host}/full")
    assert proc.returncode != 0
    assert "no space left on device" in proc.stderr + proc.stdout, (proc.stdout, proc.stderr)
    assert "connection" not in proc.stderr.lower(), proc.stderr  # not a broken response
    assert "Traceback" not in c.daemon.log.read_text()
    after = _store(root)
    assert after["ingest"] == [] and after["blobs"] == before["blobs"], (what, before, after)
    assert after["snapshots"] == before["snapshots"]
    assert abs(int(after["free_mb"]) - int(before["free_mb"])) <= 1, (before, after)  # type: ignore[call-overload]
    assert request(c.daemon.socket, "GET", "/_ping").status == 200
    # The daemon keeps working: a pull that fits succeeds.
    registry.put_image("fits", "latest", make_image([small]))
    assert c.docker("pull", f"{registry.host}/fits").returncode == 0
