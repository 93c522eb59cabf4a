"""fsutil's DiffCopy, receiving side: a client's directory into one of ours, sending only what changed.

The protocol (tonistiigi/fsutil send.go, receive.go): the client, filtering with the
include/exclude patterns and follow paths we put in the call's metadata (so .dockerignore is
applied before anything travels), sends one STAT packet per entry in walk order and an empty
STAT at the end. Each STAT has an index (its position); for a regular file whose metadata
differ from the copy we already hold, we send REQ with that index, and the client answers
with DATA packets for it, an empty one marking the end of the file. When every file we asked
for has arrived we send FIN, the client answers FIN, and we half-close.

Files arrive in a staging directory beside the tree and replace their entries only once
complete, so a tree is never left half-written; a failed or abandoned sync removes the
staging directory. Comparison is fsutil's DiffMetadata: type, mode, owner, size and mtime
(nanoseconds); the tree therefore keeps the client's owners, modes and mtimes exactly.

The client is not trusted: a path is one of the tree's own (no `..`, no leading `/`, no
parent that is not a directory listed before it, so nothing is written through a symlink,
whether listed now or kept from an earlier sync), a hardlink names a file listed before it,
a file's content is exactly its listed size (docker's legacy client fails the same way on a
file that changed while it was sent: archive/tar "write too long"), and a listing is at most
MAX_ENTRIES entries and MAX_LISTING bytes of metadata, since it is held in memory while the
tree is compared.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import re
import shutil
import stat
import threading
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dockyard.builder import digests
from dockyard.errors import BuildFailure, InvalidArgument, NotSupported
from dockyard.session import gomode, methods
from dockyard.session.fspackets import PACKET_DATA, PACKET_ERR, PACKET_FIN, PACKET_REQ, PACKET_STAT
from dockyard.session.h2grpc import GrpcError
from dockyard.session.listingmemo import ListingDigest, ListingMemo
from dockyard.session.wholeseconds import ClientTimes, truncated

if TYPE_CHECKING:
    from dockyard.session.manager import Session
    from dockyard.session.proto.fsutil_pb2 import Stat


MAX_ENTRIES = 500_000  # ~350 bytes each while held, and a stat of each kept one
MAX_LISTING = 128 << 20  # bytes of STAT packets
_PATH_MAX = 4095  # Linux's PATH_MAX less the NUL; NAME_MAX for a component
_NAME_MAX = 255


@dataclass
class SyncResult:
    entries: int = 0  # entries in the synced tree
    requested: int = 0  # files whose content travelled
    bytes: int = 0  # content bytes received
    changed: list[str] = field(default_factory=list)  # paths added, changed or removed
    disk_bytes: int = 0  # the synced tree's disk use as its listing says (4 KiB blocks)
    dir_modes_changed: bool = False  # an existing directory's permission bits changed
    # content digests (builder/digests.py) of the files that travelled, hashed as they
    # arrived, with each file's lstat once in place: COPY's cache key need not read them again
    digests: dict[str, tuple[os.stat_result, str]] = field(default_factory=dict)


@dataclass(slots=True)
class _Entry:
    path: str
    mode: int  # POSIX st_mode
    uid: int
    gid: int
    size: int
    mtime_ns: int
    linkname: str
    rdev: tuple[int, int]
    xattrs: dict[str, bytes]
    hardlink: bool = False
    fetch: bool = False  # content requested


def _metadata(opts: dict[str, Sequence[str]]) -> dict[str, list[str]]:
    """BuildKit's encodeOpts: values with non-ASCII characters are percent-encoded, and the
    key gains a `<key>-encoded: 1` twin."""
    out: dict[str, list[str]] = {}
    for k, values in opts.items():
        if any(ord(c) > 127 for v in values for c in v):
            out[k] = [urllib.parse.quote(v) for v in values]
            out[k + "-encoded"] = ["1"]
        else:
            out[k] = list(values)
    return out


# an empty, `.` or `..` component, a leading or trailing slash, or a NUL
_BAD_PATH = re.compile(r"(?:^|/)(?:\.\.?)?(?:/|$)|\x00")


def _clean_path(path: str) -> str:
    if _BAD_PATH.search(path) or (
        # a UTF-8 character is at most 4 bytes: short paths need no counting
        len(path) > _NAME_MAX // 4
        and (
            len(path.encode()) > _PATH_MAX
            or any(len(part.encode()) > _NAME_MAX for part in path.split("/"))
        )
    ):
        raise InvalidArgument(f"file sync: invalid path {path[:200]!r} from the client")
    return path


# shared by the entries that have none: a listing of a million entries is held in memory
_NO_XATTRS: dict[str, bytes] = {}
_NO_RDEV = (0, 0)


def _entry(st: Stat) -> _Entry:
    path = _clean_path(st.path)
    mode = gomode.to_posix(st.mode)
    hardlink = stat.S_ISREG(mode) and bool(st.linkname)
    if hardlink:
        _clean_path(st.linkname)
    # fsutil lists a hardlink with its file's size, and a client may give a directory or a
    # link one: only a regular file's own content is sized (and counted for the cap)
    if st.size < 0:
        raise InvalidArgument(f"file sync: {path!r} listed with a size of {st.size}")
    return _Entry(
        path=path,
        mode=mode,
        uid=st.uid,
        gid=st.gid,
        size=st.size,
        mtime_ns=st.modTime,
        linkname=st.linkname,
        rdev=(st.devmajor, st.devminor) if st.devmajor or st.devminor else _NO_RDEV,
        xattrs=dict(st.xattrs) if st.xattrs else _NO_XATTRS,
        hardlink=hardlink,
    )


def _same(e: _Entry, st: os.stat_result, dest: str, mtime_ns: int | None = None) -> bool:
    """`mtime_ns`: the client's mtime of a file stored with another (wholeseconds.py)."""
    if stat.S_IFMT(e.mode) != stat.S_IFMT(st.st_mode):
        return False
    if stat.S_ISDIR(e.mode):
        return True
    if (
        (st.st_mode != e.mode and not stat.S_ISLNK(e.mode))
        or st.st_uid != e.uid
        or st.st_gid != e.gid
        or (st.st_mtime_ns if mtime_ns is None else mtime_ns) != e.mtime_ns
    ):
        return False
    if stat.S_ISREG(e.mode):
        return not e.hardlink and st.st_size == e.size
    if stat.S_ISLNK(e.mode):
        return os.readlink(dest) == e.linkname
    return False  # devices and fifos: cheap to remake


