"""RUN --mount (BuildKit syntax) for steps run by the legacy-style builder.

- type=cache: a directory under the daemon root (`buildcache/<id>`) bind-mounted read-write;
  it persists across builds and is never part of a layer (the mount hides it from the
  overlay upper dir, and an empty mount point we had to create is removed after the step).
- type=bind: a path of the context (or of a stage/image with from=) bind-mounted read-only
  by default; `rw` gives a scratch copy whose writes are dropped, as BuildKit does.
- type=tmpfs: a tmpfs (size=).
- type=secret: content the client sent with the build (dockyard's own client only: the
  legacy /build endpoint has no BuildKit session), as a read-only file at target (default
  /run/secrets/<id>) or, with env=, an environment variable of that RUN only.
- type=ssh: an agent socket on the daemon's host, named by the client, bound at target
  (default /run/buildkit/ssh_agent.<n>, numbered per RUN as BuildKit's llb.AddSSHSocket).
  A missing secret or agent skips the mount unless `required=true`, which fails.
Options follow docs.docker.com/reference/dockerfile/#run---mount.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import hashlib
import os
import posixpath
import stat
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path

from dockyard.errors import InvalidArgument

_TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")
_KEYS = {
    "type",
    "target",
    "dst",
    "destination",
    "source",
    "src",
    "from",
    "ro",
    "readonly",
    "rw",
    "readwrite",
    "id",
    "sharing",
    "mode",
    "uid",
    "gid",
    "size",
    "required",
    "env",
}


@dataclass(frozen=True)
class MountSpec:
    type: str
    target: str
    source: str = ""
    from_: str = ""
    readonly: bool = False
    id: str = ""
    sharing: str = "shared"
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    size: str = ""
    required: bool = False
    env: str = ""

    def describe(self) -> str:
        return (
            f"type={self.type},target={self.target},source={self.source},from={self.from_},"
            f"ro={self.readonly},id={self.id},mode={self.mode},uid={self.uid},gid={self.gid},"
            f"env={self.env}"
        )


def _bool(value: str | None, key: str) -> bool:
    if value is None or value == "":
        return True
    low = value.lower()
    if low in ("true", "1"):
        return True
    if low in ("false", "0"):
        return False
    raise InvalidArgument(f"invalid value for {key}: {value}")


def parse_mount(text: str, workdir: str) -> MountSpec:
    fields = next(csv.reader([text]))
    opts: dict[str, str | None] = {}
    for f in fields:
        key, eq, value = f.partition("=")
        key = key.strip().lower()
        if key not in _KEYS:
            raise InvalidArgument(f"unexpected key '{key}' in '{f}'")
        opts[key] = value if eq else None
    typ = (opts.get("type") or "bind").lower()
    if typ not in _TYPES:
        raise InvalidArgument(f"unsupported mount type {typ!r}")
    target = opts.get("target") or opts.get("dst") or opts.get("destination") or ""
    ident = opts.get("id") or ""
    env = opts.get("env") or ""
    if env and typ != "secret":
        raise InvalidArgument("env= is only valid for type=secret mounts")
    if typ == "secret":
        # BuildKit: the id defaults to the target's base name; with env= and no target the
        # secret is only an environment variable.
        ident = ident or opts.get("source") or opts.get("src") or posixpath.basename(target)
        if not ident:
            raise InvalidArgument(f"secret mount needs id= or target= in {text!r}")
        if not target and not env:
            target = "/run/secrets/" + ident
    if typ == "ssh":
        ident = ident or "default"
    if target and not target.startswith("/"):
        target = posixpath.join(workdir, target)
    if not target and typ not in ("secret", "ssh"):
        raise InvalidArgument("mount target is required (target=PATH)")
    readonly = typ == "bind"
    if "ro" in opts or "readonly" in opts:
        readonly = _bool(opts.get("ro", opts.get("readonly")), "ro")
    if "rw" in opts or "readwrite" in opts:
        readonly = not _bool(opts.get("rw", opts.get("readwrite")), "rw")
    mode = opts.get("mode")
    uid = opts.get("uid")
    gid = opts.get("gid")
    sharing = (opts.get("sharing") or "shared").lower()
    if sharing not in ("shared", "private", "locked"):
        raise InvalidArgument(f"unsupported sharing value {sharing!r}")
    try:
        return MountSpec(
            type=typ,
            target=posixpath.normpath(target) if target else "",
            source=opts.get("source") or opts.get("src") or "",
            from_=opts.get("from") or "",
            readonly=readonly,
            id=ident,
            sharing=sharing,
            mode=int(mode, 8) if mode else None,
            uid=int(uid) if uid else None,
            gid=int(gid) if gid else None,
            size=opts.get("size") or "",
            required=_bool(opts.get("required"), "required") if "required" in opts else False,
            env=env,
        )
    except ValueError as exc:
        raise InvalidArgument(f"invalid mount option in {text!r}: {exc}") from None


def number_ssh_targets(specs: list[MountSpec]) -> list[MountSpec]:
    """Give ssh mounts without target= BuildKit's default `/run/buildkit/ssh_agent.<n>`, n
    counting the RUN's ssh mounts (llb.AddSSHSocket)."""
    out: list[MountSpec] = []
    n = 0
    for spec in specs:
        if spec.type == "ssh":
            if not spec.target:
                spec = replace(spec, target=f"/run/buildkit/ssh_agent.{n}")
            n += 1
        out.append(spec)
    return out


