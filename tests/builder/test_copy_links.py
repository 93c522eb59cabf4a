"""COPY from a kept context by hardlink (builder/copylinks.py): the layer is byte for byte the
one a copy makes, the files it could share are the context's inodes, and a later sync of the
context never changes a committed layer. Real overlay mounts (root)."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import stat
from pathlib import Path

import pytest

from dockyard.builder.context import BuildContext
from dockyard.builder.copy import CopyOptions, CopySource, copy_into
from dockyard.builder.copylinks import LinkPlan
from dockyard.builder.digests import DigestIndex
from dockyard.diff.differ import write_layer_tar
from dockyard.session import filesync, methods
from dockyard.session.fssend import DirServer
from dockyard.session.h2grpc import GrpcConnection
from dockyard.session.manager import Session
from dockyard.session.wholeseconds import ClientTimes
from dockyard.snapshot.overlay import OverlaySnapshotter
from tests.support import grpc_pair

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="overlay mounts need root")

NS = 1_700_000_000_123_456_789  # an mtime with nanoseconds
WHOLE = 1_700_000_000_000_000_000


def _context(root: Path) -> None:
    (root / "sub" / "deep").mkdir(parents=True)
    for rel, data in {
        "a.txt": b"a" * 5000,
        "sub/b.bin": os.urandom(70_000),
        "sub/deep/c": b"c",
        "empty": b"",
        "replaced": b"new content",
        "whole": b"whole-second mtime",
        "theirs": b"another owner",
        "setuid": b"#!/bin/sh\n",
        "xattr": b"has an xattr",
    }.items():
        (root / rel).write_bytes(data)
    os.link(root / "a.txt", root / "sub" / "a-link")
    os.chown(root / "theirs", 1000, 1000)
    os.chmod(root / "setuid", 0o4755)
    os.setxattr(root / "xattr", "user.note", b"x")
    for p in root.rglob("*"):
        os.utime(p, ns=(NS, WHOLE if p.name == "whole" else NS), follow_symlinks=False)


def _lower(snaps: OverlaySnapshotter) -> int:
    fs = snaps.create(1, active=False)
    (fs / "ctx").mkdir()
    (fs / "ctx" / "replaced").write_bytes(b"old")
    (fs / "etc").mkdir()
    (fs / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    return 1


def _copy(
    snaps: OverlaySnapshotter,
    n: int,
    lower: int,
    ctx: BuildContext,
    opts: CopyOptions,
    links: LinkPlan | None,
) -> bytes:
    """COPY . /ctx/ into a new upper over `lower`; returns its layer tar."""
    snaps.create(n, active=True)
    target = snaps.root.parent / f"mnt{n}"
    snaps.mount(target, [lower], n, with_init=False)
    try:
        if links is not None:
            links.rootfs = target
        copy_into(ctx, [CopySource("", True)], target, "/ctx/", opts, "COPY", links)
    finally:
        snaps.unmount(target)
    if links is not None:
        links.apply(snaps.fs(n))
    # the destination directory's mtime is the copy's `now`: the same for both copies
    os.utime(snaps.fs(n) / "ctx", ns=(WHOLE, WHOLE))
    out = io.BytesIO()
    write_layer_tar(snaps.fs(n), out)
    return out.getvalue()


@pytest.mark.parametrize("second_mtimes", [False, True], ids=["buildkit", "legacy"])
def test_a_linked_copy_makes_the_layer_a_copy_makes(tmp_path: Path, second_mtimes: bool) -> None:
    ctx_dir = tmp_path / "ctx"
    ctx_dir.mkdir()
    _context(ctx_dir)
    snaps = OverlaySnapshotter(tmp_path / "snaps")
    lower = _lower(snaps)
    opts = CopyOptions(second_mtimes=second_mtimes)
    ctx = BuildContext(ctx_dir, None, second_mtimes=second_mtimes, shares_files=True)
    copied = _copy(snaps, 2, lower, ctx, opts, None)
    plan = LinkPlan(ctx_dir)
    linked = _copy(snaps, 3, lower, ctx, opts, plan)
    assert hashlib.sha256(linked).hexdigest() == hashlib.sha256(copied).hexdigest()

    shared = {
        str(p.relative_to(ctx_dir))
        for p in ctx_dir.rglob("*")
        if p.is_file()
        and p.stat().st_ino == (snaps.fs(3) / "ctx" / p.relative_to(ctx_dir)).stat().st_ino
    }
    # ns mtimes are kept by BuildKit's copy, truncated by the legacy one: only the file
    # with a whole-second mtime is the same file there
    expected = (
        {"whole"}
        if second_mtimes
        else {"a.txt", "sub/a-link", "sub/b.bin", "sub/deep/c", "empty", "whole"}
    )
    assert shared == expected
    assert plan.linked == (1 if second_mtimes else 6)
    # the replaced lower file, another owner's, a setuid one, one with an xattr: copies
    assert not {"replaced", "theirs", "setuid", "xattr"} & shared


async def _pair(server: DirServer) -> GrpcConnection:
    return await grpc_pair.connect(server.handlers())


def _sync(client_dir: Path, kept: Path, times: ClientTimes | None = None) -> filesync.SyncResult:
    async def main() -> filesync.SyncResult:
        receiver = await _pair(DirServer({"context": client_dir}))
        session = Session(
            "s1", "test", "key", frozenset({methods.FILESYNC_DIFFCOPY.lower()}), receiver
        )
        try:
            return await filesync.receive(
                session, "context", kept / "tree", kept / "staging", times=times
            )
        finally:
            receiver.close()

    return asyncio.run(main())


def _files(root: Path) -> dict[str, tuple[bytes, int, int]]:
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.lstat().st_mode, p.lstat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_a_later_sync_never_changes_a_layer_that_shares_its_files(tmp_path: Path) -> None:
    client = tmp_path / "client"
    client.mkdir()
    for name in ("same", "content", "mode", "mtime", "gone"):
        (client / name).write_bytes(name.encode() * 100)
    kept = tmp_path / "kept"
    _sync(client, kept)
    tree = kept / "tree"
    index = DigestIndex()
    ctx = BuildContext(tree, None, digests=index, shares_files=True)
    for rel in ("same", "content", "mode", "mtime", "gone"):
        ctx.digest(rel)
    snaps = OverlaySnapshotter(tmp_path / "snaps")
    lower = _lower(snaps)
    plan = LinkPlan(tree, index)
    before = _copy(snaps, 2, lower, ctx, CopyOptions(), plan)
    assert plan.linked == 5
    layer = snaps.fs(2) / "ctx"
    files = _files(layer)

    # the context changes on the client in every way a sync sees
    (client / "content").write_bytes(b"X" * len(b"content" * 100))  # same size
    os.chmod(client / "mode", 0o600)
    os.utime(client / "mtime", ns=(NS, NS))
    (client / "gone").unlink()
    (client / "new").write_bytes(b"new")
    result = _sync(client, kept)
    assert result.requested == 4  # content, mode, mtime, new
    assert (tree / "content").read_bytes().startswith(b"X")
    assert stat.S_IMODE((tree / "mode").lstat().st_mode) == 0o600

    assert _files(layer) == files
    out = io.BytesIO()
    write_layer_tar(snaps.fs(2), out)
    assert out.getvalue() == before
    # what was only linked keeps its digest: nothing is read again for it
    hashed = index.hashed
    ctx.digest("same")
    assert index.hashed == hashed


def test_a_legacy_kept_context_is_shared_and_still_sees_a_change_within_the_second(
    tmp_path: Path,
) -> None:
    client = tmp_path / "client"
    (client / "sub").mkdir(parents=True)
    for name in ("a", "b", "sub/c"):
        (client / name).write_bytes(name.encode() * 100)
        os.utime(client / name, ns=(NS, NS))
    kept = tmp_path / "kept"
    times_path = kept / "mtimes.json"
    kept.mkdir()
    _sync(client, kept, ClientTimes(times_path))
    tree = kept / "tree"
    # stored as the legacy COPY gives them, so a layer can share them
    assert (tree / "a").lstat().st_mtime_ns == WHOLE
    again = _sync(client, kept, ClientTimes(times_path))
    assert again.requested == 0  # the client's nanoseconds were remembered

    snaps = OverlaySnapshotter(tmp_path / "snaps")
    ctx = BuildContext(tree, None, second_mtimes=True, shares_files=True)
    plan = LinkPlan(tree)
    _copy(snaps, 2, _lower(snaps), ctx, CopyOptions(second_mtimes=True), plan)
    assert plan.linked == 3
    layer = _files(snaps.fs(2) / "ctx")

    # the same size, the same second, one nanosecond later: it must travel
    (client / "b").write_bytes(b"B" * 100)
    os.utime(client / "b", ns=(NS + 1, NS + 1))
    changed = _sync(client, kept, ClientTimes(times_path))
    assert changed.requested == 1
    assert (tree / "b").read_bytes() == b"B" * 100
    assert _files(snaps.fs(2) / "ctx") == layer
    # a stored file changed behind the sync's back is not trusted either
    os.utime(tree / "a", ns=(WHOLE + 5 * 10**9, WHOLE + 5 * 10**9))
    assert _sync(client, kept, ClientTimes(times_path)).requested == 1
