"""The sender's hand-made fsutil packets are protobuf's bytes exactly, and it reads what
protobuf writes (session/fswire.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dockyard.session import fswire, gomode
from dockyard.session.fssend import listing
from dockyard.session.proto import fsutil_pb2

Packet = fsutil_pb2.Packet
Stat = fsutil_pb2.Stat

STATS = [
    dict(path="a", mode=0o644, uid=0, gid=0, size=0, mtime_ns=0),
    dict(path="d/é file", mode=gomode.MODE_DIR | 0o755, uid=1000, gid=1000, size=0, mtime_ns=1),
    dict(path="x" * 300, mode=0o4755, uid=2**32 - 1, gid=65534, size=2**40, mtime_ns=-1),
    dict(
        path="l",
        mode=0o777 | (1 << 27),
        uid=1,
        gid=2,
        size=3,
        mtime_ns=-(10**18),
        linkname="../target" * 20,
    ),
    dict(
        path="dev",
        mode=0o600 | (1 << 26) | (1 << 21),
        uid=0,
        gid=0,
        size=0,
        mtime_ns=1_700_000_000_123_456_789,
        devmajor=259,
        devminor=2**20,
    ),
    dict(path="", mode=0, uid=0, gid=0, size=0, mtime_ns=0),
]


@pytest.mark.parametrize("fields", STATS)
def test_a_stat_packet_is_protobufs(fields: dict) -> None:  # type: ignore[type-arg]
    st = Stat(**{("modTime" if k == "mtime_ns" else k): v for k, v in fields.items()})
    assert fswire.stat_packet(**fields) == Packet(type=0, stat=st).SerializeToString()


@pytest.mark.parametrize("ident", [0, 1, 127, 128, 2**31])
@pytest.mark.parametrize("data", [b"", b"x", os.urandom(200), os.urandom(1 << 20)])
def test_data_packets_are_protobufs(ident: int, data: bytes) -> None:
    ours = fswire.data_packet(ident, data)
    assert ours == Packet(type=2, ID=ident, data=data).SerializeToString()
    assert fswire.parse(ours) == (2, ident, data)


def test_the_fixed_packets_and_what_a_receiver_sends_are_read() -> None:
    assert Packet(type=0).SerializeToString() == fswire.END_OF_LISTING
    assert Packet(type=3).SerializeToString() == fswire.FIN_PACKET
    assert (
        fswire.err_packet("no such file é")
        == Packet(type=4, data="no such file é".encode()).SerializeToString()
    )
    for p in (Packet(type=1, ID=5000), Packet(type=1), Packet(type=3), Packet(type=4, data=b"x")):
        assert fswire.parse(p.SerializeToString()) == (p.type, p.ID, p.data)
    # a stat is skipped
    full = Packet(type=0, stat=Stat(path="a", size=3), ID=7).SerializeToString()
    assert fswire.parse(full) == (0, 7, b"")
    for bad in (b"\x08", b"\x22\x05ab", b"\x0b", b"\x08" + b"\xff" * 11):
        with pytest.raises(fswire.MalformedPacket):
            fswire.parse(bad)


def test_the_listing_carries_protobufs_packets(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "f").write_bytes(b"abc")
    os.link(tmp_path / "sub" / "f", tmp_path / "hard")
    os.symlink("sub/f", tmp_path / "link")
    os.mkfifo(tmp_path / "fifo")
    os.utime(tmp_path / "sub" / "f", ns=(5, -(10**9)), follow_symlinks=False)
    entries = listing(tmp_path, [], [])
    assert [e.path for e in entries] == ["fifo", "hard", "link", "sub", "sub/f"]
    for e in entries:
        st = os.lstat(e.full)
        msg = Stat(
            path=e.path,
            mode=gomode.from_posix(st.st_mode),
            uid=st.st_uid,
            gid=st.st_gid,
            modTime=st.st_mtime_ns,
            size=e.size,
            linkname=e.linkname,
        )
        assert e.packet == Packet(type=0, stat=msg).SerializeToString(), e.path
    by_path = {e.path: e for e in entries}
    assert by_path["sub/f"].linkname == "hard" and by_path["sub/f"].size == 0
    assert by_path["hard"].size == 3 and by_path["link"].linkname == "sub/f"
