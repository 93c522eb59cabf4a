"""`RUN --mount=...` options (BuildKit's syntax, docs.docker.com/reference/dockerfile/#run---mount).

Parsed at parse time when the text holds no variable (so a bad option fails before anything
runs, with `Dockerfile:LINE`), and again with the expanded text when the step runs. Pure:
the mounts themselves are the builder's (builder/mounts.py).
"""

from __future__ import annotations

import csv
import posixpath
from dataclasses import dataclass, replace

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
