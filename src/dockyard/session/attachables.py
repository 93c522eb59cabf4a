"""The client's end of a session besides file sync: secrets, ssh agents and health.

BuildKit calls these the session's attachables (moby/buildkit session/secrets/secretsprovider,
session/sshforward/sshprovider): the client serves them and the daemon calls them while it
builds. `dockyard build` serves them next to its context (fssend.DirServer), so secrets and
agents reach the daemon through the session and never by a path on the daemon's host.

Handlers of session/h2lite.py (blocking, each call in a thread of its own). Their messages
(proto/session.proto) are one field each, written and read here by hand as fswire.py does
for fsutil's: protobuf costs the CLI ~25 ms of start-up, and the daemon health-checks every
session every 5 s.
"""

from __future__ import annotations

import _thread

from dockyard.session import methods
from dockyard.session.fswire import MalformedPacket, read_varint, varint
from dockyard.session.h2lite import INVALID_ARGUMENT, NOT_FOUND, UNAVAILABLE, Call, GrpcError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

# BuildKit's secretsprovider refuses secrets over 500 KiB (session/secrets/secrets.go).
MAX_SECRET_SIZE = 500 << 10
# HealthCheckResponse{status: SERVING}: field 1, varint 1
_SERVING = b"\x08\x01"


def field1(raw: bytes) -> bytes:
    """Field 1 (a string or bytes) of a message; b"" when absent. Other fields skipped."""
    i, n = 0, len(raw)
    found = b""
    try:
        while i < n:
            key, i = read_varint(raw, i)
            wire = key & 7
            if wire == 0:
                _, i = read_varint(raw, i)
            elif wire == 2:
                length, i = read_varint(raw, i)
                if i + length > n:
                    raise MalformedPacket("truncated field")
                if key >> 3 == 1:
                    found = raw[i : i + length]
                i += length
            elif wire in (1, 5):
                i += 8 if wire == 1 else 4
            else:
                raise MalformedPacket(f"wire type {wire}")
    except MalformedPacket as exc:
        raise GrpcError(INVALID_ARGUMENT, f"malformed request: {exc}") from None
    return found


def bytes_field1(data: bytes) -> bytes:
    """A message whose field 1 is `data` (GetSecretResponse, BytesMessage)."""
    return b"\x0a" + varint(len(data)) + data if data else b""


def _request(call: Call) -> bytes:
    raw = call.recv()
    if raw is None:
        raise GrpcError(INVALID_ARGUMENT, "no request")
    return raw


class Secrets:
    """Secrets.GetSecret from an in-memory map by id (the CLI read them before the build)."""

    def __init__(self, secrets: Mapping[str, bytes]) -> None:
        self._secrets = dict(secrets)

    def handlers(self) -> dict[str, Any]:
        return {methods.SECRETS_GET: self.get}

    def get(self, call: Call) -> None:
        ident = field1(_request(call)).decode("utf-8", "replace")
        data = self._secrets.get(ident)
        if data is None:
            raise GrpcError(NOT_FOUND, f"secret {ident} not found")
        call.send(bytes_field1(data))


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

    def check(self, call: Call) -> None:
        self._path(field1(_request(call)).decode("utf-8", "replace"))
        call.send(b"")  # CheckAgentResponse{}

    def forward(self, call: Call) -> None:
        import _socket

        path = self._path(call.first(methods.KEY_SSH_ID))
        agent = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            agent.connect(path)
        except OSError as exc:
            agent.close()
            raise GrpcError(UNAVAILABLE, f"ssh agent {path}: {exc.strerror}") from None
        done = _thread.allocate_lock()
        done.acquire()

        def upstream() -> None:
            try:
                while (raw := call.recv()) is not None:
                    agent.sendall(field1(raw))
                agent.shutdown(_socket.SHUT_WR)
            except (OSError, GrpcError):
                try:
                    agent.shutdown(_socket.SHUT_RDWR)  # ends the read below too
                except OSError:
                    pass
            finally:
                done.release()

        _thread.start_new_thread(upstream, ())
        try:
            while data := agent.recv(32 << 10):
                call.send(bytes_field1(data))
            with done:  # the daemon's side ends first (its half-close), then our status
                pass
        finally:
            agent.close()


def health(call: Call) -> None:
    _request(call)
    call.send(_SERVING)


def health_handlers() -> dict[str, Any]:
    return {methods.HEALTH_CHECK: health}
