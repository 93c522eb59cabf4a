from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest
import zstandard

from dockyard.diff.applier import ApplyOptions, apply_layer
from dockyard.errors import UnsafeArchive

pytestmark = pytest.mark.root  # mknod, lchown and trusted.* xattrs

CAP_NET_BIND_SERVICE = (
    b"\x01\x00\x00\x02\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
)


def _member(
    name: str,
    kind: bytes = tarfile.REGTYPE,
    data: bytes = b"",
    *,
    linkname: str = "",
    mode: int = 0o644,
    uid: int = 0,
    gid: int = 0,
    mtime: int = 1_600_000_000,
    pax: dict[str, str] | None = None,
) -> tuple[tarfile.TarInfo, bytes]:
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.size = len(data) if kind == tarfile.REGTYPE else 0
    ti.linkname = linkname
    ti.mode = mode
    ti.uid, ti.gid = uid, gid
    ti.mtime = mtime
    if pax:
        ti.pax_headers = pax
    return ti, data


def _tar(members: list[tuple[tarfile.TarInfo, bytes]], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for ti, data in members:
            tf.addfile(ti, io.BytesIO(data) if ti.isreg() else None)
    return buf.getvalue()


@pytest.fixture
def sandbox(tmp_path: Path) -> tuple[Path, Path]:
    """A target dir and, beside it, an `outside` dir with a sentinel that must stay intact."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "sentinel").write_text("keep")
    target = tmp_path / "target"
    target.mkdir()
    return target, outside


def _snapshot(path: Path) -> list[tuple[str, int]]:
    return sorted((str(p.relative_to(path)), p.lstat().st_mode) for p in path.rglob("*"))


def test_regular_tree_metadata_and_diff_id(tmp_path: Path) -> None:
    data = _tar(
        [
            _member("bin/", tarfile.DIRTYPE, mode=0o711, uid=5, gid=6, mtime=1000),
            _member("bin/su", data=b"\x7fELF", mode=0o4755, uid=0, gid=0, mtime=2000),
            _member(
                "bin/ping",
                data=b"ping",
                mode=0o755,
                uid=7,
                gid=8,
                pax={"SCHILY.xattr.security.capability": CAP_NET_BIND_SERVICE.decode()},
            ),
            _member("bin/sh", tarfile.SYMTYPE, linkname="/bin/busybox", uid=3, mtime=3000),
            # a tar writer gives a hardlink entry its inode's metadata (Go's FileInfoHeader)
            _member("bin/sh2", tarfile.LNKTYPE, linkname="bin/su", mode=0o4755, mtime=2000),
            _member("dev/null", tarfile.CHRTYPE, mode=0o666),
            _member("run/fifo", tarfile.FIFOTYPE, mode=0o640),
        ]
    )
    target = tmp_path / "t"
    res = apply_layer(io.BytesIO(data), target)
    assert res.size == len(data)
    st = (target / "bin").lstat()
    assert stat.S_IMODE(st.st_mode) == 0o711 and (st.st_uid, st.st_gid) == (5, 6)
    assert st.st_mtime == 1000
    su = (target / "bin/su").lstat()
    assert stat.S_IMODE(su.st_mode) == 0o4755 and su.st_mtime == 2000
    assert (target / "bin/su").read_bytes() == b"\x7fELF"
    ping = target / "bin/ping"
    assert (ping.lstat().st_uid, ping.lstat().st_gid) == (7, 8)
    assert os.getxattr(ping, "security.capability") == CAP_NET_BIND_SERVICE
    sh = (target / "bin/sh").lstat()
    assert stat.S_ISLNK(sh.st_mode) and os.readlink(target / "bin/sh") == "/bin/busybox"
    assert sh.st_uid == 3 and sh.st_mtime == 3000
    assert (target / "bin/sh2").lstat().st_ino == su.st_ino
    null = (target / "dev/null").lstat()
    assert stat.S_ISCHR(null.st_mode) and os.major(null.st_rdev) == 0
    assert stat.S_ISFIFO((target / "run/fifo").lstat().st_mode)
    assert stat.S_IMODE((target / "run/fifo").lstat().st_mode) == 0o640


def test_whiteouts_become_overlay_form(tmp_path: Path) -> None:
    data = _tar(
        [
            _member("etc/", tarfile.DIRTYPE),
            _member("etc/.wh.passwd"),
            _member("opq/", tarfile.DIRTYPE, mode=0o750),
            _member("opq/.wh..wh..opq"),
            _member("opq/new", data=b"n"),
            _member("implicit/.wh..wh..opq"),
            _member(".wh..wh.plnk/", tarfile.DIRTYPE),
        ]
    )
    target = tmp_path / "t"
    apply_layer(io.BytesIO(data), target)
    wh = (target / "etc/passwd").lstat()
    assert stat.S_ISCHR(wh.st_mode) and wh.st_rdev == 0
    assert not (target / "etc/.wh.passwd").exists()
    assert os.getxattr(target / "opq", "trusted.overlay.opaque") == b"y"
    assert os.getxattr(target / "implicit", "trusted.overlay.opaque") == b"y"
    assert not (target / "opq/.wh..wh..opq").exists()
    assert (target / "opq/new").read_bytes() == b"n"
    assert not (target / ".wh..wh.plnk").exists()


def test_whiteouts_off_delete_in_a_live_tree(tmp_path: Path) -> None:
    """ApplyOptions(whiteouts=False) (ADD of an archive into a mounted root): `.wh.` entries
    delete, an opaque marker empties its directory, and nothing named `.wh.` is written."""
    target = tmp_path / "t"
    (target / "opq").mkdir(parents=True)
    (target / "opq" / "old").write_text("o")
    (target / "x").write_text("x")
    (target / "gone" / "deep").mkdir(parents=True)
    layer = _tar(
        [
            _member(".wh.x"),
            _member(".wh.gone"),
            _member(".wh.nothing"),
            _member(".wh..wh.plnk"),
            _member("opq", tarfile.DIRTYPE, mode=0o755),
            _member("opq/.wh..wh..opq"),
            _member("opq/new", data=b"n"),
        ]
    )
    apply_layer(io.BytesIO(layer), target, ApplyOptions(whiteouts=False))
    found = sorted(str(p.relative_to(target)) for p in target.rglob("*"))
    assert found == ["opq", "opq/new"]
    assert not os.listxattr(target / "opq")


def test_later_entries_replace_earlier_ones(tmp_path: Path) -> None:
    data = _tar(
        [
            _member("a/", tarfile.DIRTYPE),
            _member("a/child", data=b"c"),
            _member("a", data=b"now a file"),
            _member("b", data=b"file"),
            _member("b/", tarfile.DIRTYPE, mode=0o700),
            _member("b/x", data=b"x"),
            _member("c/", tarfile.DIRTYPE),
            _member("c/keep", data=b"k"),
            _member("c/", tarfile.DIRTYPE, mode=0o701),
        ]
    )
    target = tmp_path / "t"
    apply_layer(io.BytesIO(data), target)
    assert (target / "a").read_bytes() == b"now a file"
    assert (target / "b/x").read_bytes() == b"x"
    assert (target / "c/keep").read_bytes() == b"k"
    assert stat.S_IMODE((target / "c").stat().st_mode) == 0o701


@pytest.mark.parametrize("name", ["../x", "a/../../x", "./../x", "a/../x"])
def test_dotdot_names_are_refused(sandbox: tuple[Path, Path], name: str) -> None:
    target, _ = sandbox
    before = _snapshot(target.parent)
    with pytest.raises(UnsafeArchive, match=r"'\.\.'"):
        apply_layer(io.BytesIO(_tar([_member(name, data=b"evil")])), target)
    assert _snapshot(target.parent) == before


def test_absolute_names_are_made_relative(sandbox: tuple[Path, Path]) -> None:
    target, outside = sandbox
    name = str(outside / "sentinel")
    apply_layer(io.BytesIO(_tar([_member(name, data=b"evil")])), target)
    assert (outside / "sentinel").read_text() == "keep"
    assert (target / name.lstrip("/")).read_bytes() == b"evil"


@pytest.mark.parametrize("link", ["/", "../../..", "/../.."])
def test_symlink_escape_lands_inside_target(sandbox: tuple[Path, Path], link: str) -> None:
    target, outside = sandbox
    rel_outside = str(outside).lstrip("/")
    data = _tar(
        [
            _member("evil", tarfile.SYMTYPE, linkname=link),
            _member(f"evil/{rel_outside}/sentinel", data=b"evil"),
            _member("evil/etc/x", data=b"x"),
        ]
    )
    apply_layer(io.BytesIO(data), target)
    assert (outside / "sentinel").read_text() == "keep"
    assert (target / rel_outside / "sentinel").read_bytes() == b"evil"
    assert (target / "etc/x").read_bytes() == b"x"
    assert not Path("/etc/x").exists()


def test_symlink_to_host_dir_then_write_through_it(sandbox: tuple[Path, Path]) -> None:
    target, outside = sandbox
    data = _tar(
        [
            _member("etc", tarfile.SYMTYPE, linkname=str(outside)),
            _member("etc/sentinel", data=b"evil"),
            _member("etc/new", data=b"new"),
        ]
    )
    apply_layer(io.BytesIO(data), target)
    assert (outside / "sentinel").read_text() == "keep"
    assert sorted(p.name for p in outside.iterdir()) == ["sentinel"]
    assert (target / str(outside).lstrip("/") / "new").read_bytes() == b"new"


@pytest.mark.parametrize("how", ["dotdot", "absolute", "via_symlink"])
def test_hardlink_to_outside_is_refused(sandbox: tuple[Path, Path], how: str) -> None:
    target, outside = sandbox
    members = []
    if how == "dotdot":
        members.append(_member("h", tarfile.LNKTYPE, linkname="../outside/sentinel"))
    elif how == "absolute":
        members.append(_member("h", tarfile.LNKTYPE, linkname=str(outside / "sentinel")))
    else:
        members.append(_member("o", tarfile.SYMTYPE, linkname=str(outside)))
        members.append(_member("h", tarfile.LNKTYPE, linkname="o/sentinel"))
    with pytest.raises(UnsafeArchive):
        apply_layer(io.BytesIO(_tar(members)), target)
    assert (outside / "sentinel").stat().st_nlink == 1
    assert (outside / "sentinel").read_text() == "keep"


def test_hardlink_to_symlink_links_the_symlink(sandbox: tuple[Path, Path]) -> None:
    target, outside = sandbox
    data = _tar(
        [
            _member("s", tarfile.SYMTYPE, linkname=str(outside / "sentinel")),
            _member("h", tarfile.LNKTYPE, linkname="s"),
        ]
    )
    apply_layer(io.BytesIO(data), target)
    assert (target / "h").is_symlink()
    assert (outside / "sentinel").stat().st_nlink == 1


def test_layer_cannot_forge_overlay_xattrs(tmp_path: Path) -> None:
    data = _tar(
        [
            _member(
                "d/",
                tarfile.DIRTYPE,
                pax={
                    "SCHILY.xattr.trusted.overlay.redirect": "/etc",
                    "SCHILY.xattr.user.note": "kept",
                },
            )
        ]
    )
    apply_layer(io.BytesIO(data), tmp_path / "t")
    names = os.listxattr(tmp_path / "t/d")
    assert "trusted.overlay.redirect" not in names
    assert os.getxattr(tmp_path / "t/d", "user.note") == b"kept"


def _corrupt_cases() -> dict[str, bytes]:
    good = _tar([_member("a", data=b"x" * 3000), _member("b", data=b"y")])
    b_header = 512 + 3072
    assert good[b_header : b_header + 2] == b"b\x00"
    bad_checksum = bytearray(good)
    bad_checksum[b_header] = ord("c")  # the header of "b" no longer matches its checksum
    return {
        "cut_in_data": good[:1500],
        "cut_in_header": good[: b_header + 100],
        "cut_at_member_boundary": good[:b_header],
        "bad_checksum": bytes(bad_checksum),
        "garbage": b"this is not a tar file at all" * 40,
    }


@pytest.mark.parametrize("case", list(_corrupt_cases()))
def test_corrupt_or_truncated_tar_is_refused(tmp_path: Path, case: str) -> None:
    with pytest.raises(UnsafeArchive):
        apply_layer(io.BytesIO(_corrupt_cases()[case]), tmp_path / "t")


def test_truncated_gzip_is_refused(tmp_path: Path) -> None:
    blob = gzip.compress(_tar([_member("a", data=os.urandom(5000))]))
    with pytest.raises(UnsafeArchive):
        apply_layer(io.BytesIO(blob[: len(blob) // 2]), tmp_path / "t")


@pytest.mark.parametrize(
    "compress",
    [
        lambda b: b,
        gzip.compress,
        lambda b: zstandard.ZstdCompressor().compress(b),
        bz2.compress,
        lzma.compress,
    ],
    ids=["plain", "gzip", "zstd", "bzip2", "xz"],
)
def test_compressed_layers(tmp_path: Path, compress: object) -> None:
    raw = _tar([_member("d/", tarfile.DIRTYPE), _member("d/f", data=os.urandom(300_000))])
    blob = compress(raw)  # type: ignore[operator]
    res = apply_layer(io.BytesIO(blob), tmp_path / "t")
    assert res.size == len(raw)
    assert (tmp_path / "t/d/f").stat().st_size == 300_000


def test_gnu_format_and_gnu_tar_output(tmp_path: Path) -> None:
    long = "l" * 120 + "/" + "m" * 120
    raw = _tar(
        [_member(long, data=b"gnu"), _member("s", tarfile.SYMTYPE, linkname="t" * 150)],
        fmt=tarfile.GNU_FORMAT,
    )
    apply_layer(io.BytesIO(raw), tmp_path / "t1")
    assert (tmp_path / "t1" / long).read_bytes() == b"gnu"
    assert os.readlink(tmp_path / "t1/s") == "t" * 150
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub/file").write_text("hi")
    os.chmod(src / "sub", 0o710)
    gnu = subprocess.run(["tar", "-C", str(src), "-cf", "-", "."], capture_output=True, check=True)
    apply_layer(io.BytesIO(gnu.stdout), tmp_path / "t2")
    assert (tmp_path / "t2/sub/file").read_text() == "hi"
    assert stat.S_IMODE((tmp_path / "t2/sub").stat().st_mode) == 0o710


def test_empty_layer(tmp_path: Path) -> None:
    res = apply_layer(io.BytesIO(bytes(1024)), tmp_path / "t")
    assert res.size == 1024  # read to the end: a hashing caller gets Docker's empty layer ID
    assert list((tmp_path / "t").iterdir()) == []


def test_symlink_loop_in_parent_is_refused(tmp_path: Path) -> None:
    data = _tar(
        [
            _member("l1", tarfile.SYMTYPE, linkname="l2"),
            _member("l2", tarfile.SYMTYPE, linkname="l1"),
            _member("l1/x", data=b"x"),
        ]
    )
    with pytest.raises(UnsafeArchive, match="l1/x"):
        apply_layer(io.BytesIO(data), tmp_path / "t")


def test_a_hardlink_entry_sets_its_inodes_owner_mode_and_time(sandbox: tuple[Path, Path]) -> None:
    """moby's createTarFile lchowns, chmods and times a hardlink entry's path: the inode it
    shares with its target takes the link entry's metadata (dockerd 20.10, ADD of such a tar)."""
    root, _ = sandbox
    layer = _tar(
        [
            _member("f", data=b"x", mode=0o640, uid=1234, gid=1234, mtime=1000),
            _member("h", tarfile.LNKTYPE, linkname="f", mode=0o600, uid=0, gid=5, mtime=2000),
        ]
    )
    apply_layer(io.BytesIO(layer), root)
    st = os.lstat(root / "f")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), st.st_mtime) == (0, 5, 0o600, 2000)
    assert st.st_ino == os.lstat(root / "h").st_ino
