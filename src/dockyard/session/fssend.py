"""fsutil's DiffCopy, sending side: serve a local directory to a receiver that asks for what changed.

The client half of the protocol in filesync.py: every entry as a STAT packet in walk order
(path components compared, as Go's filepath.WalkDir visits), the empty STAT at the end,
then the content of each file the receiver REQuests as DATA packets closed by an empty one,
and FIN in answer to the receiver's FIN. The receiver's include/exclude patterns
(`.dockerignore` syntax, as fsutil's filter applies them) come in the call's metadata.
Used by `dockyard build` to serve its context over a session (session/h2lite.py: the
handler runs in a thread of its own, blocking), and by the tests.
"""

from __future__ import annotations

import os
import stat

from dockyard.session import fswire, gomode, methods
from dockyard.session.fspackets import PACKET_ERR, PACKET_FIN, PACKET_REQ
from dockyard.session.h2lite import NOT_FOUND, Call, GrpcError
from dockyard.threadlite import Thread

TYPE_CHECKING = False  # typing costs the CLI's start-up; mypy honours this name
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping
    from pathlib import Path
    from typing import Any

CHUNK = 1 << 20
_BATCH = 4 << 20  # bytes of file packets per write


def _opts(call: Call) -> dict[str, list[str]]:
    md = call.metadata
    out: dict[str, list[str]] = {}
    for key, values in md.items():
        if md.get(key + "-encoded", ["0"])[0] in ("1", "true"):
            out[key] = [_unquote(v) for v in values]
        else:
            out[key] = list(values)
    return out


_HEX = frozenset(b"0123456789abcdefABCDEF")


def _unquote(text: str) -> str:
    """urllib.parse.unquote (Go's url.PathEscape on the other end), without urllib and re."""
    if "%" not in text:
        return text
    raw = text.encode("utf-8")
    out = bytearray()
    i = 0
    while i < len(raw):
        digits = raw[i + 1 : i + 3]
        if raw[i] == 0x25 and len(digits) == 2 and all(c in _HEX for c in digits):
            out.append(int(digits, 16))
            i += 3
            continue
        out.append(raw[i])
        i += 1
    return out.decode("utf-8", "replace")


def _matcher(patterns: list[str]) -> Any:
    from dockyard.frontend.dockerignore import IgnoreMatcher  # re: only with patterns

    return IgnoreMatcher(patterns)


class _Includes:
    """fsutil's include patterns: a path is sent when a pattern matches it or one of its
    parents, and a directory is entered when it may hold a match."""

    def __init__(self, patterns: list[str]) -> None:
        self.patterns = patterns
        self.matcher = _matcher(patterns) if patterns else None

    def included(self, rel: str, is_dir: bool) -> bool:
        if self.matcher is None:
            return True
        parts = rel.split("/")
        for i in range(1, len(parts) + 1):
            if self.matcher.matches("/".join(parts[:i])):
                return True
        if is_dir:
            prefix = rel + "/"
            return any(p.lstrip("/").startswith(prefix) or "*" in p for p in self.patterns)
        return False


class Listed(tuple):  # type: ignore[type-arg]
    """One entry to send. A tuple (a dataclass's __init__ was a fifth of listing a 5,000-file
    context) but no NamedTuple: `typing` costs the CLI ~1.5 ms of start-up."""

    __slots__ = ()

    def __new__(
        cls, path: str, full: str, mode: int, size: int, linkname: str, packet: bytes
    ) -> Listed:
        return tuple.__new__(cls, (path, full, mode, size, linkname, packet))

    @property
    def path(self) -> str:
        return self[0]  # type: ignore[no-any-return]

    @property
    def full(self) -> str:
        return self[1]  # type: ignore[no-any-return]

    @property
    def mode(self) -> int:
        """Go's os.FileMode bits, as sent."""
        return self[2]  # type: ignore[no-any-return]

    @property
    def size(self) -> int:
        """As sent: 0 for a hardlink to a file listed before it."""
        return self[3]  # type: ignore[no-any-return]

    @property
    def linkname(self) -> str:
        return self[4]  # type: ignore[no-any-return]

    @property
    def packet(self) -> bytes:
        """The entry's STAT packet (fswire.py)."""
        return self[5]  # type: ignore[no-any-return]


