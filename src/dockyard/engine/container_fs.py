"""A container's files: `cp` (archive GET/HEAD/PUT), `diff`, `export` and `commit`.

Paths are resolved inside the container as a chroot would, by the kernel, relative to an
open directory of the container's root (diff.inroot: openat2 RESOLVE_IN_ROOT), and every read
and write names one final component relative to a directory fd: a running container that
swaps a directory for a symlink to `/` mid-copy cannot point us at the host (CVE-2018-15664).
A running container is reached through /proc/<pid>/root, which sees its volumes and tmpfs
mounts; a stopped one gets its overlay mounted for the operation (and unmounted after), with
volume and bind mounts mapped by their targets. `diff` and `commit` read the writable
snapshot's upper dir directly, the way overlay2 computes changes.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import errno
import json
import os
import shlex
import stat
import tempfile
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO

from dockyard.diff.applier import ApplyOptions, apply_layer
from dockyard.diff.differ import write_layer_tar
from dockyard.diff.inroot import Root, lstat_at, resolved_name
from dockyard.diff.treetar import OwnerNames, TreeOptions, write_contents, write_tree
from dockyard.engine.container_record import Container
from dockyard.errors import (
    Conflict,
    DockyardError,
    InvalidArgument,
    NotFound,
    NotSupported,
    RuntimeFailure,
)
from dockyard.image.config import HistoryEntry, build_image_config, now_rfc3339

if TYPE_CHECKING:
    from dockyard.engine.containers import ContainerManager

# Go's os.FileMode type bits (the docker CLI reads them from X-Docker-Container-Path-Stat).
GO_MODE_DIR = 1 << 31
GO_MODE_SYMLINK = 1 << 27
GO_MODE_DEVICE = 1 << 26
GO_MODE_PIPE = 1 << 25
GO_MODE_SOCKET = 1 << 24
GO_MODE_SETUID = 1 << 23
GO_MODE_SETGID = 1 << 22
GO_MODE_CHARDEV = 1 << 21
GO_MODE_STICKY = 1 << 20


def go_file_mode(st: os.stat_result) -> int:
    mode = st.st_mode & 0o777
    if stat.S_ISDIR(st.st_mode):
        mode |= GO_MODE_DIR
    elif stat.S_ISLNK(st.st_mode):
        mode |= GO_MODE_SYMLINK
    elif stat.S_ISCHR(st.st_mode):
        mode |= GO_MODE_DEVICE | GO_MODE_CHARDEV
    elif stat.S_ISBLK(st.st_mode):
        mode |= GO_MODE_DEVICE
    elif stat.S_ISFIFO(st.st_mode):
        mode |= GO_MODE_PIPE
    elif stat.S_ISSOCK(st.st_mode):
        mode |= GO_MODE_SOCKET
    if st.st_mode & stat.S_ISUID:
        mode |= GO_MODE_SETUID
    if st.st_mode & stat.S_ISGID:
        mode |= GO_MODE_SETGID
    if st.st_mode & stat.S_ISVTX:
        mode |= GO_MODE_STICKY
    return mode


class FsView:
    """Where a container's paths live on the host for one operation."""

    def __init__(self, root: Path, mounts: list[tuple[str, Path]]) -> None:
        self.root = root
        self.mounts = sorted(mounts, key=lambda m: len(m[0]), reverse=True)

    def root_for(self, path: str) -> tuple[Path, str, str]:
        """(host directory to resolve in, the path inside it, the container path of that
        directory): a stopped container's volumes and binds are roots of their own."""
        # Cleaned lexically first, as moby's filepath.Join("/", path) does, keeping a trailing
        # "/" or "/." (they decide whether the last component is followed).
        suffix = "/." if path.endswith("/.") else "/" if path.endswith("/") else ""
        clean = os.path.normpath("/" + path.lstrip("/"))
        for target, source in self.mounts:
            if clean == target or clean.startswith(target + "/"):
                rest = clean[len(target) :]
                return source, rest + suffix if rest else "/", target
        return self.root, clean + suffix if clean != "/" else "/", "/"


def _follows_last(path: str) -> bool:
    # moby container.ResolvePath: the last component is followed only when the path ends in
    # a separator or "/." (archive.PreserveTrailingDotOrSeparator).
    return path.endswith("/") or path.endswith("/.") or path in (".", "")


def _fs_error(exc: OSError, path: str, rec: Container) -> DockyardError:
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return _not_found(path, rec)
    if exc.errno == errno.ELOOP:
        return InvalidArgument(f"too many levels of symbolic links: {path}")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return Conflict(f"{path}: {exc.strerror}")
    return RuntimeFailure(f"{path}: {exc.strerror or exc}")


