"""The daemon re-executes itself in place once it is idle, to give back what its work left in
its heap (issue 17, row h).

A Python process cannot shrink back to its start: the modules the first build, pull or push
imported stay (7.2 MiB of RSS for the 142 that bench's workloads load, measured in a bare
`python -OO` after malloc_trim), and so does whatever the allocator cannot hand back. So
an idle daemon at ~38 MiB stood at 60-66 MiB after the workloads however it trimmed
(docs/ARCHITECTURE.md, "The daemon's memory"). gunicorn's and celery's workers answer the same
limit by being replaced after N requests; the daemon replaces itself, in place: the same pid,
the same command line, the listening sockets and the locks kept open across the execve
(api/handoff.py). Clients that connect meanwhile wait in the backlog for the ~0.3 s of a
start; a daemon restart is a path the engine already takes (containers outlive it under
their monitors, engine.start rejoins them).

It happens only when no client could tell: `quiet` seconds after the last request ended,
with no connection open (no keep-alive, `events`, `logs -f`, attach), no asyncio task beyond
those the daemon had when it started, nothing the engine holds only in memory
(Engine.held_in_memory: a running container, an exec instance, a BuildKit session, a buildx
job), and only when the RSS has grown `growth` bytes or more since the start, so an idle
daemon is not restarted for nothing. What a restart would lose and a client could still see
is carried over: the event history (engine/events.py). `--idle-reexec-after 0` turns it off.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from dockyard.api.helpers import Handler

if TYPE_CHECKING:
    from dockyard.engine.engine import Engine

log = logging.getLogger("dockyard.idle")

_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    """This process's resident set (/proc/self/statm's second field, in pages)."""
    with open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[1]) * _PAGE


class IdleReexec:
    """Calls `on_due` once the daemon has been quiet for `quiet` seconds with its RSS `growth`
    bytes above what it was at `arm()`, and `held` (what would be lost, or None) says None.

    Every request's start and end put the moment off (`activity`). A check that finds the
    RSS grown but something held looks again `quiet` later; one that finds the RSS small
    waits for the next request."""

    def __init__(
        self,
        quiet: float,
        growth: int,
        on_due: Callable[[], None],
        rss: Callable[[], int] = rss_bytes,
    ) -> None:
        self.quiet = quiet
        self.growth = growth
        self._on_due = on_due
        self._rss = rss
        self._held: Callable[[], str | None] = lambda: "not armed"
        self.baseline = 0
        self._timer: asyncio.TimerHandle | None = None
        self._armed = False
        self._served = False  # a daemon that served nothing since its start has nothing to give

    def arm(self, held: Callable[[], str | None]) -> None:
        """Start-up is over: RSS from here on is what the work added. `held` says what
        keeps the daemon from re-executing (it is made from the API, which this serves)."""
        self._held = held
        self._served = False
        self.baseline = self._rss()
        self._armed = True
        self._schedule()

    def resume(self) -> None:
        """A re-exec was called off at the last moment (a client connected): look again once
        quiet, against the same start."""
        self._armed = True
        self._schedule()

    def activity(self) -> None:
        self._served = True
        if self._armed:
            self._schedule()

    def cancel(self) -> None:
        self._armed = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _schedule(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(self.quiet, self._check)

    def _check(self) -> None:
        self._timer = None
        grown = self._rss() - self.baseline
        if grown < self.growth or not self._served:
            return
        why = self._held()
        if why is not None:
            log.debug("idle, RSS %.1f MiB above its start, kept by: %s", grown / 2**20, why)
            self._schedule()
            return
        log.info(
            "idle %g s with the RSS %.1f MiB above its start: re-executing in place to give it back",
            self.quiet,
            grown / 2**20,
        )
        self._armed = False  # once: the daemon now stops serving, or resumes
        self._on_due()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.activity()
        try:
            return await handler(request)
        finally:
            self.activity()


@dataclass(frozen=True)
class HeldInMemory:
    """What keeps the daemon from re-executing itself, or None: the API's side (connections,
    tasks beyond those of the daemon at rest), the engine's (Engine.held_in_memory) and a
    configuration file that changed since the start."""

    runner: web.AppRunner
    engine: Engine
    quiet_tasks: frozenset[asyncio.Task[object]]
    config_changed: Callable[[], bool]

    def __call__(self) -> str | None:
        if self.config_changed():
            return "the configuration file changed since the start (a restart applies it)"
        server = self.runner.server
        if server is None:
            return "the API is not serving"
        # a connection whose transport is closing is over (its handler may still be
        # registered for the moment aiohttp takes to let it go)
        open_ = [
            h
            for h in server.connections
            if h.transport is not None and not h.transport.is_closing()
        ]
        if open_:
            return f"{len(open_)} open connection(s)"
        busy = asyncio.all_tasks() - self.quiet_tasks
        if busy:
            names = sorted({getattr(t.get_coro(), "__qualname__", "?") for t in busy})
            return f"{len(busy)} task(s) in progress ({', '.join(names)})"
        return self.engine.held_in_memory()
