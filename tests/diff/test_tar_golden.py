"""The tar writers' bytes are frozen: a layer's diff ID is the sha256 of them, so an image
built before a change to the writer must keep its layers' IDs (and its cache) after it.

The digests below were written by the writer as it was before the fast paths (main at
72b977e: header formatting per field, a bytearray batch copied twice). Every kind of entry
the writers know is in the tree, and file sizes cross the writer's 1 MiB batch."""

from __future__ import annotations

import hashlib
import io
import os
import random
import socket
import stat
from pathlib import Path

import pytest

from dockyard.content.store import ContentStore
from dockyard.diff.differ import commit_upper, write_layer_tar
from dockyard.diff.tarwriter import (
    BLKTYPE,
    CHRTYPE,
    DIRTYPE,
    FIFOTYPE,
    LNKTYPE,
    REGTYPE,
    SYMTYPE,
    TarEntry,
    encode_header,
)
from dockyard.diff.treetar import OwnerNames, TreeOptions, write_contents, write_tree

LAYER = "7fe15bfc1f590a7197d458a811d94cfb0e51a2f2de263061bb4d546a88a6eee8"
TREE = "a6b3bff95c9396f6b57e36c59f5b7df397cfa92ea1fd6b84d830ce6ebcc72e37"
CONTENTS = "42c288b27ab0d6bc726e55974eff1d5b234fee66cc42b40f46c5cffb321e67f2"
HEADERS = "969b686442514be32356b50edcb0bead378fa07354ce09adabdce5cfe379fd29"

CAP = b"\x01\x00\x00\x02\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
LONG_DIR = "p" * 60 + "/" + "q" * 70  # a 131-byte path that splits into ustar prefix + name
LONG_NAME = "n" * 120  # one 120-byte component: needs a PAX path
LONG_TARGET = "/" + "t" * 150


def _tree(root: Path) -> None:
    rnd = random.Random(17)
    root.mkdir()
    sizes = [0, 1, 511, 512, 513, 4096, 40_000, 700_000, 700_000, (1 << 20) - 1, (1 << 20) + 7]
    (root / "files").mkdir()
    for i, size in enumerate(sizes):
        (root / "files" / f"f{i:02}").write_bytes(rnd.randbytes(size))
    for i in range(300):  # small files whose batch crosses 1 MiB several times
        (root / "files" / f"s{i:03}").write_bytes(rnd.randbytes(rnd.randrange(1, 9000)))
    os.chmod(root / "files" / "f03", 0o4755)
    os.chown(root / "files" / "f04", 3_000_000, 4_000_000)  # past ustar's 7 octal digits
    os.chown(root / "files" / "f05", 1000, 1000)
    os.link(root / "files" / "f06", root / "files" / "hard1")
    os.link(root / "files" / "f06", root / "hard2")
    (root / "links").mkdir()
    (root / "links" / "short").symlink_to("../files/f01")
    (root / "links" / "long").symlink_to(LONG_TARGET)
    os.chown(root / "links" / "short", 7, 8, follow_symlinks=False)
    (root / LONG_DIR).mkdir(parents=True)
    (root / LONG_DIR / "inner").write_bytes(b"inner")
    (root / LONG_NAME).write_bytes(b"long name")
    (root / "caf\u00e9").write_bytes(b"utf-8 name")
    (root / os.fsdecode(b"raw\xff")).write_bytes(b"non utf-8 name")
    (root / "dev").mkdir()
    os.mknod(root / "dev" / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mknod(root / "dev" / "blk", stat.S_IFBLK | 0o660, os.makedev(8, 1))
    os.mknod(root / "dev" / "whiteout", stat.S_IFCHR, 0)
    os.mkfifo(root / "dev" / "fifo", 0o640)
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(root / "dev" / "sock"))  # left out of every tar
    (root / "opaque").mkdir(mode=0o750)
    os.chmod(root / "opaque", 0o2750)
    (root / "opaque" / "kept").write_bytes(b"kept")
    os.setxattr(root / "opaque", "trusted.overlay.opaque", b"y")
    os.setxattr(root / "opaque", "user.dir", b"dir value")
    os.setxattr(root / "files" / "f02", "security.capability", CAP)
    os.setxattr(root / "files" / "f02", "user.b", b"2")
    os.setxattr(root / "files" / "f02", "user.a", b"1" * 300)
    os.setxattr(root / "dev" / "fifo", "security.fifo", b"f")
    # Times last, children before their directory; sub-second parts must not show.
    t = 1_700_000_000_123_456_789
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in sorted(filenames + dirnames):
            t += 1_000_000_007
            os.utime(os.path.join(dirpath, name), ns=(t, t), follow_symlinks=False)
    os.utime(root, ns=(t, t))


