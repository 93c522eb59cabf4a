"""Container endpoints: create, list, inspect, start, attach (hijacked), wait, kill, stop,
delete, logs, resize."""

from __future__ import annotations

import asyncio
import contextlib
import json

from aiohttp import web

from dockyard.api.hijack import HijackedResponse, frame, hijack
from dockyard.api.server import COMMON_HEADERS, Router, engine_of, flag, json_response
from dockyard.errors import InvalidArgument


async def create(request: web.Request) -> web.StreamResponse:
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgument("invalid JSON body for container create") from None
    if not isinstance(body, dict):
        raise InvalidArgument("container config must be a JSON object")
    cid, warnings = engine_of(request).containers.create(body, request.query.get("name"))
    return json_response({"Id": cid, "Warnings": warnings}, 201)


async def list_containers(request: web.Request) -> web.StreamResponse:
    if request.query.get("filters") not in (None, "", "{}"):
        raise InvalidArgument("container list filters are not supported by dockyard yet")
    out = engine_of(request).containers.list(flag(request, "all"))
    limit = int(request.query.get("limit", "-1") or -1)
    if limit > 0:
        out = out[:limit]
    return json_response(out)


async def inspect(request: web.Request) -> web.StreamResponse:
    return json_response(engine_of(request).containers.inspect(request.match_info["id"]))


async def start(request: web.Request) -> web.StreamResponse:
    containers = engine_of(request).containers
    rec = containers.resolve(request.match_info["id"])
    if rec.state.get("Running"):
        return web.Response(status=304)
    try:
        await containers.start(rec.id)
    except Exception:
        if rec.config["HostConfig"].get("AutoRemove"):
            with contextlib.suppress(Exception):
                await containers.remove(rec.id, force=True)
        raise
    return web.Response(status=204)


async def attach(request: web.Request) -> web.StreamResponse:
    containers = engine_of(request).containers
    rec, queue = containers.subscribe(request.match_info["id"])
    tty = bool(rec.config["Config"].get("Tty"))
    want = {1: flag(request, "stdout"), 2: flag(request, "stderr")}
    use_stdin = flag(request, "stdin") and bool(rec.config["Config"].get("OpenStdin"))

    def on_data(data: bytes) -> None:
        if use_stdin:
            containers.send_stdin(rec.id, data)

    closed = False

    def on_eof() -> None:
        nonlocal closed
        if use_stdin and not closed and rec.config["Config"].get("StdinOnce", True):
            containers.send_stdin(rec.id, None)
        closed = True

    transport, proto = hijack(request, COMMON_HEADERS, on_data, on_eof)
    try:
        while True:
            get = asyncio.ensure_future(queue.get())
            lost = asyncio.ensure_future(proto.closed.wait())
            done, _ = await asyncio.wait({get, lost}, return_when=asyncio.FIRST_COMPLETED)
            if get not in done:
                get.cancel()
                break
            lost.cancel()
            item = get.result()
            if item is None:
                break
            stream, data = item
            if not want.get(stream):
                continue
            transport.write(data if tty else frame(stream, data))
    finally:
        containers.unsubscribe(rec.id, queue)
        if not transport.is_closing():
            transport.close()
    return HijackedResponse()


async def wait(request: web.Request) -> web.StreamResponse:
    containers = engine_of(request).containers
    condition = request.query.get("condition", "not-running")
    containers.resolve(request.match_info["id"])  # 404 before the 200 header
    resp = web.StreamResponse(status=200, headers=COMMON_HEADERS)
    resp.content_type = "application/json"
    await resp.prepare(request)
    result = await containers.wait(request.match_info["id"], condition)
    await resp.write(json.dumps(result).encode() + b"\n")
    await resp.write_eof()
    return resp


async def kill(request: web.Request) -> web.StreamResponse:
    await engine_of(request).containers.kill(request.match_info["id"], request.query.get("signal"))
    return web.Response(status=204)


async def stop(request: web.Request) -> web.StreamResponse:
    t = request.query.get("t")
    await engine_of(request).containers.stop(request.match_info["id"], int(t) if t else None)
    return web.Response(status=204)


async def remove(request: web.Request) -> web.StreamResponse:
    if flag(request, "v") or flag(request, "link"):
        pass  # no volumes or links exist yet, so there is nothing else to remove
    await engine_of(request).containers.remove(request.match_info["id"], force=flag(request, "force"))
    return web.Response(status=204)


async def logs(request: web.Request) -> web.StreamResponse:
    containers = engine_of(request).containers
    rec = containers.resolve(request.match_info["id"])
    stdout, stderr = flag(request, "stdout"), flag(request, "stderr")
    if not stdout and not stderr:
        raise InvalidArgument("Bad parameters: you must choose at least one stream")
    tty = bool(rec.config["Config"].get("Tty"))
    resp = web.StreamResponse(status=200, headers=COMMON_HEADERS)
    resp.content_type = (
        "application/vnd.docker.raw-stream" if tty else "application/vnd.docker.multiplexed-stream"
    )
    await resp.prepare(request)
    async for stream, data in containers.logs(
        rec.id,
        stdout=stdout,
        stderr=stderr,
        tail=request.query.get("tail", "all"),
        timestamps=flag(request, "timestamps"),
    ):
        await resp.write(data if tty else frame(stream, data))
    await resp.write_eof()
    return resp


async def resize(request: web.Request) -> web.StreamResponse:
    engine_of(request).containers.resolve(request.match_info["id"])
    return web.Response(status=200)


def setup(router: Router) -> None:
    router.add("POST", "/containers/create", create)
    router.add("GET", "/containers/json", list_containers)
    router.add("GET", "/containers/{id}/json", inspect)
    router.add("POST", "/containers/{id}/start", start)
    router.add("POST", "/containers/{id}/attach", attach)
    router.add("POST", "/containers/{id}/wait", wait)
    router.add("POST", "/containers/{id}/kill", kill)
    router.add("POST", "/containers/{id}/stop", stop)
    router.add("POST", "/containers/{id}/resize", resize)
    router.add("GET", "/containers/{id}/logs", logs)
    router.add("DELETE", "/containers/{id}", remove)
