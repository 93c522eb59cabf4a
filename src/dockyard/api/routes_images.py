"""Image endpoints: list, inspect, history, tag, delete, create (import)."""

from __future__ import annotations

import asyncio
import tempfile

from aiohttp import web

from dockyard.api.server import Router, engine_of, flag, json_response, name_param
from dockyard.api.streams import Emit, json_stream
from dockyard.errors import InvalidArgument, NotFound, NotSupported


async def list_images(request: web.Request) -> web.StreamResponse:
    engine = engine_of(request)
    if request.query.get("filters") not in (None, "", "{}"):
        raise NotSupported("image list filters are not supported by dockyard yet")
    out = [engine.images.summary(i) for i in engine.meta.image_ids()]
    if not flag(request, "all"):
        out = [s for s in out if s["RepoTags"] or not engine.meta.image_children(s["Id"])]
    return json_response(out)


async def inspect_image(request: web.Request) -> web.StreamResponse:
    engine = engine_of(request)
    return json_response(engine.images.inspect(engine.images.resolve(name_param(request))))


async def history(request: web.Request) -> web.StreamResponse:
    return json_response(engine_of(request).history(name_param(request)))


async def tag_image(request: web.Request) -> web.StreamResponse:
    repo = request.query.get("repo", "")
    if not repo:
        raise InvalidArgument("repository name must have at least one component")
    tag = request.query.get("tag", "")
    engine_of(request).images.tag(name_param(request), f"{repo}:{tag}" if tag else repo)
    return web.Response(status=201)


async def delete_image(request: web.Request) -> web.StreamResponse:
    report = engine_of(request).delete_image(
        name_param(request), force=flag(request, "force"), prune=not flag(request, "noprune")
    )
    return json_response(report)


async def create_image(request: web.Request) -> web.StreamResponse:
    """`fromSrc=-` imports the request body as a root filesystem; pulls come with registries."""
    engine = engine_of(request)
    if request.query.get("fromImage"):
        ref = request.query["fromImage"]
        raise NotFound(
            f"pull access denied for {ref}: pulling from registries is not supported by "
            "dockyard yet; import a root filesystem with `dockyard import`"
        )
    src = request.query.get("fromSrc", "")
    if src != "-":
        raise NotSupported("import from a URL is not supported by dockyard yet")
    repo = request.query.get("repo", "")
    tag = request.query.get("tag", "")
    message = request.query.get("message", "")
    changes = request.query.getall("changes", [])
    spool = tempfile.TemporaryFile(dir=engine.tmp_dir)
    try:
        async for chunk in request.content.iter_chunked(1 << 20):
            await asyncio.to_thread(spool.write, chunk)
        spool.seek(0)

        async def work(emit: Emit) -> None:
            image_id = await engine.import_image(
                spool, repo=repo, tag=tag, message=message, changes=changes
            )
            emit({"status": image_id})

        return await json_stream(request, work)
    finally:
        spool.close()




def setup(router: Router) -> None:
    router.add("GET", "/images/json", list_images)
    router.add("POST", "/images/create", create_image)
    router.add("GET", "/images/{name:.+}/json", inspect_image)
    router.add("GET", "/images/{name:.+}/history", history)
    router.add("POST", "/images/{name:.+}/tag", tag_image)
    router.add("DELETE", "/images/{name:.+}", delete_image)
