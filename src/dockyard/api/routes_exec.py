"""Exec endpoints: create, start (hijacked unless detached), resize, inspect."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from aiohttp import web

from dockyard.api.helpers import COMMON_HEADERS, Router, engine_of, json_response
from dockyard.api.hijack import HijackedResponse, frame, headers_read, hijack
from dockyard.errors import DockyardError, InvalidArgument
from dockyard.runtime.detachkeys import EscapeMatcher, parse_detach_keys

if TYPE_CHECKING:
    from dockyard.engine.exec import ExecManager


def _execs(request: web.Request) -> ExecManager:
    return engine_of(request).containers.execs


async def create(request: web.Request) -> web.StreamResponse:
    # imported at first use: with gojson, 0.3 MiB an idle daemon need not hold
    from dockyard.api import decode

    body = await decode.read_json(request, decode.EXEC)
    eid = _execs(request).create(request.match_info["id"], body)
    return json_response({"Id": eid}, 201)


async def start(request: web.Request) -> web.StreamResponse:
    from dockyard.api import decode

    execs = _execs(request)
    body = await decode.read_json(request, decode.EXEC_START_BODY)
    # moby's ExecExists: an exec whose container cannot take it is refused before the hijack
    ex = execs.startable(request.match_info["id"])
    if body.get("Detach"):
        await execs.start(ex.id)
        if ex.handle is not None:
            ex.handle.discard_output()  # nobody will read it: the process must not wait
        return web.Response(status=200)
    # moby api/server/router/container/exec.go: the stream is multiplexed unless the *start*
    # request says Tty, whatever the exec was created with (docker-py's exec_start sends its
    # own tty flag, False by default, for an exec created with a terminal).
    tty = bool(body.get("Tty"))
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()
    # Detach keys (the exec's DetachKeys, else ctrl-p ctrl-q) are recognised in the input of
    # an exec with a terminal, as moby's stream.CopyStreams wraps stdin in term.EscapeProxy.
    escape = EscapeMatcher(parse_detach_keys(ex.config.get("DetachKeys") or "")) if ex.tty else None
    detached = asyncio.Event()

    def on_data(data: bytes) -> None:
        if not ex.config.get("AttachStdin") or detached.is_set():
            return
        if escape is not None:
            data = escape.feed(data)
            if escape.detached:
                detached.set()
        if data:
            queue.put_nowait(data)

    eof_sent = False

    def on_eof() -> None:
        nonlocal eof_sent
        if not eof_sent:
            eof_sent = True
            queue.put_nowait(None)

    transport, proto = hijack(request, COMMON_HEADERS, on_data, on_eof)
    try:
        await headers_read(transport)
        try:
            await execs.start(ex.id)
        except DockyardError as e:
            # moby's postContainerExecStart writes what ContainerExecStart returned into the
            # hijacked stream (as stdout); a start that failed has exit code 126.
            msg = (str(e) + "\r\n").encode()
            transport.write(msg if tty else frame(1, msg))
            return HijackedResponse(request)
        handle = ex.handle
        assert handle is not None

        async def feed() -> None:
            while True:
                data = await queue.get()
                if data is None:
                    if not tty:
                        await handle.close_stdin()
                    return
                await handle.write_stdin(data)

        feeder = asyncio.ensure_future(feed()) if ex.config.get("AttachStdin") else None
        want = {
            1: bool(ex.config.get("AttachStdout", True)),
            2: bool(ex.config.get("AttachStderr", True)),
        }

        async def relay() -> None:
            try:
                async for stream, data in handle.output():
                    if proto.closed.is_set():
                        break
                    if want.get(stream):
                        transport.write(data if tty else frame(stream, data))
                        await proto.drain()
            finally:
                handle.discard_output()  # the client went: the process must not wait for it

        relaying = asyncio.ensure_future(relay())
        gone = asyncio.ensure_future(detached.wait())
        await asyncio.wait({relaying, gone}, return_when=asyncio.FIRST_COMPLETED)
        gone.cancel()
        if feeder is not None:
            feeder.cancel()
        if not relaying.done():
            # Detached: the stream ends here and the process runs on (moby: exec_detach).
            relaying.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await relaying
            execs.detached(ex)
            return HijackedResponse(request)
        await relaying
        # The CLI reads the exit code from inspect right after the stream ends.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ex.done.wait(), 10)
    finally:
        if not transport.is_closing():
            transport.close()
    return HijackedResponse(request)


async def resize(request: web.Request) -> web.StreamResponse:
    try:
        h, w = int(request.query.get("h", "0")), int(request.query.get("w", "0"))
    except ValueError:
        raise InvalidArgument("resize: h and w must be integers") from None
    await _execs(request).resize(request.match_info["id"], h, w)
    return web.Response(status=200)


async def inspect(request: web.Request) -> web.StreamResponse:
    return json_response(_execs(request).inspect(request.match_info["id"]))


def setup(router: Router) -> None:
    router.add("POST", "/containers/{id}/exec", create)
    router.add("POST", "/exec/{id}/start", start)
    router.add("POST", "/exec/{id}/resize", resize)
    router.add("GET", "/exec/{id}/json", inspect)