@contextlib.asynccontextmanager
async def fs_view(
    mgr: ContainerManager, rec: Container, *, rootfs_only: bool = False
) -> AsyncIterator[FsView]:
    """`rootfs_only`: the container's own files without /proc, /sys, volumes (export)."""
    pid = rec.state.pid
    rootfs = mgr.root / rec.id / "rootfs"
    if rootfs_only and os.path.ismount(rootfs):
        yield FsView(rootfs, [])
        return
    if rec.state.alive and pid and Path(f"/proc/{pid}/root").exists():
        yield FsView(Path(f"/proc/{pid}/root"), [])
        return
    mounts: list[tuple[str, Path]] = []
    for m in rec.mounts:
        if m.spec.type == "volume":
            mounts.append((m.spec.target, mgr.volumes.path(m.volume)))
        elif m.spec.type == "bind":
            mounts.append((m.spec.target, Path(m.spec.source)))
    if os.path.ismount(rootfs):
        yield FsView(rootfs, mounts)
        return
    image_cfg = mgr.images.config(rec.image_id)
    chain = mgr.layers.chain_for(image_cfg.diff_ids)
    await asyncio.to_thread(mgr.snapshots.mount, rootfs, chain.lowers_top_first, rec.snapshot)
    try:
        yield FsView(rootfs, mounts)
    finally:
        await asyncio.shield(asyncio.to_thread(mgr.snapshots.unmount, rootfs))


def _not_found(path: str, rec: Container) -> NotFound:
    return NotFound(f"Could not find the file {path} in container {rec.name}")


class ArchiveSource:
    """A container path opened once for `HEAD`/`GET /archive`: its stat (the
    X-Docker-Container-Path-Stat header) and its tar come from the same directory fd, so
    the answer cannot change between the header and the body, nor leave the container."""

    def __init__(self, view: FsView, path: str, rec: Container) -> None:
        self.path = path
        self.container_root = view.root
        host_root, inner, mounted_at = view.root_for(path)
        self.root = Root.at(host_root)
        self.dirfd = -1
        try:
            if _follows_last(inner):
                try:
                    self.dirfd = self.root.open_dir(inner)
                except NotADirectoryError:
                    raise InvalidArgument(f"not a directory: {path}") from None
                self.name = "."
                st = os.fstat(self.dirfd)
            else:
                self.dirfd, self.name = self.root.parent(inner)
                st = lstat_at(self.dirfd, self.name)
            link = _link_target(self.root, inner, mounted_at) if stat.S_ISLNK(st.st_mode) else ""
        except OSError as e:
            self.close()
            raise _fs_error(e, path, rec) from None
        except BaseException:
            self.close()
            raise
        self.info: dict[str, Any] = {
            "name": os.path.basename(path.rstrip("/")) or "/",
            "size": st.st_size,
            "mode": go_file_mode(st),
            "mtime": datetime.fromtimestamp(st.st_mtime, UTC).isoformat().replace("+00:00", "Z"),
            "linkTarget": link,
        }

    def write(self, out: IO[bytes]) -> None:
        """The tar, members named from the path's base name (Docker's TarResourceRebase),
        owners named from the container's /etc/passwd and /etc/group as dockerd 20.10
        names them (measured: uid 1234 is "bob" when the container's passwd says so, a
        group only the host has stays nameless)."""
        opts = TreeOptions(names=container_owner_names(self.container_root))
        write_tree(self.dirfd, self.name, _rebase_name(self.path), out, opts)

    def close(self) -> None:
        if self.dirfd >= 0:
            os.close(self.dirfd)
            self.dirfd = -1
        self.root.close()

    def __enter__(self) -> ArchiveSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_USER_DB_LIMIT = 4 << 20  # a container's passwd larger than this is not read


def _read_in_root(root: Path, path: str) -> bytes:
    try:
        with Root.at(root) as r:
            fd = r.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return b""
    with os.fdopen(fd, "rb", buffering=0) as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return b""
        return f.read(_USER_DB_LIMIT)


def _colon_file(data: bytes, min_fields: int, id_field: int) -> dict[int, bytes]:
    """Go os/user's reading of /etc/passwd and /etc/group (lookup_unix.go): leading blanks
    and '#' lines skipped, entries starting with '+' or '-' (NIS) ignored, the first line
    with an id wins."""
    out: dict[int, bytes] = {}
    for raw in data.splitlines():
        line = raw.lstrip(b" \t")
        if not line or line.startswith(b"#"):
            continue
        parts = line.split(b":", min_fields)
        if len(parts) < min_fields or not parts[0] or parts[0][:1] in (b"+", b"-"):
            continue
        if parts[id_field].isdigit():
            out.setdefault(int(parts[id_field]), parts[0])
    return out


