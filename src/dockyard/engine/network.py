"""Container networking with the kernel's own tools: bridges, veth pairs, our IPAM, NAT.

Networks: the predefined `bridge` (the default), `host` and `none`, plus user-defined bridge
networks. Each bridge network is a Linux bridge with the gateway address; a container gets a
network namespace (a file under its state dir, bind-mounted as `unshare --net=FILE` does,
handed to runc as a path), one veth pair per network (the peer made as eth0, eth1… inside),
an address from our IPAM (allocations kept in the network's JSON file), and a default route
via the first network's gateway. A container's namespace, endpoints and their removal are
netlink requests from the daemon (runtime/netlink.py), no process per step; bridges and their
iptables rules (checked once per bridge and daemon) still use `ip` and `iptables`. Outbound
traffic is masqueraded by an iptables rule per subnet.
Published ports are served by a userland proxy, like docker-proxy: one process per
container, outside the daemon (runtime/data/dockyard-portproxy.c; runtime/portproxy.py is
its Python fallback without a C compiler). The daemon binds the sockets (a taken port is an
error at once) and hands them over; the proxy forwards to the container's address, so ports
work on 127.0.0.1 without route_localnet or DNAT rules, and keep working while the daemon is
down. A restarted daemon replaces only a proxy that died (engine/containers.py recover).

Names: bridge interfaces and subnets are unique per daemon root (a hash of the root names
the bridge; subnets are picked from 10.213.0.0/16 avoiding every route on the host), so test
daemons never collide with each other or with the host. Containers of a user-defined network
find each other by /etc/hosts entries, rewritten in place as peers come and go, and through
the network's DNS responder on its gateway (engine/dns.py).

Lifecycle of a bridge: made on first use, kept while the daemon runs; `network rm` or a
daemon shutdown with no running container on it removes the bridge and its iptables rules.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import hashlib
import ipaddress
import itertools
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dockyard.engine.endpoint_config import EndpointRequest
from dockyard.engine.events import EventBus
from dockyard.errors import Conflict, InvalidArgument, NotFound, NotSupported, RuntimeFailure
from dockyard.image.config import now_rfc3339
from dockyard.runtime import netlink
from dockyard.runtime.portproxy import is_port_proxy, proxy_command
from dockyard.snapshot import mountcall
from dockyard.statefile import write_atomic

log = logging.getLogger("dockyard.network")

POOL = ipaddress.ip_network("10.213.0.0/16")
PREDEFINED = ("bridge", "host", "none")
RULE_COMMENT_PREFIX = "dockyard:"


def _run(argv: list[str], *, input: str | None = None, check: bool = True) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, input=input)
    except FileNotFoundError:
        if not check:
            return ""
        package = {
            "ip": "iproute2",
            "iptables": "iptables",
            "nsenter": "util-linux",
            "unshare": "util-linux",
        }.get(argv[0], argv[0])
        raise RuntimeFailure(
            f"{argv[0]} is not installed; bridge networking needs it (apt-get install "
            f"{package}), or run containers with --network none or host"
        ) from None
    if check and proc.returncode != 0:
        raise RuntimeFailure(f"{' '.join(argv[:4])}: {proc.stderr.strip() or proc.returncode}")
    return proc.stdout


@contextlib.contextmanager
def _host_lock() -> Iterator[None]:
    import fcntl

    path = Path("/run/lock") if Path("/run/lock").is_dir() else Path("/tmp")
    fd = os.open(path / "dockyard-network.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def link_exists(name: str) -> bool:
    """Whether a network interface `name` exists in this process's network namespace.

    Not /sys/class/net: sysfs lists the interfaces of the namespace it was mounted from,
    so a daemon started in a namespace of its own (`unshare --net`, `ip netns exec` without
    a fresh /sys) would see the host's bridges there and miss its own. if_nametoindex asks
    the kernel through a socket, which belongs to the caller's namespace (netdevice(7)
    SIOCGIFINDEX), and costs no `ip link show` process."""
    try:
        socket.if_nametoindex(name)
    except OSError:
        return False
    return True


def bridge_name_for(root: Path, index: int) -> str:
    """Interface names hold 15 bytes: `dy` + 8 hex of the root + network index."""
    tag = hashlib.sha256(str(root).encode()).hexdigest()[:8]
    return f"dy{tag}{index:x}"[:15]


def mac_for(ip: str) -> str:
    """Docker's scheme: 02:42 followed by the four bytes of the IPv4 address."""
    b = ipaddress.ip_address(ip).packed
    return "02:42:" + ":".join(f"{x:02x}" for x in b)


