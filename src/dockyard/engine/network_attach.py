"""`network connect` / `network disconnect` of created and running containers.

A created container only has its wanted networks recorded; a running one is plugged in (or
out) at once through its namespace, and the /etc/hosts of its peers follow.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import TYPE_CHECKING

from dockyard.engine.container_record import Container
from dockyard.engine.endpoint_config import EndpointRequest
from dockyard.errors import Conflict, InvalidArgument, NotFound

if TYPE_CHECKING:
    from dockyard.engine.containers import ContainerManager


def _netns(rec: Container) -> str:
    if rec.runtime.netns:
        return rec.runtime.netns
    return f"/proc/{rec.state.pid}/ns/net"


async def connect(
    mgr: ContainerManager, net_ref: str, container: str, request: EndpointRequest
) -> None:
    net = mgr.networks.get(net_ref)
    rec = mgr.resolve(container)
    mode = rec.host_config.network_mode
    if net["Driver"] != "bridge":
        raise InvalidArgument(f"container cannot be connected to the {net['Name']} network")
    if mode == "none":
        # moby runconfig.ErrConflictNoNetwork (measured against dockerd 20.10)
        raise InvalidArgument(
            "container cannot be connected to multiple networks with one of the networks in "
            "private (none) mode"
        )
    if mode == "host" or mode.startswith("container:"):
        raise InvalidArgument(
            "container sharing network namespace with another container or host cannot be "
            "connected to any other network"
        )
    if net["Id"] in rec.networks:
        raise Conflict(f"endpoint with name {rec.name} already exists in network {net['Name']}")
    request.check(net)
    if not rec.state.alive:

        def wanted(c: Container) -> None:
            c.networks = {**c.networks, net["Id"]: request}

        mgr.write(rec.id, wanted)
        mgr.networks.event(net, "connect", container=rec.id)
        return
    eps = rec.runtime.endpoints
    ep = await asyncio.to_thread(
        mgr.networks.connect, net["Id"], rec.id, _netns(rec), f"eth{len(eps)}", not eps, request
    )

    def plugged(c: Container) -> None:
        c.networks = {**c.networks, net["Id"]: request}
        c.runtime = dataclasses.replace(c.runtime, endpoints={**c.runtime.endpoints, net["Id"]: ep})

    updated = mgr.write(rec.id, plugged)
    if updated is not None:
        mgr.refresh_peers(updated.runtime)
        await mgr.ensure_dns(updated.runtime)
    mgr.networks.event(net, "connect", container=rec.id)


async def disconnect(mgr: ContainerManager, net_ref: str, container: str, *, force: bool) -> None:
    net = mgr.networks.get(net_ref)
    try:
        rec = mgr.resolve(container)
    except NotFound:
        if force:
            return
        raise
    if net["Id"] not in rec.networks:
        raise InvalidArgument(f"container {rec.id} is not connected to network {net['Name']}")
    ep = rec.runtime.endpoints.get(net["Id"])
    unplug = ep is not None and rec.state.alive
    if ep is not None and unplug:
        await asyncio.to_thread(mgr.networks.disconnect, ep, rec.id, _netns(rec))

    def removed(c: Container) -> None:
        c.networks = {k: v for k, v in c.networks.items() if k != net["Id"]}
        if unplug:
            endpoints = {k: v for k, v in c.runtime.endpoints.items() if k != net["Id"]}
            c.runtime = dataclasses.replace(c.runtime, endpoints=endpoints)

    mgr.write(rec.id, removed)
    if ep is not None and unplug:
        mgr.refresh_peers(dataclasses.replace(rec.runtime, endpoints={net["Id"]: ep}))
    mgr.networks.event(net, "disconnect", container=rec.id)


def containers_on(mgr: ContainerManager, net_id: str) -> dict[str, dict[str, str]]:
    """The `Containers` of a network's inspect: those plugged into it, by ID."""
    out: dict[str, dict[str, str]] = {}
    for rec in mgr.all():
        ep = rec.runtime.endpoints.get(net_id)
        if ep is not None and net_id in mgr.networks_of(rec, attached_only=True):
            out[rec.id] = {
                "Name": rec.name,
                "EndpointID": ep.host_if,
                "MacAddress": ep.mac,
                "IPv4Address": f"{ep.ip}/{ep.prefix}",
                "IPv6Address": f"{ep.ip6}/{ep.prefix6}" if ep.ip6 else "",
            }
    return out


async def remove_network(mgr: ContainerManager, net_ref: str) -> None:
    """`network rm`: refused while a container is plugged into it; its DNS responder goes."""
    net = mgr.networks.get(net_ref)
    await asyncio.to_thread(mgr.networks.remove, net["Id"], mgr.network_users(net["Id"]))
    mgr.dns.stop(net["Id"])


async def prune_networks(mgr: ContainerManager) -> list[str]:
    """`network prune`: user networks no container uses or asked for."""
    in_use = mgr.networks_in_use(attached_only=False)
    ids = {net["Name"]: net["Id"] for net in mgr.networks.list()}
    removed = await asyncio.to_thread(mgr.networks.prune, in_use)
    for name in removed:
        # As `network rm`: the responder goes with its network, or its socket keeps the
        # gateway's port 53 and a later network given the same subnet has no DNS.
        mgr.dns.stop(ids[name])
    return removed
