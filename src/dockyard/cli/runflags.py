"""The `run`/`create` flags beyond the common ones, and the HostConfig fields they make.

Kept apart from commands/ops.py so that `dockyard run` parses its flags without importing the
container-operations module (the CLI's start is on every command's hot path).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from dockyard.cli.context import CommandError


def parse_size(value: str) -> int:
    """A size with an optional b/k/m/g suffix (1024-based), as docker's flags take it."""
    units = {"b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
    v = value.strip().lower()
    if v and v[-1] in units:
        return int(float(v[:-1]) * units[v[-1]])
    return int(v)


def add_extra_run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--restart", help="Restart policy (no, on-failure[:N], always, unless-stopped)")
    p.add_argument("--dns", action="append", default=[], help="Set custom DNS servers")
    p.add_argument("--dns-search", action="append", default=[], help="Set DNS search domains")
    p.add_argument("--dns-option", action="append", default=[], help="Set DNS options")
    p.add_argument("--add-host", action="append", default=[], help="Add a host-to-IP mapping")
    p.add_argument("--ulimit", action="append", default=[], help="Ulimit options")
    p.add_argument("--security-opt", action="append", default=[], help="Security options")
    p.add_argument("--mount", action="append", default=[], help="Attach a filesystem mount")
    p.add_argument("--shm-size", help="Size of /dev/shm")
    p.add_argument("-P", "--publish-all", action="store_true", help="Publish exposed ports")
    p.add_argument("--group-add", action="append", default=[], help="Additional groups")


def mount_spec(spec: str) -> dict[str, Any]:
    """docker/cli opts.MountOpt: `type=bind,source=/a,target=/b,readonly`."""
    out: dict[str, Any] = {"Type": "volume"}
    for field in spec.split(","):
        key, sep, value = field.partition("=")
        key = key.strip().lower()
        if key in ("type",):
            out["Type"] = value
        elif key in ("source", "src"):
            out["Source"] = value
        elif key in ("target", "destination", "dst"):
            out["Target"] = value
        elif key in ("readonly", "ro"):
            out["ReadOnly"] = value.lower() not in ("0", "false") if sep else True
        elif key == "bind-propagation":
            out.setdefault("BindOptions", {})["Propagation"] = value
        elif key == "volume-nocopy":
            out.setdefault("VolumeOptions", {})["NoCopy"] = True
        elif key == "tmpfs-size":
            out.setdefault("TmpfsOptions", {})["SizeBytes"] = parse_size(value)
        elif key == "tmpfs-mode":
            out.setdefault("TmpfsOptions", {})["Mode"] = int(value, 8)
        else:
            raise CommandError(
                f'invalid argument "{spec}" for "--mount" flag: unexpected key \'{key}\''
            )
    return out


def extra_run_flags(args: argparse.Namespace) -> dict[str, Any]:
    """HostConfig fields for the flags above (dockyard CLI's RunFlags.extra)."""
    extra: dict[str, Any] = {}
    if getattr(args, "restart", None):
        name, _, count = args.restart.partition(":")
        extra["RestartPolicy"] = {"Name": name, "MaximumRetryCount": int(count or 0)}
    for flag, key in (
        ("dns", "Dns"),
        ("dns_search", "DnsSearch"),
        ("dns_option", "DnsOptions"),
        ("group_add", "GroupAdd"),
    ):
        if getattr(args, flag, None):
            extra[key] = list(getattr(args, flag))
    if getattr(args, "add_host", None):
        extra["ExtraHosts"] = list(args.add_host)
    ulimits = []
    for u in getattr(args, "ulimit", None) or []:
        name, _, values = u.partition("=")
        soft, _, hard = values.partition(":")
        try:
            ulimits.append({"Name": name, "Soft": int(soft), "Hard": int(hard or soft)})
        except ValueError:
            raise CommandError(f'invalid argument "{u}" for "--ulimit" flag') from None
    if ulimits:
        extra["Ulimits"] = ulimits
    security = []
    for opt in getattr(args, "security_opt", None) or []:
        key, sep, value = opt.partition("=")
        if key == "seccomp" and value not in ("unconfined", "builtin", ""):
            # As docker/cli does: the profile file is read here and sent inline.
            try:
                with open(value) as f:
                    value = json.dumps(json.load(f))
            except (OSError, ValueError) as e:
                raise CommandError(f"opening seccomp profile ({value}) failed: {e}") from None
        security.append(f"{key}{sep}{value}")
    if security:
        extra["SecurityOpt"] = security
    if getattr(args, "mount", None):
        extra["Mounts"] = [mount_spec(m) for m in args.mount]
    if getattr(args, "shm_size", None):
        extra["ShmSize"] = parse_size(args.shm_size)
    if getattr(args, "publish_all", False):
        extra["PublishAllPorts"] = True
    return extra