def _host_routes() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    out = []
    try:
        routes = json.loads(_run(["ip", "-j", "-4", "route", "show", "table", "all"]) or "[]")
    except (RuntimeFailure, ValueError):
        return []
    for r in routes:
        dst = r.get("dst", "")
        if dst in ("default", "") or ":" in dst:
            continue
        with contextlib.suppress(ValueError):
            out.append(ipaddress.ip_network(dst if "/" in dst else f"{dst}/32", strict=False))
    return out


@dataclass(frozen=True)
class IPv6Pool:
    """A network's IPv6 IPAM pool (Subnet, IPRange, Gateway), as libnetwork keeps it."""

    subnet: str
    gateway: str = ""
    ip_range: str = ""

    def check(self) -> None:
        try:
            sub = ipaddress.ip_network(self.subnet)
        except ValueError:
            raise InvalidArgument(f"invalid subnet {self.subnet!r}") from None
        if sub.version != 6:
            raise InvalidArgument(f"invalid IPv6 subnet {self.subnet}")
        _check_pool(self.subnet, self.gateway, self.ip_range, {})

    def to_record(self) -> dict[str, str]:
        sub = ipaddress.ip_network(self.subnet)
        # libnetwork's default IPAM: the gateway is the subnet's first address
        return {
            "IPv6Subnet": str(sub),
            "IPv6Gateway": self.gateway or str(sub.network_address + 1),
            "IPv6Range": self.ip_range,
        }


@dataclass
class Endpoint:
    network: str  # network ID
    ip: str
    prefix: int
    gateway: str
    mac: str
    ifname: str  # inside the container
    host_if: str
    # On a network with EnableIPv6: the global address, its prefix length and the gateway.
    ip6: str = ""
    prefix6: int = 0
    gateway6: str = ""

    def to_json(self) -> dict[str, Any]:
        out = self.__dict__.copy()
        if not self.ip6:  # an IPv4-only endpoint is stored as it was before IPv6 networks
            for key in ("ip6", "prefix6", "gateway6"):
                del out[key]
        return out


