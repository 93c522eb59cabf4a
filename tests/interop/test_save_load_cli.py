"""`dockyard save` / `dockyard load` through our CLI, without the reference dockerd."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.conftest import Clients

pytestmark = pytest.mark.root


def test_dockyard_cli_save_to_stdout_and_load_from_stdin(clients: Clients, tmp_path: Path) -> None:
    archive = tmp_path / "stdout.tar"
    with open(archive, "wb") as out:
        proc = subprocess.run(
            [sys.executable, "-m", "dockyard.cli.main", "save", "busybox"],
            env=clients.daemon.env(),
            stdout=out,
            stderr=subprocess.PIPE,
            timeout=120,
        )
    assert proc.returncode == 0, proc.stderr
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert {"manifest.json", "index.json", "oci-layout", "repositories"} <= set(names)
    with open(archive, "rb") as src:
        proc = subprocess.run(
            [sys.executable, "-m", "dockyard.cli.main", "load"],
            stdin=src,
            env=clients.daemon.env(),
            capture_output=True,
            timeout=120,
        )
    assert (proc.returncode, proc.stdout) == (0, b"Loaded image: busybox:latest\n"), proc.stderr
    bad = clients.dockyard("save", "-o", str(tmp_path / "x.tar"), "interop-no-such:1")
    assert bad.returncode == 1 and "No such image: interop-no-such:1" in bad.stderr
    assert not (tmp_path / "x.tar").exists()


def test_save_with_a_missing_layer_blob_fails_cleanly(
    fresh_clients: Clients, tmp_path: Path
) -> None:
    diff_id = json.loads(fresh_clients.ok("inspect", "busybox"))[0]["RootFS"]["Layers"][-1]
    blob = fresh_clients.daemon.root / "content" / "blobs" / "sha256" / diff_id[7:]
    blob.unlink()
    proc = fresh_clients.dockyard("save", "-o", str(tmp_path / "x.tar"), "busybox")
    assert proc.returncode == 1
    assert (
        f"layer {diff_id} of image" in proc.stderr and "no tar in the content store" in proc.stderr
    )
    assert not (tmp_path / "x.tar").exists()


def test_load_survives_a_client_that_goes_away(clients: Clients) -> None:
    """Half an archive, then a hang-up: the daemon drops the load and cleans its scratch dir."""
    import socket
    import time

    from tests.support.rootfs import busybox_rootfs_tar

    data = busybox_rootfs_tar().read_bytes()
    s = socket.socket(socket.AF_UNIX)
    s.connect(str(clients.daemon.socket))
    s.sendall(
        b"POST /v1.44/images/load?quiet=1 HTTP/1.1\r\nHost: d\r\n"
        b"Content-Type: application/x-tar\r\n"
        + f"Content-Length: {len(data)}\r\n\r\n".encode()
        + data[: len(data) // 2]
    )
    time.sleep(0.3)
    s.close()
    scratch = clients.daemon.root / "tmp"
    deadline = time.monotonic() + 10
    while any(p.name.startswith("load-") for p in scratch.iterdir()):
        assert time.monotonic() < deadline, list(scratch.iterdir())
        time.sleep(0.1)
    assert "busybox" in clients.ok("images")
