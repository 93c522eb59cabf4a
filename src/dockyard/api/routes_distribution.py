"""Registry endpoints: pull (`POST /images/create?fromImage=`), push, and `POST /auth`.

Credentials come as Docker sends them: `X-Registry-Auth` (base64url JSON) on pull and push, a
JSON AuthConfig body on /auth. Pull and push answer 200 with Docker's JSON progress stream.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from dockyard.api.helpers import Router, engine_of, json_response, name_param
from dockyard.api.streams import Emit, json_stream, lazy_json_stream

if TYPE_CHECKING:
    from dockyard.registry.auth import Credentials


def decode_registry_auth(header: str | None) -> Credentials:
    # registry/auth.py at the first pull or push: an idle daemon need not hold it
    from dockyard.registry.auth import decode_registry_auth

    return decode_registry_auth(header)


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
    # imported at first use: with gojson, 0.3 MiB an idle daemon need not hold
    from dockyard.api import decode
    from dockyard.registry.auth import Credentials

    doc = await decode.read_json(request, decode.AUTH)
    result = await engine_of(request).distribution.login(Credentials.from_json(doc))
    return json_response(result)


async def inspect_distribution(request: web.Request) -> web.StreamResponse:
    creds = decode_registry_auth(request.headers.get("X-Registry-Auth"))
    return json_response(await engine_of(request).distribution.inspect(name_param(request), creds))


def setup(router: Router) -> None:
    router.add("GET", "/distribution/{name:.+}/json", inspect_distribution)
    router.add("POST", "/images/{name:.+}/push", push_image, heavy=True)
    router.add("POST", "/auth", auth)
