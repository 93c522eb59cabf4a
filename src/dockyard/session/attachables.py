"""The client's end of a session besides file sync: secrets, ssh agents and health.

BuildKit calls these the session's attachables (moby/buildkit session/secrets/secretsprovider,
session/sshforward/sshprovider): the client serves them and the daemon calls them while it
builds. `dockyard build` serves them next to its context (fssend.DirServer), so secrets and
agents reach the daemon through the session and never by a path on the daemon's host.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

from dockyard.session import methods
from dockyard.session.h2grpc import INVALID_ARGUMENT, NOT_FOUND, UNAVAILABLE, Call, GrpcError

# BuildKit's secretsprovider refuses secrets over 500 KiB (session/secrets/secrets.go).
MAX_SECRET_SIZE = 500 << 10


async def _request(call: Call) -> bytes:
    raw = await call.recv()
    if raw is None:
        raise GrpcError(INVALID_ARGUMENT, "no request")
    return raw


class Secrets:
    """Secrets.GetSecret from an in-memory map by id (the CLI read them before the build)."""

    def __init__(self, secrets: Mapping[str, bytes]) -> None:
        self._secrets = dict(secrets)

    def handlers(self) -> dict[str, Any]:
        return {methods.SECRETS_GET: self.get}

    async def get(self, call: Call) -> None:
        from dockyard.session.proto import session_pb2

        req = session_pb2.GetSecretRequest.FromString(await _request(call))
        data = self._secrets.get(req.ID)
        if data is None:
            raise GrpcError(NOT_FOUND, f"secret {req.ID} not found")
        await call.send(session_pb2.GetSecretResponse(data=data).SerializeToString())


class Agents:
    """SSH.CheckAgent and SSH.ForwardAgent: each forwarded connection is a new connection
    to the local agent socket of that id, bytes pumped both ways in BytesMessage frames."""

    def __init__(self, sockets: Mapping[str, str]) -> None:
        self._sockets = dict(sockets)

    def handlers(self) -> dict[str, Any]:
        return {methods.SSH_CHECK_AGENT: self.check, methods.SSH_FORWARD_AGENT: self.forward}

    def _path(self, ident: str) -> str:
        path = self._sockets.get(ident or "default")
        if path is None:
            raise GrpcError(NOT_FOUND, f"unset ssh forward key {ident or 'default'}")
        return path

    async def check(self, call: Call) -> None:
        from dockyard.session.proto import session_pb2

        req = session_pb2.CheckAgentRequest.FromString(await _request(call))
        self._path(req.ID)
        await call.send(session_pb2.CheckAgentResponse().SerializeToString())

    async def forward(self, call: Call) -> None:
        from dockyard.session.proto import session_pb2

        Msg = session_pb2.BytesMessage
        path = self._path(call.first(methods.KEY_SSH_ID))
        try:
            reader, writer = await asyncio.open_unix_connection(path)
        except OSError as exc:
            raise GrpcError(UNAVAILABLE, f"ssh agent {path}: {exc.strerror}") from None

        async def upstream() -> None:
            while (raw := await call.recv()) is not None:
                writer.write(Msg.FromString(raw).data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()

        up = asyncio.create_task(upstream())
        try:
            while data := await reader.read(32 << 10):
                await call.send(Msg(data=data).SerializeToString())
            await up
        finally:
            up.cancel()
            with contextlib.suppress(BaseException):
                await up
            writer.close()


async def health(call: Call) -> None:
    from dockyard.session.proto import session_pb2

    await _request(call)
    ok = session_pb2.HealthCheckResponse(status=session_pb2.HealthCheckResponse.SERVING)
    await call.send(ok.SerializeToString())


def health_handlers() -> dict[str, Any]:
    return {methods.HEALTH_CHECK: health}
