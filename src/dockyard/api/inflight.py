"""The requests in flight, ended promptly when the daemon shuts down.

Streams that follow (events, `logs -f`, attach, `stats`, wait) have no end of their own.
aiohttp's shutdown (web_runner.BaseRunner.cleanup → RequestHandler.shutdown) first waits the
runner's shutdown_timeout, rounded up to whole seconds, for each connection's handler, then
cancels it and waits that long again: an idle `docker events` kept the daemon alive for ~6 s
after SIGTERM, and the test harness's shared daemon, with more streams open, for the harness's
whole 20 s. dockerd ends its streams when it shuts down (the client prints "unexpected EOF").

So the app's on_shutdown hook (it runs before aiohttp's waits) gives short requests a moment
to finish and cancels what is left; every handler already copes with cancellation, which is
what a client going away does to it (`handler_cancellation=True`).
"""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web

from dockyard.api.helpers import Handler

# How long a request that is not a stream may take to finish after SIGTERM (a `stop` is
# cancelled after it: its container goes on, as a kill -9 of the daemon would leave it).
GRACE_SECONDS = 1.0
# How long cancelled handlers get to unwind (their cleanup runs in worker threads).
UNWIND_SECONDS = 5.0


class InFlight:
    """The tasks of the requests being handled; `end()` ends them."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[object]] = set()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - aiohttp runs every handler in a task
            return await handler(request)
        self._tasks.add(task)
        try:
            return await handler(request)
        finally:
            self._tasks.discard(task)

    def __len__(self) -> int:
        return len(self._tasks)

    async def end(self, _app: web.Application | None = None) -> None:
        """Wait GRACE_SECONDS for the requests in flight, then cancel the rest."""
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=GRACE_SECONDS)
        for task in pending:
            task.cancel()
        if pending:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*pending, return_exceptions=True), UNWIND_SECONDS
                )
