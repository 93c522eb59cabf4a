from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

import pytest

from dockyard.diff.tarwriter import (
    BLKTYPE,
    CHRTYPE,
    DIRTYPE,
    LNKTYPE,
    REGTYPE,
    SYMTYPE,
    TarEntry,
    TarWriter,
    _pax_record,
)


def _write(entries: list[tuple[TarEntry, bytes]]) -> bytes:
    out = io.BytesIO()
    tw = TarWriter(out)
    for entry, data in entries:
        tw.add(entry, io.BytesIO(data))
    tw.close()
    return out.getvalue()


@pytest.mark.parametrize("n", range(1, 1100, 7))
def test_pax_record_length_counts_itself(n: int) -> None:
    rec = _pax_record(b"path", b"x" * n)
    length, _, rest = rec.partition(b" ")
    assert int(length) == len(rec)
    assert rest == b"path=" + b"x" * n + b"\n"


LONG_DIR = b"d" * 90 + b"/" + b"e" * 60  # > 100 bytes but splits into ustar prefix/name
LONG_FLAT = b"f" * 150  # > 100 bytes, no slash: needs PAX path
LONG_LINK = b"/" + b"t" * 200


def _sample() -> bytes:
    return _write(
        [
            (TarEntry(b"dir/", DIRTYPE, 0o2755, 1, 2, 1_700_000_000), b""),
            (TarEntry(b"dir/file", REGTYPE, 0o4755, 3, 4, 1_700_000_001, size=5), b"hello"),
            (TarEntry(LONG_DIR, REGTYPE, 0o644, size=600), b"z" * 600),
            (TarEntry(LONG_FLAT, REGTYPE, 0o600, size=0), b""),
            (TarEntry(b"sym", SYMTYPE, 0o777, linkname=LONG_LINK), b""),
            (TarEntry(b"hard", LNKTYPE, 0o755, linkname=b"dir/file"), b""),
            (TarEntry("ünïcode".encode(), REGTYPE, 0o644, size=1), b"u"),
            (TarEntry(b"bad\xffutf8", REGTYPE, 0o644, size=0), b""),
            (TarEntry(b"bigid", REGTYPE, 0o644, uid=3_000_000, gid=70_000_000), b""),
            (TarEntry(b"old", REGTYPE, 0o644, mtime=-5), b""),
            (TarEntry(b"null", CHRTYPE, 0o666, devmajor=1, devminor=3), b""),
            (TarEntry(b"bigdev", BLKTYPE, 0o660, devmajor=1, devminor=5_000_000), b""),
            (
                TarEntry(
                    b"capfile",
                    REGTYPE,
                    0o755,
                    size=2,
                    xattrs={"security.capability": b"\x01\x00\x00\x02", "user.k": b"v\xff"},
                ),
                b"ok",
            ),
        ]
    )


def test_python_tarfile_reads_every_field() -> None:
    data = _sample()
    assert len(data) % 512 == 0 and data.endswith(bytes(1024))
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        members = {m.name: m for m in tf}
    d = members["dir"]
    assert d.isdir() and d.mode == 0o2755 and (d.uid, d.gid) == (1, 2)
    assert d.mtime == 1_700_000_000 and d.uname == "" and d.gname == ""
    f = members["dir/file"]
    assert f.isreg() and f.mode == 0o4755 and (f.uid, f.gid, f.size) == (3, 4, 5)
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        contents = {m.name: tf.extractfile(m).read() for m in tf if m.isreg()}  # type: ignore[union-attr]
    assert contents["dir/file"] == b"hello"
    assert contents[LONG_DIR.decode()] == b"z" * 600
    assert contents["ünïcode"] == b"u"
    assert contents["capfile"] == b"ok"
    assert LONG_FLAT.decode() in members
    assert members["sym"].issym() and members["sym"].linkname == LONG_LINK.decode()
    assert members["hard"].islnk() and members["hard"].linkname == "dir/file"
    assert "bad\udcffutf8" in members
    assert (members["bigid"].uid, members["bigid"].gid) == (3_000_000, 70_000_000)
    assert members["old"].mtime == -5
    assert members["null"].ischr() and (members["null"].devmajor, members["null"].devminor) == (
        1,
        3,
    )
    assert members["bigdev"].isblk() and members["bigdev"].devminor == 5_000_000
    pax = members["capfile"].pax_headers
    assert pax["SCHILY.xattr.security.capability"] == "\x01\x00\x00\x02"
    assert pax["SCHILY.xattr.user.k"].encode("utf-8", "surrogateescape") == b"v\xff"


