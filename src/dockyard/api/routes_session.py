"""POST /session: BuildKit's session, the connection taken over and spoken to as HTTP/2 gRPC.

As moby's session manager (buildkit session/manager.go HandleHTTPRequest): the request must
ask for `Upgrade: h2c`; we answer `101 Switching Protocols` on the raw socket, and from then
on the client serves gRPC on it and we are the gRPC client. The handler holds the request
until the session ends, so aiohttp never writes on the socket again.
"""

from __future__ import annotations

from aiohttp import web

from dockyard.api.helpers import Router, engine_of
from dockyard.api.hijack import HijackedResponse
from dockyard.errors import InvalidArgument


async def session(request: web.Request) -> web.StreamResponse:
    proto = request.headers.get("Upgrade", "")
    if not proto:
        raise InvalidArgument("no upgrade proto in request")
    if proto.lower() != "h2c":
        raise InvalidArgument(f"protocol {proto} not supported")
    builds = engine_of(request).session_builds  # loads the session modules on first use
    from dockyard.session import manager
    from dockyard.session.h2grpc import GrpcConnection

    session_id = request.headers.get(manager.HEADER_UUID, "")
    if not session_id:
        raise InvalidArgument(f"{manager.HEADER_UUID} header is required")
    if session_id in builds.sessions.ids():
        raise InvalidArgument(f"session {session_id} already exists")
    transport = request.transport
    if transport is None or transport.is_closing():
        return web.Response(status=499)
    conn = GrpcConnection(client_side=True)
    transport.write(
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
    )
    conn.attach(transport)
    await builds.sessions.serve(
        session_id,
        request.headers.get(manager.HEADER_NAME, ""),
        request.headers.get(manager.HEADER_SHARED_KEY, ""),
        request.headers.getall(manager.HEADER_METHOD, []),
        conn,
    )
    return HijackedResponse(request)


def setup(router: Router) -> None:
    router.add("POST", "/session", session, heavy=True)
