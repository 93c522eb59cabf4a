"""COPY and ADD into a mounted step root filesystem.

Docker's rules (legacy builder, builder/dockerfile/copy.go and the Dockerfile reference):
- sources are relative to the source tree (the context, or a stage/image root for --from)
  and may not leave it (`forbidden path outside the build context`); symlinks inside a
  source path resolve within the tree;
- wildcards follow Go's filepath.Match per path component;
- a directory source copies its *contents*; a file goes to `dest` itself unless `dest` ends in
  `/`, is an existing directory, or several sources are given (then `dest` must end in `/`);
- copied entries are owned by 0:0 unless --chown says otherwise; modes and mtimes are kept;
  missing parent directories of `dest` are created (0755, root).
BuildKit's flags: --chmod (files and directories copied), --exclude (patterns matched against
paths below each source), --parents (keep the source's parent directories, `/./` pivots).
"""

from __future__ import annotations

import errno
import fnmatch
import hashlib
import os
import posixpath
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from dockyard.builder.context import BuildContext
from dockyard.builder.copylinks import LinkPlan
from dockyard.diff.fsutil import mkdir_in_root, resolve_in_root
from dockyard.errors import BuildFailure
from dockyard.frontend.chmod import Chmod
from dockyard.frontend.dockerignore import IgnoreMatcher

_GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class CopySource:
    rel: str  # path relative to the tree root, "" for the root itself
    is_dir: bool
    keep: str = ""  # with --parents: the part of `rel` to recreate under dest
    name: str = ""  # the name as written (a symlink source keeps its own name, not its target's)

    @property
    def basename(self) -> str:
        return self.name or posixpath.basename(self.rel)


@dataclass(frozen=True)
class CopyOptions:
    uid: int = 0
    gid: int = 0
    chmod: Chmod | None = None
    parents: bool = False
    exclude: IgnoreMatcher | None = None
    # the legacy builder's chown after the copy, which clears setuid/setgid (Semantics)
    chown_clears_setid: bool = False
    # a directory's missing destination parents are root's, not the --chown owner's (Semantics)
    dir_parents_owned_by_root: bool = False
    # COPY --from without --chown: entries keep their owners (and so their setuid bits), as
    # moby's dispatchCopy sets preserveOwnership and skips the ownership fix-up
    preserve_owners: bool = False
    second_mtimes: bool = False  # BuildContext.second_mtimes

    def owner(self, st: os.stat_result) -> tuple[int, int]:
        return (st.st_uid, st.st_gid) if self.preserve_owners else (self.uid, self.gid)

    def for_dir_parents(self) -> CopyOptions:
        """Who owns the destination directories a directory copy or an archive makes."""
        return CopyOptions() if self.dir_parents_owned_by_root else self

    def mode(self, st: os.stat_result) -> int:
        """The mode a copied entry gets: --chmod's (octal, or symbolic applied to the
        entry's own mode), else the source's."""
        if self.chmod is None:
            return stat.S_IMODE(st.st_mode)
        return self.chmod.apply(st.st_mode, stat.S_ISDIR(st.st_mode))

    def mtime(self, st: os.stat_result) -> int:
        ns = st.st_mtime_ns
        return ns - ns % 1_000_000_000 if self.second_mtimes else ns


def _not_found(cmd: str, src: str) -> BuildFailure:
    return BuildFailure(
        f"{cmd} failed: file not found in build context or excluded by .dockerignore: "
        f"stat {src}: file does not exist"
    )