def container_owner_names(root: Path) -> OwnerNames:
    """The container's user and group names, read inside its root (never the host's)."""
    return OwnerNames(
        users=_colon_file(_read_in_root(root, "etc/passwd"), 6, 2),
        groups=_colon_file(_read_in_root(root, "etc/group"), 4, 2),
    )


def path_stat(view: FsView, path: str, rec: Container) -> dict[str, Any]:
    with ArchiveSource(view, path, rec) as src:
        return src.info


def _link_target(root: Root, inner: str, mounted_at: str) -> str:
    """Docker's linkTarget: the link fully evaluated in the container (moby StatPath), which
    `docker cp -L` copies from; a dangling link gives its target as written, made absolute."""
    try:
        resolved = resolved_name(root.fd, inner)
    except OSError:
        dirfd, name = root.parent(inner)
        try:
            target = os.readlink(name, dir_fd=dirfd)
        finally:
            os.close(dirfd)
        resolved = os.path.normpath(os.path.join(os.path.dirname("/" + inner.lstrip("/")), target))
    return os.path.normpath(mounted_at + "/" + resolved) if mounted_at != "/" else resolved


def stat_header(info: dict[str, Any]) -> str:
    return base64.b64encode(json.dumps(info).encode()).decode()


def _rebase_name(path: str) -> str:
    # Docker keeps a trailing "/." (copy the directory's contents): filepath.Base gives ".".
    if path.endswith("/.") or path == ".":
        return "."
    return os.path.basename(path.rstrip("/")) or "."


def export_archive(view: FsView, out: IO[bytes]) -> None:
    """`docker export`: the container's own files, member names without "./"; /proc and /sys
    stay empty and nothing mounted below the root is descended into."""
    with Root.at(view.root) as root:
        write_contents(
            root.fd,
            out,
            TreeOptions(xattrs=True, one_file_system=True, skip=frozenset({"proc", "sys"})),
        )


def extract_archive(
    view: FsView,
    path: str,
    stream: BinaryIO,
    rec: Container,
    *,
    copy_uid_gid: bool,
    no_overwrite_dir_nondir: bool = False,
) -> None:
    if rec.host_config.received.get("ReadonlyRootfs"):
        ro = not any(path.startswith(m.spec.target) for m in rec.mounts if not m.spec.readonly)
        if ro:
            raise Conflict("container rootfs is marked read-only")
    host_root, inner, _ = view.root_for(path)
    # moby's extractToDir: plain Untar. Without -a what lands belongs to the container's
    # root (ChownOpts 0:0); `.wh.` entries are ordinary files, as dockerd 20.10 writes them
    # (measured, issue 11 §6); a relative symlink may not point above the destination.
    opts = ApplyOptions(
        owner=None if copy_uid_gid else (0, 0),
        no_overwrite_dir_nondir=no_overwrite_dir_nondir,
        whiteouts_as_files=True,
        confine_symlinks=True,
        where=os.path.normpath("/" + path.lstrip("/")),
    )
    try:
        with Root.at(host_root) as root:
            try:
                dest = root.sub(inner)
            except NotADirectoryError:
                raise InvalidArgument(f"extraction point is not a directory: {path}") from None
            with dest:
                apply_layer(stream, dest, opts)
    except OSError as e:
        raise _fs_error(e, path, rec) from None


def changes(mgr: ContainerManager, rec: Container) -> list[dict[str, Any]]:
    """`docker diff`: Kind 0 = changed, 1 = added, 2 = deleted, from the upper dir."""
    upper = mgr.snapshots.fs(rec.snapshot)
    image_cfg = mgr.images.config(rec.image_id)
    lowers = [
        mgr.snapshots.fs(s) for s in mgr.layers.chain_for(image_cfg.diff_ids).lowers_top_first
    ]
    out: list[dict[str, Any]] = []

    def in_lower(rel: str) -> bool:
        return any(os.path.lexists(low / rel) for low in lowers)

    # fwalk: each directory is entered by fd without following a symlink, so a running
    # container that swaps one for a link to `/` cannot make us list the host's files
    for dirpath, dirnames, filenames, dirfd in os.fwalk(upper):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, upper)
        for name in sorted(dirnames + filenames):
            rel = os.path.normpath(os.path.join(rel_dir, name))
            try:
                st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
            except FileNotFoundError:
                continue  # removed since the listing
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                kind = 2
            elif in_lower(rel):
                kind = 0
            else:
                kind = 1
            out.append({"Path": "/" + rel, "Kind": kind})
    out.sort(key=lambda c: c["Path"])
    return out