class NetworkManager:
    def __init__(self, root: Path, daemon_root: Path, events: EventBus | None = None) -> None:
        self.root = root
        self.events = events or EventBus()
        root.mkdir(parents=True, exist_ok=True)
        self.daemon_root = daemon_root
        # The owner's lock over the records: allocate, release and the bridge's subnet choice
        # read, change and write a record from worker threads (30 concurrent stops wedged two
        # containers when they did so unlocked).
        self._lock = threading.RLock()
        # Bridges whose iptables rules this daemon has checked (or put) since it made or first
        # used them: the check costs four `iptables -C` processes (~10-40 ms each), and taken
        # on every connect under the lock it serialised 30 concurrent starts (issue 17).
        # dockerd likewise programs a network's rules once, when the network is set up.
        self._rules_checked: set[str] = set()
        # The records as this manager last wrote them, by file name (`<ID>.json`), read from
        # the directory once: it is their one writer, so a lookup parses the text it wrote
        # instead of listing and reading the directory (`ps -a` of 500 containers did that
        # 500 times per request, half of its 140 ms; issue 17). Parsed afresh on every read:
        # callers edit the dict they get and save it under the lock.
        self._texts: dict[str, str] = self._read_texts()
        if not self._find("bridge"):
            self._save(
                {
                    "Name": "bridge",
                    "Id": secrets.token_hex(32),
                    "Driver": "bridge",
                    "Created": now_rfc3339(),
                    "Labels": {},
                    "Internal": False,
                    "Index": 0,
                    "Options": {"com.docker.network.bridge.default_bridge": "true"},
                    "Allocations": {},
                }
            )
        for name, driver in (("host", "host"), ("none", "null")):
            if not self._find(name):
                self._save(
                    {
                        "Name": name,
                        "Id": secrets.token_hex(32),
                        "Driver": driver,
                        "Created": now_rfc3339(),
                        "Labels": {},
                        "Internal": False,
                        "Options": {},
                        "Allocations": {},
                    }
                )

    # records ---------------------------------------------------------------------------
    def _read_texts(self) -> dict[str, str]:
        texts = {}
        for p in self.root.glob("*.json"):
            with contextlib.suppress(ValueError, OSError):
                text = p.read_text()
                json.loads(text)  # a damaged record is skipped, as it always was
                texts[p.name] = text
        return texts

    def _save(self, net: dict[str, Any], *, durable: bool = True) -> None:
        with self._lock:
            name = f"{net['Id']}.json"
            text = json.dumps(net)
            write_atomic(self.root / name, text, durable=durable)
            self._texts[name] = text

    def _delete(self, net: dict[str, Any]) -> None:
        with self._lock:
            name = f"{net['Id']}.json"
            (self.root / name).unlink(missing_ok=True)
            self._texts.pop(name, None)

    def _save_allocations(self, net: dict[str, Any]) -> None:
        """A change of addresses only: atomic but not fsynced. Two fsyncs per start and per
        exit, under the lock, serialised concurrent starts (issue 17); a daemon that dies
        loses nothing the kernel holds, and after a machine's crash no container runs, so
        `prune_allocations` at start-up drops what a lost write would have dropped anyway."""
        self._save(net, durable=False)

    def _all(self) -> list[dict[str, Any]]:
        # sorted(items) copies the table in one step (a worker thread may save meanwhile)
        return [json.loads(text) for _, text in sorted(self._texts.items())]

    def _find(self, name_or_id: str) -> dict[str, Any] | None:
        nets = self._all()
        for n in nets:
            if n["Name"] == name_or_id or n["Id"] == name_or_id:
                return n
        matches = [n for n in nets if name_or_id and n["Id"].startswith(name_or_id)]
        return matches[0] if len(matches) == 1 else None

    def get(self, name_or_id: str) -> dict[str, Any]:
        net = self._find(name_or_id)
        if net is None:
            raise NotFound(f"network {name_or_id} not found")
        return net

    # API -------------------------------------------------------------------------------
    def create(
        self,
        name: str,
        *,
        driver: str = "bridge",
        subnet: str = "",
        gateway: str = "",
        internal: bool = False,
        labels: dict[str, str] | None = None,
        check_duplicate: bool = True,
        ip_range: str = "",
        aux_addresses: dict[str, str] | None = None,
        ipv6: IPv6Pool | None = None,
        enable_ipv6: bool = False,
    ) -> str:
        if not name:
            raise InvalidArgument("network name is required")
        if driver not in ("bridge", ""):
            raise NotSupported(f"network driver {driver!r} is not supported (only bridge)")
        if subnet:
            try:
                ipaddress.ip_network(subnet)
            except ValueError:
                raise InvalidArgument(f"invalid subnet {subnet!r}") from None
        _check_pool(subnet, gateway, ip_range, aux_addresses or {})
        if ipv6 is not None:
            ipv6.check()
        elif enable_ipv6:
            # dockerd 20.10 has no default IPv6 pool to take one from
            raise InvalidArgument("IPv6 networks need an IPv6 subnet (--subnet) on this daemon")
        with self._lock:
            net_id = self._create_locked(
                name, subnet, gateway, internal, labels, check_duplicate, ip_range, aux_addresses
            )
            if ipv6 is not None or enable_ipv6:
                net = self.get(net_id)
                net["EnableIPv6"] = enable_ipv6
                if ipv6 is not None:
                    net.update(ipv6.to_record())
                self._save(net)
            return net_id

    def _create_locked(
        self,
        name: str,
        subnet: str,
        gateway: str,
        internal: bool,
        labels: dict[str, str] | None,
        check_duplicate: bool,
        ip_range: str,
        aux_addresses: dict[str, str] | None,
    ) -> str:
        if self._find(name) is not None and (check_duplicate or name in PREDEFINED):
            raise Conflict(f"network with name {name} already exists")
        index = 1 + max((int(n.get("Index", 0)) for n in self._all()), default=0)
        net = {
            "Name": name,
            "Id": secrets.token_hex(32),
            "Driver": "bridge",
            "Created": now_rfc3339(),
            "Labels": labels or {},
            "Internal": internal,
            "Index": index,
            "Options": {},
            "Allocations": {},
            "Subnet": subnet,
            "Gateway": gateway,
            "AutoSubnet": not subnet,
            "IPRange": ip_range,
            "AuxiliaryAddresses": dict(aux_addresses or {}),
        }
        self._assign_subnet(net)
        self._save(net)
        self.event(net, "create")
        return str(net["Id"])

    def event(self, net: dict[str, Any], action: str, **extra: str) -> None:
        """A network event as dockerd words it: the network's name and driver type."""
        attrs = {**extra, "name": str(net["Name"]), "type": str(net.get("Driver") or "bridge")}
        self.events.publish("network", action, str(net["Id"]), attrs)

    def _assign_subnet(self, net: dict[str, Any]) -> None:
        if net.get("Subnet"):
            sub = ipaddress.ip_network(net["Subnet"], strict=False)
        else:
            taken = _host_routes() + [
                ipaddress.ip_network(n["Subnet"]) for n in self._all() if n.get("Subnet")
            ]
            for candidate in POOL.subnets(new_prefix=24):
                if not any(candidate.overlaps(t) for t in taken):
                    sub = candidate
                    break
            else:
                raise RuntimeFailure("no free subnet left in 10.213.0.0/16 for a new network")
        net["Subnet"] = str(sub)
        net["Gateway"] = net.get("Gateway") or str(next(sub.hosts()))
        net["Bridge"] = bridge_name_for(self.daemon_root, int(net.get("Index", 0)))

    def remove(self, name_or_id: str, users: list[str]) -> None:
        net = self.get(name_or_id)
        if net["Name"] in PREDEFINED:
            raise Conflict(f"{net['Name']} is a pre-defined network and cannot be removed")
        if users:
            raise Conflict(
                f"error while removing network: network {net['Name']} id {net['Id']} has active "
                "endpoints"
            )
        self._teardown_bridge(net)
        self._delete(net)
        self.event(net, "destroy")

    def list(self) -> builtins.list[dict[str, Any]]:
        return self._all()

    def prune(self, in_use: set[str]) -> builtins.list[str]:
        removed = []
        for net in self._all():
            if net["Name"] in PREDEFINED or net["Id"] in in_use:
                continue
            self._teardown_bridge(net)
            self._delete(net)
            self.event(net, "destroy")
            removed.append(net["Name"])
        self.events.publish("network", "prune", "", {"reclaimed": "0"})
        return removed

    def inspect(self, net: dict[str, Any], containers: dict[str, dict[str, Any]]) -> dict[str, Any]:
        ipam_config: list[dict[str, Any]] = []
        if net.get("Subnet"):
            pool: dict[str, Any] = {"Subnet": net["Subnet"]}
            if net.get("IPRange"):
                pool["IPRange"] = net["IPRange"]
            pool["Gateway"] = net["Gateway"]
            if net.get("AuxiliaryAddresses"):
                pool["AuxiliaryAddresses"] = dict(net["AuxiliaryAddresses"])
            ipam_config.append(pool)
        if net.get("IPv6Subnet"):
            pool6 = {"Subnet": net["IPv6Subnet"]}
            if net.get("IPv6Range"):
                pool6["IPRange"] = net["IPv6Range"]
            pool6["Gateway"] = net["IPv6Gateway"]
            ipam_config.append(pool6)
        return {
            "Name": net["Name"],
            "Id": net["Id"],
            "Created": net["Created"],
            "Scope": "local",
            "Driver": net["Driver"],
            "EnableIPv6": bool(net.get("EnableIPv6")),
            "IPAM": {"Driver": "default", "Options": None, "Config": ipam_config},
            "Internal": bool(net.get("Internal")),
            "Attachable": False,
            "Ingress": False,
            "ConfigFrom": {"Network": ""},
            "ConfigOnly": False,
            "Containers": containers,
            "Options": net.get("Options") or {},
            "Labels": net.get("Labels") or {},
        }

    # bridges ---------------------------------------------------------------------------
    def _ensure_bridge(self, net: dict[str, Any]) -> None:
        # Several daemons (test daemons, each with its own root) pick subnets on one host: the
        # choice and the bridge creation happen under a host-wide lock, and a subnet picked
        # earlier is checked again against the routes of now, since another daemon may have
        # taken it while our bridge was down. The record is read again under our own lock: a
        # copy read earlier may miss an allocation made since, which a save would drop.
        with self._lock, _host_lock():
            net = self.get(net["Id"])
            br = net.get("Bridge") or ""
            if not br or not link_exists(br):
                if net.get("Subnet") and self._subnet_taken(net):
                    if not net.get("AutoSubnet", True) or net.get("Allocations"):
                        raise Conflict(
                            f"network {net['Name']}: subnet {net['Subnet']} overlaps a route "
                            "already on this host"
                        )
                    net["Subnet"] = ""
                    net["Gateway"] = ""
                if not net.get("Subnet"):
                    self._assign_subnet(net)
                    self._save(net)
                br = net["Bridge"]
                sub = ipaddress.ip_network(net["Subnet"])
                _run(["ip", "link", "add", br, "type", "bridge"])
                try:
                    _run(["ip", "addr", "add", f"{net['Gateway']}/{sub.prefixlen}", "dev", br])
                    if net.get("EnableIPv6"):
                        # our own bridge only: the host's other interfaces keep their settings
                        Path(f"/proc/sys/net/ipv6/conf/{br}/disable_ipv6").write_text("0\n")
                        prefix6 = ipaddress.ip_network(net["IPv6Subnet"]).prefixlen
                        gw6 = f"{net['IPv6Gateway']}/{prefix6}"
                        _run(["ip", "-6", "addr", "add", gw6, "dev", br, "nodad"])
                    _run(["ip", "link", "set", br, "up"])
                except RuntimeFailure:
                    _run(["ip", "link", "del", br], check=False)
                    raise
                self._rules_checked.discard(br)
            if br in self._rules_checked:
                return
            try:
                self._nat_rules(net, add=True)
                self._rules_checked.add(br)
            except RuntimeFailure as e:
                # The bridge works without NAT (container to container, published ports);
                # only outbound traffic needs it, so say so instead of failing every run.
                log.warning("outbound NAT for %s is not set up: %s", net["Name"], e)

    @staticmethod
    def _subnet_taken(net: dict[str, Any]) -> bool:
        sub = ipaddress.ip_network(net["Subnet"])
        return any(sub.overlaps(r) for r in _host_routes())

    def _nat_rules(self, net: dict[str, Any], *, add: bool) -> None:
        _apply_rules(net, add=add)

    def _teardown_bridge(self, net: dict[str, Any]) -> None:
        if net.get("Driver") != "bridge" or not net.get("Bridge"):
            return
        if not link_exists(net["Bridge"]):
            return  # never made (or already gone): its rules went with it
        self._rules_checked.discard(net["Bridge"])
        with contextlib.suppress(FileNotFoundError):
            self._nat_rules(net, add=False)
        _run(["ip", "link", "del", net["Bridge"]], check=False)

    def prune_allocations(self, running: set[str]) -> None:
        """Forget addresses held for containers that no longer run (after a crash)."""
        with self._lock:
            for net in self._all():
                stale = [cid for cid in net.get("Allocations") or {} if cid not in running]
                stale6 = [cid for cid in net.get("Allocations6") or {} if cid not in running]
                if stale or stale6:
                    for cid in stale:
                        del net["Allocations"][cid]
                    for cid in stale6:
                        del net["Allocations6"][cid]
                    self._save_allocations(net)

    def teardown_unused(self, in_use: set[str]) -> None:
        """Daemon shutdown: drop bridges no running container uses (they come back on use)."""
        for net in self._all():
            if net.get("Driver") == "bridge" and net["Id"] not in in_use:
                self._teardown_bridge(net)

    # endpoints -------------------------------------------------------------------------
    def allocate(self, net: dict[str, Any], cid: str, wanted: str = "") -> str:
        """An address for `cid` on `net` (the same one if it already has one); `wanted` is
        a fixed address the client asked for (`--ip`), anywhere in the subnet."""
        with self._lock:
            fresh = self.get(net["Id"])
            held = fresh["Allocations"].get(cid)
            if held is not None and (not wanted or held == wanted):
                return str(held)
            if wanted:
                taken = {ip for c, ip in fresh["Allocations"].items() if c != cid}
                taken |= {fresh["Gateway"], *(fresh.get("AuxiliaryAddresses") or {}).values()}
                if wanted in taken:
                    # libnetwork ipamapi.ErrIPAlreadyAllocated
                    raise Conflict("Address already in use")
                fresh["Allocations"][cid] = wanted
                self._save_allocations(fresh)
                return wanted
            # libnetwork's IPAM: addresses come from IPRange when given (else the subnet),
            # never the gateway nor an auxiliary address reserved at create time.
            sub = ipaddress.ip_network(fresh.get("IPRange") or fresh["Subnet"])
            used = set(fresh["Allocations"].values()) | {fresh["Gateway"]}
            used |= set((fresh.get("AuxiliaryAddresses") or {}).values())
            for host in sub.hosts():
                if str(host) not in used:
                    fresh["Allocations"][cid] = str(host)
                    self._save_allocations(fresh)
                    return str(host)
        raise RuntimeFailure(f"no free address left on network {fresh['Name']}")

    def allocate6(self, net: dict[str, Any], cid: str, wanted: str = "") -> str:
        """An IPv6 address for `cid` on a network with EnableIPv6 (from IPv6Range when
        given, never the gateway); `wanted` is one the client asked for (`--ip6`)."""
        with self._lock:
            fresh = self.get(net["Id"])
            table: dict[str, str] = fresh.setdefault("Allocations6", {})
            held = table.get(cid)
            if held is not None and (not wanted or held == wanted):
                return held
            taken = {ip for c, ip in table.items() if c != cid} | {fresh["IPv6Gateway"]}
            if wanted:
                if wanted in taken:
                    raise Conflict("Address already in use")
                table[cid] = wanted
                self._save_allocations(fresh)
                return wanted
            sub = ipaddress.ip_network(fresh.get("IPv6Range") or fresh["IPv6Subnet"])
            for host in itertools.islice(sub.hosts(), 65536):
                if str(host) not in taken:
                    table[cid] = str(host)
                    self._save_allocations(fresh)
                    return str(host)
        raise RuntimeFailure(f"no free IPv6 address left on network {fresh['Name']}")

    def release(self, net_id: str, cid: str) -> None:
        with self._lock:
            net = self._find(net_id)
            if net is None:
                return
            changed = net["Allocations"].pop(cid, None) is not None
            changed |= (net.get("Allocations6") or {}).pop(cid, None) is not None
            if changed:
                self._save_allocations(net)

    def create_netns(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        try:
            netlink.new_netns(path)
        except OSError as e:
            self.delete_netns(path)
            raise RuntimeFailure(f"creating the network namespace: {e}") from None

    @staticmethod
    def delete_netns(path: Path) -> None:
        if os.path.ismount(path):
            with contextlib.suppress(OSError):
                mountcall.umount(path)
        path.unlink(missing_ok=True)

    def connect(
        self,
        net_id: str,
        cid: str,
        netns: str,
        ifname: str,
        default_route: bool,
        req: EndpointRequest | None = None,
    ) -> Endpoint:
        """Plug `cid`'s namespace (a path) into a bridge network; undone on failure."""
        req = req or EndpointRequest()
        net = self.get(net_id)
        if net["Driver"] != "bridge":
            raise InvalidArgument(f"cannot connect a container to the {net['Name']} network")
        req.check(net)
        self._ensure_bridge(net)
        net = self.get(net_id)
        ip = self.allocate(net, cid, req.ipv4)
        mac = req.mac.lower() or mac_for(ip)
        ip6, prefix6 = "", 0
        if net.get("EnableIPv6"):
            try:
                ip6 = self.allocate6(net, cid, req.ipv6)
            except BaseException:
                self.release(net["Id"], cid)
                raise
            prefix6 = ipaddress.ip_network(net["IPv6Subnet"]).prefixlen
        prefix = ipaddress.ip_network(net["Subnet"]).prefixlen
        host_if = f"veth{secrets.token_hex(3)}"
        route = default_route and not net.get("Internal")
        try:
            _plug(net, netns, host_if, ifname, mac, (ip, prefix), (ip6, prefix6), req, route)
        except BaseException:
            self.release(net["Id"], cid)
            raise
        gateway6 = str(net.get("IPv6Gateway") or "") if ip6 else ""
        return Endpoint(
            net["Id"], ip, prefix, net["Gateway"], mac, ifname, host_if, ip6, prefix6, gateway6
        )

    def disconnect(self, ep: Endpoint, cid: str, netns: str | None) -> None:
        # Deleting either end of a veth pair deletes both: the host end is enough, and the
        # container's end goes too when its namespace is still alive (network disconnect).
        with contextlib.suppress(OSError), netlink.Netlink.host() as nl:
            nl.delete_link(ep.host_if)
        self.release(ep.network, cid)

    # published ports ---------------------------------------------------------------------
    async def publish(
        self,
        cid: str,
        target_ip: str,
        bindings: builtins.list[tuple[int, str, str, int]],
        pid_file: Path,
        watch_pid: int = 0,
    ) -> builtins.list[tuple[int, str, str, int]]:
        """Bind (container port, proto, host IP, host port) and hand the sockets to a proxy.

        Binding here makes a taken port a clear error at once and gives random ports their
        number; the proxy (dockyard-portproxy) is a process of its own, like docker-proxy,
        so published ports keep working while the daemon is down.
        """
        out: builtins.list[tuple[int, str, str, int]] = []
        socks: builtins.list[socket.socket] = []
        specs: builtins.list[str] = []
        try:
            for cport, proto, hip, hport in bindings:
                # No host IP: dockerd (20.10+) binds 0.0.0.0 and, where the host has IPv6,
                # [::] on the same port, and lists both (`docker port`, NetworkSettings.Ports).
                both = not hip and _host_has_ipv6()
                sock = _bind_port(hip or "0.0.0.0", proto, hport)
                socks.append(sock)
                port = sock.getsockname()[1]
                specs.append(f"{sock.fileno()}:{proto}:{cport}")
                out.append((cport, proto, "0.0.0.0" if both else hip, port))
                if both:
                    six = _bind_port("::", proto, port)
                    socks.append(six)
                    specs.append(f"{six.fileno()}:{proto}:{cport}")
                    out.append((cport, proto, "::", port))
            await asyncio.to_thread(
                spawn_port_proxy,
                cid,
                target_ip,
                specs,
                [s.fileno() for s in socks],
                pid_file,
                watch_pid,
                self.daemon_root / "bin",
            )
        finally:
            for sock in socks:
                sock.close()
        return out

    @staticmethod
    def proxy_running(cid: str, pid_file: Path) -> bool:
        """Whether `cid`'s port proxy (which outlives the daemon) still serves."""
        return bool(proxy_pid(cid, pid_file))

    @staticmethod
    def unpublish(cid: str, pid_file: Path) -> None:
        pid = proxy_pid(cid, pid_file)
        if pid:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGTERM)
        pid_file.unlink(missing_ok=True)


