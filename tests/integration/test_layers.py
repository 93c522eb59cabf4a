"""What a build's layers hold: whiteouts, opaque directories, hardlinks, modes, owners, xattrs.

The base image is imported from a tarball made here with tarfile (PAX headers carry the
`security.capability` xattr), built upon with RUN steps that delete, re-create, link,
chmod and chown, then checked inside a container and in the committed layer tars.
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest

from tests.conftest import Clients, write_context
from tests.support.rootfs import make_busybox_tree

pytestmark = pytest.mark.root

# cap_net_bind_service+ep as a VFS v2 capability xattr
CAP_NET_BIND_SERVICE = (
    b"\x01\x00\x00\x02\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
)


def _base_tar(tmp: Path) -> Path:
    tree = make_busybox_tree(tmp / "tree")
    for d in ("data/keep", "data/gone"):
        (tree / d).mkdir(parents=True)
    (tree / "data/keep/a").write_text("a\n")
    (tree / "data/gone/old").write_text("old\n")
    (tree / "data/delete-me").write_text("bye\n")
    (tree / "data/chmod-me").write_text("m\n")
    out = tmp / "base.tar"
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(tree.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(tree)), recursive=False)
        busybox = (tree / "bin/busybox").read_bytes()
        info = tarfile.TarInfo("opt/cap/busybox")
        info.size = len(busybox)
        info.mode = 0o755
        info.pax_headers = {
            "SCHILY.xattr.security.capability": CAP_NET_BIND_SERVICE.decode("latin-1")
        }
        tar.addfile(info, io.BytesIO(busybox))
    shutil.rmtree(tree)
    return out


@pytest.fixture(scope="module")
def layered(clients: Clients, tmp_path_factory: pytest.TempPathFactory) -> str:
    tmp = tmp_path_factory.mktemp("layers")
    clients.ok("import", str(_base_tar(tmp)), "layers-base:latest")
    ctx = write_context(
        tmp / "ctx",
        "FROM layers-base\n"
        "RUN rm /data/delete-me && rm -rf /data/gone && mkdir /data/gone && echo new > /data/gone/new\n"
        "RUN echo linked > /data/h1 && ln /data/h1 /data/h2 && chown 1234:567 /data/chmod-me && chmod 4751 /data/chmod-me "
        "&& mkdir -m 0700 /data/private && touch /opt/cap/busybox\n",
    )
    clients.ok("build", "-t", "layers-test", str(ctx))
    return "layers-test"


def _sh(clients: Clients, image: str, script: str, *extra: str) -> str:
    return clients.ok("run", "--rm", *extra, image, "sh", "-c", script)


def test_deleted_file_is_absent(clients: Clients, layered: str) -> None:
    out = _sh(clients, layered, "ls /data; test -e /data/delete-me && echo PRESENT || echo ABSENT")
    assert "ABSENT" in out and "keep" in out


def test_recreated_directory_is_opaque(clients: Clients, layered: str) -> None:
    assert _sh(clients, layered, "ls -A /data/gone") == "new\n"


def test_hardlinks_modes_owners(clients: Clients, layered: str) -> None:
    out = _sh(
        clients,
        layered,
        "stat -c '%i %h' /data/h1 /data/h2; stat -c '%a %u %g' /data/chmod-me /data/private",
    )
    lines = out.splitlines()
    assert lines[0] == lines[1] and lines[0].endswith(" 2")
    assert lines[2] == "4751 1234 567"
    assert lines[3] == "700 0 0"


def test_file_capability_survives_import_build_and_run(clients: Clients, layered: str) -> None:
    # A non-root user running the capability-carrying binary gains CAP_NET_BIND_SERVICE (bit 10)
    out = clients.ok(
        "run",
        "--rm",
        "-u",
        "1000",
        layered,
        "/opt/cap/busybox",
        "grep",
        "CapEff",
        "/proc/self/status",
    )
    assert out.split()[1] == "0000000000000400"


def test_layer_tars_hold_oci_whiteouts(clients: Clients, layered: str) -> None:
    info = json.loads(clients.ok("inspect", layered))[0]
    diff_ids = info["RootFS"]["Layers"]
    assert len(diff_ids) == 3
    blobs = clients.daemon.root / "content" / "blobs" / "sha256"
    with tarfile.open(blobs / diff_ids[1].split(":")[1]) as tar:
        names = tar.getnames()
    assert "data/.wh.delete-me" in names
    assert "data/gone/.wh..wh..opq" in names
    assert "data/gone/new" in names
    assert not any(
        n.startswith(("etc/hosts", "etc/hostname", "etc/resolv.conf", ".dockerenv")) for n in names
    )
    with tarfile.open(blobs / diff_ids[2].split(":")[1]) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert members["data/h2"].islnk() and members["data/h2"].linkname == "data/h1"
    assert members["data/chmod-me"].mode & 0o7777 == 0o4751
    assert (members["data/chmod-me"].uid, members["data/chmod-me"].gid) == (1234, 567)
    cap = members["opt/cap/busybox"].pax_headers.get("SCHILY.xattr.security.capability", "")
    assert cap.encode("latin-1") == CAP_NET_BIND_SERVICE


def test_a_step_that_changes_nothing_adds_no_layer(clients: Clients, tmp_path: Path) -> None:
    # Docker 20.10's legacy builder (measured): a RUN or WORKDIR that changes nothing records
    # an `empty_layer` history entry instead of an empty layer; the runtime's mount points
    # (/etc/hosts, /etc/hostname, /etc/resolv.conf, /.dockerenv) must not count as a change.
    ctx = write_context(tmp_path, "FROM busybox\nRUN true\nWORKDIR /\n")
    clients.ok("build", "--no-cache", "-t", "layers-empty", str(ctx))
    base = json.loads(clients.ok("inspect", "-f", "{{json .RootFS.Layers}}", "busybox"))
    layers = json.loads(clients.ok("inspect", "-f", "{{json .RootFS.Layers}}", "layers-empty"))
    assert layers == base