def resolve_sources(
    tree: BuildContext,
    sources: list[str],
    cmd: str = "COPY",
    parents: bool = False,
    empty_wildcard_ok: bool = False,
) -> list[CopySource]:
    """The sources named, a wildcard expanded; one that matches nothing is an error unless
    `empty_wildcard_ok` (BuildKit copies nothing for it)."""
    out: list[CopySource] = []
    for src in sources:
        clean = posixpath.normpath(src)
        if clean == ".." or clean.startswith("../"):
            raise BuildFailure(f"{cmd} failed: forbidden path outside the build context: {src} ()")
        pivot = ""
        if parents and "/./" in "/" + src:
            pivot = posixpath.normpath(("/" + src).split("/./", 1)[0]).lstrip("/")
        clean = posixpath.normpath("/" + src).lstrip("/")
        if clean == ".":
            clean = ""
        if _GLOB_CHARS & set(clean):
            matches = [m for m in _glob(tree, clean) if not tree.excluded(m)]
            if src.endswith("/") and not empty_wildcard_ok:
                # the legacy builder matches the pattern as written (Go's filepath.Match)
                # against paths, which never end in "/": `COPY dir*/ /d/` copies nothing
                # and fails (measured on 20.10)
                matches = []
            if not matches and not empty_wildcard_ok:
                raise BuildFailure(f"{cmd} failed: no source files were specified")
            for m in matches:
                full = tree.root / m
                is_dir = full.is_dir() and not full.is_symlink()
                out.append(CopySource(m, is_dir, _keep(m, pivot) if parents else ""))
            continue
        host = resolve_in_root(tree.root, clean) if clean else tree.root
        rel = os.path.relpath(host, tree.root)
        rel = "" if rel == "." else rel
        if not os.path.lexists(host) or (rel and tree.excluded(rel)):
            raise _not_found(cmd, src)
        out.append(
            CopySource(
                rel,
                host.is_dir(),
                _keep(clean, pivot) if parents else "",
                posixpath.basename(clean),
            )
        )
    return out


def _keep(rel: str, pivot: str) -> str:
    if pivot and (rel == pivot or rel.startswith(pivot + "/")):
        return rel[len(pivot) :].lstrip("/")
    return rel


def _glob(tree: BuildContext, pattern: str) -> list[str]:
    parts = pattern.split("/")
    found = [""]
    for i, part in enumerate(parts):
        nxt: list[str] = []
        for base in found:
            d = tree.root / base
            if not d.is_dir() or (d.is_symlink() and i > 0):
                continue
            for name in sorted(os.listdir(d)):
                if fnmatch.fnmatchcase(name, part):
                    nxt.append(f"{base}/{name}" if base else name)
        found = nxt
    return found


def _excluded(tree: BuildContext, opts: CopyOptions, src: CopySource, rel: str) -> bool:
    if tree.excluded(rel):
        return True
    if opts.exclude is None:
        return False
    below = os.path.relpath(rel, src.rel) if src.rel else rel
    return opts.exclude.matches(below) or opts.exclude.matches(rel)


def _memo_key(tree: BuildContext, sources: list[CopySource], opts: CopyOptions) -> object | None:
    """What a kept context remembers `file_digests`' whole answer by (None: not remembered)."""
    if tree.digests is None or tree.ignore is not None or opts.exclude is not None:
        return None
    return (tuple(sources), tree.dropped)


def remembered_digests(
    tree: BuildContext, sources: list[CopySource], opts: CopyOptions | None = None
) -> dict[str, str] | None:
    """`file_digests`' answer when a kept context, unchanged since the same sources were
    hashed, remembers it whole (no file is read or listed); None otherwise."""
    memo = _memo_key(tree, sources, opts or CopyOptions())
    if memo is None or tree.digests is None:
        return None
    return tree.digests.result(memo)


def is_plain_source(src: str) -> bool:
    """A source named without a wildcard: resolving it is a few lstat calls."""
    return not _GLOB_CHARS & set(src)


def file_digests(
    tree: BuildContext, sources: list[CopySource], opts: CopyOptions | None = None
) -> dict[str, str]:
    """Digest per path read (type, mode, contents or link target; never mtimes, which change
    on every checkout and would defeat the cache). A kept context remembers its digests, so
    only the files that changed since its last build are read (builder/digests.py)."""
    opts = opts or CopyOptions()
    known = remembered_digests(tree, sources, opts)
    if known is not None:
        return known
    memo = _memo_key(tree, sources, opts)
    out: dict[str, str] = {}
    root = str(tree.root)
    for s in sources:
        if not s.is_dir:
            out[s.rel] = tree.digest(s.rel)
            continue
        out[s.rel or "."] = tree.digest(s.rel)
        base = os.path.join(root, s.rel) if s.rel else root
        for dirpath, dirnames, filenames in os.walk(base):
            rel_dir = os.path.relpath(dirpath, root)
            prefix = "" if rel_dir == "." else rel_dir + "/"
            keep = []
            for name in sorted(dirnames):
                rel = prefix + name
                if not _excluded(tree, opts, s, rel):
                    keep.append(name)
                    out[rel] = tree.digest(rel)
            dirnames[:] = keep
            for name in sorted(filenames):
                rel = prefix + name
                if not _excluded(tree, opts, s, rel):
                    out[rel] = tree.digest(rel)
    if memo is not None and tree.digests is not None:
        tree.digests.keep_result(memo, out)
    return out


