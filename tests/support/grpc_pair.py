"""Two of our gRPC connections over a socketpair: a session's client side serving handlers
(what the docker CLI or our CLI plays) and the daemon's side that calls them."""

from __future__ import annotations

import asyncio
import socket

from dockyard.session.h2grpc import GrpcConnection


async def connect(sender: GrpcConnection) -> GrpcConnection:
    """`sender` (made with client_side=False and its handlers) joined to a new caller side."""
    a, b = socket.socketpair()
    loop = asyncio.get_running_loop()
    receiver = GrpcConnection(client_side=True)
    await loop.create_connection(lambda: sender, sock=b)
    await loop.create_connection(lambda: receiver, sock=a)
    return receiver
