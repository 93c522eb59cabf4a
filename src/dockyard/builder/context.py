"""The build context: a directory on the daemon's host, made from the tar a client sends.

The client has already applied .dockerignore (the docker CLI, the Python SDK and ours do);
like Docker's daemon, dockyard only drops the Dockerfile and .dockerignore afterwards when the
ignore file excludes them. The tar is extracted member by member,
refusing anything that would land outside the directory, keeping each file's mode and mtime as
sent, since COPY preserves them.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from dockyard.builder.digests import DigestIndex, compute, feed_content
from dockyard.errors import DockyardError, InvalidArgument
from dockyard.frontend.dockerignore import (
    IgnoreMatcher,
    dropped_build_files,
    parse_dockerignore,
)


class _Unsafe(InvalidArgument):
    pass


def _clean(name: str) -> str:
    """The member's path relative to the context ("" for the root); refuses `..` and
    absolute names, which no client sends for a context."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if name.startswith("/") or ".." in parts:
        raise _Unsafe(f"invalid build context: unsafe path {name!r}")
    return "/".join(parts)


def _remove(path: str) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _extract(stream: BinaryIO, root: str) -> None:
    # Written out rather than tarfile.extractall: that costs ~0.5 ms per member (owner lookups,
    # realpath checks), 1 s for a 2,000-file context. Safety comes from refusing `..` and
    # absolute names and any member whose parent path is a symlink this archive created (the
    # directory starts empty, so no other symlink can be on the way).
    links: set[str] = set()
    dirs: list[tuple[str, int, float]] = []
    with tarfile.open(fileobj=stream, mode="r|*") as tar:
        for m in tar:
            rel = _clean(m.name)
            if not rel:
                continue
            parts = rel.split("/")
            for i in range(1, len(parts)):
                if "/".join(parts[:i]) in links:
                    raise _Unsafe(f"invalid build context: {m.name!r} is under a symlink")
            dest = os.path.join(root, rel)
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            mode = m.mode & 0o7777
            if m.isdir():
                if not os.path.isdir(dest) or os.path.islink(dest):
                    _remove(dest)
                    os.mkdir(dest, 0o700)
                links.discard(rel)
                dirs.append((dest, mode, m.mtime))
                continue
            _remove(dest)
            links.discard(rel)
            if m.isreg():
                src = tar.extractfile(m)
                assert src is not None
                with open(dest, "wb") as f:
                    shutil.copyfileobj(src, f, 1 << 20)
                os.chmod(dest, mode)
            elif m.issym():
                os.symlink(m.linkname, dest)
                links.add(rel)
            elif m.islnk():
                target = _clean(m.linkname)
                if not target or any(
                    "/".join(target.split("/")[: i + 1]) in links
                    for i in range(len(target.split("/")))
                ):
                    raise _Unsafe(f"invalid build context: bad hardlink {m.name!r}")
                os.link(os.path.join(root, target), dest)
                continue
            elif m.isfifo():
                os.mkfifo(dest, mode)
            elif m.ischr() or m.isblk():
                kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
                os.mknod(dest, kind | mode, os.makedev(m.devmajor, m.devminor))
            else:
                continue
            os.utime(dest, (m.mtime, m.mtime), follow_symlinks=False)
    for dest, mode, mtime in reversed(dirs):
        os.chmod(dest, mode)
        os.utime(dest, (mtime, mtime))


def extract_context(stream: BinaryIO, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    start = stream.tell()
    if not stream.read(1):
        return  # an empty body is an empty context to dockerd (then: no Dockerfile)
    stream.seek(start)
    try:
        _extract(stream, os.path.realpath(target))
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise DockyardError("extracting the build context: no space left on device") from exc
        raise InvalidArgument(f"invalid build context: {exc}") from exc
    except tarfile.TarError as exc:
        raise InvalidArgument(f"invalid build context: {exc}") from exc


@dataclass
class BuildContext:
    root: Path
    ignore: IgnoreMatcher | None
    # Paths the daemon drops itself: the Dockerfile and .dockerignore when the ignore file
    # excludes them (moby remotecontext `removeDockerfile`). Everything else was filtered by
    # the client, as with Docker's daemon, which never re-applies .dockerignore.
    dropped: frozenset[str] = frozenset()
    # A Dockerfile that did not come inside the context (BuildKit's session sends it from a
    # directory of its own, which may lie outside the context).
    dockerfile_text: str | None = None
    # Remembered file digests of a kept context (only changed files are hashed again).
    digests: DigestIndex | None = None
    # The legacy endpoint's context is a tar whose mtimes are whole seconds (moby's
    # FileInfoHeader truncates them); a context synced on a session keeps nanoseconds to
    # see changes, so the copy truncates them to give the same files.
    second_mtimes: bool = False
    # No file of the tree is ever written in place while it lives (a kept context, whose
    # sync replaces a changed file by a new one; an extracted tar): COPY may hardlink its
    # files into a layer (builder/copylinks.py).
    shares_files: bool = False

    @classmethod
    def open(cls, root: Path, dockerfile: str, **kw: object) -> BuildContext:
        ignore_file = root / ".dockerignore"
        named = root / f"{dockerfile}.dockerignore"
        if named.is_file():
            ignore_file = named
        if not ignore_file.is_file():
            return cls(root, None, **kw)  # type: ignore[arg-type]
        patterns = parse_dockerignore(ignore_file.read_text(errors="replace"))
        dropped = frozenset(dropped_build_files(patterns, dockerfile))
        if named.is_file() and IgnoreMatcher(patterns).matches(named.name):
            dropped |= {named.name}
        return cls(root, None, dropped, **kw)  # type: ignore[arg-type]

    def digest(self, rel: str) -> str:
        """The content digest of one entry (COPY's cache key), remembered when kept."""
        if self.digests is not None and rel:
            return self.digests.digest(os.path.join(self.root, rel), rel)
        return compute(os.path.join(self.root, rel) if rel else self.root)

    def excluded(self, rel: str) -> bool:
        if rel in self.dropped:
            return True
        return bool(self.ignore and rel and self.ignore.matches(rel))

    def read_dockerfile(self, name: str) -> str:
        if self.dockerfile_text is not None:
            return self.dockerfile_text
        path = self.root / name
        try:
            real = path.resolve()
            real.relative_to(self.root.resolve())
            return real.read_text()
        except (OSError, ValueError):
            raise InvalidArgument(f"Cannot locate specified Dockerfile: {name}") from None

    def checksum(self, rel_paths: list[str]) -> str:
        """Content checksum of context entries: path, type, mode and contents (not mtimes,
        which change on every checkout and would defeat the cache)."""
        h = hashlib.sha256()
        for rel in rel_paths:
            full = self.root / rel
            st = os.lstat(full)
            h.update(f"{rel}\0{stat.S_IFMT(st.st_mode)}\0{stat.S_IMODE(st.st_mode)}\0".encode())
            feed_content(h, full, st)
            h.update(b"\n")
        return h.hexdigest()