def _plug(
    net: dict[str, Any],
    netns: str,
    host_if: str,
    ifname: str,
    mac: str,
    v4: tuple[str, int],
    v6: tuple[str, int],
    req: EndpointRequest,
    route: bool,
) -> None:
    """The veth pair of one endpoint, over netlink (runtime/netlink.py): made with its peer
    already in the container's namespace as `ifname`, the host end on the bridge and up; then,
    inside, the addresses, the link up and the default route. Undone on failure."""
    try:
        with netlink.Netlink.host() as host:
            bridge = host.index_of(net["Bridge"])
            fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
            try:
                host.add_veth(host_if, bridge, ifname, mac, fd)
            finally:
                os.close(fd)
            try:
                with netlink.Netlink.open(netns) as inside:
                    index = inside.index_of(ifname)
                    inside.add_address(index, *v4)
                    # libnetwork adds an endpoint's link-local addresses beside its own
                    for extra in req.link_local:
                        inside.add_address(index, extra)
                    if v6[0]:
                        inside.add_address(index, *v6, nodad=True)
                    inside.set_up(index)
                    if route:
                        inside.add_default_route(index, net["Gateway"])
                        if v6[0]:
                            inside.add_default_route(index, net["IPv6Gateway"])
            except BaseException:
                with contextlib.suppress(OSError):
                    host.delete_link(host_if)
                raise
    except OSError as e:
        raise RuntimeFailure(f"connecting to network {net['Name']}: {e}") from None


