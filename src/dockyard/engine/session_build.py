"""Builds that come through BuildKit's session (`/build?version=2&session=…`).

The engine's glue between the client's session (dockyard.session) and the builder: it finds
the session, takes the Dockerfile, context, secrets, agents and credentials from it, runs
the one builder with them, and reports progress as BuildKit's trace. Everything it holds
(the session's use count, ssh sockets, scratch files, the kept context's lock) is released
when the build ends, fails, or loses its client; the kept context itself stays for the
next build of the same directory.

`docker build - < context.tar` with BuildKit sends the tar as a second request
(`buildid=upload-request:<id>`, moby builder-next's upload); the build that names
`remote=upload-request` takes it from there.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import re
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from dockyard.builder.builder import BuildOptions, Emit
from dockyard.builder.context import BuildContext, extract_context
from dockyard.builder.gitsource import context_ref, redact
from dockyard.builder.semantics import BUILDKIT
from dockyard.builder.stages import split_stages
from dockyard.engine.inline_cache import asks_inline, with_inline_cache
from dockyard.errors import BuildFailure, DockyardError, InvalidArgument, NotSupported
from dockyard.frontend.parser import parse_dockerfile
from dockyard.image.reference import parse_reference
from dockyard.session import buildinputs, filesync, methods, sshforward
from dockyard.session.contexts import DEFAULT_CAP, ContextStore
from dockyard.session.filesync import SyncResult
from dockyard.session.manager import Session, SessionManager
from dockyard.session.progress import Trace
from dockyard.session.stepprogress import BuildKitProgress, StagePlan, buildkit_message
from dockyard.session.wholeseconds import ClientTimes

if TYPE_CHECKING:
    from dockyard.engine.engine import Engine

_log = logging.getLogger("dockyard.session")

UPLOAD_REMOTE = "upload-request"
# The instructions BuildKit's Dockerfile frontend turns into LLB operations (vertexes).
_VERTEX_KEYWORDS = frozenset({"run", "copy", "add", "workdir"})
UPLOAD_WAIT = 5.0  # moby waits 5 s for the upload request to arrive


def stage_plans(text: str, name: str) -> list[StagePlan]:
    try:
        df = parse_dockerfile(text, filename=name)
        plan = split_stages(list(df.instructions))
    except DockyardError:
        return []  # the builder reports it with its line
    multi = len(plan.stages) > 1
    out = []
    for st in plan.stages:
        label = (st.name or f"stage-{st.index}") if multi else ""
        base = st.from_ins.args[0] if st.from_ins.args else ""
        shown = base
        names = {s.name for s in plan.stages[: st.index] if s.name}
        if base and "$" not in base and base.lower() not in names and base != "scratch":
            with contextlib.suppress(DockyardError):
                shown = str(parse_reference(base))
        out.append(
            StagePlan(
                label,
                st.from_ins.original,
                shown,
                tuple(c.original for c in st.commands),
                tuple(c.keyword in _VERTEX_KEYWORDS for c in st.commands),
            )
        )
    return out


# `# syntax=` naming Docker's own Dockerfile frontend, any tag (labs too), with or without
# the registry and a digest; we build those with our built-in frontend.
_OUR_SYNTAX = re.compile(
    r"^(docker\.io/)?docker/dockerfile(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[0-9a-f]{64})?$"
)


def check_syntax(text: str, name: str) -> None:
    try:
        directives = parse_dockerfile(text, filename=name).directives
    except DockyardError:
        return  # the builder reports it with its line
    syntax = directives.get("syntax", "").strip()
    if syntax and not _OUR_SYNTAX.match(syntax):
        raise NotSupported(
            f"{name}:1: syntax image {syntax} is not supported: dockyard builds with its "
            "built-in Dockerfile frontend (docker/dockerfile) and does not run frontend images"
        )


@dataclasses.dataclass
class LegacyInputs:
    """A legacy build's context and mounts, from the client's session."""

    context: BuildContext
    secrets: dict[str, bytes]
    ssh: dict[str, str]
    synced: SyncResult


@dataclasses.dataclass
class _Upload:
    ready: asyncio.Future[Path]
    claimed: asyncio.Event
    consumed: asyncio.Event


class SessionBuilds:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sessions = SessionManager()
        cap = engine.context_cache_cap
        self.contexts = ContextStore(
            engine.root / "contexts",
            DEFAULT_CAP if cap is None else cap,
            engine.contexts_trash,
        )
        self.contexts.clean_staging()
        self._uploads: dict[str, _Upload] = {}
        # running session builds by build id, for POST /build/cancel
        self.running: dict[str, asyncio.Future[str]] = {}
        self._upload_changed = asyncio.Condition()

    def held_in_memory(self) -> str | None:
        """A session, an uploaded context or a build that only this process knows."""
        if len(self.sessions):
            return f"{len(self.sessions)} BuildKit session(s)"
        if self._uploads or self.running:
            return "a session build or an uploaded context"
        return None

    # the tar of `docker build - < ctx.tar` ------------------------------------------------
    async def upload(self, build_id: str, body: BinaryIO) -> None:
        """Hold an uploaded context until the build that names it has used it."""
        if build_id in self._uploads:
            raise InvalidArgument(f"build {build_id}: context already uploaded")
        up = _Upload(asyncio.get_running_loop().create_future(), asyncio.Event(), asyncio.Event())
        self._uploads[build_id] = up
        async with self._upload_changed:
            self._upload_changed.notify_all()
        ctx_dir = Path(tempfile.mkdtemp(prefix="ctx-", dir=self.engine.tmp_dir))
        try:
            await asyncio.to_thread(extract_context, body, ctx_dir)
            up.ready.set_result(ctx_dir)
            # the build claims it within UPLOAD_WAIT, and releases it when done
            try:
                async with asyncio.timeout(UPLOAD_WAIT):
                    await up.claimed.wait()
            except TimeoutError:
                raise BuildFailure(
                    f"build {build_id}: no build used the uploaded context"
                ) from None
            await up.consumed.wait()
        except BaseException as exc:
            if not up.ready.done():
                up.ready.set_exception(
                    exc if isinstance(exc, DockyardError) else BuildFailure(str(exc))
                )
            raise
        finally:
            if self._uploads.get(build_id) is up:
                del self._uploads[build_id]
            up.consumed.set()
            await asyncio.to_thread(shutil.rmtree, ctx_dir, True)

    @contextlib.asynccontextmanager
    async def _claim_upload(self, build_id: str) -> AsyncIterator[Path]:
        try:
            async with asyncio.timeout(UPLOAD_WAIT):
                async with self._upload_changed:
                    await self._upload_changed.wait_for(lambda: build_id in self._uploads)
        except TimeoutError:
            raise BuildFailure(
                f"build {build_id}: the context upload did not arrive: context deadline exceeded"
            ) from None
        up = self._uploads.pop(build_id)
        up.claimed.set()
        try:
            yield await up.ready
        finally:
            up.consumed.set()

    # the legacy endpoint on a session (`remote=client-session`) --------------------------
    @contextlib.asynccontextmanager
    async def legacy_inputs(self, session_id: str, dockerfile: str) -> AsyncIterator[LegacyInputs]:
        """The context of a legacy `/build?remote=client-session&session=…` (moby's legacy
        builder had this remote for the same purpose): synced from the client's session
        into the kept copy of its directory, so only what changed travels. The client has
        applied .dockerignore, as it would to its tar; the legacy builder's rules then
        apply to the synced tree as to an extracted one. Secrets and ssh agents come
        through the session too. Held until the build ends."""
        async with contextlib.AsyncExitStack() as stack:
            session = await stack.enter_async_context(self.sessions.use(session_id))
            kept = await stack.enter_async_context(
                self.contexts.checkout(session.shared_key, buildinputs.CONTEXT)
            )
            # whole-second mtimes as the legacy COPY gives them: the layer can share the files
            times = ClientTimes(kept.client_times)  # read when first needed
            synced = await filesync.receive(
                session,
                buildinputs.CONTEXT,
                kept.tree,
                kept.staging,
                times=times,
                memo=kept.listing,
            )
            _log.info(
                "build context of session %s: %d entries, %d files (%d bytes) sent",
                session_id,
                synced.entries,
                synced.requested,
                synced.bytes,
            )
            digests = buildinputs.kept_digests(self.contexts, kept, synced)
            ctx = BuildContext.open(
                kept.tree, dockerfile, digests=digests, second_mtimes=True, shares_files=True
            )
            text = ctx.read_dockerfile(dockerfile)
            secrets, ssh = await self._mounts(session, text, dockerfile, stack)
            yield LegacyInputs(ctx, secrets, ssh, synced)

    @contextlib.asynccontextmanager
    async def legacy_mounts(
        self, session_id: str, ctx: BuildContext, dockerfile: str
    ) -> AsyncIterator[tuple[dict[str, bytes], dict[str, str]]]:
        """Secrets and agents from the client's session for a legacy build whose context
        came as a tar (`dockyard build - < ctx.tar --secret …`)."""
        async with contextlib.AsyncExitStack() as stack:
            session = await stack.enter_async_context(self.sessions.use(session_id))
            text = ctx.read_dockerfile(dockerfile)
            yield await self._mounts(session, text, dockerfile, stack)

    async def _mounts(
        self, session: Session, text: str, dockerfile: str, stack: contextlib.AsyncExitStack
    ) -> tuple[dict[str, bytes], dict[str, str]]:
        """The secrets and agents the Dockerfile's RUN mounts name, from the session; the
        agents' sockets live as long as `stack`."""
        secret_ids, agent_ids = buildinputs.mount_ids(text, dockerfile)
        secrets: dict[str, bytes] = {}
        if secret_ids and session.supports(methods.SECRETS_GET):
            for ident in secret_ids:
                data = await buildinputs.fetch_secret(session, ident)
                if data is not None:
                    secrets[ident] = data
        ssh = await stack.enter_async_context(
            sshforward.agent_sockets(session, agent_ids, self.engine.tmp_dir)
        )
        return secrets, ssh

    # the build ----------------------------------------------------------------------------
    async def build(
        self,
        session_id: str,
        opts: BuildOptions,
        emit: Emit,
        *,
        remote: str = "",
        build_id: str = "",
    ) -> str:
        git = remote not in ("", "client-session", UPLOAD_REMOTE)
        if git and context_ref(remote) is None:
            raise InvalidArgument(f"build context {remote!r} is not supported")
        trace = Trace(emit, quiet=opts.quiet)
        try:
            if git:
                async with self.git_context(remote, opts, trace) as root:
                    image_id = await self._build(session_id, opts, trace, "", build_id, root)
            else:
                image_id = await self._build(session_id, opts, trace, remote, build_id)
            if asks_inline(opts.build_args):
                image_id = await asyncio.to_thread(with_inline_cache, self.engine, image_id)
                for tag in opts.tags:
                    self.engine.images.tag(image_id, tag)
            names = [f"naming to {parse_reference(t)}" for t in opts.tags]
            trace.quick(
                "exporting to image",
                ["exporting layers", f"writing image {image_id}", *names],
            )
        except BaseException:
            for msg in trace.held:  # a quiet build shows its progress only on failure
                emit(msg)
            raise
        emit({"id": "moby.image.id", "aux": {"ID": image_id}})
        if opts.quiet:
            emit({"stream": f"{image_id}\n"})
        return image_id

    @contextlib.asynccontextmanager
    async def git_context(self, url: str, opts: BuildOptions, trace: Trace) -> AsyncIterator[Path]:
        """A git repository as the build's context (`docker build URL.git#ref:dir` through
        BuildKit): checked out as BuildKit's git source does, its `.git` kept only with the
        build argument BUILDKIT_CONTEXT_KEEP_GIT_DIR (the dockerfile frontend's switch)."""
        keep = opts.build_args.get("BUILDKIT_CONTEXT_KEEP_GIT_DIR", "") not in ("", "0", "false")
        v = trace.start(f"[internal] load git source {redact(url)}")
        try:
            cm = self.engine.git_context(url, opts.dockerfile, legacy=False, keep_git_dir=keep)
            ctx = await cm.__aenter__()
        except DockyardError as exc:
            trace.complete(v, error=str(exc))
            raise
        trace.complete(v)
        try:
            yield ctx.root
        finally:
            await cm.__aexit__(None, None, None)

    async def _build(
        self,
        session_id: str,
        opts: BuildOptions,
        trace: Trace,
        remote: str,
        build_id: str,
        uploaded_dir: Path | None = None,
    ) -> str:
        async with contextlib.AsyncExitStack() as stack:
            session = await stack.enter_async_context(self.sessions.use(session_id))
            context_dir: Path | None = None
            text: str | None = None
            if remote == UPLOAD_REMOTE or uploaded_dir is not None:
                uploaded = uploaded_dir
                if uploaded is None:
                    uploaded = await stack.enter_async_context(self._claim_upload(build_id))
                text = BuildContext.open(uploaded, opts.dockerfile).read_dockerfile(opts.dockerfile)
                context_dir = uploaded
            inputs = await stack.enter_async_context(
                buildinputs.prepare(
                    session,
                    opts.dockerfile,
                    trace,
                    self.contexts,
                    self.engine.tmp_dir,
                    context_dir=context_dir,
                    dockerfile_text=text,
                )
            )
            check_syntax(inputs.dockerfile_text, inputs.dockerfile_name)
            run_opts = dataclasses.replace(
                opts,
                dockerfile=inputs.dockerfile_name,
                quiet=False,  # the step messages feed the trace; -q holds the trace back
                secrets={**opts.secrets, **inputs.secrets},
                ssh={**opts.ssh, **inputs.ssh},
                semantics=BUILDKIT,  # BuildKit's protocol gives BuildKit's image
                registry_auth=inputs.credentials,
            )
            if remote == UPLOAD_REMOTE or uploaded_dir is not None:
                ctx = BuildContext.open(inputs.context_dir, opts.dockerfile)
            else:
                ctx = BuildContext(
                    inputs.context_dir,
                    None,
                    dockerfile_text=inputs.dockerfile_text,
                    digests=inputs.digests,
                    shares_files=inputs.digests is not None,  # a kept context's tree
                )
            steps = BuildKitProgress(
                trace, stage_plans(inputs.dockerfile_text, inputs.dockerfile_name)
            )
            # Under the engine's lease, as every layer writer (metadata/leases.py); the task
            # created here inherits it.
            stack.enter_context(self.engine.lease())
            building = asyncio.ensure_future(
                self.engine.builder.build(ctx, run_opts, progress=steps)
            )
            closed = asyncio.ensure_future(session.closed.wait())
            try:
                await asyncio.wait([building, closed], return_when=asyncio.FIRST_COMPLETED)
                if not building.done():
                    building.cancel()
                    with contextlib.suppress(BaseException):
                        await building
                    raise BuildFailure("build cancelled: the client's session closed")
                image_id = building.result()
            except DockyardError as exc:
                message = buildkit_message(str(exc))
                steps.fail_open(message)
                if message == str(exc):
                    raise
                raise BuildFailure(message) from None
            finally:
                closed.cancel()
                if not building.done():
                    building.cancel()
                    with contextlib.suppress(BaseException):
                        await building
            return image_id
        raise AssertionError("unreachable")

    async def solve(
        self, session_id: str, opts: BuildOptions, trace: Trace, context_dir: Path | None = None
    ) -> str:
        """The Dockerfile build of a `/grpc` Solve (engine/grpc_build.py): the session's
        inputs (or `context_dir`, a context that came as a tar), the one builder, BuildKit's
        semantics and trace; its caller exports."""
        return await self._build(session_id, opts, trace, "", "", context_dir)
