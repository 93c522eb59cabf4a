"""What `docker ps` and `docker inspect` show of a container (Docker's JSON shapes).

`ps` filters follow the Engine API (`filters` is a JSON map of lists, or of {value: true}
in old clients): id, name, label, status, ancestor, exited, before, since, network, volume,
health, publish, expose. Unknown filter keys are refused, as Docker does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from dockyard.engine import links
from dockyard.engine.container_record import Container
from dockyard.engine.container_state import STATUSES, State
from dockyard.engine.endpoint_config import EndpointRequest
from dockyard.engine.filters import labels_match
from dockyard.engine.network import Endpoint
from dockyard.errors import InvalidArgument, NotFound
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


def status_text(state: State) -> str:
    status = state.status
    if status in ("running", "paused"):
        text = f"Up {_ago(state.started_at)}"
        if status == "paused":
            return text + " (Paused)"
        health = state.health.status if state.health is not None else None
        if health == "starting":
            return text + " (health: starting)"
        if health in ("healthy", "unhealthy"):
            return text + f" ({health})"
        return text
    if status == "restarting":
        return f"Restarting ({state.exit_code}) {_ago(state.finished_at)} ago"
    if status == "exited":
        return f"Exited ({state.exit_code}) {_ago(state.finished_at)} ago"
    return "Created"


def _ports_list(rec: Container) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    published: set[tuple[int, str]] = set()
    for p in rec.runtime.ports:
        published.add((p.container_port, p.proto))
        out.append(
            {
                "IP": p.host_ip or "0.0.0.0",
                "PrivatePort": p.container_port,
                "PublicPort": p.host_port,
                "Type": p.proto,
            }
        )
    for key in rec.config.exposed_ports:
        port_s, _, proto = key.partition("/")
        if port_s.isdigit() and (int(port_s), proto or "tcp") not in published:
            out.append({"PrivatePort": int(port_s), "Type": proto or "tcp"})
    return out


def _ports_map(rec: Container) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in rec.config.exposed_ports:
        out.setdefault(key if "/" in key else f"{key}/tcp", None)
    for p in rec.runtime.ports:
        key = f"{p.container_port}/{p.proto}"
        entry = out.get(key) or []
        entry.append({"HostIp": p.host_ip or "0.0.0.0", "HostPort": str(p.host_port)})
        out[key] = entry
    return out


def _mounts(mgr: ContainerManager, rec: Container) -> list[dict[str, Any]]:
    out = []
    for plan in rec.mounts:
        m = plan.spec
        rw = not m.readonly
        if m.type == "volume":
            out.append(
                {
                    "Type": "volume",
                    "Name": plan.volume,
                    "Source": str(mgr.volumes.path(plan.volume)),
                    "Destination": m.target,
                    "Driver": "local",
                    "Mode": "z" if False else "",
                    "RW": rw,
                    "Propagation": "",
                }
            )
        elif m.type == "bind":
            out.append(
                {
                    "Type": "bind",
                    "Source": m.source,
                    "Destination": m.target,
                    "Mode": "",
                    "RW": rw,
                    "Propagation": m.propagation,
                }
            )
        else:
            out.append(
                {
                    "Type": "tmpfs",
                    "Source": "",
                    "Destination": m.target,
                    "Mode": "",
                    "RW": rw,
                    "Propagation": "",
                }
            )
    return out


class _Networks:
    """The network records one view reads, each asked of the NetworkManager once: a list
    of 500 containers asked for the same three networks 500 times (issue 17)."""

    def __init__(self, mgr: ContainerManager) -> None:
        self._mgr = mgr
        self._seen: dict[str, dict[str, Any] | None] = {}

    def find(self, name_or_id: str) -> dict[str, Any] | None:
        if name_or_id not in self._seen:
            try:
                self._seen[name_or_id] = self._mgr.networks.get(name_or_id)
            except NotFound:
                self._seen[name_or_id] = None
        return self._seen[name_or_id]


def _networks(nets: _Networks, rec: Container) -> dict[str, Any]:
    eps = rec.runtime.endpoints
    out: dict[str, Any] = {}
    mode = rec.host_config.network_mode
    if mode in ("host", "none"):
        net = nets.find(mode)
        if net is None:
            raise NotFound(f"network {mode} not found")
        out[mode] = _endpoint_json(net["Id"], None, EndpointRequest())
        return out
    for net_id, want in rec.networks.items():
        net = nets.find(net_id)
        if net is None:
            continue
        out[net["Name"]] = _endpoint_json(net_id, eps.get(net_id), want)
    return out


def _endpoint_json(net_id: str, ep: Endpoint | None, want: EndpointRequest) -> dict[str, Any]:
    """An endpoint as inspect shows it: what was asked (IPAMConfig, MacAddress, DriverOpts)
    and, while running, what it got."""
    asked = want.to_json()
    return {
        "IPAMConfig": asked.get("IPAMConfig"),
        "Links": [f"{target}:{alias}" for target, alias in want.links] or None,
        "Aliases": list(want.aliases) or None,
        "NetworkID": net_id,
        "EndpointID": ep.host_if if ep else "",
        "Gateway": ep.gateway if ep else "",
        "IPAddress": ep.ip if ep else "",
        "IPPrefixLen": ep.prefix if ep else 0,
        "IPv6Gateway": ep.gateway6 if ep else "",
        "GlobalIPv6Address": ep.ip6 if ep else "",
        "GlobalIPv6PrefixLen": ep.prefix6 if ep else 0,
        "MacAddress": (ep.mac if ep else "") or want.mac,
        "DriverOpts": asked.get("DriverOpts"),
    }


def _matches(
    mgr: ContainerManager,
    nets: _Networks,
    rec: Container,
    f: dict[str, list[str]],
    order: dict[str, int],
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
            if state.status not in values:
                return False
        if key == "label" and not labels_match(dict(rec.config.labels), values):
            return False
        if key == "ancestor":
            ok = False
            for v in values:
                image_id = mgr.images.try_resolve(v)
                if (image_id is not None and rec.image_id == image_id) or rec.image_name == v:
                    ok = True
            if not ok:
                return False
        if key == "exited" and (state.status != "exited" or str(state.exit_code) not in values):
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
            names = set(_networks(nets, rec).keys())
            ids = {n["NetworkID"] for n in _networks(nets, rec).values()}
            if not any(v in names or any(i.startswith(v) for i in ids) for v in values):
                return False
        mounted = {m.volume for m in rec.mounts} | {m.spec.target for m in rec.mounts}
        if key == "volume" and not mounted & set(values):
            return False
        if key == "health":
            h = state.health.status if state.health is not None else "none"
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


def _selected(
    mgr: ContainerManager, all_: bool, filters: dict[str, list[str]], limit: int
) -> Iterator[tuple[Container, _Networks, Mapping[str, list[str]]]]:
    """The records a list shows, newest first, with what their entries are rendered from."""
    unknown = set(filters) - FILTER_KEYS
    if unknown:
        raise InvalidArgument(f"invalid filter '{sorted(unknown)[0]}'")
    records = mgr.records.view()  # read only here: the records themselves, not copies
    order = {r.id: i for i, r in enumerate(records)}
    extra_names = links.link_names(records)
    nets = _Networks(mgr)
    shown = 0
    if limit > 0 or filters.get("status") or filters.get("exited"):
        all_ = True
    for rec in records:
        if not all_ and not rec.state.running:
            continue
        if not _matches(mgr, nets, rec, filters, order):
            continue
        yield rec, nets, extra_names
        shown += 1
        if 0 < limit <= shown:
            break


def _entry(
    mgr: ContainerManager, nets: _Networks, rec: Container, extra_names: Mapping[str, list[str]]
) -> dict[str, Any]:
    return {
        "Id": rec.id,
        "Names": [f"/{rec.name}", *extra_names.get(rec.id, ())],
        "Image": rec.image_name or rec.image_id,
        "ImageID": rec.image_id,
        "Command": ps_command(rec.path, list(rec.args)),
        "Created": created_unix(rec.created),
        "Ports": _ports_list(rec),
        "Labels": dict(rec.config.labels),
        "State": rec.state.status,
        "Status": status_text(rec.state),
        "HostConfig": {"NetworkMode": rec.host_config.network_mode},
        "NetworkSettings": {"Networks": _networks(nets, rec)},
        "Mounts": _mounts(mgr, rec),
    }


def list_containers(
    mgr: ContainerManager, all_: bool, filters: dict[str, list[str]], limit: int
) -> list[dict[str, Any]]:
    return [
        _entry(mgr, nets, rec, extra) for rec, nets, extra in _selected(mgr, all_, filters, limit)
    ]


@dataclass(frozen=True)
class _RenderedEntry:
    rec: Container  # the object it was rendered from (held, so its id() is never reused)
    deps: tuple[object, ...]  # what else it shows: link names, the networks' names
    head: str  # the JSON object up to `"Status": `
    tail: str  # and after Status's value


class ListEntries:
    """Each container's `ps` entry as JSON text, rendered once per version of its record.

    The records table (container_records.py) holds a new object for a record after every
    write of it, so an entry is reused only while the object it was rendered from is still
    the record, and what it shows of others (legacy link names, the names of its networks)
    is unchanged. Status ("Up 5 minutes") is the one part that changes with the clock: it is
    rendered per request between the two halves. Byte for byte what `json.dumps` of the
    entries' list writes (the tests compare with dockerd). Rendering and encoding 500
    entries took ~10 ms of a `ps -a` (issue 17).
    """

    def __init__(self) -> None:
        self._entries: dict[str, _RenderedEntry] = {}

    def render(
        self, mgr: ContainerManager, all_: bool, filters: dict[str, list[str]], limit: int
    ) -> bytes:
        parts = []
        seen: dict[str, _RenderedEntry] = {}
        for rec, nets, extra_names in _selected(mgr, all_, filters, limit):
            deps = (tuple(extra_names.get(rec.id, ())), _network_names(nets, rec))
            done = self._entries.get(rec.id)
            if done is None or done.rec is not rec or done.deps != deps:
                done = _render(_entry(mgr, nets, rec, extra_names), rec, deps)
            seen[rec.id] = done
            parts.append(done.head + json.dumps(status_text(rec.state)) + done.tail)
        if filters or limit > 0 or not all_:
            self._entries.update(seen)  # a partial list: keep what the others had
        else:
            self._entries = seen  # every container: drop the removed ones'
        return ("[" + ", ".join(parts) + "]").encode()

    def forget(self, cid: str) -> None:
        """The container is gone: its entry (and the record it holds) goes with it."""
        self._entries.pop(cid, None)

    def __len__(self) -> int:
        return len(self._entries)


def _network_names(nets: _Networks, rec: Container) -> tuple[object, ...]:
    mode = rec.host_config.network_mode
    keys = (mode,) if mode in ("host", "none") else tuple(rec.networks)
    return tuple((key, (nets.find(key) or {}).get("Name")) for key in keys)


def _render(entry: dict[str, Any], rec: Container, deps: tuple[object, ...]) -> _RenderedEntry:
    keys = list(entry)
    cut = keys.index("Status")
    head = json.dumps({k: entry[k] for k in keys[:cut]})[:-1] + ', "Status": '
    tail = ", " + json.dumps({k: entry[k] for k in keys[cut + 1 :]})[1:]
    return _RenderedEntry(rec, deps, head, tail)


def inspect_container(mgr: ContainerManager, rec: Container) -> dict[str, Any]:
    state_dir = mgr.root / rec.id
    hc = rec.host_config.to_docker()
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
    if hc.get("Links") and next(iter(rec.networks), "") == mgr.networks.get("bridge")["Id"]:
        # Legacy links: dockerd renders the links it holds, not the request (daemon/inspect.go)
        hc["Links"] = links.host_config_links(rec, mgr.get) or None
    nets = _networks(_Networks(mgr), rec)
    bridge = nets.get("bridge") or {}
    return {
        "Id": rec.id,
        "Created": rec.created,
        "Path": rec.path,
        "Args": list(rec.args),
        "State": rec.state.to_docker(),
        "Image": rec.image_id,
        "ResolvConfPath": str(state_dir / "resolv.conf"),
        "HostnamePath": str(state_dir / "hostname"),
        "HostsPath": str(state_dir / "hosts"),
        "LogPath": str(state_dir / "container.log"),
        "Name": f"/{rec.name}",
        "RestartCount": rec.restart_count,
        "Driver": "overlay2",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": mgr.execs.ids_for(rec.id) if mgr.execs is not None else None,
        "HostConfig": hc,
        "GraphDriver": {
            "Data": {"UpperDir": str(mgr.snapshots.fs(rec.snapshot))},
            "Name": "overlay2",
        },
        "Mounts": _mounts(mgr, rec),
        "Config": rec.config.to_docker(),
        "NetworkSettings": {
            "Bridge": "",
            "SandboxID": "",
            "HairpinMode": False,
            "LinkLocalIPv6Address": "",
            "LinkLocalIPv6PrefixLen": 0,
            "Ports": _ports_map(rec),
            "SandboxKey": rec.runtime.netns,
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