def _digest(write: object) -> str:
    out = io.BytesIO()
    write(out)  # type: ignore[operator]
    return hashlib.sha256(out.getvalue()).hexdigest()


@pytest.mark.root
def test_layer_tar_bytes_are_unchanged(tmp_path: Path) -> None:
    _tree(tmp_path / "t")
    assert _digest(lambda out: write_layer_tar(tmp_path / "t", out)) == LAYER
    # The commit lends the writer's buffer to the content store instead of copying it.
    info, _ = commit_upper(tmp_path / "t", ContentStore(tmp_path / "content"))
    assert info.digest == "sha256:" + LAYER


@pytest.mark.root
def test_tree_tars_bytes_are_unchanged(tmp_path: Path) -> None:
    _tree(tmp_path / "t")
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        names = OwnerNames(users={0: b"root", 1000: b"bob"}, groups={1000: b"g" * 40})
        opts = TreeOptions(names=names)
        assert _digest(lambda out: write_tree(fd, "t", ".", out, opts)) == TREE
    finally:
        os.close(fd)
    fd = os.open(tmp_path / "t", os.O_RDONLY | os.O_DIRECTORY)
    try:
        opts = TreeOptions(xattrs=True, skip=frozenset({"dev"}))
        assert _digest(lambda out: write_contents(fd, out, opts)) == CONTENTS
    finally:
        os.close(fd)


def test_headers_are_unchanged() -> None:
    """Fields no tree here can hold: sizes past 8 GiB, times before 1970 or past 2242,
    device numbers past 7 octal digits, owner names too long or not ASCII."""
    entries = [
        TarEntry(b"a", REGTYPE),
        TarEntry(b"d/", DIRTYPE, 0o755, 1, 2, 3),
        TarEntry(b"big", REGTYPE, 0o600, size=1 << 40),
        TarEntry(b"neg", REGTYPE, mtime=-5),
        TarEntry(b"far", REGTYPE, mtime=1 << 40),
        TarEntry(b"dev", CHRTYPE, devmajor=1 << 22, devminor=3),
        TarEntry(b"blk", BLKTYPE, devmajor=8, devminor=1 << 30),
        TarEntry(b"fifo", FIFOTYPE, 0o7777 | 0o170000),
        TarEntry(b"s", SYMTYPE, 0o777, linkname=b"x" * 100),
        TarEntry(b"s2", SYMTYPE, 0o777, linkname=b"x" * 101),
        TarEntry(b"h", LNKTYPE, linkname="\u00e9".encode()),
        TarEntry(b"o", REGTYPE, uname=b"u" * 32, gname=b"g" * 33),
        TarEntry(b"o2", REGTYPE, uname="\u00e9".encode(), gname=b"wheel"),
        TarEntry(b"x" * 100, REGTYPE),
        TarEntry(b"y/" + b"x" * 99, REGTYPE),
        TarEntry(b"z" * 155 + b"/" + b"x" * 100, REGTYPE),
        TarEntry(b"z" * 156 + b"/" + b"x", REGTYPE),
        TarEntry(b"dir/" * 30, DIRTYPE),
        TarEntry(b"neguid", REGTYPE, uid=-1, gid=-2),
        TarEntry(b"xa", REGTYPE, xattrs={"user.z": b"", "security.a": b"\x00\n="}),
    ]
    data = b"".join(encode_header(e, bits) for e in entries for bits in (False, True))
    assert hashlib.sha256(data).hexdigest() == HEADERS
