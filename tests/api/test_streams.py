"""The JSON progress streams: messages emitted together leave in one write (a cached
build's few lines), the lazy stream's 200 header with them; order and errors as before."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp import http_writer, web
from aiohttp.test_utils import TestClient, TestServer

from dockyard.api.streams import Emit, json_stream, lazy_json_stream
from dockyard.errors import BuildFailure


def _app() -> web.Application:
    async def quick(emit: Emit) -> None:
        emit({"aux": {"ID": "sha256:1"}})
        emit({"stream": "sha256:1\n"})

    async def paced(emit: Emit) -> None:
        emit({"stream": "one\n"})
        await asyncio.sleep(0.05)
        emit({"stream": "two\n"})
        emit({"stream": "three\n"})
        await asyncio.sleep(0.05)
        raise BuildFailure("it failed")

    async def lazy(request: web.Request) -> web.StreamResponse:
        return await lazy_json_stream(request, quick)

    async def eager(request: web.Request) -> web.StreamResponse:
        return await json_stream(request, paced)

    app = web.Application()
    app.router.add_post("/lazy", lazy)
    app.router.add_post("/eager", eager)
    return app


def _lines(body: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in body.split(b"\r\n") if line]


def test_a_quick_stream_is_one_write_and_a_paced_one_keeps_its_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    writes: list[int] = []
    write, writelines = http_writer.StreamWriter._write, http_writer.StreamWriter._writelines

    def server(writer: Any) -> bool:  # the test client writes through a StreamWriter too
        return isinstance(writer._protocol, web.RequestHandler)

    def counted(self: Any, chunk: Any) -> None:
        writes.extend([1] if server(self) else [])
        write(self, chunk)

    def counted_lines(self: Any, chunks: Any) -> None:
        writes.extend([1] if server(self) else [])
        writelines(self, chunks)

    monkeypatch.setattr(http_writer.StreamWriter, "_write", counted)
    monkeypatch.setattr(http_writer.StreamWriter, "_writelines", counted_lines)

    async def main() -> None:
        async with TestClient(TestServer(_app())) as client:
            writes.clear()
            resp = await client.post("/lazy")
            assert resp.status == 200
            assert _lines(await resp.read()) == [
                {"aux": {"ID": "sha256:1"}},
                {"stream": "sha256:1\n"},
            ]
            assert len(writes) == 1  # the header, both lines and the end: one write
            writes.clear()
            resp = await client.post("/eager")
            assert resp.status == 200
            assert _lines(await resp.read()) == [
                {"stream": "one\n"},
                {"stream": "two\n"},
                {"stream": "three\n"},
                {"errorDetail": {"message": "it failed"}, "error": "it failed"},
            ]
            assert len(writes) == 4  # the header, one, two and three, the error with the end

    asyncio.run(main())