def listing(
    root: Path,
    includes: list[str],
    excludes: list[str],
    extras: Mapping[str, str | Path] | None = None,
) -> list[Listed]:
    """Every entry to send, in fsutil's order, with its STAT packet. `extras` are
    files shown at the top of the tree under another name (they replace an entry of that
    name): a Dockerfile from outside the context, a rewritten .dockerignore."""
    include = _Includes(includes)
    exclude = _matcher(excludes) if excludes else None
    # An excluded directory is entered only if an exception pattern could re-include
    # something below it (fsutil and moby's TarWithOptions both skip it otherwise).
    exceptions = any(p.startswith("!") for p in excludes)
    seen_inodes: dict[tuple[int, int], str] = {}
    out: list[Listed] = []
    from_posix = gomode.from_posix
    S_ISDIR, S_ISREG, S_ISLNK = stat.S_ISDIR, stat.S_ISREG, stat.S_ISLNK
    no_includes = include.matcher is None

    def entries(d: str, rel: str) -> list[tuple[str, str, os.stat_result]]:
        with os.scandir(d) as it:
            found = {e.name: (e.path, e.stat(follow_symlinks=False)) for e in it}
        if not rel and extras:
            for name, src in extras.items():
                found[name] = (str(src), os.stat(src))
        return [(n, *found[n]) for n in sorted(found)]

    def walk(d: str, rel: str) -> None:
        for name, full, st in entries(d, rel):
            r = f"{rel}/{name}" if rel else name
            st_mode = st.st_mode
            is_dir = S_ISDIR(st_mode)
            excluded = exclude is not None and exclude.matches(r)
            if excluded and (not is_dir or not exceptions):
                continue
            if not no_includes and not include.included(r, is_dir):
                continue
            mode = from_posix(st_mode)
            size, linkname, major, minor = 0, "", 0, 0
            if S_ISREG(st_mode):
                size = st.st_size
                if st.st_nlink > 1:
                    key = (st.st_dev, st.st_ino)
                    if key in seen_inodes:
                        linkname = seen_inodes[key]
                        size = 0
                    else:
                        seen_inodes[key] = r
            elif S_ISLNK(st_mode):
                linkname = os.readlink(full)
            elif stat.S_ISCHR(st_mode) or stat.S_ISBLK(st_mode):
                major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
            packet = fswire.stat_packet(
                r, mode, st.st_uid, st.st_gid, size, st.st_mtime_ns, linkname, major, minor
            )
            ent = Listed(r, full, mode, size, linkname, packet)
            if not excluded:
                out.append(ent)
            if is_dir:
                before = len(out)
                walk(full, r)
                if excluded and len(out) > before:
                    # a re-included child (`!dir/keep`) brings its parent along
                    out.insert(before, ent)

    walk(str(root), "")
    return out


class _Later:
    """A listing made in a thread of its own, for the first DiffCopy to take."""

    def __init__(self, fn: Callable[[], list[Listed]]) -> None:
        self._fn = fn
        self._result: list[Listed] = []
        self._error: OSError | None = None
        self._thread = Thread(target=self._run)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._result = self._fn()
        except OSError as exc:
            self._error = exc
        except BaseException as exc:  # reported to whoever waits
            self._error = OSError(str(exc))

    def result(self) -> list[Listed]:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._result


