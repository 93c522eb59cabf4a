"""A session's two ends over a socketpair: the client side serving handlers on the CLI's
HTTP/2 server (session/h2lite.py, what `dockyard build` plays) and the daemon's side
(session/h2grpc.GrpcConnection, client_side=True) that calls them."""

from __future__ import annotations

import _thread
import asyncio
import socket
from typing import Any

from dockyard.session.h2grpc import GrpcConnection
from dockyard.session.h2lite import Connection


async def connect(handlers: dict[str, Any]) -> GrpcConnection:
    """`handlers` served by a new h2lite connection, joined to a new caller side."""
    receiver, _ = await connect_both(handlers)
    return receiver


async def connect_both(handlers: dict[str, Any]) -> tuple[GrpcConnection, Connection]:
    a, b = socket.socketpair()
    sender = Connection(b, handlers)
    _thread.start_new_thread(sender.serve, ())
    receiver = GrpcConnection(client_side=True)
    await asyncio.get_running_loop().create_connection(lambda: receiver, sock=a)
    return receiver, sender


async def connect_async(sender: GrpcConnection) -> GrpcConnection:
    """`sender` (our asyncio gRPC made with client_side=False and its handlers: a hostile
    client written as coroutines) joined to a new caller side."""
    a, b = socket.socketpair()
    loop = asyncio.get_running_loop()
    receiver = GrpcConnection(client_side=True)
    await loop.create_connection(lambda: sender, sock=b)
    await loop.create_connection(lambda: receiver, sock=a)
    return receiver
