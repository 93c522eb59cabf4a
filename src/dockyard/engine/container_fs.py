"""A container's files: `cp` (archive GET/HEAD/PUT), `diff`, `export` and `commit`.

Paths are resolved inside the container as a chroot would (diff.fsutil.resolve_in_root).
A running container is reached through /proc/<pid>/root, which sees its volumes and tmpfs
mounts; a stopped one gets its overlay mounted for the operation (and unmounted after), with
volume and bind mounts mapped by their targets. `diff` and `commit` read the writable
snapshot's upper dir directly, the way overlay2 computes changes.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shlex
import stat
import tarfile
import tempfile
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from dockyard.diff.applier import apply_layer
from dockyard.diff.differ import write_layer_tar
from dockyard.diff.fsutil import resolve_in_root
from dockyard.engine.container_record import Container
from dockyard.errors import Conflict, InvalidArgument, NotFound, NotSupported, RuntimeFailure
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

    def locate(self, path: str) -> Path:
        """The host path for `path`; a final symlink is not followed (Docker's cp copies
        the link itself unless the client asks for its target, `cp -L`)."""
        if not path.startswith("/"):
            path = "/" + path
        clean = os.path.normpath(path)
        root = self.root
        for target, source in self.mounts:
            if clean == target or clean.startswith(target + "/"):
                root, clean = source, clean[len(target) :] or "/"
                break
        parent, last = os.path.split(clean)
        if not last:
            return resolve_in_root(root, clean)
        return resolve_in_root(root, parent) / last


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


def path_stat(view: FsView, path: str, rec: Container) -> dict[str, Any]:
    host = view.locate(path)
    try:
        st = os.lstat(host)
    except OSError:
        raise _not_found(path, rec) from None
    link = ""
    if stat.S_ISLNK(st.st_mode):
        link = os.readlink(host)
    name = os.path.basename(path.rstrip("/")) or "/"
    return {
        "name": name,
        "size": st.st_size,
        "mode": go_file_mode(st),
        "mtime": datetime.fromtimestamp(st.st_mtime, UTC).isoformat().replace("+00:00", "Z"),
        "linkTarget": link,
    }


def stat_header(info: dict[str, Any]) -> str:
    return base64.b64encode(json.dumps(info).encode()).decode()


def _rebase_name(path: str) -> str:
    # Docker keeps a trailing "/." (copy the directory's contents): filepath.Base gives ".".
    if path.endswith("/.") or path == ".":
        return "."
    return os.path.basename(path.rstrip("/")) or "."


def write_archive(view: FsView, path: str, out: IO[bytes], rec: Container) -> None:
    """A tar of `path` (named by its base name, as Docker's TarResourceRebase does)."""
    host = view.locate(path)
    if not os.path.lexists(host):
        raise _not_found(path, rec)
    if path.endswith("/") and not host.is_dir():
        raise InvalidArgument(f"not a directory: {path}")

    def numeric(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uname = info.gname = ""
        return info

    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        tar.add(str(host), arcname=_rebase_name(path), recursive=True, filter=numeric)


def extract_archive(
    view: FsView, path: str, stream: IO[bytes], rec: Container, *, copy_uid_gid: bool
) -> None:
    if rec.host_config.received.get("ReadonlyRootfs"):
        ro = not any(path.startswith(m.spec.target) for m in rec.mounts if not m.spec.readonly)
        if ro:
            raise Conflict("container rootfs is marked read-only")
    host = view.locate(path)
    if not host.exists():
        raise _not_found(path, rec)
    if not host.is_dir():
        raise InvalidArgument(f"extraction point is not a directory: {path}")
    with tempfile.TemporaryFile() as spool:
        while chunk := stream.read(1 << 20):
            spool.write(chunk)
        spool.seek(0)
        names: list[str] = []
        if not copy_uid_gid:
            try:
                with tarfile.open(fileobj=spool, mode="r:*") as tar:
                    names = [m.name for m in tar.getmembers()]
            except tarfile.TarError as e:
                raise InvalidArgument(f"the archive is not a valid tar: {e}") from None
            spool.seek(0)
        apply_layer(spool, host)
    # `docker cp` without -a: what lands in the container belongs to its root (moby).
    for name in names:
        with contextlib.suppress(OSError):
            os.lchown(resolve_in_root(host, name), 0, 0)


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

    for dirpath, dirnames, filenames in os.walk(upper):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, upper)
        for name in sorted(dirnames + filenames):
            full = os.path.join(dirpath, name)
            rel = os.path.normpath(os.path.join(rel_dir, name))
            st = os.lstat(full)
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
            await mgr.runc.pause(rec.id)
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
                await mgr.runc.resume(rec.id)
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
