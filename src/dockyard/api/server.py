"""The Engine API server: aiohttp on a Unix socket, HTTP in, engine calls, HTTP out.

Every route is served both unversioned and under `/vX.Y/`; the version middleware refuses
versions outside [MIN_API_VERSION, API_VERSION] with 400 as Docker does, and every response
carries Docker's `Api-Version`, `Ostype`, `Docker-Experimental` and `Server` headers.
Our exceptions become `{"message": …}` bodies with the status their class names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from dockyard.api.helpers import COMMON_HEADERS, ENGINE_KEY, Handler, Router, json_response
from dockyard.api.inflight import InFlight
from dockyard.engine.engine import API_VERSION, MIN_API_VERSION, Engine
from dockyard.errors import DockyardError

if TYPE_CHECKING:
    from dockyard.api.idle_reexec import IdleReexec


def _version_tuple(v: str) -> tuple[int, ...]:
    return tuple(int(p) for p in v.split("."))


@web.middleware
async def docker_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    version = request.match_info.get("api_version")
    if version:
        v = _version_tuple(version[1:])
        if v < _version_tuple(MIN_API_VERSION):
            return _error(
                400,
                f"client version {version[1:]} is too old. Minimum supported API version is "
                f"{MIN_API_VERSION}, please upgrade your client to a newer version",
            )
        if v > _version_tuple(API_VERSION):
            return _error(
                400,
                f"client version {version[1:]} is too new. Maximum supported API version is "
                f"{API_VERSION}",
            )
    try:
        response = await handler(request)
    except ConnectionResetError:
        # The client left mid-stream (aiohttp's ClientConnectionResetError is one): nothing
        # to answer, and nothing went wrong on our side.
        return web.Response(status=499)
    except DockyardError as exc:
        response = _error(exc.status, str(exc))
    except web.HTTPException as exc:
        if exc.status >= 400:
            response = _error(exc.status, exc.text or exc.reason)
        else:
            raise
    if not response.prepared:
        response.headers.update(COMMON_HEADERS)
    return response


def _error(status: int, message: str) -> web.Response:
    resp = json_response({"message": message}, status)
    resp.headers.update(COMMON_HEADERS)
    return resp


async def _not_found(request: web.Request) -> web.StreamResponse:
    return _error(404, "page not found")  # Docker's exact body for unknown endpoints


def create_app(engine: Engine, idle: IdleReexec | None = None) -> web.Application:
    """The API on `engine`; `idle` (the daemon's) is told when each request starts and ends."""
    from dockyard.api import memtrim, routes_build, routes_containers, routes_images, routes_system
    from dockyard.api.requestlog import request_log

    trimmer = memtrim.QuietTrimmer()
    inflight = InFlight()
    app = web.Application(
        middlewares=[
            *([idle.middleware] if idle is not None else []),
            inflight.middleware,
            memtrim.middleware(trimmer),
            request_log,
            docker_middleware,
        ],
        client_max_size=0,
    )
    app[ENGINE_KEY] = engine
    app.on_shutdown.append(inflight.end)
    app.on_cleanup.append(trimmer.cleanup)
    router = Router(app)
    routes_system.setup(router)
    routes_images.setup(router)
    routes_containers.setup(router)
    routes_build.setup(router)
    from dockyard.api import routes_archive

    routes_archive.setup(router)
    from dockyard.api import routes_distribution

    routes_distribution.setup(router)
    from dockyard.api import routes_session

    routes_session.setup(router)
    from dockyard.api import routes_grpc

    routes_grpc.setup(router)
    app.router.add_route("*", "/{tail:.*}", _not_found)
    return app
