"""A client that lies in its file sync: nothing lands outside the kept tree, the error is
clear, the staging directory goes, and what the tree held is still trusted by nobody.

The hostile sender is a DiffCopy handler of the test's own on a socket pair; the receiver is
the daemon's (session/filesync.py). No root needed."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dockyard.errors import BuildFailure, DockyardError, InvalidArgument
from dockyard.session import filesync, gomode, methods
from dockyard.session.h2grpc import Call, GrpcConnection
from dockyard.session.manager import Session
from dockyard.session.proto import fsutil_pb2
from tests.support import grpc_pair

Packet: Any = fsutil_pb2.Packet
Stat: Any = fsutil_pb2.Stat


def _file(path: str, size: int = 0, **kw: Any) -> Any:
    return Stat(path=path, mode=0o644, size=size, modTime=1_700_000_000 * 10**9, **kw)


def _dir(path: str) -> Any:
    return Stat(path=path, mode=gomode.MODE_DIR | 0o755, modTime=1_700_000_000 * 10**9)


def _link(path: str, target: str) -> Any:
    return Stat(
        path=path, mode=gomode.MODE_SYMLINK | 0o777, linkname=target, modTime=1_700_000_000 * 10**9
    )


class Liar:
    """Sends `stats` (raw packets where bytes are given) and, for each REQ, `data(id)`."""

    def __init__(self, stats: list[Any], data: Callable[[int], list[bytes]] | None = None) -> None:
        self.stats = stats
        self.data = data or (lambda i: [b"x" * stats[i].size] if stats[i].size else [])

    async def diffcopy(self, call: Call) -> None:
        out = [
            s if isinstance(s, bytes) else Packet(type=0, stat=s).SerializeToString()
            for s in self.stats
        ]
        out.append(Packet(type=0).SerializeToString())
        await call.send_many(out)
        while batch := await call.recv_many():
            for raw in batch:
                p = Packet.FromString(raw)
                if p.type == 1:  # REQ
                    msgs = [
                        Packet(type=2, ID=p.ID, data=d).SerializeToString() for d in self.data(p.ID)
                    ]
                    msgs.append(Packet(type=2, ID=p.ID).SerializeToString())
                    await call.send_many(msgs)
                elif p.type == 3:  # FIN
                    await call.send(Packet(type=3).SerializeToString())
                    return


async def _sync(liar: Liar, tree: Path, staging: Path) -> filesync.SyncResult:
    sender = GrpcConnection(client_side=False, handlers={methods.FILESYNC_DIFFCOPY: liar.diffcopy})
    receiver = await grpc_pair.connect_async(sender)
    session = Session("s1", "t", "k", frozenset({methods.FILESYNC_DIFFCOPY.lower()}), receiver)
    try:
        return await filesync.receive(session, "context", tree, staging)
    finally:
        receiver.close()
        sender.close()


def run(liar: Liar, tree: Path, staging: Path) -> filesync.SyncResult:
    return asyncio.run(asyncio.wait_for(_sync(liar, tree, staging), 60))


def _fails(
    liar: Liar, tmp_path: Path, words: str, kind: type[DockyardError] = DockyardError
) -> None:
    with pytest.raises(kind) as info:
        run(liar, tmp_path / "tree", tmp_path / "staging")
    assert words in str(info.value), str(info.value)
    assert not (tmp_path / "staging").exists()  # nothing staged is left
    # the daemon's own paths are never in what the client is told
    assert str(tmp_path / "tree") not in str(info.value)


@pytest.mark.parametrize(
    "path",
    [
        "../evil",
        "a/../../evil",
        "/etc/evil",
        "a//b",
        "./a",
        "a/",
        "a\x00b",
        "x" * 256,
        "a/" * 2100 + "b",
    ],
)
def test_paths_outside_the_tree_are_refused(tmp_path: Path, path: str) -> None:
    stats = [_dir("a"), _file(path, 3)] if path.startswith("a/") else [_file(path, 3)]
    _fails(Liar(stats), tmp_path, "invalid path", InvalidArgument)
    assert not (tmp_path / "evil").exists() and not Path("/etc/evil").exists()


def test_nothing_is_written_through_a_symlink(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    # listed now: a link to a directory outside, then a file "under" it
    _fails(Liar([_link("a", str(outside)), _file("a/f", 3)]), tmp_path, "no parent directory")
    assert list(outside.iterdir()) == []
    # kept from an earlier sync: the link stays a link (and is the client's to have) ...
    tree = tmp_path / "tree"
    run(Liar([_link("a", str(outside)), _link("b", "../../..")]), tree, tmp_path / "staging")
    assert os.readlink(tree / "a") == str(outside) and os.readlink(tree / "b") == "../../.."
    # ... and a directory of that name in the next sync replaces it, never follows it
    result = run(Liar([_dir("a"), _file("a/f", 3)]), tree, tmp_path / "staging")
    assert (tree / "a").is_dir() and not (tree / "a").is_symlink()
    assert (tree / "a" / "f").read_bytes() == b"xxx" and list(outside.iterdir()) == []
    assert "a/f" in result.changed and not (tree / "b").exists()


def test_hardlinks_name_a_file_listed_before_them(tmp_path: Path) -> None:
    outside = tmp_path / "secret"
    outside.write_bytes(b"host's")
    for target, words in (
        (str(outside), "invalid path"),
        ("../secret", "invalid path"),
        ("later", "hardlink"),
        ("d", "hardlink"),
    ):
        stats = [_dir("d"), _file("h", linkname=target), _file("later", 3)]
        _fails(Liar(stats), tmp_path, words, InvalidArgument)
    # a hardlink to a hardlink (fsutil names the first name of the inode) is refused too
    stats = [_file("a", 3), _file("b", linkname="a"), _file("c", linkname="b")]
    _fails(Liar(stats), tmp_path, "hardlink", InvalidArgument)
    # the honest one works
    tree = tmp_path / "tree"
    run(Liar([_file("a", 3), _file("b", linkname="a")]), tree, tmp_path / "staging")
    assert os.stat(tree / "a").st_ino == os.stat(tree / "b").st_ino


def test_a_client_lying_about_sizes(tmp_path: Path) -> None:
    # more content than listed: refused before it lands (the cap's accounting reads listed sizes)
    more = Liar([_file("f", 10)], lambda _i: [b"y" * (1 << 20)] * 8)
    _fails(more, tmp_path, "f changed while it was sent: 10 bytes listed, more sent", BuildFailure)
    assert not (tmp_path / "tree" / "f").exists()
    # less than listed
    less = Liar([_file("f", 10)], lambda _i: [b"y" * 4])
    _fails(less, tmp_path, "10 bytes listed, 4 sent", BuildFailure)
    # a size that cannot be
    _fails(Liar([_file("f", -5)]), tmp_path, "size of -5", InvalidArgument)
    # sizes of what has no content of its own (fsutil sizes hardlinks) count for nothing
    d = _dir("d")
    d.size = 1 << 40
    result = run(
        Liar([d, _file("f", 3), _file("h", 3, linkname="f")]), tmp_path / "t", tmp_path / "s"
    )
    assert result.requested == 1 and result.disk_bytes == 3 * 4096


def test_malformed_and_out_of_order_listings(tmp_path: Path) -> None:
    _fails(Liar([b"\xff\xff\xff"]), tmp_path, "malformed packet", InvalidArgument)
    # invalid UTF-8 in a path (proto3 strings are UTF-8)
    raw = Packet(type=0, stat=_file("abc", 0)).SerializeToString().replace(b"abc", b"a\xffc")
    _fails(Liar([raw]), tmp_path, "malformed packet", InvalidArgument)
    _fails(Liar([_file("b"), _file("a")]), tmp_path, "out of order", InvalidArgument)
    _fails(Liar([_file("a"), _file("a")]), tmp_path, "out of order", InvalidArgument)
    _fails(Liar([_file("a/b")]), tmp_path, "no parent directory", InvalidArgument)


def test_a_huge_listing_is_refused_not_held(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the caps, made small: many entries, or few entries with huge metadata
    monkeypatch.setattr(filesync, "MAX_ENTRIES", 1000)
    many = [_file(f"f{i:06}") for i in range(5000)]
    _fails(Liar(many), tmp_path, "more than 1000 entries", InvalidArgument)
    monkeypatch.setattr(filesync, "MAX_LISTING", 1 << 20)
    fat = [_file(f"f{i}", xattrs={"user.x": b"v" * (200 << 10)}) for i in range(10)]
    _fails(Liar(fat), tmp_path, "larger than 1 MiB", InvalidArgument)


def test_overlay_metadata_from_a_client_is_not_kept(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("trusted.* xattrs need root")
    tree = tmp_path / "tree"
    f = _dir("d")
    f.xattrs["trusted.overlay.opaque"] = b"y"
    f.xattrs["user.kept"] = b"1"
    run(Liar([f]), tree, tmp_path / "staging")
    names = os.listxattr(tree / "d")
    assert "trusted.overlay.opaque" not in names
    assert stat.S_ISDIR(os.lstat(tree / "d").st_mode)


def test_links_out_of_the_context_resolve_inside_it(tmp_path: Path) -> None:
    from dockyard.builder.context import BuildContext
    from dockyard.builder.copy import resolve_sources

    tree = tmp_path / "tree"
    stats = [_link("hostetc", "/etc"), _file("passwd", 3), _link("up", "../../../..")]
    run(Liar(stats), tree, tmp_path / "staging")
    ctx = BuildContext(tree, None)
    # through the link: the context's own root, never the host's /etc
    with pytest.raises(BuildFailure, match="file not found in build context"):
        resolve_sources(ctx, ["hostetc/passwd"])
    (src,) = resolve_sources(ctx, ["up/passwd"])
    assert src.rel == "passwd"
    with pytest.raises(BuildFailure, match="file not found in build context"):
        resolve_sources(ctx, ["hostetc"])  # the link is followed inside the context too
