"""The daemon's request log: one line per request, and the cause of every error.

As dockerd's debug log names each call (`Calling GET /v1.41/containers/json`, moby
api/server/server.go), ours writes, at info, the method, the path, the status and the
duration once the handler is done; a 4xx line carries the error's message, a 5xx is logged at
error as moby does (`Handler for … returned error: …`) with the traceback of an unexpected
exception. Never the query string or a body: build args, registry credentials (headers) and
archive contents stay out of the log. Streams that last (attach, logs -f, events, wait) also
get a debug line when they begin.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

log = logging.getLogger("dockyard.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# dockerd's --log-level values (logrus names) and the Python levels they map to
LOG_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "fatal": logging.CRITICAL,
    "panic": logging.CRITICAL,
}


def parse_log_level(value: str) -> int:
    """dockerd's `--log-level`; an unknown name is refused with logrus's message."""
    try:
        return LOG_LEVELS[value.lower()]
    except KeyError:
        raise ValueError(f"unable to parse logging level: {value}") from None


def _duration(seconds: float) -> str:
    return f"{seconds * 1000:.1f}ms" if seconds < 1 else f"{seconds:.2f}s"


def _message_of(response: web.StreamResponse) -> str:
    """The `{"message": …}` of an error response we built (empty for anything else)."""
    body = getattr(response, "body", None)
    if not isinstance(body, bytes | bytearray):
        return ""
    try:
        doc = json.loads(body)
    except ValueError:
        return ""
    return str(doc.get("message", "")) if isinstance(doc, dict) else ""


@web.middleware
async def request_log(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The outermost middleware: it sees the status the client gets."""
    started = time.monotonic()
    what = f"{request.method} {request.path}"
    log.debug("Calling %s", what)
    try:
        response = await handler(request)
    except asyncio.CancelledError:
        log.info(
            "%s cancelled after %s: the client went away",
            what,
            _duration(time.monotonic() - started),
        )
        raise
    except web.HTTPException as exc:
        log.info("%s %d %s", what, exc.status, _duration(time.monotonic() - started))
        raise
    except Exception:
        log.exception("Handler for %s returned an unexpected error", what)
        raise
    status = response.status
    took = _duration(time.monotonic() - started)
    if status >= 500:
        log.error(
            "Handler for %s returned error: %s (%d, %s)", what, _message_of(response), status, took
        )
    elif status == 499:  # docker_middleware's mark for a client that left mid-stream
        log.info("%s 499 %s: the client went away", what, took)
    elif status >= 400:
        log.info("%s %d %s: %s", what, status, took, _message_of(response))
    else:
        log.info("%s %d %s", what, status, took)
    return response
