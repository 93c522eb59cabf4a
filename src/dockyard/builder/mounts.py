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
import hashlib
import os
import stat
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from dockyard.errors import InvalidArgument

# The option syntax is the frontend's (a Dockerfile rule, checked at parse time); they are
# named here too because the builder and its tests use them with the I/O below.
from dockyard.frontend.mounts import MountSpec, number_ssh_targets, parse_mount

__all__ = [
    "CacheMounts",
    "MountSpec",
    "cache_dir",
    "check_agent_socket",
    "missing_mount_points",
    "number_ssh_targets",
    "parse_mount",
    "remove_stubs",
]


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

    def in_use(self, path: Path) -> bool:
        """Whether a running step has the cache directory `path` mounted."""
        return self._users.get(str(path), 0) > 0

    def _release(self, key: str) -> None:
        self._users[key] -= 1
        if not self._users[key]:
            del self._users[key]