def apply_change(cfg: dict[str, Any], line: str, what: str = "commit") -> None:
    """One `--change` line of `docker commit` or `docker import` applied to an image's
    container config (the Dockerfile instructions dockerd accepts there)."""
    keyword, _, rest = line.strip().partition(" ")
    keyword = keyword.upper()
    rest = rest.strip()

    def words() -> list[str]:
        if rest.startswith("["):
            try:
                value = json.loads(rest)
            except ValueError:
                raise InvalidArgument(f"invalid --change {line!r}") from None
            return [str(v) for v in value]
        return ["/bin/sh", "-c", rest]

    if keyword == "CMD":
        cfg["Cmd"] = words()
    elif keyword == "ENTRYPOINT":
        cfg["Entrypoint"] = words()
    elif keyword == "ENV":
        pairs = shlex.split(rest)
        if pairs and "=" not in pairs[0]:
            pairs = [f"{pairs[0]}={' '.join(pairs[1:])}"]
        env = list(cfg.get("Env") or [])
        for p in pairs:
            key = p.split("=", 1)[0]
            env = [e for e in env if e.split("=", 1)[0] != key] + [p]
        cfg["Env"] = env
    elif keyword == "LABEL":
        labels = dict(cfg.get("Labels") or {})
        for p in shlex.split(rest):
            k, _, v = p.partition("=")
            labels[k] = v
        cfg["Labels"] = labels
    elif keyword == "EXPOSE":
        ports = dict(cfg.get("ExposedPorts") or {})
        for p in rest.split():
            ports[p if "/" in p else f"{p}/tcp"] = {}
        cfg["ExposedPorts"] = ports
    elif keyword == "VOLUME":
        vols = dict(cfg.get("Volumes") or {})
        for v in words() if rest.startswith("[") else rest.split():
            vols[v] = {}
        cfg["Volumes"] = vols
    elif keyword == "USER":
        cfg["User"] = rest
    elif keyword == "WORKDIR":
        cfg["WorkingDir"] = rest
    elif keyword == "STOPSIGNAL":
        cfg["StopSignal"] = rest
    else:
        raise NotSupported(f"{what} --change {keyword} is not supported by dockyard")


async def commit(
    mgr: ContainerManager,
    rec: Container,
    *,
    repo: str,
    tag: str,
    comment: str,
    author: str,
    pause: bool,
    changes_: list[str],
    config: dict[str, Any] | None,
) -> str:
    image_cfg = mgr.images.config(rec.image_id)
    cfg = rec.config.to_docker()
    for key in (
        "Hostname",
        "Domainname",
        "Image",
        "AttachStdin",
        "AttachStdout",
        "AttachStderr",
        "Tty",
        "OpenStdin",
        "StdinOnce",
    ):
        cfg.pop(key, None)
    cfg.update({k: v for k, v in (config or {}).items() if v})
    for line in changes_:
        if line.strip():
            apply_change(cfg, line)
    paused_here = False
    if pause and rec.state.alive and not rec.state.paused:
        # moby daemon/commit.go ignores a failed pause: the container may be exiting (its
        # process gone, the exit not recorded yet), and the commit goes on without it.
        with contextlib.suppress(RuntimeFailure):
            await mgr.runtime.pause(rec.id)
            paused_here = True
    try:
        upper = mgr.snapshots.fs(rec.snapshot)
        tmp_dir = mgr.daemon_root / "tmp"
        tmp_dir.mkdir(exist_ok=True)
        with tempfile.TemporaryFile(dir=tmp_dir) as spool:
            await asyncio.to_thread(write_layer_tar, upper, spool)
            spool.seek(0)
            layer = await asyncio.to_thread(mgr.layers.apply, spool, image_cfg.diff_ids)
    finally:
        if paused_here:
            with contextlib.suppress(Exception):
                await mgr.runtime.resume(rec.id)
    created = now_rfc3339()
    history = list(image_cfg.history)
    history.append(
        HistoryEntry(created, " ".join([rec.path, *rec.args]), comment=comment).to_json()
    )
    raw = build_image_config(
        container_config=cfg,
        diff_ids=[*image_cfg.diff_ids, layer.diff_id],
        history=history,
        created=created,
        parent=image_cfg,
        author=author,
        comment=comment,
    )
    tags = [f"{repo}:{tag or 'latest'}"] if repo else []
    return mgr.images.put(raw, parent=rec.image_id, tags=tags)


def iter_file(f: IO[bytes]) -> Iterator[bytes]:
    while chunk := f.read(1 << 16):
        yield chunk
