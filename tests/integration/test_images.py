"""images, inspect, tag, rmi (with Docker's conflict rules), import from a file and stdin."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import Clients, write_context
from tests.support.rootfs import busybox_rootfs_tar

pytestmark = pytest.mark.root


def test_import_from_file_and_stdin(clients: Clients) -> None:
    tar = busybox_rootfs_tar()
    out = clients.ok("import", str(tar), "img-file:v1")
    assert re.fullmatch(r"sha256:[0-9a-f]{64}\n", out)
    proc = clients.dockyard("import", "-", "img-stdin", input=tar.read_bytes())
    assert proc.returncode == 0, proc.stderr
    # The same tarball gives the same layer: diff ID = sha256 of the uncompressed stream
    a = json.loads(clients.ok("inspect", "img-file:v1"))[0]
    b = json.loads(clients.ok("inspect", "img-stdin"))[0]
    assert a["RootFS"]["Layers"] == b["RootFS"]["Layers"]
    assert clients.ok("run", "--rm", "img-stdin", "echo", "imported") == "imported\n"


def test_import_gzip_tarball(clients: Clients, tmp_path: Path) -> None:
    import gzip

    gz = tmp_path / "rootfs.tar.gz"
    gz.write_bytes(gzip.compress(busybox_rootfs_tar().read_bytes()))
    clients.ok("import", str(gz), "img-gz")
    assert clients.ok("run", "--rm", "img-gz", "echo", "ok") == "ok\n"


def test_import_rejects_a_hostile_tarball(clients: Clients, tmp_path: Path) -> None:
    import io
    import tarfile

    bad = tmp_path / "evil.tar"
    with tarfile.open(bad, "w") as tar:
        info = tarfile.TarInfo("../../escaped")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"evil"))
    proc = clients.dockyard("import", str(bad), "img-evil")
    assert proc.returncode != 0
    assert "escaped" in proc.stderr or ".." in proc.stderr
    assert not (clients.daemon.root.parent / "escaped").exists()
    assert clients.dockyard("inspect", "img-evil").returncode != 0


def test_images_lists_tags_and_inspect_shape(clients: Clients) -> None:
    clients.ok("tag", "busybox", "img-tagged:one")
    clients.ok("tag", "busybox:latest", "registry.example:5000/team/img:two")
    out = clients.ok("images")
    assert out.splitlines()[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert re.search(r"^img-tagged\s+one\s+[0-9a-f]{12}\s", out, re.M)
    assert re.search(r"^registry.example:5000/team/img\s+two\s", out, re.M)
    info = json.loads(clients.ok("inspect", "img-tagged:one"))[0]
    for key in ("Id", "RepoTags", "Created", "Config", "Architecture", "Os", "Size", "RootFS"):
        assert key in info
    assert "img-tagged:one" in info["RepoTags"]
    ids = clients.ok("images", "-q").split()
    assert info["Id"].split(":")[1][:12] in ids


def test_rmi_untags_then_deletes(clients: Clients, tmp_path: Path) -> None:
    ctx = write_context(tmp_path, "FROM busybox\nRUN echo rmi > /rmi\n")
    clients.ok("build", "-t", "img-rmi:a", "-t", "img-rmi:b", str(ctx))
    image_id = clients.ok("inspect", "-f", "{{.Id}}", "img-rmi:a").strip()
    assert clients.ok("rmi", "img-rmi:a") == "Untagged: img-rmi:a\n"
    out = clients.ok("rmi", "img-rmi:b")
    assert "Untagged: img-rmi:b" in out
    assert f"Deleted: {image_id}" in out
    assert clients.dockyard("inspect", image_id).returncode != 0


def test_rmi_conflicts(clients: Clients, tmp_path: Path) -> None:
    ctx = write_context(tmp_path, "FROM busybox\nRUN echo conflict > /c\n")
    clients.ok("build", "-t", "img-used", str(ctx))
    image_id = clients.ok("inspect", "-f", "{{.Id}}", "img-used").strip()
    clients.ok("tag", "img-used", "img-used-too")
    clients.ok("create", "--name", "img-user", "img-used", "true")
    # By ID with two names: must be forced
    proc = clients.dockyard("rmi", image_id[7:19])
    assert proc.returncode != 0 and "referenced in multiple repositories" in proc.stderr
    clients.ok("rmi", "img-used-too")
    # The last name of an image a container uses: must be forced
    proc = clients.dockyard("rmi", "img-used")
    assert proc.returncode != 0 and "container" in proc.stderr and "is using" in proc.stderr
    clients.ok("rm", "img-user")
    assert "Deleted:" in clients.ok("rmi", "img-used")


def test_rmi_of_a_parent_by_id_is_refused(fresh_clients: Clients, tmp_path: Path) -> None:
    ctx = write_context(tmp_path, "FROM busybox\nRUN echo child > /child\n")
    fresh_clients.ok("build", "-t", "img-child", str(ctx))
    base = fresh_clients.ok("inspect", "-f", "{{.Id}}", "busybox").strip()
    proc = fresh_clients.dockyard("rmi", "-f", base)
    assert proc.returncode != 0 and "dependent child images" in proc.stderr


def test_missing_image_errors(clients: Clients) -> None:
    proc = clients.dockyard("inspect", "no-such-image:anywhere")
    assert proc.returncode == 1
    proc = clients.dockyard("rmi", "no-such-image:anywhere")
    assert proc.returncode == 1 and "No such image" in proc.stderr
    proc = clients.dockyard("tag", "no-such-image", "x")
    assert proc.returncode == 1 and "No such image" in proc.stderr


def test_rmi_frees_layers_nothing_references(fresh_clients: Clients, tmp_path: Path) -> None:
    root = fresh_clients.daemon.root
    ctx = write_context(tmp_path, "FROM busybox\nRUN echo freed > /freed\n")
    fresh_clients.ok("build", "-t", "img-free", str(ctx))
    layers = json.loads(fresh_clients.ok("inspect", "-f", "{{json .RootFS.Layers}}", "img-free"))
    blob = root / "content" / "blobs" / "sha256" / layers[-1].split(":")[1]
    assert blob.exists()
    snapshots_before = {p.name for p in (root / "overlay").iterdir()}
    out = fresh_clients.ok("rmi", "img-free")
    deleted = [line for line in out.splitlines() if line.startswith("Deleted: ")]
    assert len(deleted) >= 2  # the image (and its builder parents), then the freed layer
    assert not blob.exists()
    assert len({p.name for p in (root / "overlay").iterdir()}) == len(snapshots_before) - 1
    # The base image's layer is still referenced and stays
    assert fresh_clients.ok("run", "--rm", "busybox", "echo", "still here") == "still here\n"
