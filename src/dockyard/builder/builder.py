"""The builder: walks a parsed Dockerfile's stages, one image per step, as Docker's legacy builder.

Stages: only the stages the target needs are built (BuildKit's rule); stages that do not
depend on each other run concurrently, their output kept in Dockerfile order by the progress.
FROM starts a stage (a stage before it, `scratch`, or an image, pulled when missing) and runs
the base's ONBUILD triggers; every other instruction goes to its handler (dispatchers.py),
which prepares a step for the one step executor (executor.py): cache probe, mount, work,
commit. Progress leaves only through a `Progress` (progress.py); nothing prints.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import posixpath
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from dockyard.builder.args import BuildArgs
from dockyard.builder.cachelog import BuildCache, StepLog
from dockyard.builder.context import BuildContext
from dockyard.builder.dispatchers import dispatch
from dockyard.builder.executor import CachePolicy, Step, StepExecutor, StepImages
from dockyard.builder.kept import KeepPolicy, StepContainers
from dockyard.builder.mounts import CacheMounts
from dockyard.builder.progress import META_STAGE, LegacyProgress, Progress, StepInfo
from dockyard.builder.rootfs import Rootfs
from dockyard.builder.stages import (
    Plan,
    Stage,
    StageError,
    needed_stages,
    split_stages,
    stage_by_ref,
)
from dockyard.builder.state import BuildOptions, StageState
from dockyard.builder.stepcontext import Dispatch, Runner
from dockyard.builder.steplocks import StepLocks
from dockyard.errors import BuildFailure, DockyardError, InvalidArgument, NotFound, NotSupported
from dockyard.frontend.commands import FromInstruction, Instruction, LabelInstruction
from dockyard.frontend.expand import expand_word, parse_arg_values
from dockyard.frontend.parser import parse_dockerfile
from dockyard.image.config import go_arch

__all__ = ["BuildOptions", "Builder", "Emit", "StepError"]

Emit = Callable[[dict[str, Any]], None]
_log = logging.getLogger("dockyard.builder")


class BuildImages(StepImages, Protocol):
    """The image store as the builder uses it."""

    def try_resolve(self, name: str) -> str | None: ...

    def tag(self, source: str, target: str) -> None: ...


class StepError(BuildFailure):
    """A failed step; carries the Dockerfile line for the message."""


@dataclass
class _Build:
    """One build's walk: its plan, its executor and the stages' tasks."""

    ctx: BuildContext
    opts: BuildOptions
    plan: Plan
    escape: str
    args: BuildArgs
    numbers: dict[int, int]  # id(instruction) -> its `Step N`
    total: int
    executor: StepExecutor
    tasks: dict[int, asyncio.Task[StageState]] = field(default_factory=dict)

    @property
    def progress(self) -> Progress:
        return self.executor.progress

    def info(self, ins: Instruction, stage: Stage | None, key: str = "") -> StepInfo:
        return StepInfo(
            number=self.numbers.get(id(ins), 0),
            total=self.total,
            text=ins.original,
            line=ins.line,
            stage=stage.index if stage else META_STAGE,
            stage_name=stage.name if stage else "",
            key=key or (f"{stage.index}:{ins.line}" if stage else f"meta:{ins.line}"),
        )


def _platform_args() -> dict[str, str]:
    arch = go_arch()
    plat = f"linux/{arch}"
    return {
        "TARGETPLATFORM": plat,
        "TARGETOS": "linux",
        "TARGETARCH": arch,
        "TARGETVARIANT": "",
        "BUILDPLATFORM": plat,
        "BUILDOS": "linux",
        "BUILDARCH": arch,
        "BUILDVARIANT": "",
    }


class Builder:
    def __init__(
        self,
        images: BuildImages,
        rootfs: Rootfs,
        runner: Runner,
        scratch_dir: Path,
        *,
        cache: BuildCache,
        log: StepLog,
        caches: CacheMounts,
        pull: Callable[..., Awaitable[str]] | None = None,
        containers: StepContainers | None = None,
    ) -> None:
        # `pull(name, emit, always=, auth=)` → image ID: the engine's registry pull of a
        # missing FROM (Distribution.ensure_image); None builds from local images only.
        self.pull_missing = pull
        self.images = images
        self.rootfs = rootfs
        self.runner = runner
        self.scratch_dir = scratch_dir
        self.cache = cache
        self.log = log
        self.caches = caches
        self.steps = StepLocks()  # shared by every build of this builder
        # the engine's containers, for the steps' containers a build leaves (kept.py)
        self.containers = containers

    # the whole build -----------------------------------------------------------------------
    async def build(
        self,
        ctx: BuildContext,
        opts: BuildOptions,
        emit: Emit | None = None,
        *,
        progress: Progress | None = None,
    ) -> str:
        """Build `ctx` with `opts`; progress goes to `progress`, or as the legacy /build
        stream to `emit`. Returns the image ID."""
        if progress is None:
            progress = LegacyProgress(emit or (lambda _m: None), quiet=opts.quiet)
        text = ctx.read_dockerfile(opts.dockerfile)
        dockerfile = parse_dockerfile(text, filename=posixpath.basename(opts.dockerfile))
        for w in dockerfile.warnings:
            progress.warning(w)
        try:
            plan = split_stages(list(dockerfile.instructions))
        except StageError as exc:
            raise BuildFailure(f"{opts.dockerfile}:{exc.line}: {exc}") from None
        args = BuildArgs(dict(opts.build_args))
        for k, v in _platform_args().items():
            args.add_meta(k, v)
        target = self._target_index(plan, opts)
        if opts.semantics.labels_as_steps:
            plan = _with_label_steps(plan, target, opts.labels, len(text.splitlines()) or 1)
        meta_env = self._meta_env(plan, args, dockerfile.escape)
        needed = needed_stages(plan, target, meta_env, dockerfile.escape, opts.build_args)
        # Meta args are evaluated first; their Step lines come before any stage's.
        order = [*plan.meta_args, *(i for n in needed for i in _stage_instructions(plan, n))]
        numbers = {id(ins): n for n, ins in enumerate(order, start=1)}
        executor = StepExecutor(
            self.images,
            self.cache,
            self.log,
            self.rootfs,
            progress,
            opts.semantics,
            CachePolicy(opts.no_cache, tuple(opts.cache_from), opts.explain_cache),
            build_id=hashlib.sha256(
                json.dumps([opts.dockerfile, sorted(opts.tags)]).encode()
            ).hexdigest(),
            steps=self.steps,
            containers=self.containers,
            keep=KeepPolicy.of(opts.semantics.step_containers, opts.rm, opts.force_rm),
            network_mode=opts.network,
        )
        b = _Build(ctx, opts, plan, dockerfile.escape, args, numbers, len(order), executor)
        progress.planned(needed, b.total)
        for ins in plan.meta_args:
            progress.step_started(b.info(ins, None))
        self._apply_meta_args(plan, args, dockerfile.escape, opts)
        state = await self._run_stages(b, needed, target)
        if opts.labels and not opts.semantics.labels_as_steps and state.image_id is not None:
            # BuildKit sets --label on the exported image's config, with no history entry
            labels = {**(state.config.get("Labels") or {}), **opts.labels}
            info = replace(b.info(plan.stages[target].from_ins, plan.stages[target]), key="labels")
            step = Step(info, f"labels {sorted(opts.labels.items())}", None)
            state = await executor.execute_quietly(
                state, replace(step, config=state.with_config(Labels=labels))
            )
        if state.image_id is None:
            line = plan.stages[target].from_ins.line
            raise BuildFailure(
                f"{opts.dockerfile}:{line}: No image was generated. Is your Dockerfile empty?"
            )
        for tag in opts.tags:
            self.images.tag(state.image_id, tag)
        progress.finished(state.image_id, opts.tags, args.unused())
        return state.image_id

    async def _run_stages(self, b: _Build, needed: list[int], target: int) -> StageState:
        try:
            for i in needed:
                self._stage_task(b, i)
            return await b.tasks[target]
        finally:
            pending = [t for t in b.tasks.values() if not t.done()]
            for t in pending:
                # a task already being cancelled is in its clean-up (unmount, runc delete):
                # a second cancel would interrupt that
                if t.cancelling() == 0:
                    t.cancel()
            for t in pending:
                with contextlib.suppress(BaseException):
                    await t
            b.progress.stages_ended()

    @staticmethod
    def _target_index(plan: Plan, opts: BuildOptions) -> int:
        if not opts.target:
            return len(plan.stages) - 1
        low = opts.target.lower()
        for s in plan.stages:
            if s.name == low:
                return s.index
        line = plan.stages[-1].from_ins.line
        raise InvalidArgument(
            f"{opts.dockerfile}:{line}: failed to reach build target {opts.target} in Dockerfile"
        )

    @staticmethod
    def _meta_env(plan: Plan, args: BuildArgs, escape: str) -> dict[str, str]:
        probe = BuildArgs(dict(args.from_options), dict(args.allowed), dict(args.meta), set())
        for ins in plan.meta_args:
            if ins.keyword != "arg":
                continue
            with contextlib.suppress(DockyardError):
                for k, v in parse_arg_values(ins.rest, probe.all_meta(), escape):
                    probe.add_arg(k, v)
                    probe.add_meta(k, v)
        return probe.all_meta()

    @staticmethod
    def _apply_meta_args(plan: Plan, args: BuildArgs, escape: str, opts: BuildOptions) -> None:
        for ins in plan.meta_args:
            try:
                for k, v in parse_arg_values(ins.rest, args.all_meta(), escape):
                    args.add_arg(k, v)
                    args.add_meta(k, v)
            except DockyardError as exc:
                raise StepError(f"{opts.dockerfile}:{ins.line}: {exc}") from exc

    # stages ---------------------------------------------------------------------------------
    def _stage_task(self, b: _Build, index: int) -> asyncio.Task[StageState]:
        task = b.tasks.get(index)
        if task is None:
            task = asyncio.ensure_future(self._run_stage(b, b.plan.stages[index]))
            b.tasks[index] = task
        return task

    async def _run_stage(self, b: _Build, stage: Stage) -> StageState:
        d = Dispatch(
            b.opts,
            b.escape,
            b.ctx,
            b.executor,
            self.rootfs,
            self.runner,
            self.caches,
            self.scratch_dir,
            source_layers=lambda ref: self._source_image(b, stage, ref),
        )
        try:
            state = await self._from(b, d, stage)
            for ins in stage.commands:
                info = b.info(ins, stage)
                b.progress.step_started(info)
                state = await self._step(b, info, ins, dispatch(d, ins, state, info))
            return state
        finally:
            b.progress.stage_finished(stage.index)

    async def _step(
        self, b: _Build, info: StepInfo, ins: Instruction, work: Awaitable[StageState]
    ) -> StageState:
        """Run one step; its errors become `Dockerfile:LINE: …` (and a progress event)."""
        try:
            return await work
        except StepError as exc:
            b.progress.step_error(info, str(exc))
            raise
        except DockyardError as exc:
            raise self._failed(b, info, f"{exc}") from exc
        except OSError as exc:
            # e.g. a COPY destination whose parent is a file: say so, on the step's line
            name = str(exc.filename or "")
            where = f": {name.split('/rootfs', 1)[1] or '/'}" if "/rootfs" in name else ""
            message = f"{ins.keyword.upper()} failed: {exc.strerror or exc}{where}"
            raise self._failed(b, info, message) from exc
        except (ValueError, KeyError, TypeError, RuntimeError) as exc:
            # a defect of ours: keep the daemon's log complete and the user's error one line
            _log.exception("build step failed unexpectedly")
            message = f"internal error in {ins.keyword.upper()}: {exc}"
            raise self._failed(b, info, message) from exc

    @staticmethod
    def _failed(b: _Build, info: StepInfo, message: str) -> StepError:
        err = StepError(f"{b.opts.dockerfile}:{info.line}: {message}")
        b.progress.step_error(info, str(err))
        return err

    async def _from(self, b: _Build, d: Dispatch, stage: Stage) -> StageState:
        ins = stage.from_ins
        info = b.info(ins, stage)
        b.progress.step_started(info)
        state = await self._step(b, info, ins, self._base(b, stage, info))
        default_path = b.opts.semantics.default_path
        if "PATH" not in state.env and default_path:
            # beginStage: the default PATH joins the config when the base has none
            env = [*(state.config.get("Env") or []), f"PATH={default_path}"]
            state = replace(state, config=state.with_config(Env=env))
        b.progress.step_done(info, state.image_id or "")
        triggers = list(state.config.get("OnBuild") or [])
        if not triggers:
            return state
        state = replace(state, config=state.with_config(OnBuild=None))
        b.progress.triggers(info, len(triggers))
        for n, trigger in enumerate(triggers):
            try:
                parsed = parse_dockerfile(f"FROM scratch\n{trigger}\n")
            except DockyardError as exc:
                raise self._failed(b, info, f"ONBUILD trigger: {exc}") from exc
            for t in parsed.instructions[1:]:
                t = replace(t, line=ins.line, end_line=ins.line)
                tinfo = replace(info, key=f"{stage.index}:onbuild:{n}")
                state = await self._step(b, tinfo, t, dispatch(d, t, state, tinfo))
        return state

    async def _base(self, b: _Build, stage: Stage, info: StepInfo) -> StageState:
        """The state a stage starts from: an earlier stage's, scratch, or an image's."""
        args = b.args.for_stage()
        name = expand_word(stage.base, args.all_meta(), b.escape)
        from_ins = stage.from_ins
        platform = from_ins.platform if isinstance(from_ins, FromInstruction) else ""
        if platform:
            platform = expand_word(platform, args.all_meta(), b.escape)
            if platform not in (f"linux/{go_arch()}", "linux", f"linux/{go_arch()}/"):
                raise NotSupported(
                    f"platform {platform} is not supported: dockyard builds for "
                    f"linux/{go_arch()} only"
                )
        if not name:
            raise InvalidArgument("base name (" + stage.base + ") should not be blank")
        parent = stage_by_ref(b.plan.stages, name, stage.index, allow_index=False)
        if parent is not None:
            done = await self._stage_task(b, parent.index)
            if done.image_id is None:
                return replace(StageState.scratch(args), config=dict(done.config))
            return StageState.of_image(done.image_id, self.images.config(done.image_id), args)
        if name == "scratch":
            state = StageState.scratch(args)
            if b.opts.semantics.scratch_workdir:
                state = replace(
                    state, config=state.with_config(WorkingDir=b.opts.semantics.scratch_workdir)
                )
            return state
        # Registry hook (engine/distribution.py, set by the Engine): pull a missing base.
        if self.pull_missing is not None and (b.opts.pull or self.images.try_resolve(name) is None):
            try:
                await self.pull_missing(
                    name,
                    lambda m: b.progress.pull_status(info, m),
                    always=b.opts.pull,
                    auth=b.opts.registry_auth,
                )
            except DockyardError as exc:
                # name the image: the registry's own message may not
                raise type(exc)(f"failed to pull {name}: {exc}") from exc
        try:
            image = self.images.get(name)
        except NotFound:
            raise NotFound(f"No such image: {name} (and no registry to pull it from)") from None
        return StageState.of_image(image.id, image.config, args)

    async def _source_image(self, b: _Build, stage: Stage, ref: str) -> list[str]:
        """The layers of what `--from=ref` names: an earlier stage (by name or index) or an
        image in the store."""
        found = stage_by_ref(b.plan.stages, ref, stage.index)
        if found is not None:
            done = await self._stage_task(b, found.index)
            return list(done.diff_ids)
        if ref.lower() in {s.name for s in b.plan.stages if s.name}:
            raise InvalidArgument(f"stage {ref} is defined after its use in --from")
        try:
            image = self.images.get(ref)
        except NotFound:
            raise NotFound(
                f"invalid from flag value {ref}: no stage or image named {ref} "
                "(dockyard does not pull during builds)"
            ) from None
        return list(image.config.diff_ids)


def _stage_instructions(plan: Plan, index: int) -> tuple[Instruction, ...]:
    stage = plan.stages[index]
    return (stage.from_ins, *stage.commands)


def _with_label_steps(plan: Plan, target: int, labels: dict[str, str], line: int) -> Plan:
    """`--label k=v`: the legacy builder appends one LABEL step per label (sorted by key) to
    the target stage (buildLabelOptions), unexpanded."""
    if not labels:
        return plan
    extra = tuple(
        LabelInstruction(
            "label", (k, labels[k]), False, (), f"LABEL {k}={labels[k]}", line, line, literal=True
        )
        for k in sorted(labels)
    )
    stage = plan.stages[target]
    stages = list(plan.stages)
    stages[target] = replace(stage, commands=(*stage.commands, *extra))
    return replace(plan, stages=tuple(stages))