def test_plain_entries_need_no_pax_header() -> None:
    data = _write([(TarEntry(b"dir/file", REGTYPE, 0o644, size=3), b"abc")])
    assert len(data) == 512 + 512 + 1024
    assert data[257:265] == b"ustar\x0000"
    assert data[:8] == b"dir/file"


def test_gnu_tar_lists_the_archive(tmp_path: Path) -> None:
    archive = tmp_path / "a.tar"
    archive.write_bytes(_sample())
    res = subprocess.run(
        ["tar", "--numeric-owner", "-tvf", str(archive)], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    out = res.stdout
    assert "-rwsr-xr-x 3/4" in out and "dir/file" in out
    assert "drwxr-sr-x 1/2" in out
    assert LONG_DIR.decode() in out and LONG_FLAT.decode() in out
    assert f"sym -> {LONG_LINK.decode()}" in out
    assert "hard link to dir/file" in out
    assert "3000000/70000000" in out
    assert "ünïcode" in out
    lines = out.splitlines()
    assert len(lines) == 13


def test_gnu_tar_extracts_contents(tmp_path: Path) -> None:
    archive = tmp_path / "a.tar"
    archive.write_bytes(_sample())
    dest = tmp_path / "x"
    dest.mkdir()
    subprocess.run(
        ["tar", "-xf", str(archive), "-C", str(dest), "--exclude=null", "--exclude=bigdev"],
        check=True,
    )
    assert (dest / "dir/file").read_bytes() == b"hello"
    assert (dest / LONG_DIR.decode()).read_bytes() == b"z" * 600
    assert (dest / "hard").stat().st_ino == (dest / "dir/file").stat().st_ino


def test_short_data_is_an_error_not_a_corrupt_tar() -> None:
    from dockyard.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match="changed size"):
        _write([(TarEntry(b"f", REGTYPE, size=10), b"short")])


def test_files_of_a_chunk_or_more_keep_their_place_between_small_members() -> None:
    # Big files skip the batch; the small members batched before them must still come first.
    import os

    from dockyard.diff.tarwriter import CHUNK

    members = [
        (b"a", b"x" * 10),
        (b"big", os.urandom(CHUNK * 2 + 513)),
        (b"b", b"y" * 700),
        (b"exact", os.urandom(CHUNK)),
        (b"c", b""),
    ]
    raw = _write([(TarEntry(n, REGTYPE, size=len(d)), d) for n, d in members])
    assert len(raw) % 512 == 0
    with tarfile.open(fileobj=io.BytesIO(raw)) as tf:
        got = [(m.name.encode(), tf.extractfile(m).read()) for m in tf.getmembers()]  # type: ignore[union-attr]
    assert got == members


def test_a_big_file_that_shrank_is_an_error_not_a_corrupt_tar() -> None:
    from dockyard.diff.tarwriter import CHUNK
    from dockyard.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match="changed size"):
        _write([(TarEntry(b"f", REGTYPE, size=CHUNK * 3), b"z" * (CHUNK * 2))])


def test_a_file_that_shrank_under_cp_is_padded_with_nuls(tmp_path: Path) -> None:
    # `cp` out of a running container keeps its tar readable (treetar._Padded): the
    # contents read straight into the writer's batch must be padded the same way.
    from dockyard.diff.treetar import _Padded

    (tmp_path / "f").write_bytes(b"four")
    out = io.BytesIO()
    tw = TarWriter(out)
    with open(tmp_path / "f", "rb", buffering=0) as f:
        tw.add(TarEntry(b"f", REGTYPE, size=700), _Padded(f, 700))
    tw.add(TarEntry(b"g", REGTYPE, size=3), io.BytesIO(b"abc"))
    tw.close()
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tf:
        assert tf.extractfile("f").read() == b"four" + bytes(696)  # type: ignore[union-attr]
        assert tf.extractfile("g").read() == b"abc"  # type: ignore[union-attr]
