"""Container endpoints: the whole /containers/* surface of the Engine API, plus /commit.

Handlers translate HTTP to ContainerManager calls and back. Attach and exec start take the
connection over (api/hijack.py); logs, export and archive stream. `setup` also registers the
exec, network and volume routes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web

from dockyard.api.helpers import (
    COMMON_HEADERS,
    Router,
    engine_of,
    filters_param,
    flag,
    int_query,
    json_response,
    time_query,
)
from dockyard.api.hijack import HijackedResponse, frame, headers_read, hijack
from dockyard.api.streams import spooled_body
from dockyard.errors import DockyardError, InvalidArgument
from dockyard.runtime.detachkeys import EscapeMatcher, InvalidDetachKeys, parse_detach_keys

if TYPE_CHECKING:
    from dockyard.engine.container_record import Container
    from dockyard.engine.containers import ContainerManager

log = logging.getLogger("dockyard.api")


def detach_keys_param(spec: str) -> bytes:
    """`detachKeys=` of attach: Docker's 400 names the whole value (moby daemon/attach.go)."""
    try:
        return parse_detach_keys(spec)
    except InvalidDetachKeys:
        raise InvalidArgument(f"Invalid detach keys ({spec}) provided") from None


async def create(request: web.Request) -> web.StreamResponse:
    # imported at first use: with gojson, 0.3 MiB an idle daemon need not hold
    from dockyard.api import decode

    body = await decode.read_create(request)
    cid, warnings = engine_of(request).containers.create(body, request.query.get("name"))
    return json_response({"Id": cid, "Warnings": warnings}, 201)


async def list_containers(request: web.Request) -> web.StreamResponse:
    limit = int_query(request, "limit") or -1
    containers = engine_of(request).containers
    if not flag(request, "size"):
        body = containers.list_json(flag(request, "all"), filters_param(request), limit)
        return web.Response(body=body, content_type="application/json")
    out = containers.list(flag(request, "all"), filters_param(request), limit)
    for item in out:
        item.update(await containers.sizes(item["Id"]))
    return json_response(out)


async def inspect(request: web.Request) -> web.StreamResponse:
    data = engine_of(request).containers.inspect(request.match_info["id"])
    if flag(request, "size"):
        data.update(await engine_of(request).containers.sizes(request.match_info["id"]))
    return json_response(data)


async def start(request: web.Request) -> web.StreamResponse:
    containers = engine_of(request).containers
    rec = containers.resolve(request.match_info["id"])
    if rec.state.alive:
        return web.Response(status=304)
    await containers.start(rec.id)
    return web.Response(status=204)


async def attach(request: web.Request) -> web.StreamResponse:
    containers = engine_of(request).containers
    rec, queue = containers.subscribe(request.match_info["id"])  # a fanout.Subscriber
    tty = rec.config.tty
    want = {1: flag(request, "stdout"), 2: flag(request, "stderr")}
    use_stdin = flag(request, "stdin") and rec.config.open_stdin
    escape = EscapeMatcher(detach_keys_param(request.query.get("detachKeys", "")))
    detached = asyncio.Event()
    if flag(request, "logs"):
        from dockyard.engine.container_logs import check_readable

        try:
            check_readable(rec)  # before the upgrade, so the error is a status
        except Exception:
            containers.unsubscribe(rec.id, queue)
            raise

    def on_data(data: bytes) -> None:
        if not use_stdin or detached.is_set():
            return
        if tty:
            # Detach keys are recognised in the stream, as moby's term.EscapeProxy does.
            out = escape.feed(data)
            if out:
                containers.send_stdin(rec.id, out)
            if escape.detached:
                detached.set()
            return
        containers.send_stdin(rec.id, data)

    closed = False

    def on_eof() -> None:
        nonlocal closed
        # moby container/stream/attach.go: the client's EOF closes the container's stdin
        # only with StdinOnce and no terminal.
        if use_stdin and not closed and rec.config.stdin_once and not tty and not detached.is_set():
            containers.send_stdin(rec.id, None)
        closed = True

    transport, proto = hijack(request, COMMON_HEADERS, on_data, on_eof)
    try:
        await headers_read(transport)
        if flag(request, "logs"):
            async for stream, data in containers.logs(
                rec.id, stdout=want[1], stderr=want[2], tail="all", timestamps=False
            ):
                transport.write(data if tty else frame(stream, data))
                await proto.drain()
        if not flag(request, "stream", True):
            return HijackedResponse(request)
        while True:
            get = asyncio.ensure_future(queue.get())
            lost = asyncio.ensure_future(proto.closed.wait())
            gone = asyncio.ensure_future(detached.wait())
            done, _ = await asyncio.wait({get, lost, gone}, return_when=asyncio.FIRST_COMPLETED)
            lost.cancel()
            gone.cancel()
            if get not in done:
                get.cancel()
                break
            item = get.result()
            if item is None:
                break
            stream, data = item
            if not want.get(stream):
                continue
            transport.write(data if tty else frame(stream, data))
            await proto.drain()
    finally:
        containers.unsubscribe(rec.id, queue)
        if not transport.is_closing():
            transport.close()
    return HijackedResponse(request)