def check_agent_socket(path: str) -> None:
    """An ssh agent the client named must be a Unix socket on this host (the daemon binds it
    into the step; dockyard has no BuildKit session to forward an agent through)."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise InvalidArgument(f"ssh agent socket {path}: {exc.strerror}") from None
    if not stat.S_ISSOCK(st.st_mode):
        raise InvalidArgument(f"ssh agent {path} is not a Unix socket")


def cache_dir(root: Path, spec: MountSpec) -> tuple[Path, bool]:
    """The persistent directory of a cache mount (keyed by id, or target when no id), and
    whether it was just created (then a `from=` source seeds it)."""
    key = spec.id or spec.target
    name = hashlib.sha256(f"{key}\0{spec.from_}\0{spec.source}".encode()).hexdigest()[:32]
    path = root / name
    if path.exists():
        return path, False
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, spec.mode if spec.mode is not None else 0o755)
    os.chown(path, spec.uid or 0, spec.gid or 0)
    return path, True


def missing_mount_points(rootfs: Path, targets: list[str]) -> list[str]:
    """For each target, the first path component that does not exist yet in the rootfs: the
    stub runc will create, to be removed after the step (BuildKit's mount-stub cleaner)."""
    out: list[str] = []
    for t in targets:
        parts = [p for p in t.split("/") if p]
        cur = ""
        for p in parts:
            cur = f"{cur}/{p}"
            if not os.path.lexists(rootfs / cur.lstrip("/")):
                out.append(cur)
                break
    return out


def remove_stubs(rootfs: Path, stubs: list[str], targets: list[str] | None = None) -> None:
    """Remove the stubs runc created: empty directories, and the empty files it makes for
    file and socket binds (a secret's file under a new /run/secrets must not reach the layer,
    as BuildKit guarantees). Only empty files named in `targets` go inside a stub directory."""
    files = {rootfs / t.lstrip("/") for t in targets or []}
    for stub in stubs:
        path = rootfs / stub.lstrip("/")
        if path.is_symlink() or not path.exists():
            continue
        if path.is_dir():
            for dirpath, dirnames, filenames in os.walk(path, topdown=False):
                for f in filenames:
                    _unlink_empty(Path(dirpath) / f, files)
                for d in dirnames:
                    try:
                        os.rmdir(os.path.join(dirpath, d))
                    except OSError:
                        pass
            try:
                os.rmdir(path)
            except OSError:
                pass
        elif path.is_file() and path.stat().st_size == 0:
            path.unlink()


def _unlink_empty(path: Path, allowed: set[Path]) -> None:
    if path in allowed and not path.is_symlink() and path.is_file() and path.stat().st_size == 0:
        path.unlink()


class CacheMounts:
    """The daemon's `type=cache` directories (under `root`, outside the scratch area the
    engine empties at start-up, so they persist across builds). `sharing=locked` lets one
    step at a time use a directory, across concurrent steps and builds of this daemon;
    `sharing=private` gives a step a new, empty one while another step uses it (BuildKit)."""

    def __init__(self, root: Path, scratch: Path) -> None:
        self.root = root
        self.scratch = scratch
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}

    async def enter(
        self,
        stack: contextlib.AsyncExitStack,
        spec: MountSpec,
        seed: Callable[[Path], Awaitable[None]] | None = None,
    ) -> Path:
        """The directory to mount for `spec`, held until `stack` closes; `seed` fills a cache
        directory that did not exist yet (`from=`)."""
        path, created = await asyncio.to_thread(cache_dir, self.root, spec)
        if created and seed is not None:
            await seed(path)
        if spec.sharing == "locked":
            lock = self._locks.setdefault(str(path), asyncio.Lock())
            await stack.enter_async_context(lock)
        elif spec.sharing == "private" and self._users.get(str(path), 0):
            path = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=self.scratch)))
        key = str(path)
        self._users[key] = self._users.get(key, 0) + 1
        stack.callback(self._release, key)
        return path

    def _release(self, key: str) -> None:
        self._users[key] -= 1
        if not self._users[key]:
            del self._users[key]
