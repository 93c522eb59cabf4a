"""What `docker ps` and `docker inspect` show of a container (Docker's JSON shapes).

`ps` filters follow the Engine API (`filters` is a JSON map of lists, or of {value: true}
in old clients): id, name, label, status, ancestor, exited, before, since, network, volume,
health, publish, expose. Unknown filter keys are refused, as Docker does.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from dockyard.engine.filters import labels_match
from dockyard.errors import InvalidArgument, NotFound
from dockyard.metadata.store import ContainerRecord
from dockyard.store.images import created_unix

if TYPE_CHECKING:
    from dockyard.engine.containers import ContainerManager

FILTER_KEYS = {
    "id",
    "name",
    "label",
    "status",
    "ancestor",
    "exited",
    "before",
    "since",
    "network",
    "volume",
    "health",
    "publish",
    "expose",
    "isolation",
    "is-task",
}
STATUSES = {"created", "restarting", "running", "removing", "paused", "exited", "dead"}


def normalize_filters(raw: Any) -> dict[str, list[str]]:
    if not raw:
        return {}
    if not isinstance(raw, dict):
        raise InvalidArgument("filters must be a JSON object")
    out: dict[str, list[str]] = {}
    for key, value in raw.items():
        if isinstance(value, dict):
            out[key] = [k for k, v in value.items() if v]
        elif isinstance(value, list):
            out[key] = [str(v) for v in value]
        else:
            out[key] = [str(value)]
    return out


def _ago(ts: str) -> str:
    try:
        then = datetime.fromisoformat(ts[:19] + "+00:00")
    except ValueError:
        return ""
    secs = max(0, int((datetime.now(UTC) - then).total_seconds()))
    if secs < 1:
        return "Less than a second"
    if secs == 1:
        return "1 second"
    if secs == 1:
        return "1 second"
    if secs < 60:
        return f"{secs} seconds"
    if secs < 3600:
        m = secs // 60
        return "About a minute" if m == 1 else f"{m} minutes"
    h = secs // 3600
    return "About an hour" if h == 1 else f"{h} hours" if h < 48 else f"{h // 24} days"


def status_text(state: dict[str, Any]) -> str:
    status = state.get("Status")
    if status in ("running", "paused"):
        text = f"Up {_ago(state.get('StartedAt', ''))}"
        if status == "paused":
            return text + " (Paused)"
        health = (state.get("Health") or {}).get("Status")
        if health == "starting":
            return text + " (health: starting)"
        if health in ("healthy", "unhealthy"):
            return text + f" ({health})"
        return text
    if status == "restarting":
        return f"Restarting ({state.get('ExitCode', 0)}) {_ago(state.get('FinishedAt', ''))} ago"
    if status == "exited":
        return f"Exited ({state.get('ExitCode', 0)}) {_ago(state.get('FinishedAt', ''))} ago"
    return "Created"


def _ports_list(rec: ContainerRecord) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    published: set[tuple[int, str]] = set()
    for cport, proto, hip, hport in (rec.config.get("Runtime") or {}).get("Ports") or []:
        published.add((cport, proto))
        out.append(
            {"IP": hip or "0.0.0.0", "PrivatePort": cport, "PublicPort": hport, "Type": proto}
        )
    for key in rec.config["Config"].get("ExposedPorts") or {}:
        port_s, _, proto = key.partition("/")
        if port_s.isdigit() and (int(port_s), proto or "tcp") not in published:
            out.append({"PrivatePort": int(port_s), "Type": proto or "tcp"})
    return out


def _ports_map(rec: ContainerRecord) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in rec.config["Config"].get("ExposedPorts") or {}:
        out.setdefault(key if "/" in key else f"{key}/tcp", None)
    for cport, proto, hip, hport in (rec.config.get("Runtime") or {}).get("Ports") or []:
        entry = out.get(f"{cport}/{proto}") or []
        entry.append({"HostIp": hip or "0.0.0.0", "HostPort": str(hport)})
        out[f"{cport}/{proto}"] = entry
    return out


def _mounts(mgr: ContainerManager, rec: ContainerRecord) -> list[dict[str, Any]]:
    out = []
    for m in rec.config.get("Mounts") or []:
        rw = not m.get("readonly")
        if m["type"] == "volume":
            out.append(
                {
                    "Type": "volume",
                    "Name": m["volume"],
                    "Source": str(mgr.volumes.path(m["volume"])),
                    "Destination": m["target"],
                    "Driver": "local",
                    "Mode": "z" if False else "",
                    "RW": rw,
                    "Propagation": "",
                }
            )
        elif m["type"] == "bind":
            out.append(
                {
                    "Type": "bind",
                    "Source": m["source"],
                    "Destination": m["target"],
                    "Mode": "",
                    "RW": rw,
                    "Propagation": m.get("propagation", "rprivate"),
                }
            )
        else:
            out.append(
                {
                    "Type": "tmpfs",
                    "Source": "",
                    "Destination": m["target"],
                    "Mode": "",
                    "RW": rw,
                    "Propagation": "",
                }
            )
    return out


def _networks(mgr: ContainerManager, rec: ContainerRecord) -> dict[str, Any]:
    eps = (rec.config.get("Runtime") or {}).get("Endpoints") or {}
    out: dict[str, Any] = {}
    mode = rec.config["HostConfig"].get("NetworkMode") or "default"
    if mode in ("host", "none"):
        net = mgr.networks.get(mode)
        out[mode] = _endpoint_json(net["Id"], {}, {})
        return out
    for net_id, want in (rec.config.get("Networks") or {}).items():
        try:
            net = mgr.networks.get(net_id)
        except NotFound:
            continue
        out[net["Name"]] = _endpoint_json(net_id, eps.get(net_id) or {}, want)
    return out


def _endpoint_json(net_id: str, ep: dict[str, Any], want: dict[str, Any]) -> dict[str, Any]:
    """An endpoint as inspect shows it: what was asked (IPAMConfig, MacAddress, DriverOpts)
    and, while running, what it got."""
    return {
        "IPAMConfig": want.get("IPAMConfig"),
        "Links": None,
        "Aliases": want.get("Aliases") or None,
        "NetworkID": net_id,
        "EndpointID": ep.get("host_if", ""),
        "Gateway": ep.get("gateway", ""),
        "IPAddress": ep.get("ip", ""),
        "IPPrefixLen": ep.get("prefix", 0),
        "IPv6Gateway": ep.get("gateway6", ""),
        "GlobalIPv6Address": ep.get("ip6", ""),
        "GlobalIPv6PrefixLen": ep.get("prefix6", 0),
        "MacAddress": ep.get("mac") or want.get("MacAddress") or "",
        "DriverOpts": want.get("DriverOpts"),
    }


def _matches(
    mgr: ContainerManager, rec: ContainerRecord, f: dict[str, list[str]], order: dict[str, int]
) -> bool:
    state = rec.state
    for key, values in f.items():
        if not values:
            continue
        if key == "id" and not any(rec.id.startswith(v) for v in values):
            return False
        if key == "name" and not any(re.search(v.lstrip("/"), rec.name) for v in values):
            return False
        if key == "status":
            for v in values:
                if v not in STATUSES:
                    raise InvalidArgument(f"Invalid filter 'status={v}'")
            if state.get("Status") not in values:
                return False
        if key == "label" and not labels_match(rec.config["Config"].get("Labels"), values):
            return False
        if key == "ancestor":
            ok = False
            for v in values:
                image_id = mgr.images.try_resolve(v)
                if (image_id is not None and rec.image_id == image_id) or rec.config.get(
                    "ImageName"
                ) == v:
                    ok = True
            if not ok:
                return False
        if key == "exited" and (
            state.get("Status") != "exited" or str(state.get("ExitCode", 0)) not in values
        ):
            return False
        if key in ("before", "since"):
            for v in values:
                ref = mgr.resolve(v)
                mine, theirs = order[rec.id], order[ref.id]
                # order: newest first (index 0), so "before X" = created earlier = larger index
                if key == "before" and not mine > theirs:
                    return False
                if key == "since" and not mine < theirs:
                    return False
        if key == "network":
            names = set(_networks(mgr, rec).keys())
            ids = {n["NetworkID"] for n in _networks(mgr, rec).values()}
            if not any(v in names or any(i.startswith(v) for i in ids) for v in values):
                return False
        if key == "volume":
            mounts = rec.config.get("Mounts") or []
            if not any(m.get("volume") == v or m["target"] == v for m in mounts for v in values):
                return False
        if key == "health":
            h = (state.get("Health") or {}).get("Status") or "none"
            if h not in values:
                return False
        if key in ("publish", "expose"):
            ports = _ports_list(rec)
            wanted: set[tuple[str, str]] = set()
            for v in values:
                port, _, proto = v.partition("/")
                wanted.add((port, proto or "tcp"))
            column = "PublicPort" if key == "publish" else "PrivatePort"
            have = {(str(p.get(column)), p["Type"]) for p in ports if p.get(column)}
            if not wanted & have:
                return False
    return True


def list_containers(
    mgr: ContainerManager, all_: bool, filters: dict[str, list[str]], limit: int
) -> list[dict[str, Any]]:
    unknown = set(filters) - FILTER_KEYS
    if unknown:
        raise InvalidArgument(f"invalid filter '{sorted(unknown)[0]}'")
    records = mgr.meta.containers()
    order = {r.id: i for i, r in enumerate(records)}
    out = []
    if limit > 0 or filters.get("status") or filters.get("exited"):
        all_ = True
    for rec in records:
        if not all_ and not rec.state.get("Running"):
            continue
        if not _matches(mgr, rec, filters, order):
            continue
        cfg = rec.config["Config"]
        nets = _networks(mgr, rec)
        out.append(
            {
                "Id": rec.id,
                "Names": [f"/{rec.name}"],
                "Image": rec.config.get("ImageName") or rec.image_id,
                "ImageID": rec.image_id,
                "Command": ps_command(rec.config["Path"], rec.config["Args"]),
                "Created": created_unix(rec.created),
                "Ports": _ports_list(rec),
                "Labels": cfg.get("Labels") or {},
                "State": rec.state["Status"],
                "Status": status_text(rec.state),
                "HostConfig": {
                    "NetworkMode": rec.config["HostConfig"].get("NetworkMode") or "default"
                },
                "NetworkSettings": {"Networks": nets},
                "Mounts": _mounts(mgr, rec),
            }
        )
        if 0 < limit <= len(out):
            break
    return out


def inspect_container(mgr: ContainerManager, rec: ContainerRecord) -> dict[str, Any]:
    state_dir = mgr.root / rec.id
    hc = dict(rec.config["HostConfig"])
    hc.setdefault("NetworkMode", "default")
    if not (hc.get("RestartPolicy") or {}).get("Name"):
        hc["RestartPolicy"] = {"Name": "no", "MaximumRetryCount": 0}
    # Docker fills the log driver in (clients such as docker-py read LogConfig.Type).
    log = dict(hc.get("LogConfig") or {})
    log["Type"] = log.get("Type") or "json-file"
    log["Config"] = log.get("Config") or {}
    hc["LogConfig"] = log
    for key, default in (
        ("Binds", None),
        ("PortBindings", {}),
        ("Privileged", False),
        ("AutoRemove", False),
        ("ShmSize", 64 * 1024 * 1024),
        ("CapAdd", None),
        ("CapDrop", None),
        ("Memory", 0),
        ("NanoCpus", 0),
        ("ReadonlyRootfs", False),
        ("Runtime", "runc"),
        ("CgroupnsMode", "host"),
        ("IpcMode", "private"),
    ):
        if hc.get(key) in (None, "", 0) and default not in (None, "", 0):
            hc[key] = default
        hc.setdefault(key, default)
    runtime = rec.config.get("Runtime") or {}
    nets = _networks(mgr, rec)
    bridge = nets.get("bridge") or {}
    return {
        "Id": rec.id,
        "Created": rec.created,
        "Path": rec.config["Path"],
        "Args": rec.config["Args"],
        "State": rec.state,
        "Image": rec.image_id,
        "ResolvConfPath": str(state_dir / "resolv.conf"),
        "HostnamePath": str(state_dir / "hostname"),
        "HostsPath": str(state_dir / "hosts"),
        "LogPath": str(state_dir / "container.log"),
        "Name": f"/{rec.name}",
        "RestartCount": int(rec.config.get("RestartCount", 0)),
        "Driver": "overlay2",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": mgr.execs.ids_for(rec.id) if mgr.execs is not None else None,
        "HostConfig": hc,
        "GraphDriver": {
            "Data": {"UpperDir": str(mgr.snapshots.fs(rec.config["Snapshot"]))},
            "Name": "overlay2",
        },
        "Mounts": _mounts(mgr, rec),
        "Config": rec.config["Config"],
        "NetworkSettings": {
            "Bridge": "",
            "SandboxID": "",
            "HairpinMode": False,
            "LinkLocalIPv6Address": "",
            "LinkLocalIPv6PrefixLen": 0,
            "Ports": _ports_map(rec),
            "SandboxKey": runtime.get("Netns", ""),
            "SecondaryIPAddresses": None,
            "SecondaryIPv6Addresses": None,
            "EndpointID": bridge.get("EndpointID", ""),
            "Gateway": bridge.get("Gateway", ""),
            "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0,
            "IPAddress": bridge.get("IPAddress", ""),
            "IPPrefixLen": bridge.get("IPPrefixLen", 0),
            "IPv6Gateway": "",
            "MacAddress": bridge.get("MacAddress", ""),
            "Networks": nets,
        },
    }


def ps_command(path: str, args: list[str]) -> str:
    """The `Command` of a container list entry: arguments holding a space are single-quoted,
    as moby's daemon/list.go does (`docker ps` shows `"sh -c 'echo a; …"`)."""
    quoted = [f"'{a}'" if " " in a else a for a in args]
    return " ".join([path, *quoted]) if quoted else path
