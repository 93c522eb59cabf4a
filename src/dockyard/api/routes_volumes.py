"""Volume endpoints: create, list, inspect, remove, prune."""

from __future__ import annotations

from aiohttp import web

from dockyard.api.helpers import Router, engine_of, filters_param, flag, json_response, name_param
from dockyard.errors import NotSupported


async def create(request: web.Request) -> web.StreamResponse:
    # imported at first use: with gojson, 0.3 MiB an idle daemon need not hold
    from dockyard.api import decode

    body = await decode.read_json(request, decode.VOLUME)
    if body.get("ClusterVolumeSpec") is not None:
        raise NotSupported("cluster volumes (ClusterVolumeSpec) are not supported by dockyard")
    vol = engine_of(request).containers.volumes.create(
        str(body.get("Name") or ""),
        driver=str(body.get("Driver") or "local"),
        labels=dict(body.get("Labels") or {}),
        options=dict(body.get("DriverOpts") or {}),
    )
    return json_response(vol, 201)


async def list_volumes(request: web.Request) -> web.StreamResponse:
    vols = engine_of(request).containers.volumes.list(filters_param(request))
    return json_response({"Volumes": vols, "Warnings": None})


async def inspect(request: web.Request) -> web.StreamResponse:
    return json_response(engine_of(request).containers.volumes.inspect(name_param(request)))


async def remove(request: web.Request) -> web.StreamResponse:
    engine_of(request).containers.volumes.remove(name_param(request), force=flag(request, "force"))
    return web.Response(status=204)


async def prune(request: web.Request) -> web.StreamResponse:
    all_ = any(v.lower() in ("true", "1") for v in filters_param(request).get("all", []))
    removed, size = engine_of(request).containers.volumes.prune(all_)
    return json_response({"VolumesDeleted": removed or None, "SpaceReclaimed": size})


def setup(router: Router) -> None:
    router.add("POST", "/volumes/create", create)
    router.add("GET", "/volumes", list_volumes)
    router.add("POST", "/volumes/prune", prune)
    router.add("GET", "/volumes/{name}", inspect)
    router.add("DELETE", "/volumes/{name}", remove)
