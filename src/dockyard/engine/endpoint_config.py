"""What a client asks of a container's endpoint on a network (moby's EndpointSettings as
sent to create and `network connect`): aliases, a fixed address, link-local addresses, a MAC
address, driver options and links (engine/links.py), checked in dockerd's words.

The request is stored with the container, in Docker's field names, under its network's ID
(`networks` of the record, engine/container_record.py); the endpoint itself
(engine/network.py) is made at start.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dockyard.errors import InvalidArgument

_MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")


def parse_links(entries: Iterable[object]) -> list[tuple[str, str]]:
    """`name:alias` (or `name`, aliased as itself) → (target, alias); a leading `/` dropped."""
    out = []
    for entry in entries:
        name, _, alias = str(entry).partition(":")
        name = name.strip("/")
        alias = alias.strip("/").rpartition("/")[2] or name
        if not name:
            raise InvalidArgument(f"invalid link: {entry!r}")
        out.append((name, alias))
    return out


@dataclass(frozen=True)
class EndpointRequest:
    aliases: tuple[str, ...] = ()
    ipv4: str = ""
    ipv6: str = ""
    link_local: tuple[str, ...] = ()
    mac: str = ""
    driver_opts: Mapping[str, str] = field(default_factory=dict)
    # Links on this (user-defined) network: (target container name, alias), as asked; the
    # target is resolved when the alias is looked up (engine/links.py).
    links: tuple[tuple[str, str], ...] = ()

    @staticmethod
    def from_api(doc: Mapping[str, Any] | None) -> EndpointRequest:
        """From an EndpointSettings body (`Links` as `name:alias` strings)."""
        doc = doc or {}
        return EndpointRequest.from_json({**doc, "Links": parse_links(doc.get("Links") or ())})

    @staticmethod
    def from_json(doc: Mapping[str, Any] | None) -> EndpointRequest:
        """As stored: the API's names, with the links as (target, alias) pairs."""
        doc = doc or {}
        ipam = doc.get("IPAMConfig") or {}
        return EndpointRequest(
            aliases=tuple(str(a) for a in doc.get("Aliases") or ()),
            ipv4=str(ipam.get("IPv4Address") or ""),
            ipv6=str(ipam.get("IPv6Address") or ""),
            link_local=tuple(str(a) for a in ipam.get("LinkLocalIPs") or ()),
            mac=str(doc.get("MacAddress") or ""),
            driver_opts={str(k): str(v) for k, v in (doc.get("DriverOpts") or {}).items()},
            links=tuple((str(t), str(a)) for t, a in doc.get("Links") or ()),
        )

    def to_json(self) -> dict[str, Any]:
        """As stored, in the API's names."""
        ipam: dict[str, Any] | None = None
        if self.ipv4 or self.ipv6 or self.link_local:
            ipam = {}
            if self.ipv4:
                ipam["IPv4Address"] = self.ipv4
            if self.ipv6:
                ipam["IPv6Address"] = self.ipv6
            if self.link_local:
                ipam["LinkLocalIPs"] = list(self.link_local)
        # Only what was asked besides the aliases: a row of a container that asked for
        # nothing else keeps the shape it had before these settings existed.
        out: dict[str, Any] = {"Aliases": list(self.aliases)}
        if ipam:
            out["IPAMConfig"] = ipam
        if self.mac:
            out["MacAddress"] = self.mac
        if self.driver_opts:
            out["DriverOpts"] = dict(self.driver_opts)
        if self.links:
            out["Links"] = [list(link) for link in self.links]
        return out

    def check(self, net: Mapping[str, Any]) -> None:
        """moby daemon/container_operations.go validateNetworkingConfig and the endpoint's
        IPAM checks, for a request on `net` (a network record)."""
        if (self.ipv4 or self.ipv6) and net["Name"] == "bridge":
            raise InvalidArgument(
                "user specified IP address is supported on user defined networks only"
            )
        if (self.ipv4 and net.get("AutoSubnet")) or (self.ipv6 and not net.get("IPv6Subnet")):
            raise InvalidArgument(
                "user specified IP address is supported only when connecting to networks "
                "with user configured subnets"
            )
        if self.ipv4:
            try:
                addr = ipaddress.ip_address(self.ipv4)
            except ValueError:
                addr = None
            if not isinstance(addr, ipaddress.IPv4Address):
                raise InvalidArgument(f"invalid IPv4 address: {self.ipv4}")
            if addr not in ipaddress.ip_network(net["Subnet"]):
                raise InvalidArgument(
                    f"Invalid address {self.ipv4}: It does not belong to any of this "
                    "network's subnets"
                )
        if self.ipv6:
            # Kept and shown whether or not the network has EnableIPv6; assigned only where
            # it has (libnetwork allocates IPv6 addresses on IPv6 networks only).
            try:
                addr6 = ipaddress.ip_address(self.ipv6)
            except ValueError:
                addr6 = None
            if not isinstance(addr6, ipaddress.IPv6Address):
                raise InvalidArgument(f"invalid IPv6 address: {self.ipv6}")
            if addr6 not in ipaddress.ip_network(net["IPv6Subnet"]):
                raise InvalidArgument(
                    f"Invalid address {self.ipv6}: It does not belong to any of this "
                    "network's subnets"
                )
        for ip in self.link_local:
            try:
                ipaddress.ip_address(ip)
            except ValueError:
                raise InvalidArgument(f"invalid link-local IP address: {ip}") from None
        if self.mac and not _MAC.match(self.mac):
            raise InvalidArgument(f"invalid MAC address: {self.mac}")
