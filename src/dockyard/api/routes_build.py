"""POST /build: the legacy builder endpoint (a context tar in, JSON progress out)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from typing import TYPE_CHECKING, overload

from aiohttp import web

from dockyard.api.helpers import Router, engine_of, filters_param, flag, json_response
from dockyard.api.streams import Emit, json_stream, lazy_json_stream, spooled_body
from dockyard.engine.hostconfig import parse_extra_hosts
from dockyard.errors import BuildFailure, InvalidArgument, NotFound, NotSupported
from dockyard.image.config import go_arch

if TYPE_CHECKING:
    from dockyard.builder.builder import BuildOptions
    from dockyard.registry.auth import Credentials

# Query parameters of /build that change the result; any other non-default setting is refused.
_UNSUPPORTED = (
    "remote",
    "squash",
    "outputs",
    "memory",
    "memswap",
    "cpushares",
    "cpusetcpus",
    "cpuperiod",
    "cpuquota",
    "ulimits",
)


@overload
def _json_param(request: web.Request, name: str) -> dict[str, str]: ...
@overload
def _json_param(request: web.Request, name: str, keep_null: bool) -> dict[str, str | None]: ...
def _json_param(
    request: web.Request, name: str, keep_null: bool = False
) -> dict[str, str] | dict[str, str | None]:
    raw = request.query.get(name)
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        raise InvalidArgument(f"invalid {name} parameter: not JSON") from None
    if value is None:  # Go's json.Marshal of a nil map (Compose v2 sends it): dockerd takes none
        return {}
    if not isinstance(value, dict):
        raise InvalidArgument(f"invalid {name} parameter: not a JSON object")
    if keep_null:
        return {str(k): None if v is None else str(v) for k, v in value.items()}
    return {str(k): "" if v is None else str(v) for k, v in value.items()}


def _network_mode(request: web.Request, value: str) -> str:
    """`networkmode`: default, host, none, or a user-defined network (by name or ID) whose
    namespace each RUN step joins, as dockerd's legacy builder does."""
    if value in ("", "default", "bridge"):
        return "default"
    if value in ("host", "none"):
        return value
    if value.startswith("container:"):
        raise NotSupported(f"build option networkmode={value} is not supported by dockyard yet")
    try:
        net = engine_of(request).containers.networks.get(value)
    except NotFound:
        raise NotFound(f"network {value} not found") from None
    return {"host": "host", "null": "none"}.get(net["Driver"], str(net["Name"]))


def _shm_size(value: str) -> int:
    """`shmsize` in bytes; dockerd refuses a negative one (runconfig: "SHM size can not be
    less than 0")."""
    if value in ("", "0"):
        return 0
    try:
        size = int(value)
    except ValueError:
        raise InvalidArgument(f"invalid shmsize value {value!r}") from None
    if size < 0:
        raise InvalidArgument("SHM size can not be less than 0")
    return size


def _json_list(request: web.Request, name: str) -> list[str]:
    raw = request.query.get(name)
    if not raw:
        return []
    try:
        value = json.loads(raw)
    except ValueError:
        raise InvalidArgument(f"invalid {name} parameter: not JSON") from None
    if value is None:  # Compose v2 sends cachefrom=null (a nil slice, json.Marshal'd)
        return []
    if not isinstance(value, list):
        raise InvalidArgument(f"invalid {name} parameter: not a JSON list")
    return [str(v) for v in value]


