"""The build context: a directory on the daemon's host, made from the tar a client sends.

The docker CLI has already applied .dockerignore, but API clients may not have, so the daemon
applies it again (Docker's daemon does too); the Dockerfile and .dockerignore themselves are
kept for reading and never copied unless listed. The tar is extracted with tarfile's `data`
filter for safety (no absolute paths, nothing outside the directory, no devices) while keeping
each file's mode as sent, since COPY preserves modes.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from dockyard.errors import InvalidArgument
from dockyard.frontend.dockerignore import IgnoreMatcher, parse_dockerignore


def _keep_mode(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
    safe = tarfile.data_filter(member, dest)
    if member.isdir():
        # Directories must stay writable while their contents are extracted
        return safe.replace(mode=(member.mode & 0o7777) | 0o700, deep=False)
    return safe.replace(mode=member.mode & 0o7777, deep=False)


def extract_context(stream: BinaryIO, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(fileobj=stream, mode="r|*") as tar:
            tar.extractall(target, filter=_keep_mode)
    except (tarfile.TarError, OSError) as exc:
        raise InvalidArgument(f"invalid build context: {exc}") from exc


@dataclass
class BuildContext:
    root: Path
    ignore: IgnoreMatcher | None

    @classmethod
    def open(cls, root: Path, dockerfile: str) -> BuildContext:
        ignore_file = root / ".dockerignore"
        named = root / f"{dockerfile}.dockerignore"
        if named.is_file():
            ignore_file = named
        matcher = None
        if ignore_file.is_file():
            matcher = IgnoreMatcher(parse_dockerignore(ignore_file.read_text(errors="replace")))
        return cls(root, matcher)

    def excluded(self, rel: str) -> bool:
        return bool(self.ignore and rel and self.ignore.matches(rel))

    def read_dockerfile(self, name: str) -> str:
        path = self.root / name
        try:
            real = path.resolve()
            real.relative_to(self.root.resolve())
            return real.read_text()
        except (OSError, ValueError):
            raise InvalidArgument(
                f"Cannot locate specified Dockerfile: {name}"
            ) from None

    def checksum(self, rel_paths: list[str]) -> str:
        """Content checksum of context entries: path, type, mode and contents (not mtimes,
        which change on every checkout and would defeat the cache)."""
        h = hashlib.sha256()
        for rel in rel_paths:
            full = self.root / rel
            st = os.lstat(full)
            h.update(f"{rel}\0{stat.S_IFMT(st.st_mode)}\0{stat.S_IMODE(st.st_mode)}\0".encode())
            if stat.S_ISREG(st.st_mode):
                with open(full, "rb") as f:
                    while chunk := f.read(1 << 20):
                        h.update(chunk)
            elif stat.S_ISLNK(st.st_mode):
                h.update(os.readlink(full).encode())
            h.update(b"\n")
        return h.hexdigest()