class DirServer:
    """Serves FileSync/DiffCopy for named directories (`context`, `dockerfile`).

    `excludes` and `extras` by directory name are the sender's own filter and additions
    (our CLI applies .dockerignore itself, as the legacy client does for its tar); the
    receiver's patterns from the call's metadata apply on top.
    """

    def __init__(
        self,
        dirs: Mapping[str, Path],
        *,
        excludes: Mapping[str, list[str]] | None = None,
        extras: Mapping[str, Mapping[str, str | Path]] | None = None,
    ) -> None:
        self.dirs = dict(dirs)
        self.excludes = dict(excludes or {})
        self.extras = dict(extras or {})
        self.sent_bytes = 0  # file content sent, for tests and benchmarks
        self.sent_files = 0
        self._prefetched: dict[str, _Later] = {}
        self.listed: dict[str, list[Listed]] = {}  # the last listing by name

    def prefetch(self, name: str) -> None:
        """Start listing `name` now, in a thread: the first DiffCopy of it without patterns
        of its own takes it, so the walk overlaps the build request."""
        root = self.dirs.get(name)
        if root is not None and name not in self._prefetched:
            excludes, extras = self.excludes.get(name, []), self.extras.get(name)
            self._prefetched[name] = _Later(lambda: listing(root, [], excludes, extras))

    def handlers(self) -> dict[str, Any]:
        return {methods.FILESYNC_DIFFCOPY: self.diffcopy}

    def diffcopy(self, call: Call) -> None:
        opts = _opts(call)
        name = (opts.get(methods.KEY_DIR_NAME) or [""])[0]
        root = self.dirs.get(name)
        if root is None:
            raise GrpcError(NOT_FOUND, f"no access allowed to dir {name!r}")
        early = self._prefetched.pop(name, None)
        try:
            if early is not None and not (
                opts.get(methods.KEY_INCLUDE) or opts.get(methods.KEY_EXCLUDE)
            ):
                entries = early.result()
            else:
                entries = listing(
                    root,
                    opts.get(methods.KEY_INCLUDE, []),
                    [*self.excludes.get(name, []), *opts.get(methods.KEY_EXCLUDE, [])],
                    self.extras.get(name),
                )
        except OSError as exc:
            call.send(fswire.err_packet(str(exc)))
            return
        self.listed[name] = entries
        files: dict[int, tuple[str, int]] = {}
        batch: list[bytes] = []
        for i, ent in enumerate(entries):
            if gomode.is_regular(ent.mode) and not ent.linkname:
                files[i] = (ent.full, ent.size)
            batch.append(ent.packet)
            if len(batch) >= 512:
                call.send_many(batch)
                batch = []
        batch.append(fswire.END_OF_LISTING)
        call.send_many(batch)
        # The receiver asks for many files at once: the small ones go out together, a few
        # MiB per write, rather than a write (and an HTTP/2 frame or two) per file.
        out: list[bytes] = []
        pending = 0
        while batch := call.recv_many():
            for raw in batch:
                try:
                    p = fswire.parse(raw)
                except fswire.MalformedPacket as exc:
                    raise GrpcError(3, f"malformed packet from receiver: {exc}") from None
                if p.type == PACKET_REQ:
                    found = files.pop(p.ID, None)
                    if found is None:
                        raise GrpcError(3, f"invalid file id {p.ID}")
                    for packet in self._file_packets(p.ID, *found):
                        out.append(packet)
                        pending += len(packet)
                        if pending >= _BATCH:
                            call.send_many(out)
                            out, pending = [], 0
                elif p.type == PACKET_FIN:
                    out.append(fswire.FIN_PACKET)
                    call.send_many(out)
                    return
                elif p.type == PACKET_ERR:
                    raise GrpcError(2, f"error from receiver: {p.data.decode(errors='replace')}")
            if out:
                call.send_many(out)
                out, pending = [], 0

    def _file_packets(self, ident: int, path: str, size: int) -> Iterator[bytes]:
        """DATA packets of one file and the empty one that ends it. The listing's size is read (a file growing meanwhile is cut there,
        as its listing said), so no read is spent on finding the end."""
        self.sent_files += 1
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            fd = -1
        if fd >= 0:
            try:
                left = size
                while left > 0 and (chunk := os.read(fd, min(left, CHUNK))):
                    left -= len(chunk)
                    self.sent_bytes += len(chunk)
                    yield fswire.data_packet(ident, chunk)
            finally:
                os.close(fd)
        yield fswire.data_packet(ident)
