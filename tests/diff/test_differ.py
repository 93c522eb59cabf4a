from __future__ import annotations

import io
import os
import socket
import stat
import subprocess
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from dockyard.content.store import ContentStore
from dockyard.diff.applier import apply_layer
from dockyard.diff.differ import commit_upper, write_layer_tar

EMPTY_LAYER = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"
# cap_net_bind_service+ep as setcap writes it (VFS_CAP_REVISION_2)
CAP = b"\x01\x00\x00\x02\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
OVERLAY_OPTS = "redirect_dir=off,metacopy=off,index=off"


def _layer(upper: Path) -> bytes:
    out = io.BytesIO()
    write_layer_tar(upper, out)
    return out.getvalue()


def _members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        return {m.name: m for m in tf}


def test_empty_upper_is_dockers_empty_layer(tmp_path: Path) -> None:
    (tmp_path / "upper").mkdir()
    assert _layer(tmp_path / "upper") == bytes(1024)
    store = ContentStore(tmp_path / "content")
    info, content_size = commit_upper(tmp_path / "upper", store)
    assert info.digest == EMPTY_LAYER and info.size == 1024 and content_size == 0
    assert store.read_bytes(EMPTY_LAYER) == bytes(1024)


def test_content_size_is_dockers_diff_size(tmp_path: Path) -> None:
    """dockerd sizes a layer by what its directory holds (pkg/directory.Size): apparent file
    sizes, a hardlinked inode once, a symlink as its target's length, directories nothing;
    the differ and the applier both count it while the tar streams."""
    upper = tmp_path / "upper"
    (upper / "d").mkdir(parents=True)
    (upper / "d" / "f").write_bytes(b"x" * 1000)
    os.link(upper / "d" / "f", upper / "d" / "g")
    (upper / "link").symlink_to("d/f")  # 3 bytes
    (upper / "empty").write_bytes(b"")
    os.mknod(upper / "gone", stat.S_IFCHR, 0)  # a whiteout
    store = ContentStore(tmp_path / "content")
    info, content_size = commit_upper(upper, store)
    assert content_size == 1003
    with open(store.path(info.digest), "rb") as f:
        assert apply_layer(f, tmp_path / "applied").content_size == 1003


@pytest.mark.root
def test_order_names_and_reproducibility(tmp_path: Path) -> None:
    up = tmp_path / "upper"
    for d in ("a", "a-c", "etc/ssl"):
        (up / d).mkdir(parents=True)
    (up / "a/z").write_text("z")
    (up / "a-c/y").write_text("y")
    (up / "etc/ssl/cert").write_bytes(os.urandom(3000))
    os.chown(up / "etc/ssl/cert", 123, 456)
    (up / "etc/ssl/cert").chmod(0o4711)
    os.utime(up / "etc/ssl/cert", (1_234_567_890, 1_234_567_890))
    data = _layer(up)
    assert data == _layer(up)
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        raw_names = [m.name for m in tf.getmembers()]
    # Depth-first, names sorted per directory (Go's filepath.Walk), no "./", no root entry.
    assert raw_names == ["a", "a/z", "a-c", "a-c/y", "etc", "etc/ssl", "etc/ssl/cert"]
    assert data[:2] == b"a/"  # directories carry a trailing slash in the header
    cert = _members(data)["etc/ssl/cert"]
    assert (cert.mode, cert.uid, cert.gid, cert.mtime) == (0o4711, 123, 456, 1_234_567_890)
    assert cert.size == 3000


@pytest.mark.root
def test_overlay_facts_become_oci_whiteouts(tmp_path: Path) -> None:
    up = tmp_path / "upper"
    (up / "dir").mkdir(parents=True)
    os.mknod(up / "dir/gone", stat.S_IFCHR, 0)
    os.link(up / "dir/gone", up / "gone_too")  # whiteouts share one inode on this kernel
    (up / "opaque").mkdir(mode=0o750)
    os.chmod(up / "opaque", 0o750)
    os.chown(up / "opaque", 10, 20)
    os.setxattr(up / "opaque", "trusted.overlay.opaque", b"y")
    os.setxattr(up / "opaque", "trusted.overlay.origin", b"junk")
    (up / "opaque/kept").write_text("k")
    (up / "f1").write_text("same inode")
    os.link(up / "f1", up / "f2")
    (up / "tool").write_bytes(b"bin")
    os.setxattr(up / "tool", "security.capability", CAP)
    os.setxattr(up / "tool", "user.note", b"hi")
    os.mknod(up / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(up / "sock"))
    sock.close()
    m = _members(_layer(up))
    assert sorted(m) == [
        ".wh.gone_too", "dir", "dir/.wh.gone", "f1", "f2", "null",
        "opaque", "opaque/.wh..wh..opq", "opaque/kept", "tool",
    ]  # fmt: skip
    for wh in ("dir/.wh.gone", ".wh.gone_too"):
        assert m[wh].isreg() and m[wh].size == 0 and m[wh].mode == 0o600
        assert (m[wh].uid, m[wh].gid) == (0, 0)
    opq = m["opaque/.wh..wh..opq"]
    assert opq.isreg() and opq.mode == 0o750 and (opq.uid, opq.gid) == (10, 20)
    assert m["f2"].islnk() and m["f2"].linkname == "f1"
    assert m["tool"].pax_headers["SCHILY.xattr.security.capability"].encode() == CAP
    assert m["tool"].pax_headers["SCHILY.xattr.user.note"] == "hi"
    assert not any("trusted" in k for mem in m.values() for k in mem.pax_headers)
    assert m["null"].ischr() and (m["null"].devmajor, m["null"].devminor) == (1, 3)


