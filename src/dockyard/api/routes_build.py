"""POST /build: the legacy builder endpoint (a context tar in, JSON progress out)."""

from __future__ import annotations

import asyncio
import base64
import json
import tempfile

from aiohttp import web

from dockyard.api.server import Router, engine_of, flag
from dockyard.api.streams import Emit, json_stream
from dockyard.builder.builder import BuildOptions
from dockyard.errors import InvalidArgument, NotSupported

# Query parameters of /build that change the result; any other non-default setting is refused.
_UNSUPPORTED = (
    "remote",
    "cachefrom",
    "platform",
    "squash",
    "networkmode",
    "extrahosts",
    "outputs",
    "memory",
    "memswap",
    "cpushares",
    "cpusetcpus",
    "cpuperiod",
    "cpuquota",
    "shmsize",
    "ulimits",
    "pull",
)


def _json_param(request: web.Request, name: str) -> dict[str, str]:
    raw = request.query.get(name)
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        raise InvalidArgument(f"invalid {name} parameter: not JSON") from None
    if not isinstance(value, dict):
        raise InvalidArgument(f"invalid {name} parameter: not a JSON object")
    return {str(k): "" if v is None else str(v) for k, v in value.items()}


async def build(request: web.Request) -> web.StreamResponse:
    engine = engine_of(request)
    for name in _UNSUPPORTED:
        value = request.query.get(name, "")
        if value not in ("", "0", "false", "[]", "{}", "default", "null"):
            raise NotSupported(f"build option {name}={value} is not supported by dockyard yet")
    if request.query.get("version", "1") == "2":
        raise NotSupported("BuildKit builds are not supported: set DOCKER_BUILDKIT=0")
    build_args = _json_param(request, "buildargs")
    if build_args:
        raise NotSupported("--build-arg is not supported by dockyard yet")
    opts = BuildOptions(
        dockerfile=request.query.get("dockerfile") or "Dockerfile",
        tags=request.query.getall("t", []),
        no_cache=flag(request, "nocache"),
        quiet=flag(request, "q"),
        build_args=build_args,
        labels=_json_param(request, "labels"),
        target=request.query.get("target", ""),
    )
    if opts.target:
        raise NotSupported("--target is not supported by dockyard yet")
    registry_config = request.headers.get("X-Registry-Config")
    if registry_config:
        try:
            base64.urlsafe_b64decode(registry_config + "=" * (-len(registry_config) % 4))
        except ValueError:
            raise InvalidArgument("invalid X-Registry-Config header") from None
    spool = tempfile.TemporaryFile(dir=engine.tmp_dir)
    try:
        async for chunk in request.content.iter_chunked(1 << 20):
            await asyncio.to_thread(spool.write, chunk)
        spool.seek(0)

        async def work(emit: Emit) -> None:
            await engine.build(spool, opts, emit)

        return await json_stream(request, work)
    finally:
        spool.close()


def setup(router: Router) -> None:
    router.add("POST", "/build", build)
