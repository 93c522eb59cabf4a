"""docker-archive endpoints: `GET /images/get`, `GET /images/{name}/get`, `POST /images/load`.

Save streams the tar straight from the content store; load feeds the request body to the
unpacker in a worker thread through a bounded pipe, so neither side holds a whole archive in
memory or copies it to disk twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue

from aiohttp import web

from dockyard.api.helpers import COMMON_HEADERS, Router, engine_of, flag, name_param
from dockyard.api.streams import Emit, json_stream
from dockyard.errors import DockyardError, InvalidArgument

log = logging.getLogger(__name__)
_PIPE_DEPTH = 8
_POLL = 0.5


class BodyPipe:
    """A blocking reader (for a worker thread) of chunks an async task puts in."""

    def __init__(self) -> None:
        self._q: queue.Queue[bytes | None] = queue.Queue(maxsize=_PIPE_DEPTH)
        self._buf = b""
        self._eof = False
        self.closed = False

    # producer side (event loop) ---------------------------------------------------------
    def put(self, chunk: bytes | None) -> bool:
        """Blocking put for a worker thread; False once the reader has gone away."""
        while not self.closed:
            try:
                self._q.put(chunk, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

    # consumer side (worker thread) ------------------------------------------------------
    def read(self, n: int = -1) -> bytes:
        while not self._eof and (n < 0 or len(self._buf) < n):
            try:
                chunk = self._q.get(timeout=_POLL)
            except queue.Empty:
                if self.closed:  # the request went away: end the worker instead of hanging
                    raise OSError("the load request was cancelled") from None
                continue
            if chunk is None:
                self._eof = True
            else:
                self._buf += chunk
        if n < 0:
            data, self._buf = self._buf, b""
        else:
            data, self._buf = self._buf[:n], self._buf[n:]
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self.closed = True


async def _feed(request: web.Request, pipe: BodyPipe) -> None:
    try:
        async for chunk in request.content.iter_chunked(1 << 20):
            if not await asyncio.to_thread(pipe.put, chunk):
                return
    finally:
        await asyncio.to_thread(pipe.put, None)


async def load(request: web.Request) -> web.StreamResponse:
    engine = engine_of(request)
    quiet = flag(request, "quiet")
    pipe = BodyPipe()

    async def work(emit: Emit) -> None:
        from dockyard.engine import archives  # with tarfile, on the first save or load

        feeder = asyncio.create_task(_feed(request, pipe))
        try:
            await archives.load(engine, pipe, emit, quiet=quiet)  # type: ignore[arg-type]
        finally:
            pipe.close()
            await feeder

    return await json_stream(request, work)


async def _stream_tar(request: web.Request, names: list[str]) -> web.StreamResponse:
    engine = engine_of(request)
    if not names:
        raise InvalidArgument("no image names given to save")
    from dockyard.engine import archives  # with tarfile, on the first save or load

    items = archives.prepare_save(engine, names)
    chunks = archives.save_stream(engine, items)
    resp = web.StreamResponse(status=200, headers=COMMON_HEADERS)
    resp.content_type = "application/x-tar"
    try:
        # The first chunk is made before the 200 goes out, so an early failure is still a
        # plain error response.
        chunk = await asyncio.to_thread(next, chunks, None)
        await resp.prepare(request)
        try:
            while chunk is not None:
                await resp.write(chunk)
                chunk = await asyncio.to_thread(next, chunks, None)
        except DockyardError as exc:
            # A tar cannot carry an error once it has started (Docker has the same limit):
            # cut the connection so the client sees a truncated archive, never a short valid one.
            log.warning("save of %s failed mid-stream: %s", names, exc)
            if request.transport is not None:
                request.transport.abort()
            return resp
        await resp.write_eof()
        return resp
    finally:
        # A cancelled request may leave `next` running in its thread: then the generator is
        # still executing and closes itself when it is collected.
        with contextlib.suppress(ValueError):
            chunks.close()


async def save_many(request: web.Request) -> web.StreamResponse:
    return await _stream_tar(request, request.query.getall("names", []))


async def save_one(request: web.Request) -> web.StreamResponse:
    return await _stream_tar(request, [name_param(request)])


def setup(router: Router) -> None:
    router.add("GET", "/images/get", save_many, heavy=True)
    router.add("POST", "/images/load", load, heavy=True)
    router.add("GET", "/images/{name:.+}/get", save_one, heavy=True)
