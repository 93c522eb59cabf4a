"""POST /grpc: BuildKit's control API (buildx's docker driver), the connection taken over as h2c.

As moby's gRPC endpoint (api/server/router/grpc): the request must ask for `Upgrade: h2c`;
we answer `101 Switching Protocols` on the raw socket and serve gRPC on it, the client's
calls dispatched to engine/grpc_build.py. buildx picks its docker driver when this upgrade
succeeds (driver/docker/factory.go Priority). The handler holds the request until the
connection closes, so aiohttp never writes on the socket again.
"""

from __future__ import annotations

from aiohttp import web

from dockyard.api.helpers import Router, engine_of
from dockyard.api.hijack import HijackedResponse
from dockyard.errors import InvalidArgument


async def grpc(request: web.Request) -> web.StreamResponse:
    proto = request.headers.get("Upgrade", "")
    if not proto:
        raise InvalidArgument("no upgrade proto in request")
    if proto.lower() != "h2c":
        raise InvalidArgument(f"protocol {proto} not supported")
    builds = engine_of(request).grpc_builds  # loads the gRPC modules on first use
    from dockyard.session.h2grpc import GrpcConnection

    transport = request.transport
    if transport is None or transport.is_closing():
        return web.Response(status=499)
    conn = GrpcConnection(client_side=False, handlers=builds.handlers())
    transport.write(
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
    )
    conn.attach(transport)
    await conn.closed.wait()
    return HijackedResponse(request)


def setup(router: Router) -> None:
    router.add("POST", "/grpc", grpc, heavy=True)
