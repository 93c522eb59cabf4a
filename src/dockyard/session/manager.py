"""BuildKit's sessions: a client's hijacked `POST /session` connection, on which it serves gRPC.

A session is known by the uuid the client sends in `X-Docker-Expose-Session-Uuid`; the build
request that follows names it (`/build?session=…`, a Solve's `Session`). The client lists the
methods it serves in `X-Docker-Expose-Session-Grpc-Method` headers, and we call only those.
As BuildKit's session manager does, we check the client's health every 5 s (gRPC health,
15 s timeout, two failures end it) and end the session when its connection closes; whoever
uses a session watches `closed` to stop its work (moby/buildkit session/manager.go, grpc.go).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from dockyard.errors import InvalidArgument, NotFound
from dockyard.session import methods
from dockyard.session.h2grpc import GrpcConnection, GrpcError

_log = logging.getLogger("dockyard.session")

HEADER_UUID = "X-Docker-Expose-Session-Uuid"
HEADER_NAME = "X-Docker-Expose-Session-Name"
HEADER_SHARED_KEY = "X-Docker-Expose-Session-Sharedkey"
HEADER_METHOD = "X-Docker-Expose-Session-Grpc-Method"

HEALTH_INTERVAL = 5.0
HEALTH_TIMEOUT = 15.0
HEALTH_FAILURES = 2


@dataclass
class Session:
    id: str
    name: str
    shared_key: str
    methods: frozenset[str]
    conn: GrpcConnection
    users: int = 0
    _health: asyncio.Task[None] | None = field(default=None, repr=False)

    def supports(self, method: str) -> bool:
        return method.lower() in self.methods

    @property
    def closed(self) -> asyncio.Event:
        return self.conn.closed

    def close(self, reason: str = "") -> None:
        self.conn.close(reason)


class SessionManager:
    """The daemon's live sessions by uuid; one owner, the engine."""

    def __init__(self) -> None:
        self._sessions: dict[str, Session] = {}
        self._changed = asyncio.Condition()

    def __len__(self) -> int:
        return len(self._sessions)

    def ids(self) -> list[str]:
        return list(self._sessions)

    async def serve(
        self,
        session_id: str,
        name: str,
        shared_key: str,
        served: list[str],
        conn: GrpcConnection,
    ) -> None:
        """Register a session whose connection `conn` is already attached, and keep it until
        the connection closes. Returns when it has gone, having removed it."""
        if not session_id:
            raise InvalidArgument(f"{HEADER_UUID} header is required")
        if session_id in self._sessions:
            raise InvalidArgument(f"session {session_id} already exists")
        session = Session(session_id, name, shared_key, frozenset(m.lower() for m in served), conn)
        self._sessions[session_id] = session
        async with self._changed:
            self._changed.notify_all()
        session._health = asyncio.create_task(self._watch_health(session))
        try:
            await conn.closed.wait()
        finally:
            session._health.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await session._health
            conn.close()
            if self._sessions.get(session_id) is session:
                del self._sessions[session_id]
            async with self._changed:
                self._changed.notify_all()

    async def get(self, session_id: str, timeout: float = 5.0) -> Session:
        """The session, waiting for it a little: the docker CLI opens `/session` and sends
        the build at the same time, so the build may arrive first (BuildKit waits too)."""
        try:
            async with asyncio.timeout(timeout):
                async with self._changed:
                    await self._changed.wait_for(lambda: session_id in self._sessions)
        except TimeoutError:
            raise NotFound(
                f"no active session for {session_id}: context deadline exceeded"
            ) from None
        return self._sessions[session_id]

    @contextlib.asynccontextmanager
    async def use(self, session_id: str) -> AsyncIterator[Session]:
        session = await self.get(session_id)
        session.users += 1
        try:
            yield session
        finally:
            session.users -= 1

    async def _watch_health(self, session: Session) -> None:
        if not session.supports(methods.HEALTH_CHECK):
            return
        from dockyard.session.proto import session_pb2

        request = session_pb2.HealthCheckRequest().SerializeToString()
        failures = 0
        while not session.closed.is_set():
            await asyncio.sleep(HEALTH_INTERVAL)
            try:
                await session.conn.unary(methods.HEALTH_CHECK, request, timeout=HEALTH_TIMEOUT)
                failures = 0
            except GrpcError as exc:
                failures += 1
                _log.debug("session %s: health check failed: %s", session.id, exc.message)
                if failures >= HEALTH_FAILURES:
                    session.close("session healthcheck failed fatally")
                    return
