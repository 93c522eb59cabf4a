"""Streaming responses in Docker's shapes: newline-delimited JSON progress, and raw bodies."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from dockyard.api.server import COMMON_HEADERS
from dockyard.errors import DockyardError

Emit = Callable[[dict[str, Any]], None]
_NONZERO = re.compile(r"returned a non-zero code: (\d+)$")


def _error_detail(exc: DockyardError) -> dict[str, Any]:
    """Docker's JSONError: a failed RUN step carries the command's exit code as `code`, and
    the docker CLI exits with it (`docker build` of `RUN exit 3` exits 3)."""
    code = getattr(exc, "exit_code", None)
    if not isinstance(code, int):
        match = _NONZERO.search(str(exc))
        code = int(match.group(1)) if match else 0
    if code:
        return {"code": code, "message": str(exc)}
    return {"message": str(exc)}


async def json_stream(
    request: web.Request, work: Callable[[Emit], Awaitable[Any]]
) -> web.StreamResponse:
    """Run `work(emit)` and stream what it emits; a failure after the 200 header becomes an
    `errorDetail` message, which clients treat as failure (Docker's jsonmessage)."""
    resp = web.StreamResponse(status=200, headers=COMMON_HEADERS)
    resp.content_type = "application/json"
    await resp.prepare(request)
    queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

    async def run() -> None:
        try:
            await work(queue.put_nowait)
        except DockyardError as exc:
            queue.put_nowait({"errorDetail": _error_detail(exc), "error": str(exc)})
        finally:
            queue.put_nowait(None)

    task = asyncio.create_task(run())
    try:
        while (msg := await queue.get()) is not None:
            await resp.write(json.dumps(msg).encode() + b"\r\n")
        await task
    finally:
        if not task.done():
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
    await resp.write_eof()
    return resp
