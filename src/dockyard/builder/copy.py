"""COPY (and, later, ADD) from the build context into a mounted step root filesystem.

Docker's rules (legacy builder, builder/dockerfile/copy.go and the Dockerfile reference):
- sources are relative to the context and may not leave it (`forbidden path outside the build
  context`); symlinks inside a source path resolve within the context;
- wildcards follow Go's filepath.Match per path component;
- a directory source copies its *contents*; a file goes to `dest` itself unless `dest` ends in
  `/`, is an existing directory, or several sources are given (then `dest` must end in `/`);
- copied entries are owned by 0:0 unless --chown says otherwise; modes and mtimes are kept;
  missing parent directories of `dest` are created (0755, root).
"""

from __future__ import annotations

import fnmatch
import os
import posixpath
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from dockyard.builder.context import BuildContext
from dockyard.diff.fsutil import mkdir_in_root, resolve_in_root
from dockyard.errors import BuildFailure

_GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class CopySource:
    rel: str  # path relative to the context root, "" for the root itself
    is_dir: bool


def _not_found(src: str) -> BuildFailure:
    return BuildFailure(
        f"COPY failed: file not found in build context or excluded by .dockerignore: "
        f"stat {src}: file does not exist"
    )


def resolve_sources(ctx: BuildContext, sources: list[str]) -> list[CopySource]:
    out: list[CopySource] = []
    for src in sources:
        clean = posixpath.normpath(src)
        if clean == ".." or clean.startswith("../") or src.startswith("/.."):
            raise BuildFailure(f"COPY failed: forbidden path outside the build context: {src} ()")
        clean = posixpath.normpath("/" + src).lstrip("/")
        if clean == ".":
            clean = ""
        if _GLOB_CHARS & set(clean):
            matches = [m for m in _glob(ctx, clean) if not ctx.excluded(m)]
            if not matches:
                raise _not_found(src)
            for m in matches:
                out.append(CopySource(m, (ctx.root / m).is_dir() and not (ctx.root / m).is_symlink()))
            continue
        host = resolve_in_root(ctx.root, clean) if clean else ctx.root
        rel = os.path.relpath(host, ctx.root)
        rel = "" if rel == "." else rel
        if not os.path.lexists(host) or (rel and ctx.excluded(rel)):
            raise _not_found(src)
        out.append(CopySource(rel, host.is_dir()))
    return out


def _glob(ctx: BuildContext, pattern: str) -> list[str]:
    parts = pattern.split("/")
    found = [""]
    for i, part in enumerate(parts):
        nxt: list[str] = []
        for base in found:
            d = ctx.root / base
            if not d.is_dir() or (d.is_symlink() and i > 0):
                continue
            for name in sorted(os.listdir(d)):
                if fnmatch.fnmatchcase(name, part):
                    nxt.append(f"{base}/{name}" if base else name)
        found = nxt
    return found


def files_under(ctx: BuildContext, sources: list[CopySource]) -> list[str]:
    """Every context path a COPY of `sources` reads, for the cache checksum (sorted)."""
    out: list[str] = []
    for s in sources:
        if not s.is_dir:
            out.append(s.rel)
            continue
        base = ctx.root / s.rel if s.rel else ctx.root
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            for name in sorted(dirnames + filenames):
                rel = os.path.relpath(os.path.join(dirpath, name), ctx.root)
                if not ctx.excluded(rel):
                    out.append(rel)
    return out


def copy_into(
    ctx: BuildContext,
    sources: list[CopySource],
    rootfs: Path,
    dest: str,
    uid: int = 0,
    gid: int = 0,
) -> None:
    if len(sources) > 1 and not dest.endswith("/"):
        raise BuildFailure(
            "When using COPY with more than one source file, the destination must be a "
            "directory and end with a /"
        )
    dest_host = resolve_in_root(rootfs, dest)
    dest_is_dir = dest.endswith("/") or dest_host.is_dir()
    for src in sources:
        src_host = ctx.root / src.rel if src.rel else ctx.root
        if src.is_dir:
            target = mkdir_in_root(rootfs, dest)
            _copy_tree(ctx, src.rel, src_host, target, uid, gid)
        else:
            if dest_is_dir:
                parent = mkdir_in_root(rootfs, dest)
                target = parent / posixpath.basename(src.rel)
            else:
                parent = mkdir_in_root(rootfs, posixpath.dirname(dest.rstrip("/")) or "/")
                target = parent / posixpath.basename(dest.rstrip("/"))
            _copy_entry(src_host, target, uid, gid)


def _copy_tree(ctx: BuildContext, rel: str, src: Path, dst: Path, uid: int, gid: int) -> None:
    os.lchown(dst, uid, gid)
    dir_times: list[tuple[Path, Path]] = [(src, dst)]
    for dirpath, dirnames, filenames in os.walk(src):
        keep = []
        for name in sorted(dirnames):
            r = os.path.relpath(os.path.join(dirpath, name), ctx.root)
            if not ctx.excluded(r):
                keep.append(name)
        dirnames[:] = keep
        out_dir = dst / os.path.relpath(dirpath, src)
        for name in dirnames:
            s, d = Path(dirpath, name), out_dir / name
            if d.is_symlink() or (d.exists() and not d.is_dir()):
                d.unlink()
            d.mkdir(exist_ok=True)
            st = os.lstat(s)
            os.lchown(d, uid, gid)
            os.chmod(d, stat.S_IMODE(st.st_mode))
            dir_times.append((s, d))
        for name in sorted(filenames):
            r = os.path.relpath(os.path.join(dirpath, name), ctx.root)
            if ctx.excluded(r):
                continue
            _copy_entry(Path(dirpath, name), out_dir / name, uid, gid)
    for s, d in reversed(dir_times):
        st = os.lstat(s)
        if d != dst:
            os.utime(d, ns=(st.st_atime_ns, st.st_mtime_ns))
    del rel


def _copy_entry(src: Path, dst: Path, uid: int, gid: int) -> None:
    st = os.lstat(src)
    if dst.is_dir() and not dst.is_symlink():
        if stat.S_ISDIR(st.st_mode):
            return
        shutil.rmtree(dst)
    elif os.path.lexists(dst):
        dst.unlink()
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(src), dst)
        os.lchown(dst, uid, gid)
    elif stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode):
        if stat.S_ISREG(st.st_mode):
            with open(src, "rb") as fsrc, open(dst, "xb") as fdst:
                shutil.copyfileobj(fsrc, fdst, 1 << 20)
        else:
            dst.mkdir()
        os.lchown(dst, uid, gid)  # before chmod: chown clears setuid/setgid bits
        os.chmod(dst, stat.S_IMODE(st.st_mode))
    else:
        return  # sockets, devices and fifos in a context are not copied
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
