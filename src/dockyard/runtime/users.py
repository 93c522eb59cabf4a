"""Resolve a Docker `User` string (`name`, `uid`, `name:group`, `uid:gid`) inside a root fs.

Docker reads the image's /etc/passwd and /etc/group (moby/sys/user GetExecUser): a numeric
uid without an entry is allowed, a name without one is an error; the primary gid comes from
passwd unless given; supplementary groups are those listing the user in /etc/group.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dockyard.diff.fsutil import resolve_in_root
from dockyard.errors import InvalidArgument


@dataclass(frozen=True)
class ExecUser:
    uid: int
    gid: int
    additional_gids: tuple[int, ...]  # the primary gid first, as Docker sets them
    home: str


def _read_db(rootfs: Path, path: str) -> list[list[str]]:
    try:
        text = resolve_in_root(rootfs, path).read_text(errors="replace")
    except OSError:
        return []
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]


def resolve_user(rootfs: Path, user: str) -> ExecUser:
    name, _, group = (user or "0").partition(":")
    passwd = _read_db(rootfs, "/etc/passwd")
    groups = _read_db(rootfs, "/etc/group")
    entry = next(
        (e for e in passwd if len(e) >= 4 and (e[0] == name or (name.isdigit() and e[2] == name))),
        None,
    )
    if entry is None:
        if not name.isdigit():
            raise InvalidArgument(f"unable to find user {name}: no matching entries in passwd file")
        uid, gid, home, username = int(name), 0, "/", ""
    else:
        uid, gid, home, username = (
            int(entry[2]),
            int(entry[3]),
            entry[5] if len(entry) > 5 else "/",
            entry[0],
        )
    if group:
        g = next((e for e in groups if len(e) >= 3 and (e[0] == group or e[2] == group)), None)
        if g is not None:
            gid = int(g[2])
        elif group.isdigit():
            gid = int(group)
        else:
            raise InvalidArgument(
                f"unable to find group {group}: no matching entries in group file"
            )
    # Docker's processes carry their primary gid among the supplementary groups too
    # (measured on 20.10: `id` prints groups=<gid>,…), then the groups listing the user.
    extra: list[int] = [gid]
    if username and not group:
        for g in groups:
            if len(g) >= 4 and username in g[3].split(",") and int(g[2]) not in extra:
                extra.append(int(g[2]))
    return ExecUser(uid, gid, tuple(extra), home or "/")