def _host_has_ipv6() -> bool:
    try:
        return Path("/proc/sys/net/ipv6/conf/all/disable_ipv6").read_text().strip() == "0"
    except OSError:
        return False


def _bind_port(ip: str, proto: str, port: int) -> socket.socket:
    """A bound (and, for TCP, listening) host socket; a taken port is Docker's error.
    IPv6 sockets are IPv6-only, so `[::]` and `0.0.0.0` on one port are two bindings."""
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
    try:
        if proto == "tcp":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            sock.bind((ip, port))
        except OSError as e:
            shown = f"[{ip}]" if family == socket.AF_INET6 else ip
            raise Conflict(
                f"driver failed programming external connectivity: Bind for "
                f"{shown}:{port} failed: {e.strerror or e}"
            ) from None
        if proto == "tcp":
            sock.listen(128)
    except BaseException:
        sock.close()
        raise
    return sock


def proxy_pid(cid: str, pid_file: Path) -> int:
    """The pid of `cid`'s running port proxy, checked against its command line, or 0."""
    try:
        pid = int(pid_file.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return 0
    return pid if is_port_proxy(cmdline) and cid.encode() in cmdline else 0


def spawn_port_proxy(
    cid: str,
    target_ip: str,
    specs: list[str],
    fds: list[int],
    pid_file: Path,
    watch_pid: int,
    bin_dir: Path,
) -> None:
    argv = [
        *proxy_command(bin_dir),
        "--id",
        cid,
        "--target",
        target_ip,
        "--pid-file",
        str(pid_file),
        "--watch-pid",
        str(watch_pid),
        *specs,
    ]
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        pass_fds=fds,
        start_new_session=True,
    )
    # The proxy forks itself away and exits once its child wrote the pid file and serves.
    if proc.wait() != 0 or not proxy_pid(cid, pid_file):
        # It also ends at once when the container's process has already ended (`run -p 80
        # busybox true`): nothing to forward to, and not a failed start (dockerd starts
        # docker-proxy before the task, so there the same run succeeds).
        if watch_pid and _process_ended(watch_pid):
            return
        raise RuntimeFailure(f"the port proxy for {cid[:12]} did not start")