class TreeWriter:
    """Applies a received listing to a directory: the worker-thread half of the receiver."""

    def __init__(self, tree: Path, staging: Path, times: ClientTimes | None = None) -> None:
        """`times`: store files with whole-second mtimes, the client's remembered there."""
        self.tree = tree
        self.staging = staging
        self.times = times
        self.entries: list[_Entry] = []
        self._files: set[str] = set()  # regular files listed so far: hardlinks' targets
        self._existing: dict[str, os.stat_result] = {}
        self.digests: dict[int, str] = {}  # listing index -> digest of the content received
        self.received: dict[str, tuple[os.stat_result, str]] = {}  # SyncResult.digests
        # plan and finish run in worker threads a cancelled build cannot stop: abandon waits
        # for the one running and keeps a later one from making the staging directory again.
        self._lock = threading.Lock()
        self._abandoned = False
        self._scanned = False
        self.dir_modes_changed = False

    def add(self, e: _Entry) -> None:
        if self.entries and not _sorted_ok(self.entries[-1].path, e.path):
            raise InvalidArgument(f"file sync: {e.path!r} out of order")
        if len(self.entries) >= MAX_ENTRIES:
            raise InvalidArgument(f"file sync: the listing has more than {MAX_ENTRIES} entries")
        if e.hardlink:
            # fsutil lists a hardlink after the first name of its inode, which it sends
            if e.linkname not in self._files:
                raise InvalidArgument(
                    f"file sync: hardlink {e.path!r} to {e.linkname!r}, not a file listed before it"
                )
        elif stat.S_ISREG(e.mode):
            self._files.add(e.path)
        self.entries.append(e)

    def plan(self) -> list[int]:
        """Which entries need their content (indexes into the listing)."""
        with self._lock:
            if self._abandoned:
                raise BuildFailure("file sync abandoned")
            return self._plan()

    def scan(self) -> None:
        """Stat the kept tree, while the listing is still on its way (plan needs both; the
        tree is the caller's alone until this sync ends, so nothing changes it meanwhile)."""
        self._existing = _scan(self.tree) if self.tree.is_dir() else {}
        self._scanned = True

    def _plan(self) -> list[int]:
        self.tree.mkdir(parents=True, exist_ok=True)
        if self.staging.exists():
            shutil.rmtree(self.staging)
        self.staging.mkdir(mode=0o700)
        if not self._scanned:
            self._existing = _scan(self.tree)
        tree = str(self.tree)
        dirs = {""}
        want: list[int] = []
        for i, e in enumerate(self.entries):
            parent = e.path.rpartition("/")[0]
            if parent not in dirs:
                raise InvalidArgument(f"file sync: {e.path!r} has no parent directory")
            if stat.S_ISDIR(e.mode):
                dirs.add(e.path)
            old = self._existing.get(e.path)
            if (
                stat.S_ISREG(e.mode)
                and not e.hardlink
                and (
                    old is None
                    or not _same(e, old, os.path.join(tree, e.path), self._mtime(e, old))
                )
            ):
                e.fetch = True
                want.append(i)
        return want

    def _mtime(self, e: _Entry, st: os.stat_result) -> int | None:
        return None if self.times is None else self.times.client_mtime(e.path, st)

    def staged(self, index: int) -> str:
        # not `self.staging / str(index)`: pathlib interns every part it parses, and the
        # interpreter's table of interned strings, grown by a 5,000-file sync, never shrinks
        # (1.9 MiB left in the daemon after a 200 MiB / 5,000-file context, tracemalloc)
        return f"{self.staging}/{index}"

    def finish(self) -> list[str]:
        """Make the tree match the listing; returns the paths that changed."""
        with self._lock:
            if self._abandoned:
                raise BuildFailure("file sync abandoned")
            return self._finish()

    def _finish(self) -> list[str]:
        tree = str(self.tree)
        changed: list[str] = []
        wanted = {e.path: e for e in self.entries}
        # Remove what is gone or changed type, deepest first.
        for path in sorted(self._existing, key=lambda p: p.count("/"), reverse=True):
            e = wanted.get(path)
            was = self._existing[path]
            if e is None or stat.S_IFMT(e.mode) != stat.S_IFMT(was.st_mode):
                _remove(os.path.join(tree, path))
                changed.append(path)
        for i, e in enumerate(self.entries):
            if not e.fetch and not e.hardlink and stat.S_ISREG(e.mode):
                continue  # the same file as the kept one (plan), most of a rebuild's
            full = os.path.join(tree, e.path)
            old: os.stat_result | None = self._existing.get(e.path)
            if old is not None and stat.S_IFMT(e.mode) != stat.S_IFMT(old.st_mode):
                old = None
            if stat.S_ISDIR(e.mode):
                if old is None:
                    os.mkdir(full, 0o700)
                    changed.append(e.path)
                elif stat.S_IMODE(old.st_mode) != stat.S_IMODE(e.mode):
                    self.dir_modes_changed = True  # in digests: not a removal, no forget
                continue
            if stat.S_ISREG(e.mode) and not e.hardlink:
                if not e.fetch:
                    continue
                src = self.staged(i)
                _set_metadata(src, e, None if self.times is None else truncated(e.mtime_ns))
                os.replace(src, full)  # its ClientTimes entry below, from the digests' lstat
                changed.append(e.path)
                continue
            if e.hardlink:
                continue  # after every file is in place
            if old is not None and _same(e, old, full):
                continue
            if old is not None:
                _remove(full)
            if stat.S_ISLNK(e.mode):
                os.symlink(e.linkname, full)
            elif stat.S_ISFIFO(e.mode):
                os.mkfifo(full, 0o600)
            elif stat.S_ISCHR(e.mode) or stat.S_ISBLK(e.mode):
                os.mknod(full, stat.S_IFMT(e.mode) | 0o600, os.makedev(*e.rdev))
            else:
                continue  # sockets do not travel
            _set_metadata(full, e)
            changed.append(e.path)
        for e in self.entries:
            if e.hardlink:
                full = os.path.join(tree, e.path)
                target = os.path.join(tree, e.linkname)
                old = self._existing.get(e.path)
                if old is not None and _same_inode(old, os.lstat(target)):
                    continue  # still that file's link: relinking would move its ctime
                _remove(full)
                os.link(target, full)
                changed.append(e.path)
        for e in reversed(self.entries):
            if stat.S_ISDIR(e.mode):
                _set_metadata(os.path.join(tree, e.path), e)
        # last: a hardlink made to a file moved its ctime, which the digest index keys on.
        # One lstat per received file serves the digest index and ClientTimes both: a
        # ClientTimes entry needs only the stored file's inode and mtime, and nothing after
        # its rename changes those (hardlinks to it move its ctime and link count, directory
        # metadata touches directories only), so the stat taken here is as good as one right
        # after the rename, which cost a second lstat of every file (5,000 for bench row f).
        by_path = {self.entries[i].path: value for i, value in self.digests.items()}
        times = self.times
        for e in self.entries if by_path or times is not None else ():
            value = by_path.get(e.linkname if e.hardlink else e.path)
            if value is None and not (e.fetch and times is not None):
                continue
            st = os.lstat(os.path.join(tree, e.path))
            if e.fetch and times is not None:
                times.stored(e.path, st, e.mtime_ns)
            if value is not None and st.st_mode == e.mode:  # the mode the digest began with
                self.received[e.path] = (st, value)
        if times is not None:
            times.retain(e.path for e in self.entries if stat.S_ISREG(e.mode))
            times.save()
        shutil.rmtree(self.staging, ignore_errors=True)
        # The kept tree's stats (5,000 for bench row f, ~3 MiB) are not needed after this,
        # and the writer sits in a reference cycle with the session until the cyclic GC runs,
        # which would be inside the next build's peak.
        self._existing = {}
        return changed

    def abandon(self) -> None:
        with self._lock:
            self._abandoned = True
            shutil.rmtree(self.staging, ignore_errors=True)


