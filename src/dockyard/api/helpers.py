"""The request helpers every api/routes_* module shares: the router, the engine of a request,
query parameters (flags, integers, times, filters, image names) and JSON answers.

server.py is the app factory (middleware, route tables); handlers import from here, never
from each other.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

import dockyard
from dockyard.engine.container_views import normalize_filters
from dockyard.engine.engine import API_VERSION, Engine
from dockyard.errors import InvalidArgument

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ENGINE_KEY: web.AppKey[Engine] = web.AppKey("engine", Engine)
_VERSION_PREFIX = r"/{api_version:v[0-9]+\.[0-9]+}"

COMMON_HEADERS = {
    "Api-Version": API_VERSION,
    "Docker-Experimental": "false",
    "Ostype": "linux",
    "Server": f"Docker/dockyard-{dockyard.__version__} (linux)",
}


HEAVY_ROUTES_KEY: web.AppKey[set[web.AbstractRoute]] = web.AppKey("heavy_routes", set)


class Router:
    """Every route is served unversioned and under `/vX.Y/`."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.heavy: set[web.AbstractRoute] = set()
        app[HEAVY_ROUTES_KEY] = self.heavy

    def add(self, method: str, path: str, handler: Handler, *, heavy: bool = False) -> None:
        """`heavy`: a request of this route moves much through the daemon's heap while it
        runs (a build, an image transfer); api/memtrim.py holds its trim off meanwhile. The
        mark is on the route itself, so a new route cannot miss it by its path's spelling
        and a name that ends like one (`docker rm build`) is not taken for it."""
        routes = (
            self.app.router.add_route(method, path, handler),
            self.app.router.add_route(method, _VERSION_PREFIX + path, handler),
        )
        if heavy:
            self.heavy.update(routes)


def is_heavy(request: web.Request) -> bool:
    """Whether the request's route was added with `heavy=True` (an unknown path is not)."""
    return request.match_info.route in request.app[HEAVY_ROUTES_KEY]


def engine_of(request: web.Request) -> Engine:
    return request.app[ENGINE_KEY]


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(data).encode(), status=status, content_type="application/json"
    )


def flag(request: web.Request, name: str, default: bool = False) -> bool:
    value = request.query.get(name)
    if value is None:
        return default
    return value.lower() not in ("", "0", "false", "no")


def name_param(request: web.Request) -> str:
    """Image names may contain slashes (`host:5000/ns/x`): the route captures them whole."""
    return re.sub(r"^/+", "", request.match_info["name"])


def filters_param(request: web.Request) -> dict[str, list[str]]:
    raw = request.query.get("filters")
    if not raw:
        return {}
    try:
        return normalize_filters(json.loads(raw))
    except ValueError:
        raise InvalidArgument(f"invalid filters: {raw}") from None


def int_query(request: web.Request, name: str) -> int | None:
    v = request.query.get(name)
    if v in (None, ""):
        return None
    try:
        return int(v)
    except ValueError:
        raise InvalidArgument(f"invalid value for {name}: {v!r}") from None


def time_query(request: web.Request, name: str) -> float:
    """`since`/`until`: Unix seconds (the docker CLI converts) or an RFC 3339 timestamp."""
    v = request.query.get(name) or ""
    if not v:
        return 0.0
    try:
        return float(v)
    except ValueError:
        pass
    from dockyard.engine.container_logs import parse_time

    t = parse_time(v)
    if not t:
        raise InvalidArgument(
            f"invalid {name} value {v!r} (expected Unix seconds or an RFC 3339 time)"
        )
    return t