async def wait(request: web.Request) -> web.StreamResponse:
    containers = engine_of(request).containers
    condition = request.query.get("condition", "not-running")
    # Registered before the 200 header goes out (and a 404 comes before it), as dockerd does
    waiting = containers.begin_wait(request.match_info["id"], condition)
    resp = web.StreamResponse(status=200, headers=COMMON_HEADERS)
    resp.content_type = "application/json"
    try:
        await resp.prepare(request)
    except BaseException:
        waiting.close()
        raise
    result = await waiting
    await resp.write(json.dumps(result).encode() + b"\n")
    await resp.write_eof()
    return resp


async def kill(request: web.Request) -> web.StreamResponse:
    await engine_of(request).containers.kill(request.match_info["id"], request.query.get("signal"))
    return web.Response(status=204)


async def stop(request: web.Request) -> web.StreamResponse:
    containers = engine_of(request).containers
    rec = containers.resolve(request.match_info["id"])
    if not rec.state.running:  # running, paused or restarting
        return web.Response(status=304)
    await containers.stop(rec.id, int_query(request, "t"))
    return web.Response(status=204)


async def restart(request: web.Request) -> web.StreamResponse:
    await engine_of(request).containers.restart(request.match_info["id"], int_query(request, "t"))
    return web.Response(status=204)


async def remove(request: web.Request) -> web.StreamResponse:
    if flag(request, "link"):
        engine_of(request).containers.remove_link(request.match_info["id"])
        return web.Response(status=204)
    await engine_of(request).containers.remove(
        request.match_info["id"], force=flag(request, "force"), volumes=flag(request, "v")
    )
    return web.Response(status=204)


async def logs(request: web.Request) -> web.StreamResponse:
    containers = engine_of(request).containers
    rec = containers.resolve(request.match_info["id"])
    stdout, stderr = flag(request, "stdout"), flag(request, "stderr")
    if not stdout and not stderr:
        raise InvalidArgument("Bad parameters: you must choose at least one stream")
    tty = rec.config.tty
    since, until = time_query(request, "since"), time_query(request, "until")
    from dockyard.engine.container_logs import check_readable

    check_readable(rec)
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
        follow=flag(request, "follow"),
        since=since,
        until=until,
    ):
        await resp.write(data if tty else frame(stream, data))
    await resp.write_eof()
    return resp


async def resize(request: web.Request) -> web.StreamResponse:
    h, w = int_query(request, "h") or 0, int_query(request, "w") or 0
    await engine_of(request).containers.resize(request.match_info["id"], h, w)
    return web.Response(status=200)


async def pause(request: web.Request) -> web.StreamResponse:
    await engine_of(request).containers.pause(request.match_info["id"])
    return web.Response(status=204)


async def unpause(request: web.Request) -> web.StreamResponse:
    await engine_of(request).containers.unpause(request.match_info["id"])
    return web.Response(status=204)


async def rename(request: web.Request) -> web.StreamResponse:
    engine_of(request).containers.rename(request.match_info["id"], request.query.get("name", ""))
    return web.Response(status=204)


async def update(request: web.Request) -> web.StreamResponse:
    from dockyard.api import decode

    body = await decode.read_json(request, decode.UPDATE)
    warnings = await engine_of(request).containers.update(request.match_info["id"], body)
    return json_response({"Warnings": warnings})


async def top(request: web.Request) -> web.StreamResponse:
    from dockyard.engine.container_stats import top as top_of

    containers = engine_of(request).containers
    rec = containers.resolve(request.match_info["id"])
    return json_response(await top_of(containers.runtime, rec, request.query.get("ps_args", "")))