def _same_inode(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _sorted_ok(prev: str, cur: str) -> bool:
    # fsutil walks in path-component order ("a/b" before "a.b"); compare by components.
    return cur.split("/") > prev.split("/")


def _scan(root: Path) -> dict[str, os.stat_result]:
    out: dict[str, os.stat_result] = {}
    base = str(root)

    def walk(d: str, rel: str) -> None:
        with os.scandir(d) as it:
            for ent in it:
                r = f"{rel}/{ent.name}" if rel else ent.name
                st = ent.stat(follow_symlinks=False)
                out[r] = st
                if stat.S_ISDIR(st.st_mode):
                    walk(ent.path, r)

    walk(base, "")
    return out


def _remove(path: str) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _set_metadata(path: str, e: _Entry, mtime_ns: int | None = None) -> None:
    try:
        os.lchown(path, e.uid, e.gid)
    except PermissionError:
        pass  # a daemon without CAP_CHOWN keeps its own owner
    if not stat.S_ISLNK(e.mode):
        os.chmod(path, stat.S_IMODE(e.mode))
    for name, value in e.xattrs.items():
        if name.startswith("trusted.overlay."):
            continue  # overlayfs' own metadata, never a client's (as diff/applier.py)
        try:
            os.setxattr(path, name, value, follow_symlinks=False)
        except OSError as exc:
            if exc.errno not in (errno.ENOTSUP, errno.EPERM):
                raise
    mtime = e.mtime_ns if mtime_ns is None else mtime_ns
    os.utime(path, ns=(mtime, mtime), follow_symlinks=False)


async def receive(
    session: Session,
    dir_name: str,
    tree: Path,
    staging: Path,
    *,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    follow: Sequence[str] = (),
    progress: Callable[[int], None] | None = None,
    times: ClientTimes | None = None,
    memo: ListingMemo | None = None,
) -> SyncResult:
    """Sync the client's directory `dir_name` into `tree` (created if missing); with
    `times`, its files are stored with whole-second mtimes (wholeseconds.py); `memo`, the
    listing `tree` was last made to match (listingmemo.py), is checked and kept up to date."""
    from dockyard.session.proto import fsutil_pb2

    if not session.supports(methods.FILESYNC_DIFFCOPY):
        if session.supports(methods.FILESYNC_TARSTREAM):
            raise NotSupported("file sync through TarStream is not supported: update the client")
        raise InvalidArgument("the client's session does not serve its files (no FileSync)")
    opts: dict[str, Sequence[str]] = {methods.KEY_DIR_NAME: [dir_name]}
    if include:
        opts[methods.KEY_INCLUDE] = include
    if exclude:
        opts[methods.KEY_EXCLUDE] = exclude
    if follow:
        opts[methods.KEY_FOLLOW] = follow
    call = session.conn.open(methods.FILESYNC_DIFFCOPY, _metadata(opts))
    writer = TreeWriter(tree, staging, times)
    listed_digest = ListingDigest(memo, times is not None)
    scanning: asyncio.Future[None] | None = None
    creating: _Creator | None = None
    # while the listing may be the memo's, its packets are held unparsed (listingmemo.py)
    held: list[bytes] | None = [] if listed_digest.matching else None

    def start_scan() -> None:
        # a 5,000-file tree's stat walk (30 ms) overlaps the listing's transfer and parsing
        nonlocal scanning
        if memo is not None:
            memo.forget()  # before anything can change the tree
        scanning = asyncio.ensure_future(asyncio.to_thread(writer.scan))

    def take(raw: bytes) -> None:
        p = _packet(Packet, raw, dir_name)
        if p.type != PACKET_STAT or not p.HasField("stat"):
            raise InvalidArgument(f"file sync of {dir_name}: unexpected packet {p.type}")
        writer.add(_entry(p.stat))

    def differs() -> None:
        """The listing is not the memo's: parse what was held back, compare the tree."""
        nonlocal held
        start_scan()
        for raw in held or ():
            take(raw)
        held = None

    if held is None:
        start_scan()
    result = SyncResult()
    Packet: Any = fsutil_pb2.Packet  # our packet types are plain ints
    files: dict[int, int] = {}  # listing index -> open staged fd
    hashes: dict[int, Any] = {}  # listing index -> its content digest so far
    left: dict[int, int] = {}  # listing index -> bytes still to come
    done = False
    try:
        listed = False
        listing_bytes = 0
        while not listed:
            batch = await call.recv_many()
            if not batch:
                raise BuildFailure(f"file sync of {dir_name}: the client ended the stream early")
            listing_bytes += sum(len(raw) for raw in batch)
            if listing_bytes > MAX_LISTING:
                raise InvalidArgument(
                    f"file sync of {dir_name}: the listing is larger than {MAX_LISTING >> 20} MiB"
                )
            for n, raw in enumerate(batch):
                if held is not None and raw[:1] == b"\x12":
                    # a STAT with its stat (field 2; the type left at STAT, proto3's default)
                    held.append(raw)
                    if not listed_digest.add(raw):
                        differs()
                    continue
                p = _packet(Packet, raw, dir_name)
                if p.type == PACKET_ERR:
                    raise BuildFailure(
                        f"file sync of {dir_name}: {p.data.decode(errors='replace')}"
                    )
                if p.type != PACKET_STAT:
                    raise InvalidArgument(f"file sync of {dir_name}: unexpected packet {p.type}")
                if not p.HasField("stat"):
                    if n != len(batch) - 1:  # the client sends nothing before our REQs
                        raise InvalidArgument(f"file sync of {dir_name}: packet after the listing")
                    listed = True
                    break
                if held is not None:  # spelled otherwise than ours and fsutil's: compare no more
                    listed_digest.matching = False
                    differs()
                writer.add(_entry(p.stat))
                listed_digest.add(raw)
        if listed_digest.end() and held is not None and tree.is_dir():
            # the very listing the kept tree was last made to match: nothing to do
            assert memo is not None
            result.entries = memo.entries
            result.disk_bytes = memo.disk_bytes
            await _finish_call(call, Packet, dir_name)
            done = True
            return result
        if held is not None:
            differs()
        result.entries = len(writer.entries)
        result.disk_bytes = sum(
            -(-e.size // 4096) * 4096 if stat.S_ISREG(e.mode) and not e.hardlink else 4096
            for e in writer.entries
        )
        try:
            assert scanning is not None
            await scanning
        except OSError as exc:
            raise _os_failure(dir_name, exc, writer) from None
        want = await _in_thread(writer.plan, dir_name, writer)
        if want:
            creating = _Creator(asyncio.get_running_loop(), [(i, writer.staged(i)) for i in want])
            creating.start()
        left = {i: writer.entries[i].size for i in want}
        reqs = [Packet(type=PACKET_REQ, ID=i).SerializeToString() for i in want]
        for n in range(0, len(reqs), 1024):
            await call.send_many(reqs[n : n + 1024])
        result.requested = len(want)
        pending = set(want)
        while pending:
            batch = await call.recv_many()
            if not batch:
                raise BuildFailure(f"file sync of {dir_name}: the client ended the stream early")
            for raw in batch:
                p = _packet(Packet, raw, dir_name)
                if p.type == PACKET_ERR:
                    raise BuildFailure(
                        f"file sync of {dir_name}: {p.data.decode(errors='replace')}"
                    )
                if p.type != PACKET_DATA or p.ID not in pending:
                    raise InvalidArgument(f"file sync of {dir_name}: unexpected packet {p.type}")
                fd = files.get(p.ID)
                if fd is None:  # taken at its first packet: the client sends a few at a time
                    assert creating is not None
                    try:
                        fd = files[p.ID] = await creating.take(p.ID)
                    except OSError as exc:
                        raise _os_failure(dir_name, exc, writer) from None
                    hashes[p.ID] = digests.start(writer.entries[p.ID].mode)
                if p.data:
                    left[p.ID] -= len(p.data)
                    if left[p.ID] < 0:
                        raise _size_changed(dir_name, writer.entries[p.ID], left[p.ID])
                    # page-cache writes of at most one message; a thread hop would cost more
                    view = memoryview(p.data)
                    try:
                        while view:
                            view = view[os.write(fd, view) :]
                    except OSError as exc:
                        raise _os_failure(dir_name, exc, writer) from None
                    hashes[p.ID].update(p.data)
                    result.bytes += len(p.data)
                else:
                    if left[p.ID]:
                        raise _size_changed(dir_name, writer.entries[p.ID], left[p.ID])
                    os.close(files.pop(p.ID))
                    writer.digests[p.ID] = digests.finish(hashes.pop(p.ID))
                    pending.discard(p.ID)
            if progress is not None:
                progress(result.bytes)
        result.changed = await _in_thread(writer.finish, dir_name, writer)
        result.digests = writer.received
        result.dir_modes_changed = writer.dir_modes_changed
        if memo is not None:
            listed_digest.remember(memo, times is not None, result.entries, result.disk_bytes)
        await _finish_call(call, Packet, dir_name)
        done = True
        return result
    except GrpcError as exc:
        raise BuildFailure(f"file sync of {dir_name}: {exc.message}") from None
    finally:
        for fd in files.values():
            os.close(fd)
        if creating is not None:
            creating.stop()
        if scanning is None:
            pass
        elif not scanning.done():
            scanning.add_done_callback(_quietly)  # a thread's walk cannot be stopped
        elif not scanning.cancelled():
            scanning.exception()  # retrieved: a failed scan was reported, or not needed
        if not done:
            if memo is not None:
                memo.forget()  # whatever the sync did to the tree, it matches no listing
            call.cancel()
            # shielded: a cancelled to_thread whose job has not started never runs it (the
            # executor's future is cancelled with ours), and the staging directory stayed
            await asyncio.shield(asyncio.to_thread(_abandon, writer, creating))


class _Creator:
    """Creates the staged files in worker threads, in about the order they will arrive,
    while the loop receives. A file's creation (an inode allocated) is most of what
    receiving a small file costs: 20 us to 1 ms apiece on this machine's ext4, varying with
    what the other users of the disk do (measured), 5,000 of them for row f's cold build,
    and on the loop each one stopped the socket's reading too. A few threads at once wait
    out the filesystem's stalls together (1,200 creates: 2.0-2.5 s in one thread, 1.4-1.6 s
    in four, measured here)."""

    _FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    THREADS = 4

    def __init__(self, loop: asyncio.AbstractEventLoop, paths: list[tuple[int, str]]) -> None:
        self._loop = loop
        self._paths = paths
        self._next = 0  # the next of _paths to create
        self._lock = threading.Lock()
        self._ready: dict[int, int] = {}  # index -> fd, created and not yet taken
        self._waiting: dict[int, asyncio.Future[None]] = {}
        self._error: OSError | None = None
        self._stop = False
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for _ in range(min(self.THREADS, len(self._paths))):
            t = threading.Thread(target=self._run, name="sync-create", daemon=True)
            self._threads.append(t)
            t.start()

    def _run(self) -> None:
        while True:
            with self._lock:
                if self._stop or self._error is not None or self._next >= len(self._paths):
                    return
                index, path = self._paths[self._next]
                self._next += 1
            try:
                fd = os.open(path, self._FLAGS, 0o600)
            except OSError as exc:
                with self._lock:
                    self._error = self._error or exc
                    waiting = list(self._waiting.values())
                    self._waiting.clear()
                for fut in waiting:
                    self._loop.call_soon_threadsafe(_wake, fut)
                return
            with self._lock:
                if self._stop:  # too late: nobody will take it
                    os.close(fd)
                    with contextlib.suppress(OSError):
                        os.unlink(path)
                    return
                self._ready[index] = fd
                woken = self._waiting.pop(index, None)
            if woken is not None:
                self._loop.call_soon_threadsafe(_wake, woken)

    async def take(self, index: int) -> int:
        """The staged file's fd, now the caller's to close; OSError if it could not be made."""
        while True:
            with self._lock:
                fd = self._ready.pop(index, None)
                if fd is not None:
                    return fd
                if self._error is not None:
                    raise self._error
                fut = self._waiting.get(index)
                if fut is None:
                    fut = self._waiting[index] = self._loop.create_future()
            await fut

    def stop(self) -> None:
        """Create no more, and close what was not taken (the files stay for the staging
        directory's removal)."""
        with self._lock:
            self._stop = True
            for fd in self._ready.values():
                os.close(fd)
            self._ready.clear()

    def wait(self) -> None:
        """Until the threads have ended (blocking): then nothing more appears in staging."""
        for t in self._threads:
            t.join()


def _abandon(writer: TreeWriter, creating: _Creator | None) -> None:
    if creating is not None:
        creating.wait()  # its last file made before the staging directory goes
    writer.abandon()


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


async def _finish_call(call: Any, Packet: Any, dir_name: str) -> None:
    """Our FIN, the client's in answer, and our half-close."""
    await call.send(Packet(type=PACKET_FIN).SerializeToString())
    while (last := await call.recv()) is not None:
        if _packet(Packet, last, dir_name).type == PACKET_FIN:
            await call.close_send()


def _quietly(fut: asyncio.Future[None]) -> None:
    if not fut.cancelled():
        fut.exception()


def _packet(Packet: Any, raw: bytes, dir_name: str) -> Any:
    from google.protobuf.message import DecodeError

    try:
        return Packet.FromString(raw)
    except DecodeError as exc:  # invalid UTF-8 in a path is one
        raise InvalidArgument(f"file sync of {dir_name}: malformed packet: {exc}") from None


def _size_changed(dir_name: str, e: _Entry, left: int) -> BuildFailure:
    sent = e.size - left
    return BuildFailure(
        f"file sync of {dir_name}: {e.path} changed while it was sent: "
        f"{e.size} bytes listed, {'more' if left < 0 else sent} sent"
    )


def _os_failure(dir_name: str, exc: OSError, writer: TreeWriter) -> BuildFailure:
    """A failure of the filesystem (no space, a name too long for it) as a failed sync, the
    path as the client named it (the daemon's own paths are none of its business)."""
    where = ""
    if isinstance(exc.filename, str):
        for base in (writer.tree, writer.staging):
            with contextlib.suppress(ValueError):
                where = ": " + str(Path(exc.filename).relative_to(base))
                break
    return BuildFailure(f"file sync of {dir_name}: {exc.strerror or exc}{where}")


async def _in_thread(fn: Callable[[], list[Any]], dir_name: str, writer: TreeWriter) -> list[Any]:
    """A TreeWriter step in a worker thread."""
    try:
        return await asyncio.to_thread(fn)
    except OSError as exc:
        raise _os_failure(dir_name, exc, writer) from None


async def read_file(session: Session, dir_name: str, name: str, scratch: Path) -> bytes | None:
    """One file of the client's directory (the Dockerfile, a .dockerignore), or None."""
    tree = scratch / "tree"
    try:
        await receive(session, dir_name, tree, scratch / "staging", include=[name])
        path = tree / name
        if not path.is_file() or path.is_symlink():
            return None
        return await asyncio.to_thread(path.read_bytes)
    finally:
        with contextlib.suppress(OSError):
            await asyncio.shield(asyncio.to_thread(shutil.rmtree, scratch, True))