@contextmanager
def _overlay(lower: str, merged: Path, upper: Path | None = None) -> Iterator[Path]:
    opts = f"lowerdir={lower}"
    if upper is not None:
        work = upper.parent / (upper.name + ".work")
        work.mkdir()
        opts += f",upperdir={upper},workdir={work},{OVERLAY_OPTS}"
    merged.mkdir()
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, str(merged)], check=True)
    try:
        yield merged
    finally:
        subprocess.run(["umount", str(merged)], check=True)


@pytest.mark.root
def test_overlay_round_trip(tmp_path: Path) -> None:
    lower = tmp_path / "lower"
    for d in ("etc", "data/sub", "bin"):
        (lower / d).mkdir(parents=True)
    (lower / "etc/passwd").write_text("root:x:0:0\n")
    (lower / "etc/hosts").write_text("127.0.0.1 localhost\n")
    (lower / "etc/hostname").write_text("box\n")
    (lower / "data/a").write_text("a")
    (lower / "data/sub/b").write_text("b")
    (lower / "bin/tool").write_bytes(b"\x7fELF tool")
    (lower / "del_me").write_text("bye")
    upper = tmp_path / "upper"
    upper.mkdir()

    with _overlay(str(lower), tmp_path / "merged", upper) as m:
        (m / "del_me").unlink()
        (m / "etc/hostname").unlink()
        subprocess.run(["rm", "-rf", str(m / "data")], check=True)
        (m / "data").mkdir()
        (m / "data/new").write_text("new")
        (m / "hl1").write_text("linked")
        os.link(m / "hl1", m / "hl2")
        os.chmod(m / "etc/hosts", 0o600)
        os.chown(m / "etc/hosts", 1000, 1001)
        os.setxattr(m / "bin/tool", "security.capability", CAP)

    layer = _layer(upper)
    members = _members(layer)
    assert ".wh.del_me" in members and "etc/.wh.hostname" in members
    assert members[".wh.del_me"].isreg() and members[".wh.del_me"].size == 0
    assert "data/.wh..wh..opq" in members and "data/new" in members
    assert "data/a" not in members and "etc/passwd" not in members
    assert members["hl2"].islnk() and members["hl2"].linkname == "hl1"
    hosts = members["etc/hosts"]
    assert (hosts.mode, hosts.uid, hosts.gid) == (0o600, 1000, 1001)
    tool = members["bin/tool"]
    assert tool.pax_headers["SCHILY.xattr.security.capability"].encode() == CAP
    assert not any(
        k.startswith("SCHILY.xattr.trusted") for x in members.values() for k in x.pax_headers
    )
    listing = subprocess.run(
        ["tar", "-tvf", "-"], input=layer, capture_output=True, check=True
    ).stdout.decode()
    assert "hl2 link to hl1" in listing

    applied = tmp_path / "applied"
    res = apply_layer(io.BytesIO(layer), applied)
    assert res.size == len(layer)
    # The extracted snapshot holds the same overlay facts, so it diffs to the same tar.
    assert _layer(applied) == layer
    with _overlay(f"{applied}:{lower}", tmp_path / "merged2") as m:
        assert not (m / "del_me").exists() and not (m / "etc/hostname").exists()
        assert (m / "etc/passwd").read_text() == "root:x:0:0\n"
        assert sorted(p.name for p in (m / "data").iterdir()) == ["new"]
        assert (m / "hl2").read_text() == "linked"
        assert (m / "hl1").stat().st_ino == (m / "hl2").stat().st_ino
        st = (m / "etc/hosts").stat()
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o600, 1000, 1001)
        assert os.getxattr(m / "bin/tool", "security.capability") == CAP
        getcap = subprocess.run(["getcap", str(m / "bin/tool")], capture_output=True, text=True)
        assert "cap_net_bind_service" in getcap.stdout
        assert (m / "bin/tool").read_bytes() == b"\x7fELF tool"
