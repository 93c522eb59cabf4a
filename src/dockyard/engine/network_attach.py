"""`network connect` / `network disconnect` of created and running containers.

A created container only has its wanted networks recorded; a running one is plugged in (or
out) at once through its namespace, and the /etc/hosts of its peers follow.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from dockyard.engine.endpoint_config import EndpointRequest
from dockyard.engine.network import Endpoint
from dockyard.errors import Conflict, InvalidArgument, NotFound

if TYPE_CHECKING:
    from dockyard.engine.containers import ContainerManager


def _netns(rec: Any) -> str:
    runtime = rec.config.get("Runtime") or {}
    if runtime.get("Netns"):
        return str(runtime["Netns"])
    return f"/proc/{rec.state.get('Pid', 0)}/ns/net"


async def connect(
    mgr: ContainerManager, net_ref: str, container: str, req: EndpointRequest
) -> None:
    net = mgr.networks.get(net_ref)
    rec = mgr.resolve(container)
    mode = rec.config["HostConfig"].get("NetworkMode") or "default"
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
    wanted = dict(rec.config.get("Networks") or {})
    if net["Id"] in wanted:
        raise Conflict(f"endpoint with name {rec.name} already exists in network {net['Name']}")
    req.check(net)
    wanted[net["Id"]] = req.to_json()
    if rec.state.get("Running"):
        runtime = dict(rec.config.get("Runtime") or {})
        eps = dict(runtime.get("Endpoints") or {})
        ep = await asyncio.to_thread(
            mgr.networks.connect, net["Id"], rec.id, _netns(rec), f"eth{len(eps)}", not eps, req
        )
        eps[net["Id"]] = ep.to_json()
        runtime["Endpoints"] = eps
        mgr._put_config(rec.id, Networks=wanted, Runtime=runtime)
        mgr._refresh_peers(runtime)
        await mgr.ensure_dns(runtime)
    else:
        mgr._put_config(rec.id, Networks=wanted)
    mgr.networks.event(net, "connect", container=rec.id)


async def disconnect(mgr: ContainerManager, net_ref: str, container: str, *, force: bool) -> None:
    net = mgr.networks.get(net_ref)
    try:
        rec = mgr.resolve(container)
    except NotFound:
        if force:
            return
        raise
    wanted = dict(rec.config.get("Networks") or {})
    if net["Id"] not in wanted:
        raise InvalidArgument(f"container {rec.id} is not connected to network {net['Name']}")
    del wanted[net["Id"]]
    runtime = dict(rec.config.get("Runtime") or {})
    eps = dict(runtime.get("Endpoints") or {})
    ep = eps.pop(net["Id"], None)
    if ep is not None and rec.state.get("Running"):
        await asyncio.to_thread(mgr.networks.disconnect, Endpoint(**ep), rec.id, _netns(rec))
        runtime["Endpoints"] = eps
        mgr._put_config(rec.id, Networks=wanted, Runtime=runtime)
        mgr._refresh_peers({"Endpoints": {net["Id"]: ep}})
    else:
        mgr._put_config(rec.id, Networks=wanted)
    mgr.networks.event(net, "disconnect", container=rec.id)