def combined_digest(digests: dict[str, str]) -> str:
    h = hashlib.sha256()
    for path in sorted(digests):
        h.update(f"{path}\0{digests[path]}\n".encode())
    return h.hexdigest()


def copy_into(
    tree: BuildContext,
    sources: list[CopySource],
    rootfs: Path,
    dest: str,
    opts: CopyOptions | None = None,
    cmd: str = "COPY",
    links: LinkPlan | None = None,
) -> None:
    """`links`: a kept context's files that can be shared with the layer are left to it
    (builder/copylinks.py), for files of directory sources."""
    opts = opts or CopyOptions()
    if len(sources) > 1 and not dest.endswith("/"):
        raise BuildFailure(
            f"When using {cmd} with more than one source file, the destination must be a "
            "directory and end with a /"
        )
    dest_host = resolve_in_root(rootfs, dest)
    dest_is_dir = dest.endswith("/") or dest_host.is_dir()
    for src in sources:
        src_host = tree.root / src.rel if src.rel else tree.root
        if opts.parents and src.keep:
            if src.is_dir:
                target, created = make_dirs(rootfs, posixpath.join(dest, src.keep), opts)
                # an existing target is left as it is, so overlay may not have copied it up:
                # its files cannot be linked into the upper dir
                _copy_tree(tree, src, src_host, target, opts, created, links, top=created)
            else:
                parent, _ = make_dirs(
                    rootfs, posixpath.join(dest, posixpath.dirname(src.keep)), opts
                )
                _copy_entry(src_host, parent / posixpath.basename(src.keep), opts)
            continue
        if src.is_dir:
            # The legacy builder copies a directory as one tar (moby copyDirectory ->
            # CopyWithTar): the parents it makes are root's, only the destination and what
            # is copied get the --chown owner (measured on 20.10). A file's parents are the
            # owner's in both builders (copyFile -> MkdirAllAndChownNew).
            target, created = make_dirs(rootfs, dest, opts.for_dir_parents())
            _copy_tree(tree, src, src_host, target, opts, created, links)
            # Docker's copy leaves the destination directory modified (mtime now) even when
            # the source directory is empty, so it is part of the layer (measured on 20.10)
            os.utime(target)
        else:
            # Docker resolves the whole destination in the root, last component included: a
            # COPY onto a symlink writes through it (`COPY f /bin/sh` replaces /bin/busybox).
            # Into a directory, an existing entry of the same name is replaced, not followed.
            if dest_is_dir:
                parent, _ = make_dirs(rootfs, dest, opts)
                target = parent / src.basename
            else:
                target = resolve_in_root(rootfs, dest.rstrip("/") or "/")
                make_dirs(rootfs, "/" + os.path.relpath(target.parent, rootfs), opts)
            _copy_entry(src_host, target, opts)


def make_dirs(rootfs: Path, path: str, opts: CopyOptions) -> tuple[Path, bool]:
    """mkdir -p inside the root; directories it creates belong to the --chown owner
    (idtools.MkdirAllAndChownNew). Returns the directory and whether it was created."""
    target = resolve_in_root(rootfs, path)
    missing: list[Path] = []
    p = target
    while not os.path.lexists(p) and p != rootfs:
        missing.append(p)
        p = p.parent
    mkdir_in_root(rootfs, path)
    for d in missing:
        os.lchown(d, opts.uid, opts.gid)
    return target, bool(missing)


