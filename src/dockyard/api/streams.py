"""Streaming responses in Docker's shapes: newline-delimited JSON progress, and raw bodies."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, BinaryIO

from aiohttp import web

from dockyard.api.helpers import COMMON_HEADERS
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


class _HeadersWithBody(web.StreamResponse):
    """A stream whose header goes out with its first bytes (aiohttp's `web.Response` does
    the same): for a stream whose first message is already there, one write, not two."""

    _send_headers_immediately = False


async def json_stream(
    request: web.Request,
    work: Callable[[Emit], Awaitable[Any]],
    *,
    header_with_first: bool = False,
) -> web.StreamResponse:
    """Run `work(emit)` and stream what it emits; a failure after the 200 header becomes an
    `errorDetail` message, which clients treat as failure (Docker's jsonmessage). Messages
    emitted together go out in one write, the last ones with the stream's end: a cached
    build's few lines cost one socket write and one wake-up of the client, not one each.
    With `header_with_first` the 200 header waits for the first message (lazy_json_stream's,
    which has it already)."""
    resp = (_HeadersWithBody if header_with_first else web.StreamResponse)(
        status=200, headers=COMMON_HEADERS
    )
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
    tail = b""
    try:
        ended = False
        while not ended:
            lines = []
            msg = await queue.get()
            while msg is not None:
                lines.append(json.dumps(msg).encode() + b"\r\n")
                if queue.empty():
                    break
                msg = queue.get_nowait()
            ended = msg is None
            if ended:
                tail = b"".join(lines)  # written with the end
            elif lines:
                await resp.write(b"".join(lines))
        try:
            await task
        except BaseException:
            if tail:
                await resp.write(tail)  # what it emitted before it failed
            raise
    finally:
        if not task.done():
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
    await resp.write_eof(tail)
    return resp


async def lazy_json_stream(
    request: web.Request, work: Callable[[Emit], Awaitable[Any]]
) -> web.StreamResponse:
    """Like `json_stream`, but the 200 header waits for the first message: an error raised
    before it (no such image, access denied) is answered with its own status, as dockerd's
    write-flusher does, so `docker pull` prints `Error response from daemon: …`."""
    queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

    async def run() -> None:
        try:
            await work(queue.put_nowait)
        finally:
            queue.put_nowait(None)

    task: asyncio.Task[None] = asyncio.create_task(run())
    try:
        first = await queue.get()
        if first is None:
            await task  # raises the error before any header went out
    except BaseException:
        task.cancel()
        raise

    async def relay(emit: Emit) -> None:
        msg = first
        while msg is not None:
            emit(msg)
            msg = await queue.get()
        await task

    try:
        return await json_stream(request, relay, header_with_first=True)
    finally:
        if not task.done():
            task.cancel()


@contextlib.asynccontextmanager
async def spooled_body(request: web.Request, directory: Path | None) -> AsyncIterator[BinaryIO]:
    """The request body (a build context, an import, a `cp` archive) in an unnamed temporary
    file, rewound: handlers read it from worker threads while the upload has finished."""
    with tempfile.TemporaryFile(dir=directory) as spool:
        async for chunk in request.content.iter_chunked(1 << 20):
            await asyncio.to_thread(spool.write, chunk)
        spool.seek(0)
        yield spool