async def build(request: web.Request) -> web.StreamResponse:
    # the builder loads with the first build (issue 17, row h: an idle daemon without it)
    from dockyard.builder.builder import BuildOptions
    from dockyard.builder.gitsource import context_ref

    engine = engine_of(request)
    version = request.query.get("version", "1")
    if version not in ("1", "2"):
        raise InvalidArgument(f"invalid version {version!r}")
    buildkit = version == "2"
    build_id = request.query.get("buildid", "")
    if buildkit and build_id.startswith(UPLOAD_PREFIX):
        return await _upload(request, build_id.removeprefix(UPLOAD_PREFIX))
    remote = request.query.get("remote", "")
    for name in _UNSUPPORTED:
        if name == "remote" and (buildkit or remote == CLIENT_SESSION or context_ref(remote)):
            continue  # the session build checks it; a git repository is a context
        value = request.query.get(name, "")
        if value not in ("", "0", "false", "[]", "{}", "default", "null"):
            raise NotSupported(f"build option {name}={value} is not supported by dockyard yet")
    # `--build-arg NAME` without a value and without NAME in the client's environment arrives
    # as null: Docker treats it as not given.
    platform = request.query.get("platform", "")
    if platform and platform not in (f"linux/{go_arch()}", "linux"):
        raise NotSupported(
            f"build option platform={platform} is not supported: dockyard builds for "
            f"linux/{go_arch()} only"
        )
    build_args = {
        k: v for k, v in _json_param(request, "buildargs", keep_null=True).items() if v is not None
    }
    cache_from = _json_list(request, "cachefrom")
    opts = BuildOptions(
        dockerfile=request.query.get("dockerfile") or "Dockerfile",
        tags=request.query.getall("t", []),
        no_cache=flag(request, "nocache"),
        quiet=flag(request, "q"),
        # moby build_routes.go: an empty or missing `rm` is true, and `forcerm` implies it;
        # BuildKit runs no containers of the engine's, so both are moot there
        rm=flag(request, "forcerm") or not request.query.get("rm") or flag(request, "rm"),
        force_rm=flag(request, "forcerm"),
        build_args=build_args,
        labels=_json_param(request, "labels"),
        target=request.query.get("target", ""),
        cache_from=cache_from,
        explain_cache=flag(request, "explaincache"),
        pull=flag(request, "pull"),
        network=_network_mode(request, request.query.get("networkmode", "")),
        # `--add-host`: one `extrahosts` parameter per entry (moby build_routes.go)
        extra_hosts=list(parse_extra_hosts(request.query.getall("extrahosts", []))),
        shm_size=_shm_size(request.query.get("shmsize", "")),
        # BuildKit's entitlement (`buildx build --allow security.insecure`); no docker CLI
        # sends it, so `RUN --security=insecure` stays refused for them.
        allow_insecure="security.insecure" in request.query.getall("allow", []),
        # The client's registry logins, for pulling a missing or `--pull`ed base (a session
        # build gets them from the session instead).
        registry_auth={} if buildkit else _registry_config(request),
    )
    if buildkit:
        return await _session_build(request, opts, build_id)
    # The context is read before the 200 header (a body that is not a tar is an error
    # status) and removed before the stream's end (the client leaves once it has it all).
    async with contextlib.AsyncExitStack() as stack:
        if remote == CLIENT_SESSION:
            # moby's legacy builder with a session-served context (`docker build` of our
            # CLI): synced from the client's session, never read by a path on this host
            session_id = request.query.get("session", "")
            if not session_id:
                raise InvalidArgument("remote=client-session requires a session")
            inputs = await stack.enter_async_context(
                engine.session_builds.legacy_inputs(session_id, opts.dockerfile)
            )
            ctx = inputs.context
            opts = dataclasses.replace(opts, secrets=inputs.secrets, ssh=inputs.ssh)
        elif remote:
            # moby's remotecontext.Detect: a git URL is cloned by the daemon
            ctx = await stack.enter_async_context(
                engine.git_context(remote, opts.dockerfile, legacy=True)
            )
        else:
            spool = await stack.enter_async_context(spooled_body(request, engine.tmp_dir))
            ctx = await stack.enter_async_context(engine.build_context(spool, opts.dockerfile))
            if session_id := request.query.get("session", ""):
                # a tar context, with secrets and agents from the client's session
                secrets, ssh = await stack.enter_async_context(
                    engine.session_builds.legacy_mounts(session_id, ctx, opts.dockerfile)
                )
                opts = dataclasses.replace(opts, secrets=secrets, ssh=ssh)
        context = stack.pop_all()

    async def work(emit: Emit) -> None:
        building = asyncio.ensure_future(engine.build_from(ctx, opts, emit))
        watcher = asyncio.create_task(_cancel_on_disconnect(request, building))
        try:
            await building
        except asyncio.CancelledError:
            if watcher.done() and not watcher.cancelled():
                raise BuildFailure("build cancelled: the client went away") from None
            raise
        finally:
            watcher.cancel()
            await context.aclose()

    # dockerd answers an error raised before the first output line (an empty or
    # unparsable Dockerfile, a missing one) with its own status, not a 200 stream.
    try:
        return await lazy_json_stream(request, work)
    finally:
        await context.aclose()  # if the stream never started


