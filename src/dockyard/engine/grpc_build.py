"""`/grpc`: BuildKit's control API served to buildx's docker driver, over the one builder.

buildx (0.13) builds as a gateway client (session/control.py says how): `Control.Solve`
registers the build by its ref and waits; `LLBBridge.Solve` runs the Dockerfile through
`SessionBuilds.solve` (the session's context, secrets, agents and credentials, BuildKit's
semantics, the one cache store) and answers with a ref for the image; `LLBBridge.Return`
hands that ref back; `Control.Solve` then exports it — `moby` tags it in our image store
(`--push` is then buildx's Engine API push), `local` and `tar` send its root filesystem back
through the session's FileSend — and answers with the image digest. `Control.Status`
streams the build's StatusResponses (the same trace /build?version=2 sends as aux).

The build cache as BuildKit's DiskUsage/Prune see it: one record per cached step (the step
cache's key → the image it made), sized by the layer that step added; prune drops those
records and the untagged intermediate images nothing else uses, then collects garbage.

Refused by name (a gRPC error naming the feature): raw LLB definitions (buildctl), gateway
frontends and frontend images, source policies, frontend inputs, cache export other than
inline, and exporters other than moby/local/tar (`docker`/`oci` tarballs need the
containerd image store, which buildx reads from the worker's snapshotter label: we report
none, so buildx itself says so before it asks).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import logging
import platform
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dockyard.engine.buildkit_attrs import (
    CacheImport,
    FrontendRequest,
    cache_sources,
    frontend_request,
)
from dockyard.engine.inline_cache import asks_inline, with_inline_cache
from dockyard.errors import DockyardError, InvalidArgument, NotFound, NotSupported
from dockyard.image.config import go_arch
from dockyard.image.reference import parse_reference
from dockyard.session import control, filesend, upload
from dockyard.session.h2grpc import (
    INTERNAL,
    INVALID_ARGUMENT,
    NOT_FOUND,
    UNIMPLEMENTED,
    UNKNOWN,
    Call,
    GrpcError,
    Handler,
)
from dockyard.session.progress import TRACE_ID, Trace, human_size
from dockyard.session.proto import control_pb2, gateway_pb2, session_pb2, status_pb2
from dockyard.version import __version__

if TYPE_CHECKING:
    from dockyard.engine.engine import Engine

_log = logging.getLogger("dockyard.session")

REGISTER_WAIT = 10.0  # a gateway call may arrive before its Control.Solve
KEEP_FINISHED = 30.0  # a finished build's status stays readable this long
EXPORTERS = ("moby", "local", "tar")
_MOBY_ATTRS = frozenset({"name", "push", "load", "dangling-name-prefix", "unpack", "store"})
_FILE_ATTRS = frozenset({"dest", "platform-split"})


def _grpc_error(exc: DockyardError) -> GrpcError:
    if isinstance(exc, NotSupported):
        return GrpcError(UNIMPLEMENTED, str(exc))
    if isinstance(exc, InvalidArgument):
        return GrpcError(INVALID_ARGUMENT, str(exc))
    if isinstance(exc, NotFound):
        return GrpcError(NOT_FOUND, str(exc))
    return GrpcError(UNKNOWN, str(exc))


def _unsupported(feature: str) -> GrpcError:
    return GrpcError(UNIMPLEMENTED, f"{feature} is not supported by dockyard")


@dataclasses.dataclass(frozen=True)
class Export:
    index: int
    type: str
    attrs: dict[str, str]


def exports_of(req: Any) -> list[Export]:
    if req.Exporters:
        raw = [(e.Type, dict(e.Attrs)) for e in req.Exporters]
    elif req.ExporterDeprecated:
        raw = [(req.ExporterDeprecated, dict(req.ExporterAttrsDeprecated))]
    else:
        raw = []
    out = []
    for i, (kind, attrs) in enumerate(raw):
        if kind not in EXPORTERS:
            raise NotSupported(
                f"exporter {kind} is not supported by dockyard: it exports to its image store "
                "(moby, --load/--push) or sends files back (type=local, type=tar); docker and "
                "oci tarballs need the containerd image store, which dockyard does not have"
            )
        allowed = _MOBY_ATTRS if kind == "moby" else _FILE_ATTRS
        for key, value in attrs.items():
            if key not in allowed and value not in ("", "false"):
                raise NotSupported(
                    f"exporter option {key}={value} of type={kind} is not supported by dockyard"
                )
        out.append(Export(i, kind, attrs))
    return out


class _Job:
    """One build, known by its ref to Solve, Status and the gateway calls."""

    def __init__(self, ref: str) -> None:
        self.ref = ref
        self.request: Any = None  # the Control.SolveRequest, once it has arrived
        self.registered = asyncio.Event()
        self.messages: list[bytes] = []
        self.changed = asyncio.Event()
        self.finished = False
        self.returned: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self.results: dict[str, str] = {}  # gateway ref id -> image ID
        # the frontend's own failure: the client's Return repeats it wrapped in its status
        # name ("Unimplemented: …"), so Control.Solve answers with this one
        self.failure: GrpcError | None = None
        # --cache-to type=inline or BUILDKIT_INLINE_CACHE=1: the image exported records its
        # step cache keys (engine/inline_cache.py)
        self.inline = False
        self.trace = Trace(self._emit)

    def _emit(self, msg: dict[str, Any]) -> None:
        if msg.get("id") == TRACE_ID and isinstance(msg.get("aux"), str):
            self.push(base64.b64decode(msg["aux"]))

    def push(self, data: bytes) -> None:
        self.messages.append(data)
        self.changed.set()

    def finish(self) -> None:
        self.finished = True
        self.changed.set()
        if not self.returned.done():
            self.returned.cancel()

    @property
    def session_id(self) -> str:
        return str(self.request.Session) if self.request is not None else ""

    @property
    def entitlements(self) -> list[str]:
        return list(self.request.Entitlements) if self.request is not None else []


class GrpcBuilds:
    """The control and gateway services of every `/grpc` connection; one per engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._jobs: dict[str, _Job] = {}

    def handlers(self) -> dict[str, Handler]:
        h: dict[str, Handler] = {
            control.SOLVE: self._solve,
            control.STATUS: self._status,
            control.LIST_WORKERS: self._list_workers,
            control.INFO: self._info,
            control.DISK_USAGE: self._disk_usage,
            control.PRUNE: self._prune,
            control.LISTEN_BUILD_HISTORY: self._listen_history,
            control.BRIDGE_PING: self._ping,
            control.BRIDGE_SOLVE: self._bridge_solve,
            control.BRIDGE_RETURN: self._bridge_return,
            control.BRIDGE_INPUTS: self._bridge_inputs,
            control.BRIDGE_WARN: self._bridge_warn,
            control.BRIDGE_EVALUATE: self._bridge_evaluate,
            control.HEALTH_CHECK: self._health,
            control.UPDATE_BUILD_HISTORY: self._refuse("the build history API (buildx history)"),
            control.CONTROL_SESSION: self._refuse(
                "sessions over the control API: dockyard serves them on POST /session"
            ),
        }
        for method, feature in control.BRIDGE_UNSUPPORTED.items():
            h[method] = self._refuse(feature)
        return h

    @staticmethod
    def _refuse(feature: str) -> Handler:
        async def handler(call: Call) -> None:
            raise _unsupported(feature)

        return handler

    def held_in_memory(self) -> str | None:
        """A buildx job (a solve and its status stream) that only this process knows."""
        return f"{len(self._jobs)} buildx job(s)" if self._jobs else None

    # jobs ---------------------------------------------------------------------------------
    def _job(self, ref: str) -> _Job:
        if not ref:
            raise GrpcError(INVALID_ARGUMENT, "a build needs a ref")
        job = self._jobs.get(ref)
        if job is None:
            job = self._jobs[ref] = _Job(ref)
            # a Status or gateway call for a build that never comes: forget it in time
            asyncio.get_running_loop().call_later(600, self._forget_if_idle, job)
        return job

    def _forget_if_idle(self, job: _Job) -> None:
        if job.request is None or job.finished:
            if self._jobs.get(job.ref) is job:
                del self._jobs[job.ref]
            job.finish()

    def _forget(self, job: _Job) -> None:
        if self._jobs.get(job.ref) is job:
            del self._jobs[job.ref]

    async def _gateway_job(self, call: Call) -> _Job:
        ref = call.first(control.BUILD_ID_KEY)
        if not ref:
            raise _unsupported(
                "the frontend gateway API outside a build (a gateway frontend image)"
            )
        job = self._job(ref)
        try:
            async with asyncio.timeout(REGISTER_WAIT):
                await job.registered.wait()
        except TimeoutError:
            raise GrpcError(NOT_FOUND, f"no such job {ref}") from None
        return job

    @staticmethod
    async def _request(call: Call, cls: Any) -> Any:
        raw = await call.recv()
        if raw is None:
            raise GrpcError(INTERNAL, f"{call.method}: no request message")
        return cls.FromString(raw)

    # Control ------------------------------------------------------------------------------
    async def _solve(self, call: Call) -> None:
        req = await self._request(call, control_pb2.SolveRequest)
        if req.HasField("Definition") and len(getattr(req.Definition, "def")) > 0:
            raise _unsupported(
                "building a raw LLB definition (buildctl build, a client's own LLB); "
                "dockyard builds Dockerfiles: frontend dockerfile.v0"
            )
        if req.SourcePolicy:
            raise _unsupported("a source policy (EXPERIMENTAL_BUILDKIT_SOURCE_POLICY)")
        if req.FrontendInputs:
            raise _unsupported("frontend inputs (named contexts from other builds)")
        inline = False
        if req.HasField("Cache"):
            other = [e.Type for e in req.Cache.Exports if e.Type != "inline"]
            if other or req.Cache.ExportRefDeprecated:
                raise _unsupported(
                    f"cache export --cache-to type={','.join(other) or 'registry'} (only "
                    "type=inline: the cache keys in the image's config)"
                )
            inline = bool(req.Cache.Exports)
        if req.Frontend not in ("", control.DOCKERFILE_FRONTEND):
            raise _unsupported(
                f"frontend {req.Frontend}: gateway frontends and frontend images are not "
                "run; dockyard builds with its built-in Dockerfile frontend (dockerfile.v0)"
            )
        try:
            exports = exports_of(req)
        except DockyardError as exc:
            raise _grpc_error(exc) from None
        job = self._job(req.Ref)
        if job.request is not None:
            raise GrpcError(INVALID_ARGUMENT, f"build {req.Ref} already exists")
        job.request = req
        job.inline = inline
        job.registered.set()
        try:
            if req.Frontend == "":
                image_id = await job.returned
            else:
                imports = [CacheImport(e.Type, dict(e.Attrs)) for e in req.Cache.Imports]
                fe = frontend_request(req.FrontendAttrs, entitlements=job.entitlements)
                fe.opts.cache_from = [*fe.opts.cache_from, *cache_sources(imports)]
                image_id = await self._frontend(job, fe)
            if image_id is not None and job.inline:
                image_id = await asyncio.to_thread(with_inline_cache, self.engine, image_id)
            response = await self._export(job, image_id, exports)
            await call.send(response.SerializeToString())
        except DockyardError as exc:
            raise _grpc_error(exc) from None
        finally:
            job.finish()
            asyncio.get_running_loop().call_later(KEEP_FINISHED, self._forget, job)

    async def _frontend(self, job: _Job, fe: FrontendRequest) -> str:
        builds = self.engine.session_builds
        job.inline = job.inline or asks_inline(fe.opts.build_args)
        if fe.context_git:
            async with builds.git_context(fe.context_git, fe.opts, job.trace) as root:
                return await builds.solve(job.session_id, fe.opts, job.trace, context_dir=root)
        if not fe.context_upload:
            return await builds.solve(job.session_id, fe.opts, job.trace)
        from dockyard.builder.context import extract_context

        session = await builds.sessions.get(job.session_id)
        with tempfile.TemporaryDirectory(prefix="upload-", dir=self.engine.tmp_dir) as scratch:
            tar = Path(scratch) / "context.tar"
            v = job.trace.start("[internal] load remote build context")
            try:
                size = await upload.pull(session, fe.context_upload, tar)
                with open(tar, "rb") as f:
                    await asyncio.to_thread(extract_context, f, Path(scratch) / "ctx")
            except DockyardError as exc:
                job.trace.complete(v, error=str(exc))
                raise
            job.trace.status(v, f"transferring context: {human_size(size)}", done=True)
            job.trace.complete(v)
            return await builds.solve(
                job.session_id, fe.opts, job.trace, context_dir=Path(scratch) / "ctx"
            )

    async def _export(self, job: _Job, image_id: str | None, exports: list[Export]) -> Any:
        response = control_pb2.SolveResponse()
        if image_id is None:
            if exports:
                raise InvalidArgument("the build returned no result to export")
            return response
        image = self.engine.images.get(image_id)
        response.ExporterResponse[control.RESP_CONFIG_DIGEST] = image_id
        response.ExporterResponse[control.RESP_IMAGE_DIGEST] = image_id
        for exp in exports:
            if exp.type == "moby":
                names = [n.strip() for n in exp.attrs.get("name", "").split(",") if n.strip()]
                shown = []
                for name in names:
                    self.engine.images.tag(image_id, name)
                    shown.append(f"naming to {parse_reference(name)}")
                job.trace.quick(
                    "exporting to image",
                    ["exporting layers", f"writing image {image_id}", *shown],
                )
                if names:
                    response.ExporterResponse[control.RESP_IMAGE_NAME] = ",".join(names)
            else:
                await self._export_files(job, exp, list(image.config.diff_ids))
        return response

    async def _export_files(self, job: _Job, exp: Export, diff_ids: list[str]) -> None:
        session = await self.engine.session_builds.sessions.get(job.session_id)
        local = exp.type == "local"
        v = job.trace.start(
            "exporting to client directory" if local else "exporting to client tarball"
        )
        try:
            async with self._image_tree(diff_ids) as tree:
                if local:
                    sent = await filesend.send_tree(session, exp.index, tree)
                else:
                    with tempfile.TemporaryDirectory(dir=self.engine.tmp_dir) as scratch:
                        tar = Path(scratch) / "out.tar"
                        await asyncio.to_thread(_write_tar, tree, tar)
                        sent = await filesend.send_file(session, exp.index, tar)
        except DockyardError as exc:
            job.trace.complete(v, error=str(exc))
            raise
        job.trace.status(
            v,
            f"sending tarball {human_size(sent)}"
            if not local
            else f"copying files {human_size(sent)}",
            done=True,
        )
        job.trace.complete(v)

    @contextlib.asynccontextmanager
    async def _image_tree(self, diff_ids: list[str]) -> AsyncIterator[Path]:
        layers = [d for d in diff_ids if d]
        if not layers:  # FROM scratch with nothing in it
            empty = Path(tempfile.mkdtemp(prefix="empty-", dir=self.engine.tmp_dir))
            try:
                yield empty
            finally:
                shutil.rmtree(empty, ignore_errors=True)
            return
        async with self.engine.builder.rootfs.image_tree(layers) as tree:
            yield tree

    async def _status(self, call: Call) -> None:
        req = await self._request(call, control_pb2.StatusRequest)
        job = self._job(req.Ref)
        sent = 0
        while True:
            while sent < len(job.messages):
                await call.send(job.messages[sent])
                sent += 1
            if job.finished:
                return
            job.changed.clear()
            await job.changed.wait()

    async def _list_workers(self, call: Call) -> None:
        await self._request(call, control_pb2.ListWorkersRequest)
        resp = control_pb2.ListWorkersResponse()
        resp.record.append(self._worker())
        await call.send(resp.SerializeToString())

    def _worker(self) -> Any:
        w = control_pb2.WorkerRecord(ID=control.WORKER_ID)
        w.Labels[control.LABEL_EXECUTOR] = "runc"
        w.Labels[control.LABEL_HOSTNAME] = platform.node()
        w.platforms.append(control_pb2.Platform(OS="linux", Architecture=go_arch()))
        w.BuildkitVersion.CopyFrom(_version())
        return w

    async def _info(self, call: Call) -> None:
        await self._request(call, control_pb2.InfoRequest)
        resp = control_pb2.InfoResponse()
        resp.buildkitVersion.CopyFrom(_version())
        await call.send(resp.SerializeToString())

    async def _disk_usage(self, call: Call) -> None:
        req = await self._request(call, control_pb2.DiskUsageRequest)
        from dockyard.engine import buildkit_cache

        try:
            records = await asyncio.to_thread(buildkit_cache.records, self.engine, list(req.filter))
        except DockyardError as exc:
            raise _grpc_error(exc) from None
        resp = control_pb2.DiskUsageResponse()
        for rec in records:
            resp.record.append(buildkit_cache.usage_record(rec))
        await call.send(resp.SerializeToString())

    async def _prune(self, call: Call) -> None:
        req = await self._request(call, control_pb2.PruneRequest)
        from dockyard.engine import buildkit_cache

        try:
            pruned = await buildkit_cache.prune(
                self.engine,
                list(req.filter),
                all_=req.all,
                keep_bytes=req.keepBytes,
                keep_duration_ns=req.keepDuration,
            )
        except DockyardError as exc:
            raise _grpc_error(exc) from None
        for rec in pruned:
            await call.send(buildkit_cache.usage_record(rec).SerializeToString())

    async def _listen_history(self, call: Call) -> None:
        req = await self._request(call, control_pb2.BuildHistoryRequest)
        if not req.EarlyExit or not req.ActiveOnly:
            raise _unsupported("the build history API (buildx history, Docker Desktop)")
        # buildx's probe (driver.historyAPISupported): nothing active under its dummy ref;
        # the stream ends at once, as BuildKit's does with EarlyExit.

    async def _health(self, call: Call) -> None:
        await self._request(call, session_pb2.HealthCheckRequest)
        await call.send(
            session_pb2.HealthCheckResponse(
                status=session_pb2.HealthCheckResponse.SERVING
            ).SerializeToString()
        )

    # LLBBridge ------------------------------------------------------------------------------
    async def _ping(self, call: Call) -> None:
        await self._request(call, gateway_pb2.PingRequest)
        resp = gateway_pb2.PongResponse()
        for cap in control.FRONTEND_CAPS:
            resp.FrontendAPICaps.append(gateway_pb2.APICap(ID=cap, Enabled=True))
        await call.send(resp.SerializeToString())

    async def _bridge_solve(self, call: Call) -> None:
        req = await self._request(call, gateway_pb2.SolveRequest)
        job = await self._gateway_job(call)
        if req.HasField("Definition") and len(getattr(req.Definition, "def")) > 0:
            raise _unsupported(
                "solving a raw LLB definition through the gateway; dockyard builds "
                "Dockerfiles: frontend dockerfile.v0"
            )
        if req.Frontend != control.DOCKERFILE_FRONTEND:
            raise _unsupported(
                f"frontend {req.Frontend or '(none)'}: gateway frontends and frontend images "
                "are not run; dockyard builds with its built-in Dockerfile frontend "
                "(dockerfile.v0)"
            )
        if req.FrontendInputs:
            raise _unsupported("frontend inputs (named contexts from other builds)")
        try:
            imports = [CacheImport(e.Type, dict(e.Attrs)) for e in req.CacheImports]
            fe = frontend_request(req.FrontendOpt, entitlements=job.entitlements)
            fe.opts.cache_from = [*fe.opts.cache_from, *cache_sources(imports)]
            image_id = await self._frontend(job, fe)
        except DockyardError as exc:
            job.failure = _grpc_error(exc)
            raise job.failure from None
        except GrpcError as exc:
            job.failure = exc
            raise
        ref_id = secrets.token_hex(16)
        job.results[ref_id] = image_id
        resp = gateway_pb2.SolveResponse(ref=ref_id)
        resp.result.ref.id = ref_id
        resp.result.metadata[control.META_IMAGE_CONFIG] = self.engine.images.get(
            image_id
        ).config.raw
        await call.send(resp.SerializeToString())

    async def _bridge_return(self, call: Call) -> None:
        req = await self._request(call, gateway_pb2.ReturnRequest)
        job = await self._gateway_job(call)
        if not job.returned.done():
            if req.HasField("error") and req.error.code != 0:
                job.returned.set_exception(
                    job.failure or GrpcError(req.error.code, req.error.message)
                )
            else:
                try:
                    job.returned.set_result(self._returned_image(job, req.result))
                except GrpcError as exc:
                    job.returned.set_exception(exc)
                    raise
        await call.send(gateway_pb2.ReturnResponse().SerializeToString())

    @staticmethod
    def _returned_image(job: _Job, result: Any) -> str | None:
        which = result.WhichOneof("result")
        if which == "ref":
            ident = result.ref.id
        elif which == "refDeprecated":
            ident = result.refDeprecated
        elif which in ("refs", "refsDeprecated"):
            refs = result.refs.refs if which == "refs" else result.refsDeprecated.refs
            if len(refs) > 1:
                raise _unsupported("a multi-platform result")
            ident = next(
                (r.id if which == "refs" else r for r in refs.values()),
                "",
            )
        else:
            ident = ""
        if not ident:
            return None
        image_id = job.results.get(ident)
        if image_id is None:
            raise GrpcError(INVALID_ARGUMENT, f"unknown result reference {ident}")
        return image_id

    async def _bridge_inputs(self, call: Call) -> None:
        await self._request(call, gateway_pb2.InputsRequest)
        await call.send(gateway_pb2.InputsResponse().SerializeToString())

    async def _bridge_evaluate(self, call: Call) -> None:
        await self._request(call, gateway_pb2.EvaluateRequest)
        # our results are built by the time their ref exists
        await call.send(gateway_pb2.EvaluateResponse().SerializeToString())

    async def _bridge_warn(self, call: Call) -> None:
        req = await self._request(call, gateway_pb2.WarnRequest)
        job = await self._gateway_job(call)
        resp = status_pb2.StatusResponse()
        resp.warnings.append(
            status_pb2.VertexWarning(
                vertex=req.digest, level=req.level, short=req.short, url=req.url
            )
        )
        resp.warnings[0].detail.extend(req.detail)
        job.push(resp.SerializeToString())
        await call.send(gateway_pb2.WarnResponse().SerializeToString())


def _version() -> Any:
    return control_pb2.BuildkitVersion(
        package="github.com/dockyard/dockyard", version=f"v{__version__}", revision=""
    )


def _write_tar(tree: Path, out: Path) -> None:
    from dockyard.diff.differ import write_layer_tar

    with open(out, "wb") as f:
        write_layer_tar(tree, f)
