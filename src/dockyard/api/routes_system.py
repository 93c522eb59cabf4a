"""System endpoints: /_ping, /version, /info."""

from __future__ import annotations

from aiohttp import web

from dockyard.api.server import Router, engine_of, json_response


async def ping(request: web.Request) -> web.StreamResponse:
    headers = {
        "Builder-Version": "1",
        "Swarm": "inactive",
        "Cache-Control": "no-cache, no-store, must-revalidate",
        "Pragma": "no-cache",
    }
    body = b"" if request.method == "HEAD" else b"OK"
    return web.Response(body=body, headers=headers, content_type="text/plain", charset="utf-8")


async def version(request: web.Request) -> web.StreamResponse:
    return json_response(engine_of(request).version())


async def info(request: web.Request) -> web.StreamResponse:
    return json_response(engine_of(request).info())


def setup(router: Router) -> None:
    router.add("GET", "/_ping", ping)
    router.add("HEAD", "/_ping", ping)
    router.add("GET", "/version", version)
    router.add("GET", "/info", info)