def _process_ended(pid: int) -> bool:
    """Whether `pid` has exited (gone, or a zombie its parent has not reaped yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    # state is the field after the parenthesised command, which may itself hold spaces
    return stat.rpartition(")")[2].split()[0] in ("Z", "X")


def remove_daemon_bridges(daemon_root: Path) -> list[str]:
    """Tear down every bridge (and its iptables rules) a daemon on `daemon_root` made.

    For test harnesses and uninstalls, with the daemon stopped: containers that were still
    running keep their bridge at shutdown, so a harness that kills them afterwards calls this.
    """
    removed = []
    for p in sorted((daemon_root / "networks").glob("*.json")):
        try:
            net = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
        if net.get("Driver") != "bridge" or not net.get("Bridge"):
            continue
        if link_exists(net["Bridge"]):
            _apply_rules(net, add=False)
            _run(["ip", "link", "del", net["Bridge"]], check=False)
            removed.append(str(net["Bridge"]))
    return removed


def _bridge_rules(net: dict[str, Any]) -> list[tuple[str, list[str]]]:
    br, sub = net["Bridge"], net["Subnet"]
    tag = ["-m", "comment", "--comment", f"{RULE_COMMENT_PREFIX}{br}"]
    rules = [
        # Docker's network isolation (DOCKER-ISOLATION chains): nothing crosses from one
        # dockyard network into another. Inserted first, so it wins over the ACCEPTs.
        ("filter", ["FORWARD", "-i", br, "!", "-o", br, "-d", str(POOL), "-j", "DROP", *tag]),
        ("filter", ["FORWARD", "-i", br, "-j", "ACCEPT", *tag]),
        ("filter", ["FORWARD", "-o", br, "-j", "ACCEPT", *tag]),
    ]
    if not net.get("Internal"):
        rules.append(("nat", ["POSTROUTING", "-s", sub, "!", "-o", br, "-j", "MASQUERADE", *tag]))
    return rules


def _apply_rules(net: dict[str, Any], *, add: bool) -> None:
    if not add:
        _delete_tagged_rules(f"{RULE_COMMENT_PREFIX}{net['Bridge']}")
        return
    for table, rule in _bridge_rules(net):
        try:
            exists = (
                subprocess.run(
                    ["iptables", "-w", "-t", table, "-C", *rule], capture_output=True
                ).returncode
                == 0
            )
        except FileNotFoundError:
            exists = False
        if not exists:
            if "DROP" in rule:
                _run(["iptables", "-w", "-t", table, "-I", rule[0], "1", *rule[1:]])
            else:
                _run(["iptables", "-w", "-t", table, "-A", *rule])
    if add and not net.get("Internal"):
        # Outbound NAT needs forwarding, as Docker enables it when it makes a bridge.
        with contextlib.suppress(OSError):
            Path("/proc/sys/net/ipv4/ip_forward").write_text("1\n")


def _delete_tagged_rules(tag: str) -> None:
    """Every rule carrying our comment `tag`, whatever subnet it was made for."""
    import shlex

    for table in ("filter", "nat"):
        listing = _run(["iptables", "-w", "-t", table, "-S"], check=False)
        for line in listing.splitlines():
            if (line.startswith("-A ") and f'"{tag}"' in line) or f" {tag} " in f"{line} ":
                args = shlex.split(line)
                args[0] = "-D"
                _run(["iptables", "-w", "-t", table, *args], check=False)


def _check_pool(subnet: str, gateway: str, ip_range: str, aux: dict[str, str]) -> None:
    """dockerd's checks of an IPAM pool (libnetwork ipam and daemon/network.go)."""
    if (ip_range or aux) and not subnet:
        raise InvalidArgument("ip-range and aux-addresses need a subnet")
    if not subnet:
        return
    sub = ipaddress.ip_network(subnet, strict=False)
    if ip_range:
        try:
            rng = ipaddress.ip_network(ip_range)
        except ValueError:
            raise InvalidArgument(f"invalid ip-range {ip_range!r}") from None
        if rng.version != sub.version or not rng.subnet_of(sub):  # type: ignore[arg-type]
            raise InvalidArgument(f"ip-range {ip_range} is not within subnet {subnet}")
    for label, addr in [("gateway", gateway), *((f"aux-address {k}", v) for k, v in aux.items())]:
        if not addr:
            continue
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            raise InvalidArgument(f"invalid {label} address {addr!r}") from None
        if ip not in sub:
            raise InvalidArgument(f"{label} {addr} is not within subnet {subnet}")