async def stats(request: web.Request) -> web.StreamResponse:
    from dockyard.engine.container_stats import stats as stats_of

    containers = engine_of(request).containers
    rec = containers.resolve(request.match_info["id"])
    stream = flag(request, "stream", True) and not flag(request, "one-shot")
    if not stream:
        doc = await stats_of(rec, rec.name, previous=not flag(request, "one-shot"))
        return json_response(doc)
    resp = web.StreamResponse(status=200, headers=COMMON_HEADERS)
    resp.content_type = "application/json"
    await resp.prepare(request)
    while True:
        rec = containers.resolve(rec.id)
        doc = await stats_of(rec, rec.name)
        try:
            await resp.write(json.dumps(doc).encode() + b"\n")
        except (ConnectionError, RuntimeError):
            break
        if not rec.state.alive:
            break
        await asyncio.sleep(0.5)
    with contextlib.suppress(ConnectionError, RuntimeError):
        await resp.write_eof()
    return resp


async def changes(request: web.Request) -> web.StreamResponse:
    from dockyard.engine.container_fs import changes as changes_of

    containers = engine_of(request).containers
    rec = containers.resolve(request.match_info["id"])
    return json_response(await asyncio.to_thread(changes_of, containers, rec) or None)


class _ThreadSink:
    """A file-like `write` for a worker thread, feeding an async response through a small
    queue; once the response is gone (client away, handler cancelled) writes fail, so the
    worker ends instead of waiting forever with the container's files open."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=16)
        self.closed = threading.Event()

    def write(self, data: bytes) -> int:
        fut = asyncio.run_coroutine_threadsafe(self.queue.put(bytes(data)), self.loop)
        while True:
            try:
                fut.result(timeout=0.5)
                return len(data)
            except concurrent.futures.TimeoutError:
                if self.closed.is_set():
                    fut.cancel()
                    raise BrokenPipeError("the client went away") from None

    def flush(self) -> None:
        pass

    def end(self) -> None:
        if not self.closed.is_set():
            asyncio.run_coroutine_threadsafe(self.queue.put(None), self.loop)


async def _stream_from_thread(
    request: web.Request, resp: web.StreamResponse, produce: Callable[[_ThreadSink], None]
) -> bytes | None:
    """Run `produce(sink)` in a thread and stream what it writes as `resp` (prepared here).

    None when the stream was cut; else the last chunk, held back: the caller writes it and
    `write_eof` once it has released what the producer read (a stopped container's overlay
    unmounted), since a client that has the tar's end blocks may act on the container at
    once (dockerpy's dc0c767 did the same for GET archive).
    """
    sink = _ThreadSink(asyncio.get_running_loop())

    def run() -> None:
        try:
            produce(sink)
        finally:
            sink.end()

    await resp.prepare(request)
    worker = asyncio.ensure_future(asyncio.to_thread(run))
    last = b""
    try:
        while (chunk := await sink.queue.get()) is not None:
            if last:
                await resp.write(last)
            last = chunk
        await worker
    except DockyardError as exc:
        # A tar cannot carry an error once it has started (Docker has the same limit): cut
        # the connection so the client sees a truncated archive, never a short valid one.
        log.warning("%s %s failed mid-stream: %s", request.method, request.path, exc)
        if request.transport is not None:
            request.transport.abort()
        return None
    finally:
        sink.closed.set()
        while not sink.queue.empty():
            sink.queue.get_nowait()
        # The worker holds the container's files open (the caller closes them after us):
        # it must have ended first, which it does within a write once the sink is closed.
        with contextlib.suppress(Exception):
            await asyncio.shield(worker)
    return last


async def _end_stream(resp: web.StreamResponse, tail: bytes | None) -> None:
    """The held-back last chunk and the end, after the container's files were released."""
    if tail is None:
        return
    if tail:
        await resp.write(tail)
    await resp.write_eof()


async def export(request: web.Request) -> web.StreamResponse:
    from dockyard.engine.container_fs import export_archive, fs_view

    containers = engine_of(request).containers
    rec = containers.resolve(request.match_info["id"])
    async with fs_view(containers, rec, rootfs_only=True) as view:
        resp = web.StreamResponse(status=200, headers=COMMON_HEADERS)
        resp.content_type = "application/x-tar"
        tail = await _stream_from_thread(
            request,
            resp,
            lambda sink: export_archive(view, sink),  # type: ignore[arg-type]
        )
    await _end_stream(resp, tail)
    return resp


def _archive_target(request: web.Request) -> tuple[ContainerManager, Container, str]:
    """The container and the `path` query every /containers/{id}/archive request names."""
    containers = engine_of(request).containers
    rec = containers.resolve(request.match_info["id"])
    path = request.query.get("path") or ""
    if not path:
        raise InvalidArgument("path is required")
    return containers, rec, path


async def archive_head(request: web.Request) -> web.StreamResponse:
    from dockyard.engine.container_fs import fs_view, path_stat, stat_header

    containers, rec, path = _archive_target(request)
    async with fs_view(containers, rec) as view:
        info = await asyncio.to_thread(path_stat, view, path, rec)
    resp = web.Response(status=200)
    resp.headers["X-Docker-Container-Path-Stat"] = stat_header(info)
    return resp


async def archive_get(request: web.Request) -> web.StreamResponse:
    from dockyard.engine.container_fs import ArchiveSource, fs_view, stat_header

    containers, rec, path = _archive_target(request)
    async with fs_view(containers, rec) as view:
        src = await asyncio.to_thread(ArchiveSource, view, path, rec)
        containers.event(rec, "archive-path")  # dockerd's containerArchivePath
        try:
            resp = web.StreamResponse(status=200, headers=COMMON_HEADERS)
            resp.headers["X-Docker-Container-Path-Stat"] = stat_header(src.info)
            resp.content_type = "application/x-tar"
            tail = await _stream_from_thread(request, resp, src.write)  # type: ignore[arg-type]
        finally:
            src.close()
    await _end_stream(resp, tail)
    return resp


async def archive_put(request: web.Request) -> web.StreamResponse:
    from dockyard.engine.container_fs import extract_archive, fs_view

    containers, rec, path = _archive_target(request)
    engine = engine_of(request)
    async with spooled_body(request, engine.tmp_dir) as spool, fs_view(containers, rec) as view:
        await asyncio.to_thread(
            extract_archive,
            view,
            path,
            spool,
            rec,
            copy_uid_gid=flag(request, "copyUIDGID"),
            no_overwrite_dir_nondir=flag(request, "noOverwriteDirNonDir"),
        )
    containers.event(rec, "extract-to-dir")  # dockerd's containerExtractToDir
    return web.Response(status=200)


async def commit(request: web.Request) -> web.StreamResponse:
    from dockyard.api import decode

    body = await decode.read_config(request)  # before the lookup, as dockerd
    image_id = await engine_of(request).commit(
        request.query.get("container", ""),
        repo=request.query.get("repo", ""),
        tag=request.query.get("tag", ""),
        comment=request.query.get("comment", ""),
        author=request.query.get("author", ""),
        pause=flag(request, "pause", True),
        changes_=request.query.getall("changes", []),
        config=body,
    )
    return json_response({"Id": image_id}, 201)


async def prune(request: web.Request) -> web.StreamResponse:
    containers = engine_of(request).containers
    filters = filters_param(request)
    until = 0.0
    for v in filters.get("until", []):
        with contextlib.suppress(ValueError):
            until = float(v)
    deleted, reclaimed = await containers.prune(until=until, labels=filters.get("label", []))
    return json_response({"ContainersDeleted": deleted or None, "SpaceReclaimed": reclaimed})


def setup(router: Router) -> None:
    from dockyard.api import routes_exec, routes_networks, routes_volumes

    router.add("POST", "/containers/create", create)
    router.add("GET", "/containers/json", list_containers)
    router.add("POST", "/containers/prune", prune)
    router.add("GET", "/containers/{id}/json", inspect)
    router.add("POST", "/containers/{id}/start", start)
    router.add("POST", "/containers/{id}/attach", attach)
    router.add("POST", "/containers/{id}/wait", wait)
    router.add("POST", "/containers/{id}/kill", kill)
    router.add("POST", "/containers/{id}/stop", stop)
    router.add("POST", "/containers/{id}/restart", restart)
    router.add("POST", "/containers/{id}/resize", resize)
    router.add("POST", "/containers/{id}/pause", pause)
    router.add("POST", "/containers/{id}/unpause", unpause)
    router.add("POST", "/containers/{id}/rename", rename)
    router.add("POST", "/containers/{id}/update", update)
    router.add("GET", "/containers/{id}/top", top)
    router.add("GET", "/containers/{id}/stats", stats)
    router.add("GET", "/containers/{id}/changes", changes)
    router.add("GET", "/containers/{id}/export", export)
    router.add("HEAD", "/containers/{id}/archive", archive_head)
    router.add("GET", "/containers/{id}/archive", archive_get)
    router.add("PUT", "/containers/{id}/archive", archive_put)
    router.add("GET", "/containers/{id}/logs", logs)
    router.add("DELETE", "/containers/{id}", remove)
    # A legacy link's name, PARENT/ALIAS (`DELETE /containers/PARENT/ALIAS?link=1`)
    router.add("DELETE", "/containers/{id:[^/]+/[^/]+}", remove)
    router.add("POST", "/commit", commit)
    routes_exec.setup(router)
    routes_networks.setup(router)
    routes_volumes.setup(router)
