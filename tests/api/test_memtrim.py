"""api/memtrim.py's middleware against the daemon's real route table: the routes marked heavy
(builds, sessions, gRPC, pulls, pushes, saves, loads) hold the trim off while they run, the
others do not, whatever their path ends with."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from dockyard.api import memtrim
from dockyard.api.helpers import HEAVY_ROUTES_KEY, is_heavy
from dockyard.api.server import create_app

HEAVY = [
    ("POST", "/build"),
    ("POST", "/v1.41/build"),
    ("POST", "/session"),
    ("POST", "/grpc"),
    ("POST", "/images/create"),
    ("POST", "/images/busybox/push"),
    ("POST", "/v1.44/images/127.0.0.1:5000/ns/app/push"),
    ("GET", "/images/get"),
    ("GET", "/images/busybox/get"),
    ("POST", "/images/load"),
]
LIGHT = [
    ("GET", "/_ping"),
    ("GET", "/events"),
    ("GET", "/containers/json"),
    ("POST", "/build/prune"),
    ("POST", "/build/cancel"),
    ("DELETE", "/containers/build"),  # `docker rm build`: held the trim off by its path before
    ("DELETE", "/images/session"),
    ("GET", "/networks/grpc"),
    ("DELETE", "/images/app/push"),  # rmi of an image named app/push
    ("GET", "/nowhere/load"),  # no route: the 404
]


@dataclass
class _Request:
    """What the middleware reads of a request: its app and the match the router made."""

    app: web.Application
    match_info: Any


async def _resolve(app: web.Application, method: str, path: str) -> Any:  # a _Request
    match = await app.router.resolve(make_mocked_request(method, path, app=app))
    return _Request(app, match)


def test_the_route_table_marks_the_heavy_routes() -> None:
    async def main() -> None:
        app = create_app(None)  # type: ignore[arg-type]  # no handler runs here
        for method, path in HEAVY:
            assert is_heavy(await _resolve(app, method, path)), (method, path)
        for method, path in LIGHT:
            assert not is_heavy(await _resolve(app, method, path)), (method, path)
        # the routes the path suffixes of old named, and no more
        marked = {(r.method, r.resource.canonical) for r in app[HEAVY_ROUTES_KEY] if r.resource}
        assert {(m, c) for m, c in marked if not c.startswith("/{api_version")} == {
            ("POST", "/build"),
            ("POST", "/session"),
            ("POST", "/grpc"),
            ("POST", "/images/create"),
            ("POST", "/images/{name}/push"),
            ("GET", "/images/get"),
            ("GET", "/images/{name}/get"),
            ("POST", "/images/load"),
        }
        assert len(marked) == 16  # each also under /vX.Y

    asyncio.run(main())


@pytest.mark.parametrize("heavy", [HEAVY[0], HEAVY[5], HEAVY[9]], ids=" ".join)
def test_a_heavy_route_in_flight_holds_the_trim_off_and_a_light_one_does_not(
    heavy: tuple[str, str],
) -> None:
    async def main() -> None:
        app = create_app(None)  # type: ignore[arg-type]
        calls: list[int] = []

        def trim(pad: int) -> int:
            calls.append(pad)
            return 1

        trimmer = memtrim.QuietTrimmer(delay=0.05, trim=trim)
        mw = memtrim.middleware(trimmer)

        async def request(method: str, path: str, until: asyncio.Event | None = None) -> None:
            async def handler(_request: web.Request) -> web.StreamResponse:
                if until is not None:
                    await until.wait()
                return web.Response()

            await mw(await _resolve(app, method, path), handler)

        # a long light request (events, for good) holds nothing off: a ps ending trims
        events_end = asyncio.Event()
        events = asyncio.create_task(request("GET", "/v1.44/events", events_end))
        await asyncio.sleep(0)
        await request("GET", "/containers/json")
        await asyncio.sleep(0.15)
        assert calls == [0]
        # a heavy one in flight: the requests ending around it do not trim, its end does
        heavy_end = asyncio.Event()
        task = asyncio.create_task(request(*heavy, heavy_end))
        await asyncio.sleep(0)
        for light in LIGHT:
            await request(*light)
        await asyncio.sleep(0.15)
        assert calls == [0]
        heavy_end.set()
        await task
        await asyncio.sleep(0.15)
        assert calls == [0, 0]
        events_end.set()
        await events
        await trimmer.cleanup(app)

    asyncio.run(main())
