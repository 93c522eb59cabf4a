"""Registry endpoints: pull (`POST /images/create?fromImage=`), push, and `POST /auth`.

Credentials come as Docker sends them: `X-Registry-Auth` (base64url JSON) on pull and push, a
JSON AuthConfig body on /auth. Pull and push answer 200 with Docker's JSON progress stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from dockyard.api import decode
from dockyard.api.helpers import Router, engine_of, json_response, name_param
from dockyard.api.streams import Emit, json_stream
from dockyard.registry.auth import Credentials, decode_registry_auth


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
        return await json_stream(request, relay)
    finally:
        if not task.done():
            task.cancel()


async def pull_image(request: web.Request) -> web.StreamResponse:
    """The `fromImage` branch of `POST /images/create` (called from routes_images)."""
    engine = engine_of(request)
    name = request.query.get("fromImage", "")
    tag = request.query.get("tag", "")
    platform = request.query.get("platform", "")
    creds = decode_registry_auth(request.headers.get("X-Registry-Auth"))

    # An empty tag on a name without one means every tag (Engine API, ImageCreate).
    all_tags = not tag and ":" not in name.rsplit("/", 1)[-1] and "@" not in name

    async def work(emit: Emit) -> None:
        await engine.distribution.pull(name, tag, platform, creds, emit, all_tags=all_tags)

    return await lazy_json_stream(request, work)


async def push_image(request: web.Request) -> web.StreamResponse:
    engine = engine_of(request)
    name = name_param(request)
    tag = request.query.get("tag", "")
    creds = decode_registry_auth(request.headers.get("X-Registry-Auth"))
    # Docker checks that the image exists before it answers 200.
    engine.distribution.check_pushable(name, tag)

    async def work(emit: Emit) -> None:
        await engine.distribution.push(name, tag, creds, emit)

    return await json_stream(request, work)


async def auth(request: web.Request) -> web.StreamResponse:
    doc = await decode.read_json(request, decode.AUTH)
    result = await engine_of(request).distribution.login(Credentials.from_json(doc))
    return json_response(result)


def setup(router: Router) -> None:
    router.add("POST", "/images/{name:.+}/push", push_image)
    router.add("POST", "/auth", auth)
