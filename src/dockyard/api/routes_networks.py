"""Network endpoints: create, list, inspect, remove, connect, disconnect, prune."""

from __future__ import annotations

import ipaddress
from typing import Any

from aiohttp import web

from dockyard.api.helpers import Router, engine_of, filters_param, json_response
from dockyard.engine.endpoint_config import EndpointRequest
from dockyard.engine.filters import labels_match
from dockyard.engine.network import IPv6Pool
from dockyard.engine.network_attach import (
    connect as do_connect,
)
from dockyard.engine.network_attach import (
    containers_on,
    prune_networks,
    remove_network,
)
from dockyard.engine.network_attach import (
    disconnect as do_disconnect,
)
from dockyard.errors import InvalidArgument, NotSupported


def _containers_on(request: web.Request, net_id: str) -> dict[str, dict[str, str]]:
    return containers_on(engine_of(request).containers, net_id)


async def create(request: web.Request) -> web.StreamResponse:
    # imported at first use: with gojson, 0.3 MiB an idle daemon need not hold
    from dockyard.api import decode

    body = await decode.read_json(request, decode.NETWORK)
    _refuse_swarm_settings(body)
    ipam = body.get("IPAM") or {}
    # One IPv4 pool and one IPv6 pool at most (libnetwork takes several of each).
    pools: dict[int, dict[str, Any]] = {}
    for cfg in ipam.get("Config") or []:
        cfg = cfg or {}
        version = _pool_version(cfg)
        if version in pools:
            raise NotSupported(
                f"more than one IPv{version} IPAM config per network is not supported by dockyard"
            )
        pools[version] = cfg
    pool = pools.get(4, {})
    pool6 = pools.get(6)
    ipv6 = None
    if pool6 is not None:
        if pool6.get("AuxiliaryAddresses"):
            raise NotSupported("auxiliary addresses in an IPv6 pool are not supported by dockyard")
        ipv6 = IPv6Pool(
            str(pool6.get("Subnet") or ""),
            str(pool6.get("Gateway") or ""),
            str(pool6.get("IPRange") or ""),
        )
    subnet = str(pool.get("Subnet") or "")
    gateway = str(pool.get("Gateway") or "")
    net_id = engine_of(request).networks.create(
        str(body.get("Name") or ""),
        driver=str(body.get("Driver") or "bridge"),
        subnet=subnet,
        gateway=gateway,
        internal=bool(body.get("Internal")),
        labels=dict(body.get("Labels") or {}),
        check_duplicate=body.get("CheckDuplicate", True) is not False,
        ip_range=str(pool.get("IPRange") or ""),
        aux_addresses={str(k): str(v) for k, v in (pool.get("AuxiliaryAddresses") or {}).items()},
        ipv6=ipv6,
        enable_ipv6=bool(body.get("EnableIPv6")),
    )
    return json_response({"Id": net_id, "Warning": ""}, 201)


def _pool_version(cfg: dict[str, Any]) -> int:
    """An IPAM pool's IP version, from its subnet (else its range or gateway)."""
    for key in ("Subnet", "IPRange", "Gateway"):
        value = str(cfg.get(key) or "")
        if value:
            try:
                return ipaddress.ip_network(value, strict=False).version
            except ValueError:
                raise InvalidArgument(f"invalid {key.lower()} {value!r}") from None
    return 4


def _refuse_swarm_settings(body: dict[str, Any]) -> None:
    """Ingress, config-only/config-from networks and the swarm scope need a swarm: refused by
    name rather than created as a plain local network."""
    named = [
        flag
        for flag, given in (
            ("Ingress", body.get("Ingress")),
            ("ConfigOnly", body.get("ConfigOnly")),
            ("ConfigFrom", (body.get("ConfigFrom") or {}).get("Network")),
            ("Scope", body.get("Scope") not in (None, "", "local")),
        )
        if given
    ]
    if named:
        raise NotSupported(f"network {', '.join(named)} is not supported by dockyard (no swarm)")


_NETWORK_FILTERS = ("dangling", "driver", "id", "label", "name", "scope", "type")
_BUILTIN = ("bridge", "host", "none")


async def list_networks(request: web.Request) -> web.StreamResponse:
    nets = engine_of(request).networks
    filters = filters_param(request)
    for key, values in filters.items():
        # moby daemon/network/filter.go: the filters GET /networks knows
        if key not in _NETWORK_FILTERS:
            raise InvalidArgument(f"Invalid filter '{key}'")
        if key == "type" and any(v not in ("builtin", "custom") for v in values):
            raise InvalidArgument(f"invalid filter: 'type'='{values[0]}'")
    out = []
    for net in nets.list():
        if "name" in filters and not any(v in net["Name"] for v in filters["name"]):
            continue
        if "id" in filters and not any(net["Id"].startswith(v) for v in filters["id"]):
            continue
        if "driver" in filters and net["Driver"] not in filters["driver"]:
            continue
        if "label" in filters and not labels_match(net.get("Labels"), filters["label"]):
            continue
        if "scope" in filters and "local" not in filters["scope"]:
            continue
        if "type" in filters:
            kind = "builtin" if net["Name"] in _BUILTIN else "custom"
            if kind not in filters["type"]:
                continue
        if "dangling" in filters:
            dangling = net["Name"] not in _BUILTIN and not _containers_on(request, net["Id"])
            if any((v.lower() in ("true", "1")) != dangling for v in filters["dangling"]):
                continue
        out.append(nets.inspect(net, {}))
    return json_response(out)


async def inspect(request: web.Request) -> web.StreamResponse:
    nets = engine_of(request).networks
    net = nets.get(request.match_info["id"])
    return json_response(nets.inspect(net, _containers_on(request, net["Id"])))


async def remove(request: web.Request) -> web.StreamResponse:
    await remove_network(engine_of(request).containers, request.match_info["id"])
    return web.Response(status=204)


async def connect(request: web.Request) -> web.StreamResponse:
    from dockyard.api import decode

    body = await decode.read_json(request, decode.CONNECT)
    container = str(body.get("Container") or "")
    if not container:
        raise InvalidArgument("container is required")
    req = EndpointRequest.from_api(body.get("EndpointConfig"))
    await do_connect(engine_of(request).containers, request.match_info["id"], container, req)
    return web.Response(status=200)


async def disconnect(request: web.Request) -> web.StreamResponse:
    from dockyard.api import decode

    body = await decode.read_json(request, decode.DISCONNECT)
    await do_disconnect(
        engine_of(request).containers,
        request.match_info["id"],
        str(body.get("Container") or ""),
        force=bool(body.get("Force")),
    )
    return web.Response(status=200)


async def prune(request: web.Request) -> web.StreamResponse:
    removed = await prune_networks(engine_of(request).containers)
    return json_response({"NetworksDeleted": removed or None})


def setup(router: Router) -> None:
    router.add("POST", "/networks/create", create)
    router.add("GET", "/networks", list_networks)
    router.add("POST", "/networks/prune", prune)
    router.add("GET", "/networks/{id}", inspect)
    router.add("DELETE", "/networks/{id}", remove)
    router.add("POST", "/networks/{id}/connect", connect)
    router.add("POST", "/networks/{id}/disconnect", disconnect)