def _copy_tree(
    tree: BuildContext,
    src: CopySource,
    src_host: Path,
    dst: Path,
    opts: CopyOptions,
    created: bool = True,
    links: LinkPlan | None = None,
    *,
    top: bool = True,
) -> None:
    """`top`: files directly in `dst` may be linked (`links`); those below always may,
    since every directory the walk makes or enters is changed through the mount."""
    if created:
        # fixPermissions leaves an existing destination directory's owner alone
        src_st = os.lstat(src_host)
        os.lchown(dst, *opts.owner(src_st))
        if opts.chmod is not None:
            # BuildKit (since moby/buildkit#4945) gives a copied directory the mode too
            os.chmod(dst, opts.mode(src_st))
    dir_times: list[tuple[Path, Path]] = []
    inodes: dict[tuple[int, int], Path] = {}  # source inode -> its first destination
    for dirpath, dirnames, filenames in os.walk(src_host):
        keep = []
        for name in sorted(dirnames):
            r = os.path.relpath(os.path.join(dirpath, name), tree.root)
            if not _excluded(tree, opts, src, r):
                keep.append(name)
        dirnames[:] = keep
        out_dir = dst / os.path.relpath(dirpath, src_host)
        # os.walk lists a symlink to a directory among the directories: it is copied as
        # the link it is (Docker's tar of the tree holds the link), not walked into.
        for name in [n for n in dirnames if os.path.islink(os.path.join(dirpath, n))]:
            dirnames.remove(name)
            _copy_entry(Path(dirpath, name), out_dir / name, opts)
        for name in dirnames:
            s, d = Path(dirpath, name), out_dir / name
            if d.is_symlink() or (d.exists() and not d.is_dir()):
                d.unlink()
            d.mkdir(exist_ok=True)
            st = os.lstat(s)
            os.lchown(d, *opts.owner(st))
            os.chmod(d, opts.mode(st))
            dir_times.append((s, d))
        for name in sorted(filenames):
            r = os.path.relpath(os.path.join(dirpath, name), tree.root)
            if _excluded(tree, opts, src, r):
                continue
            s_path, d_path = Path(dirpath, name), out_dir / name
            st = os.lstat(s_path)
            if st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode):
                # Docker copies a directory as one tar stream: hardlinks inside it stay links.
                first = inodes.get((st.st_dev, st.st_ino))
                if first is not None:
                    if d_path.is_dir() and not d_path.is_symlink():
                        shutil.rmtree(d_path)
                    elif os.path.lexists(d_path):
                        d_path.unlink()
                    if links is not None and links.deferred(first):
                        links.link_name(first, d_path)
                    else:
                        os.link(first, d_path)
                    continue
                inodes[(st.st_dev, st.st_ino)] = d_path
            if (
                links is not None
                and (top or out_dir != dst)
                and stat.S_ISREG(st.st_mode)
                and links.defer(s_path, st, d_path, opts)
            ):
                continue
            _copy_entry(s_path, d_path, opts)
    for s, d in reversed(dir_times):
        st = os.lstat(s)
        os.utime(d, ns=(st.st_atime_ns, opts.mtime(st)))


def _copy_data(fsrc: BinaryIO, fdst: BinaryIO, size: int) -> None:
    """The bytes in the kernel (sendfile), not through our buffers: a context's thousands
    of small files cost one call each. Whatever sendfile cannot do goes the slow way."""
    offset = 0
    try:
        while offset < size:
            n = os.sendfile(fdst.fileno(), fsrc.fileno(), offset, size - offset)
            if n == 0:
                break
            offset += n
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EXDEV):
            raise
    fsrc.seek(offset)
    fdst.seek(offset)
    shutil.copyfileobj(fsrc, fdst, 1 << 20)  # a file that grew, or no sendfile


def _copy_entry(src: Path, dst: Path, opts: CopyOptions) -> None:
    st = os.lstat(src)
    if dst.is_dir() and not dst.is_symlink():
        if stat.S_ISDIR(st.st_mode):
            return
        shutil.rmtree(dst)
    elif os.path.lexists(dst):
        dst.unlink()
    owner = opts.owner(st)
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(src), dst)
        os.lchown(dst, *owner)
    elif stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode):
        if stat.S_ISREG(st.st_mode):
            with open(src, "rb") as fsrc, open(dst, "xb") as fdst:
                _copy_data(fsrc, fdst, st.st_size)
        else:
            dst.mkdir()
        os.lchown(dst, *owner)  # before chmod: chown clears setuid/setgid bits
        os.chmod(dst, opts.mode(st))
        if opts.chown_clears_setid and not opts.preserve_owners and stat.S_ISREG(st.st_mode):
            os.lchown(dst, *owner)  # the kernel's rule on chown, as after fixPermissions
    elif stat.S_ISFIFO(st.st_mode) or stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        os.mknod(dst, st.st_mode, st.st_rdev)
        os.lchown(dst, *owner)
        os.chmod(dst, opts.mode(st))
    else:
        return  # sockets are not copied (tar has no type for them)
    os.utime(dst, ns=(st.st_atime_ns, opts.mtime(st)), follow_symlinks=False)