UPLOAD_PREFIX = "upload-request:"
CLIENT_SESSION = "client-session"


async def _session_build(
    request: web.Request, opts: BuildOptions, build_id: str
) -> web.StreamResponse:
    """`/build?version=2`: Dockerfile, context, secrets and agents come from the client's
    BuildKit session, progress goes back as BuildKit's trace."""
    session_id = request.query.get("session", "")
    if not session_id:
        raise InvalidArgument("a BuildKit build (version=2) needs a session")
    builds = engine_of(request).session_builds
    remote = request.query.get("remote", "")

    async def work(emit: Emit) -> None:
        building = asyncio.ensure_future(
            builds.build(session_id, opts, emit, remote=remote, build_id=build_id)
        )
        builds.running[build_id or session_id] = building
        watcher = asyncio.create_task(_cancel_on_disconnect(request, building))
        try:
            await building
        except asyncio.CancelledError:
            if building.cancelled() and not asyncio.current_task().cancelling():  # type: ignore[union-attr]
                raise BuildFailure("build cancelled") from None
            raise
        finally:
            watcher.cancel()
            if builds.running.get(build_id or session_id) is building:
                del builds.running[build_id or session_id]

    return await json_stream(request, work)


async def _upload(request: web.Request, build_id: str) -> web.StreamResponse:
    """The context tar of `docker build - < ctx.tar` with BuildKit: a request of its own,
    held until the build that names `remote=upload-request` has used it."""
    builds = engine_of(request).session_builds
    async with spooled_body(request, engine_of(request).tmp_dir) as spool:
        await builds.upload(build_id, spool)
    return web.Response(status=200, content_type="application/json")


async def build_cancel(request: web.Request) -> web.StreamResponse:
    """POST /build/cancel?id=…: the docker CLI's BuildCancel when the user interrupts."""
    ident = request.query.get("id", "")
    engine = engine_of(request)
    if engine.session_builds_loaded:
        task = engine.session_builds.running.get(ident)
        if task is not None:
            task.cancel()
    return web.Response(status=200)


async def _cancel_on_disconnect(request: web.Request, task: asyncio.Future[str]) -> None:
    """Docker cancels a build when its client goes away (the request context); aiohttp does
    not cancel handlers, and a silent RUN writes nothing that would notice, so poll."""
    while not task.done():
        await asyncio.sleep(0.5)
        transport = request.transport
        if transport is None or transport.is_closing():
            task.cancel()
            return


async def prune(request: web.Request) -> web.StreamResponse:
    from dockyard.engine import build_cache

    opts = build_cache.BuildPruneOptions.parse(
        filters_param(request), request.query.get("keep-storage", ""), flag(request, "all")
    )
    caches = engine_of(request).build_caches
    return json_response(await asyncio.to_thread(build_cache.prune, caches, opts))


def setup(router: Router) -> None:
    router.add("POST", "/build/prune", prune)
    router.add("POST", "/build", build, heavy=True)
    router.add("POST", "/build/cancel", build_cancel)


def _registry_config(request: web.Request) -> dict[str, Credentials]:
    # registry/auth.py at the first build: an idle daemon need not hold it
    from dockyard.registry.auth import decode_registry_config

    return decode_registry_config(request.headers.get("X-Registry-Config"))
