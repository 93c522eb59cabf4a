"""Image endpoints: list, inspect, history, tag, delete, create (import)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from dockyard.api.helpers import Router, engine_of, filters_param, flag, json_response, name_param
from dockyard.api.streams import Emit, json_stream, spooled_body
from dockyard.engine.image_list import list_images as list_images_of
from dockyard.errors import InvalidArgument, NotFound, NotSupported
from dockyard.image.reference import parse_reference


async def list_images(request: web.Request) -> web.StreamResponse:
    """`GET /images/json` with Docker's filters (engine/image_list.py)."""
    engine = engine_of(request)
    return json_response(
        list_images_of(engine, filters_param(request), show_all=flag(request, "all"))
    )


def _no_such_image(name: str) -> NotFound:
    """Docker's wording (ErrImageDoesNotExist): the familiar name with its default tag."""
    try:
        shown = parse_reference(name).familiar()
    except InvalidArgument:
        shown = name
    return NotFound(f"No such image: {shown}")


async def inspect_image(request: web.Request) -> web.StreamResponse:
    engine = engine_of(request)
    name = name_param(request)
    image_id = engine.images.try_resolve(name)
    if image_id is None:
        raise _no_such_image(name)
    return json_response(engine.images.inspect(image_id))


async def history(request: web.Request) -> web.StreamResponse:
    engine = engine_of(request)
    name = name_param(request)
    image_id = engine.images.try_resolve(name)
    if image_id is None:
        raise _no_such_image(name)
    entries = engine.history(name)
    # Docker names each entry, newest first, by walking the image's parent chain for as long as
    # the parents exist locally (daemon/images/image_history.go); older entries stay <missing>.
    current: str | None = image_id
    for entry in entries:
        if current is None or not engine.meta.has_image(current):
            break
        entry["Id"] = current
        entry["Tags"] = engine.images.summary(current)["RepoTags"] or None
        current = engine.meta.image_parent(current)
    return json_response(entries)


async def tag_image(request: web.Request) -> web.StreamResponse:
    repo = request.query.get("repo", "")
    if not repo:
        raise InvalidArgument("repository name must have at least one component")
    tag = request.query.get("tag", "")
    engine = engine_of(request)
    image_id = engine.images.try_resolve(name_param(request))
    if image_id is None:
        raise _no_such_image(name_param(request))
    engine.tag_image(image_id, f"{repo}:{tag}" if tag else repo)
    return web.Response(status=201)


async def delete_image(request: web.Request) -> web.StreamResponse:
    if engine_of(request).images.try_resolve(name_param(request)) is None:
        raise _no_such_image(name_param(request))
    report = await engine_of(request).delete_image(
        name_param(request), force=flag(request, "force"), prune=not flag(request, "noprune")
    )
    return json_response(report)


async def create_image(request: web.Request) -> web.StreamResponse:
    """`fromSrc=-` imports the request body as a root filesystem; pulls come with registries."""
    engine = engine_of(request)
    if request.query.get("fromImage"):
        from dockyard.api.routes_distribution import pull_image

        return await pull_image(request)
    src = request.query.get("fromSrc", "")
    if src != "-":
        raise NotSupported("import from a URL is not supported by dockyard yet")
    repo = request.query.get("repo", "")
    tag = request.query.get("tag", "")
    message = request.query.get("message", "")
    changes = request.query.getall("changes", [])
    async with spooled_body(request, engine.tmp_dir) as spool:

        async def work(emit: Emit) -> None:
            image_id = await engine.import_image(
                spool, repo=repo, tag=tag, message=message, changes=changes
            )
            emit({"status": image_id})

        return await json_stream(request, work)


async def prune_images(request: web.Request) -> web.StreamResponse:
    from dockyard.engine.image_prune import ImagePruneFilters, prune_images

    engine = engine_of(request)
    filters = ImagePruneFilters.parse(filters_param(request))
    return json_response(await asyncio.to_thread(prune_images, engine, filters))


def setup(router: Router) -> None:
    router.add("GET", "/images/json", list_images)
    router.add("POST", "/images/prune", prune_images)
    router.add("POST", "/images/create", create_image, heavy=True)
    router.add("GET", "/images/{name:.+}/json", inspect_image)
    router.add("GET", "/images/{name:.+}/history", history)
    router.add("POST", "/images/{name:.+}/tag", tag_image)
    router.add("DELETE", "/images/{name:.+}", delete_image)
