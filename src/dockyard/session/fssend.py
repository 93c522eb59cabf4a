"""fsutil's DiffCopy, sending side: serve a local directory to a receiver that asks for what changed.

The client half of the protocol in filesync.py: every entry as a STAT packet in walk order
(path components compared, as Go's filepath.WalkDir visits), the empty STAT at the end,
then the content of each file the receiver REQuests as DATA packets closed by an empty one,
and FIN in answer to the receiver's FIN. The receiver's include/exclude patterns
(`.dockerignore` syntax, as fsutil's filter applies them) come in the call's metadata.
Used by `dockyard build` to serve its context over a session, and by the tests.
"""

from __future__ import annotations

import asyncio
import os
import stat
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dockyard.frontend.dockerignore import IgnoreMatcher
from dockyard.session import gomode, methods
from dockyard.session.filesync import PACKET_DATA, PACKET_ERR, PACKET_FIN, PACKET_REQ, PACKET_STAT
from dockyard.session.h2grpc import NOT_FOUND, Call, GrpcError

CHUNK = 256 << 10


def _opts(call: Call) -> dict[str, list[str]]:
    md = call.metadata
    out: dict[str, list[str]] = {}
    for key, values in md.items():
        if md.get(key + "-encoded", ["0"])[0] in ("1", "true"):
            out[key] = [urllib.parse.unquote(v) for v in values]
        else:
            out[key] = list(values)
    return out


def _included(rel: str, includes: list[str], is_dir: bool) -> bool:
    """fsutil's include patterns: a path is sent when a pattern matches it or one of its
    parents, and a directory when it may hold a match."""
    if not includes:
        return True
    m = IgnoreMatcher(includes)
    parts = rel.split("/")
    for i in range(1, len(parts) + 1):
        if m.matches("/".join(parts[:i])):
            return True
    if is_dir:
        prefix = rel + "/"
        return any(p.lstrip("/").startswith(prefix) or "*" in p for p in includes)
    return False


@dataclass
class _Listed:
    path: str
    full: str


def listing(root: Path, includes: list[str], excludes: list[str]) -> list[tuple[_Listed, Any]]:
    """(entry, Stat message) for every entry to send, in fsutil's order."""
    from dockyard.session.proto import fsutil_pb2

    exclude = IgnoreMatcher(excludes) if excludes else None
    seen_inodes: dict[tuple[int, int], str] = {}
    out: list[tuple[_Listed, Any]] = []

    def walk(d: str, rel: str) -> None:
        with os.scandir(d) as it:
            names = sorted(it, key=lambda e: e.name)
        for ent in names:
            r = f"{rel}/{ent.name}" if rel else ent.name
            st = ent.stat(follow_symlinks=False)
            is_dir = stat.S_ISDIR(st.st_mode)
            if exclude is not None and exclude.matches(r) and not is_dir:
                continue
            if not _included(r, includes, is_dir):
                continue
            excluded_dir = exclude is not None and exclude.matches(r)
            s = fsutil_pb2.Stat(
                path=r,
                mode=gomode.from_posix(st.st_mode),
                uid=st.st_uid,
                gid=st.st_gid,
                modTime=st.st_mtime_ns,
            )
            if stat.S_ISLNK(st.st_mode):
                s.linkname = os.readlink(ent.path)
            elif stat.S_ISREG(st.st_mode):
                s.size = st.st_size
                if st.st_nlink > 1:
                    key = (st.st_dev, st.st_ino)
                    if key in seen_inodes:
                        s.linkname = seen_inodes[key]
                        s.size = 0
                    else:
                        seen_inodes[key] = r
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                s.devmajor = os.major(st.st_rdev)
                s.devminor = os.minor(st.st_rdev)
            if not excluded_dir:
                out.append((_Listed(r, ent.path), s))
            if is_dir:
                before = len(out)
                walk(ent.path, r)
                if excluded_dir and len(out) > before:
                    # a re-included child (`!dir/keep`) brings its parent along
                    out.insert(before, (_Listed(r, ent.path), s))

    walk(str(root), "")
    return out


class DirServer:
    """Serves FileSync/DiffCopy for named directories (`context`, `dockerfile`)."""

    def __init__(self, dirs: Mapping[str, Path]) -> None:
        self.dirs = dict(dirs)
        self.sent_bytes = 0  # file content sent, for tests and benchmarks

    def handlers(self) -> dict[str, Any]:
        return {methods.FILESYNC_DIFFCOPY: self.diffcopy}

    async def diffcopy(self, call: Call) -> None:
        from dockyard.session.proto import fsutil_pb2

        Packet: Any = fsutil_pb2.Packet
        opts = _opts(call)
        name = (opts.get(methods.KEY_DIR_NAME) or [""])[0]
        root = self.dirs.get(name)
        if root is None:
            raise GrpcError(NOT_FOUND, f"no access allowed to dir {name!r}")
        try:
            entries = await asyncio.to_thread(
                listing,
                root,
                opts.get(methods.KEY_INCLUDE, []),
                opts.get(methods.KEY_EXCLUDE, []),
            )
        except OSError as exc:
            await call.send(Packet(type=PACKET_ERR, data=str(exc).encode()).SerializeToString())
            return
        files: dict[int, str] = {}
        for i, (ent, st) in enumerate(entries):
            if gomode.is_regular(st.mode):
                files[i] = ent.full
            await call.send(Packet(type=PACKET_STAT, stat=st).SerializeToString())
        await call.send(Packet(type=PACKET_STAT).SerializeToString())
        while (raw := await call.recv()) is not None:
            p = Packet.FromString(raw)
            if p.type == PACKET_REQ:
                path = files.pop(p.ID, None)
                if path is None:
                    raise GrpcError(3, f"invalid file id {p.ID}")
                await self._send_file(call, p.ID, path)
            elif p.type == PACKET_FIN:
                await call.send(Packet(type=PACKET_FIN).SerializeToString())
                return
            elif p.type == PACKET_ERR:
                raise GrpcError(2, f"error from receiver: {p.data.decode(errors='replace')}")

    async def _send_file(self, call: Call, ident: int, path: str) -> None:
        from dockyard.session.proto import fsutil_pb2

        Packet: Any = fsutil_pb2.Packet
        try:
            f = open(path, "rb")
        except OSError:
            f = None
        if f is not None:
            with f:
                while chunk := await asyncio.to_thread(f.read, CHUNK):
                    self.sent_bytes += len(chunk)
                    await call.send(
                        Packet(type=PACKET_DATA, ID=ident, data=chunk).SerializeToString()
                    )
        await call.send(Packet(type=PACKET_DATA, ID=ident).SerializeToString())
