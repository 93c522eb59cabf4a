"""RUN --mount (BuildKit syntax) for steps run by the legacy-style builder.

- type=cache: a directory under the daemon root (`buildcache/<id>`) bind-mounted read-write;
  it persists across builds and is never part of a layer (the mount hides it from the
  overlay upper dir, and an empty mount point we had to create is removed after the step).
- type=bind: a path of the context (or of a stage/image with from=) bind-mounted read-only
  by default; `rw` gives a scratch copy whose writes are dropped, as BuildKit does.
- type=tmpfs: a tmpfs (size=).
- type=secret / type=ssh: the legacy /build endpoint carries no session, so there are no
  secrets or agents to give; the mount is skipped unless `required=true`, which fails.
Options follow docs.docker.com/reference/dockerfile/#run---mount.
"""

from __future__ import annotations

import csv
import hashlib
import os
import posixpath
from dataclasses import dataclass
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

    def describe(self) -> str:
        return (
            f"type={self.type},target={self.target},source={self.source},from={self.from_},"
            f"ro={self.readonly},id={self.id},mode={self.mode},uid={self.uid},gid={self.gid}"
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
    if typ == "secret" and not target:
        target = "/run/secrets/" + (opts.get("id") or opts.get("source") or opts.get("src") or "")
    if typ == "ssh" and not target:
        target = "/run/buildkit/ssh_agent.0"
    if not target:
        raise InvalidArgument("mount target is required (target=PATH)")
    if not target.startswith("/"):
        target = posixpath.join(workdir, target)
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
            target=posixpath.normpath(target),
            source=opts.get("source") or opts.get("src") or "",
            from_=opts.get("from") or "",
            readonly=readonly,
            id=opts.get("id") or "",
            sharing=sharing,
            mode=int(mode, 8) if mode else None,
            uid=int(uid) if uid else None,
            gid=int(gid) if gid else None,
            size=opts.get("size") or "",
            required=_bool(opts.get("required"), "required") if "required" in opts else False,
        )
    except ValueError as exc:
        raise InvalidArgument(f"invalid mount option in {text!r}: {exc}") from None


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


def remove_stubs(rootfs: Path, stubs: list[str]) -> None:
    for stub in stubs:
        path = rootfs / stub.lstrip("/")
        if path.is_symlink() or not path.exists():
            continue
        if path.is_dir():
            # Only directories that hold nothing but further empty stubs.
            for dirpath, dirnames, filenames in os.walk(path, topdown=False):
                if filenames:
                    break
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
