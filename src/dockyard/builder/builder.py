"""The builder: walks a parsed Dockerfile, one image per step, as Docker's legacy builder.

Per step: compute the cache key (parent image ID + the instruction as expanded + for COPY/ADD
a digest of the source files); a hit reuses the cached image and starts or mounts nothing. A
miss runs the step: RUN in a temporary container (StepRunner), COPY/ADD and WORKDIR on a
mounted overlay, metadata instructions as config-only images (`empty_layer` history entries).
A step whose layer turns out empty is recorded as an `empty_layer` history entry without a
diff ID, as Docker 20.10 does (`RUN true`, `WORKDIR /tmp`). Every step's image is recorded
with its parent, so the cache and `rmi`'s parent pruning work as in Docker.

Stages: only the stages the target needs are built (BuildKit's rule); stages that do not
depend on each other run concurrently, their output kept in Dockerfile order. Progress leaves
only through `emit` (Docker's JSON message shapes); nothing prints.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import posixpath
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockyard.builder.args import BuildArgs
from dockyard.builder.cachelog import CacheLog, StepInputs, changed_files, explain_miss
from dockyard.builder.context import BuildContext
from dockyard.builder.copy import (
    CopyOptions,
    CopySource,
    combined_digest,
    copy_into,
    file_digests,
    parse_chmod,
    resolve_sources,
)
from dockyard.builder.metadata import apply_metadata
from dockyard.builder.mounts import (
    MountSpec,
    cache_dir,
    check_agent_socket,
    missing_mount_points,
    number_ssh_targets,
    parse_mount,
    remove_stubs,
)
from dockyard.builder.remote import extract_archive, fetch_url, is_archive, is_url
from dockyard.builder.runner import StepProcess, StepRunner
from dockyard.builder.stages import (
    OrderedOutput,
    Plan,
    Stage,
    StageError,
    needed_stages,
    split_stages,
    stage_by_ref,
)
from dockyard.diff.fsutil import mkdir_in_root
from dockyard.errors import (
    BuildFailure,
    DockyardError,
    InvalidArgument,
    NotFound,
    NotSupported,
)
from dockyard.frontend.dockerignore import IgnoreMatcher
from dockyard.frontend.expand import expand_word, parse_arg_values
from dockyard.frontend.parser import Instruction, parse_dockerfile
from dockyard.image.config import (
    EMPTY_LAYER_DIFF_ID,
    ImageConfig,
    build_image_config,
    go_arch,
    normalize_container_config,
    now_rfc3339,
)
from dockyard.runtime.spec import BindMount, TmpfsMount
from dockyard.snapshot.overlay import OverlaySnapshotter
from dockyard.store.images import ImageStore
from dockyard.store.layers import LayerStore

Emit = Callable[[dict[str, Any]], None]
_log = logging.getLogger("dockyard.builder")
DEFAULT_SHELL = ["/bin/sh", "-c"]
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_METADATA = {
    "env",
    "label",
    "maintainer",
    "expose",
    "cmd",
    "entrypoint",
    "user",
    "volume",
    "shell",
    "stopsignal",
    "healthcheck",
    "onbuild",
}


@dataclass
class BuildOptions:
    dockerfile: str = "Dockerfile"
    tags: list[str] = field(default_factory=list)
    no_cache: bool = False
    quiet: bool = False
    build_args: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    target: str = ""
    cache_from: list[str] = field(default_factory=list)
    explain_cache: bool = False
    allow_insecure: bool = False
    pull: bool = False
    network: str = "default"  # --network of `docker build`: RUN's default network
    # `dockyard build --secret` / `--ssh`: secret contents by id, and agent sockets on this
    # host by id. Never logged, never part of a cache key (BuildKit keys on the id only).
    secrets: dict[str, bytes] = field(default_factory=dict, repr=False)
    ssh: dict[str, str] = field(default_factory=dict)


@dataclass
class StageState:
    """The image a stage has reached: its ID, config and layers."""

    image_id: str | None
    parent_cfg: ImageConfig | None
    config: dict[str, Any]
    diff_ids: list[str]
    history: list[dict[str, Any]]
    cmd_set: bool = False
    author: str = ""
    args: BuildArgs = field(default_factory=lambda: BuildArgs({}))

    @property
    def env(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for item in self.config.get("Env") or []:
            k, _, v = item.partition("=")
            out[k] = v
        return out

    def expand_env(self) -> dict[str, str]:
        """What `$VAR` sees in an instruction: ENV first, then declared build args."""
        env = self.env
        return {**self.args.filter_allowed(env), **env}


class StepError(BuildFailure):
    """A failed step; carries the Dockerfile line for the message."""


@dataclass
class _Build:
    ctx: BuildContext
    opts: BuildOptions
    plan: Plan
    escape: str
    out: OrderedOutput
    args: BuildArgs
    numbers: dict[int, int]
    total: int
    tasks: dict[int, asyncio.Task[StageState]] = field(default_factory=dict)
    build_id: str = ""


def _platform_args() -> dict[str, str]:
    arch = go_arch()
    plat = f"linux/{arch}"
    out = {
        "TARGETPLATFORM": plat,
        "TARGETOS": "linux",
        "TARGETARCH": arch,
        "TARGETVARIANT": "",
        "BUILDPLATFORM": plat,
        "BUILDOS": "linux",
        "BUILDARCH": arch,
        "BUILDVARIANT": "",
    }
    return out


class Builder:
    # Set by the Engine to Distribution.ensure_image: pulls `name` when it is not stored.
    pull_missing: Callable[..., Awaitable[str]] | None = None

    def __init__(
        self,
        images: ImageStore,
        layers: LayerStore,
        snapshots: OverlaySnapshotter,
        runner: StepRunner,
        scratch_dir: Path,
    ) -> None:
        self.images = images
        self.layers = layers
        self.snapshots = snapshots
        self.runner = runner
        self.scratch_dir = scratch_dir
        # Outside scratch_dir, which the engine empties at start-up: cache mounts persist.
        self.cache_mounts = scratch_dir.parent / "buildcache"
        self.cachelog = CacheLog(images.meta)
        self._cache_locks: dict[str, asyncio.Lock] = {}
        self._cache_users: dict[str, int] = {}

    # the whole build -----------------------------------------------------------------------
    async def build(self, ctx: BuildContext, opts: BuildOptions, emit: Emit) -> str:
        text = ctx.read_dockerfile(opts.dockerfile)
        name = posixpath.basename(opts.dockerfile)
        dockerfile = parse_dockerfile(text, filename=name)
        instructions = list(dockerfile.instructions)
        for w in dockerfile.warnings:
            emit({"stream": w + "\n"})
        try:
            plan = split_stages(instructions)
        except StageError as exc:
            raise BuildFailure(f"{opts.dockerfile}:{exc.line}: {exc}") from None
        args = BuildArgs(dict(opts.build_args))
        for k, v in _platform_args().items():
            args.add_meta(k, v)
        say: Emit = (lambda _m: None) if opts.quiet else emit
        # Meta args are evaluated first; their Step lines come before any stage's.
        counter = 1
        numbers: dict[int, int] = {}
        for ins in plan.meta_args:
            numbers[id(ins)] = counter
            counter += 1
        target = self._target_index(plan, opts)
        plan = _with_label_steps(plan, target, opts.labels, len(text.splitlines()) or 1)
        meta_env = self._meta_env(plan, args, dockerfile.escape, opts)
        needed = needed_stages(plan, target, meta_env, dockerfile.escape, opts.build_args)
        for i in needed:
            for ins in (plan.stages[i].from_ins, *plan.stages[i].commands):
                numbers[id(ins)] = counter
                counter += 1
        total = counter - 1
        for ins in plan.meta_args:
            say({"stream": f"Step {numbers[id(ins)]}/{total} : {ins.original}\n"})
        self._apply_meta_args(plan, args, dockerfile.escape, opts)
        out = OrderedOutput(say, needed)
        b = _Build(ctx, opts, plan, dockerfile.escape, out, args, numbers, total)
        b.build_id = hashlib.sha256(
            json.dumps([opts.dockerfile, sorted(opts.tags)]).encode()
        ).hexdigest()
        try:
            for i in needed:
                self._stage_task(b, i)
            state = await b.tasks[target]
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
            out.flush()
        if state.image_id is None:
            line = plan.stages[target].from_ins.line
            raise BuildFailure(
                f"{opts.dockerfile}:{line}: No image was generated. Is your Dockerfile empty?"
            )
        image_id = state.image_id
        unused = args.unused()
        if unused:
            say(
                {
                    "stream": f"[Warning] One or more build-args [{' '.join(unused)}] were not "
                    "consumed\n"
                }
            )
        emit({"aux": {"ID": image_id}})
        if opts.quiet:
            emit({"stream": f"{image_id}\n"})
        else:
            emit({"stream": f"Successfully built {image_id.removeprefix('sha256:')[:12]}\n"})
        for tag in opts.tags:
            self.images.tag(image_id, tag)
            if not opts.quiet:
                from dockyard.store.images import familiar

                emit({"stream": f"Successfully tagged {familiar(ImageStore.normalize_tag(tag))}\n"})
        return image_id

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
    def _meta_env(plan: Plan, args: BuildArgs, escape: str, opts: BuildOptions) -> dict[str, str]:
        probe = BuildArgs(dict(args.from_options), dict(args.allowed), dict(args.meta), set())
        for ins in plan.meta_args:
            if ins.keyword != "arg":
                continue
            with contextlib.suppress(DockyardError):
                for k, v in parse_arg_values(ins.rest, probe.all_meta(), escape):
                    probe.add_arg(k, v)
                    probe.add_meta(k, v)
        del opts
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

    def _stage_task(self, b: _Build, index: int) -> asyncio.Task[StageState]:
        task = b.tasks.get(index)
        if task is None:
            task = asyncio.ensure_future(self._run_stage(b, b.plan.stages[index]))
            b.tasks[index] = task
        return task

    async def _run_stage(self, b: _Build, stage: Stage) -> StageState:
        say = b.out.for_stage(stage.index)
        try:
            state = await self._from(b, stage, say)
            for ins in stage.commands:
                say({"stream": f"Step {b.numbers.get(id(ins), 0)}/{b.total} : {ins.original}\n"})
                await self._dispatch(b, stage, ins, state, say)
            return state
        finally:
            b.out.finished(stage.index)

    async def _dispatch(
        self,
        b: _Build,
        stage: Stage,
        ins: Instruction,
        state: StageState,
        say: Emit,
        step_key: str = "",
    ) -> None:
        try:
            await self._step(b, stage, ins, state, say, step_key or f"{stage.index}:{ins.line}")
        except StepError:
            raise
        except DockyardError as exc:
            raise StepError(f"{b.opts.dockerfile}:{ins.line}: {exc}") from exc
        except OSError as exc:
            # e.g. a COPY destination whose parent is a file: say so, on the step's line
            name = str(exc.filename or "")
            where = f": {name.split('/rootfs', 1)[1] or '/'}" if "/rootfs" in name else ""
            raise StepError(
                f"{b.opts.dockerfile}:{ins.line}: {ins.keyword.upper()} failed: "
                f"{exc.strerror or exc}{where}"
            ) from exc
        except (ValueError, KeyError, TypeError, RuntimeError) as exc:
            # a defect of ours: keep the daemon's log complete and the user's error one line
            _log.exception("build step failed unexpectedly")
            raise StepError(
                f"{b.opts.dockerfile}:{ins.line}: internal error in {ins.keyword.upper()}: {exc}"
            ) from exc

    async def _from(self, b: _Build, stage: Stage, say: Emit) -> StageState:
        ins = stage.from_ins
        say({"stream": f"Step {b.numbers.get(id(ins), 0)}/{b.total} : {ins.original}\n"})
        args = b.args.for_stage()
        try:
            name = expand_word(stage.base, args.all_meta(), b.escape)
            platform = ins.flag("platform")
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
                state = (
                    self._state_of_image(done.image_id)
                    if done.image_id
                    else StageState(None, None, normalize_container_config({}), [], [])
                )
                if done.image_id is None:
                    state.config = dict(done.config)
            elif name == "scratch":
                state = StageState(None, None, normalize_container_config({}), [], [])
            else:
                # Registry hook (engine/distribution.py, set by the Engine): pull a missing base.
                if self.pull_missing is not None and (
                    b.opts.pull or self.images.try_resolve(name) is None
                ):
                    try:
                        await self.pull_missing(name, say, always=b.opts.pull)
                    except DockyardError as exc:
                        # name the image: the registry's own message may not
                        raise type(exc)(f"failed to pull {name}: {exc}") from exc
                try:
                    image = self.images.get(name)
                except NotFound:
                    raise NotFound(
                        f"No such image: {name} (and no registry to pull it from)"
                    ) from None
                state = self._state_of_image(image.id)
        except StepError:
            raise
        except DockyardError as exc:
            raise StepError(f"{b.opts.dockerfile}:{ins.line}: {exc}") from exc
        state.args = args
        if "PATH" not in state.env:
            # beginStage: the default PATH joins the config when the base has none
            state.config["Env"] = [*(state.config.get("Env") or []), f"PATH={DEFAULT_PATH}"]
        say({"stream": f" ---> {_short(state.image_id or '')}\n"})
        triggers = list(state.config.get("OnBuild") or [])
        if triggers:
            state.config["OnBuild"] = None
            word = "trigger" if len(triggers) == 1 else "triggers"
            say({"stream": f"# Executing {len(triggers)} build {word}\n"})
            for n, trigger in enumerate(triggers):
                try:
                    parsed = parse_dockerfile(f"FROM scratch\n{trigger}\n")
                except DockyardError as exc:
                    raise StepError(
                        f"{b.opts.dockerfile}:{ins.line}: ONBUILD trigger: {exc}"
                    ) from exc
                for t in parsed.instructions[1:]:
                    t = _relined(t, ins.line)
                    await self._dispatch(b, stage, t, state, say, f"{stage.index}:onbuild:{n}")
        return state

    def _state_of_image(self, image_id: str) -> StageState:
        cfg = self.images.config(image_id)
        return StageState(
            image_id,
            cfg,
            dict(cfg.container_config),
            list(cfg.diff_ids),
            cfg.history,
            cmd_set=False,
            author=str(cfg.doc.get("author", "")),
        )

    # steps -------------------------------------------------------------------------------
    async def _step(
        self,
        b: _Build,
        stage: Stage,
        ins: Instruction,
        state: StageState,
        say: Emit,
        step_key: str,
    ) -> None:
        kw = ins.keyword
        if kw == "run":
            await self._run(b, stage, ins, state, say, step_key)
        elif kw in ("copy", "add"):
            await self._copy(b, stage, ins, state, say, step_key)
        elif kw == "workdir":
            await self._workdir(b, ins, state, say, step_key)
        elif kw == "arg":
            self._arg(b, ins, state, say, step_key)
        elif kw in _METADATA:
            self._metadata(b, ins, state, say, step_key)
        elif kw == "from":  # pragma: no cover - split_stages consumes FROM
            raise InvalidArgument("unexpected FROM")
        else:
            raise NotSupported(f"{kw.upper()} is not supported by dockyard yet")

    def _inputs(
        self, state: StageState, instruction: str, files: dict[str, str] | None = None
    ) -> StepInputs:
        return StepInputs(
            state.image_id or "scratch",
            instruction,
            state.args.filter_allowed(state.env),
            dict(files or {}),
        )

    def _cache_key(self, state: StageState, description: str, extra: str = "") -> str:
        h = hashlib.sha256()
        h.update(
            json.dumps(
                [state.image_id or "scratch", description, extra, state.config, state.author]
            ).encode()
        )
        return "sha256:" + h.hexdigest()

    def _try_cache(
        self,
        b: _Build,
        key: str,
        state: StageState,
        say: Emit,
        step_key: str,
        inputs: StepInputs,
        created_by: str,
    ) -> bool:
        """Look the step up; report hit/miss (explain-cache) and record its inputs."""
        opts = b.opts
        cached: str | None = None
        if not opts.no_cache:
            cached = self.images.meta.cache_lookup(key)
            if cached is not None and not self.images.meta.has_image(cached):
                cached = None
            if cached is None and opts.cache_from:
                cached = self._from_cache_images(b, state, created_by, key)
        previous = self.cachelog.get(b.build_id, step_key)
        self.cachelog.put(b.build_id, step_key, inputs)
        if opts.explain_cache:
            reasons = [] if cached else explain_miss(previous, inputs, opts.no_cache)
            say(
                {
                    "aux": {
                        "cache": {
                            "step": inputs.instruction,
                            "hit": cached is not None,
                            "reasons": reasons,
                            "files": {} if cached else changed_files(previous, inputs),
                        }
                    }
                }
            )
            if cached is None:
                say({"stream": " ---> Cache miss: " + "; ".join(reasons) + "\n"})
        if cached is None:
            return False
        cfg = self.images.config(cached)
        state.image_id = cached
        state.parent_cfg = cfg
        state.config = dict(cfg.container_config)
        state.diff_ids = list(cfg.diff_ids)
        state.history = cfg.history
        state.author = str(cfg.doc.get("author", ""))
        say({"stream": " ---> Using cache\n"})
        say({"stream": f" ---> {_short(cached)}\n"})
        return True

    def _from_cache_images(
        self, b: _Build, state: StageState, created_by: str, key: str
    ) -> str | None:
        """--cache-from: a step hits when an image given has this stage's history (and
        layers) as a prefix and the next history entry is this step (image/cache/cache.go)."""
        n = len(state.history)
        for name in b.opts.cache_from:
            try:
                target = self.images.get(name).config
            except NotFound:
                continue
            th = target.history
            if len(th) <= n or th[:n] != state.history:
                continue
            if target.diff_ids[: len(state.diff_ids)] != state.diff_ids:
                continue
            entry = th[n]
            if entry.get("created_by", "") != created_by:
                continue
            diff_ids = list(state.diff_ids)
            if not entry.get("empty_layer"):
                layer_index = sum(1 for h in th[: n + 1] if not h.get("empty_layer")) - 1
                if layer_index >= len(target.diff_ids):
                    continue
                diff_ids.append(target.diff_ids[layer_index])
            container_config = dict(state.config)
            container_config["Image"] = state.image_id or ""
            raw = build_image_config(
                container_config=container_config,
                diff_ids=diff_ids,
                history=[*state.history, entry],
                created=str(entry.get("created", now_rfc3339())),
                parent=state.parent_cfg,
                author=str(target.doc.get("author", "")),
            )
            return self.images.put(raw, parent=state.image_id, cache_key=key)
        return None

    def _commit(
        self,
        state: StageState,
        created_by: str,
        *,
        empty_layer: bool,
        cache_key: str | None,
        new_diff_id: str | None = None,
    ) -> str:
        created = now_rfc3339()
        if new_diff_id is not None:
            if new_diff_id == EMPTY_LAYER_DIFF_ID:
                # Docker's NewChildImage: an empty diff is not a layer.
                empty_layer = True
            else:
                state.diff_ids = [*state.diff_ids, new_diff_id]
        history = list(state.history)
        if created_by:
            entry: dict[str, Any] = {"created": created}
            if state.author:
                entry["author"] = state.author
            entry["created_by"] = created_by
            if empty_layer:
                entry["empty_layer"] = True
            history.append(entry)
        container_config = dict(state.config)
        container_config["Image"] = state.image_id or ""
        raw = build_image_config(
            container_config=container_config,
            diff_ids=state.diff_ids,
            history=history,
            created=created,
            parent=state.parent_cfg,
            author=state.author,
        )
        image_id = self.images.put(raw, parent=state.image_id, cache_key=cache_key)
        state.image_id = image_id
        state.parent_cfg = ImageConfig.from_bytes(raw)
        state.history = history
        state.config = dict(state.parent_cfg.container_config)
        return image_id

    def _config_step(
        self, b: _Build, state: StageState, say: Emit, step_key: str, comment: str
    ) -> None:
        """Commit a config-only image, as the legacy builder's `commit` of a metadata step."""
        created_by = f"{' '.join(self._shell(state))} #(nop)  {comment}"
        key = self._cache_key(state, created_by)
        if self._try_cache(b, key, state, say, step_key, self._inputs(state, comment), created_by):
            return
        cid = secrets.token_hex(32)
        say({"stream": f" ---> Running in {_short(cid)}\n"})
        image_id = self._commit(state, created_by, empty_layer=True, cache_key=key)
        say({"stream": f"Removing intermediate container {_short(cid)}\n"})
        say({"stream": f" ---> {_short(image_id)}\n"})

    def _arg(self, b: _Build, ins: Instruction, state: StageState, say: Emit, key: str) -> None:
        parts = []
        for k, v in parse_arg_values(ins.rest, state.expand_env(), b.escape):
            state.args.add_arg(k, v)
            parts.append(k if v is None else f"{k}={v}")
        self._config_step(b, state, say, key, "ARG " + " ".join(parts))

    def _metadata(
        self, b: _Build, ins: Instruction, state: StageState, say: Emit, key: str
    ) -> None:
        saved = (dict(state.config), state.cmd_set, state.author)
        try:
            comment, state.cmd_set = apply_metadata(
                ins, state.config, state.expand_env(), b.escape, self._shell(state), state.cmd_set
            )
            if ins.keyword == "maintainer":
                state.author = ins.args[0]
        except BaseException:
            state.config, state.cmd_set, state.author = saved
            raise
        self._config_step(b, state, say, key, comment)

    @staticmethod
    def _shell(state: StageState) -> list[str]:
        return list(state.config.get("Shell") or DEFAULT_SHELL)

    # steps with a container -----------------------------------------------------------------
    async def _with_rootfs(
        self, state: StageState, cid: str, work: Callable[[Path], Any], *, init: bool = True
    ) -> str:
        """Mount the parent's layers under a new upper dir, run `work`, commit the layer."""
        chain = self.layers.chain_for(state.diff_ids)
        snapshot = self.layers.new_active()
        rootfs = self.scratch_dir / cid / "rootfs"
        mounted = False
        try:
            await asyncio.to_thread(
                self.snapshots.mount, rootfs, chain.lowers_top_first, snapshot, with_init=init
            )
            mounted = True
            result = work(rootfs)
            if asyncio.iscoroutine(result):
                await result
            await asyncio.to_thread(self.snapshots.unmount, rootfs)
            mounted = False
            with os.scandir(self.snapshots.fs(snapshot)) as entries:
                unchanged = next(entries, None) is None
            if unchanged:
                # Nothing changed: Docker records no layer for that (an empty_layer history
                # entry), so none is kept here either, not even an unreferenced one.
                self.layers.discard_active(snapshot)
                return EMPTY_LAYER_DIFF_ID
            layer = await asyncio.to_thread(
                self.layers.commit_active, snapshot, list(state.diff_ids)
            )
            return layer.diff_id
        except BaseException:
            if mounted:
                with contextlib.suppress(BaseException):
                    await asyncio.shield(asyncio.to_thread(self.snapshots.unmount, rootfs))
            self.layers.discard_active(snapshot)
            raise
        finally:
            with contextlib.suppress(OSError):
                rootfs.rmdir()
                rootfs.parent.rmdir()

    @contextlib.asynccontextmanager
    async def _image_tree(self, diff_ids: list[str]) -> AsyncIterator[Path]:
        """A read-only view of an image's root filesystem (COPY --from, RUN --mount from=)."""
        chain = self.layers.chain_for(diff_ids)
        view = self.scratch_dir / f"ro-{secrets.token_hex(8)}"
        await asyncio.to_thread(
            self.snapshots.mount, view, chain.lowers_top_first, None, with_init=False
        )
        try:
            yield view
        finally:
            with contextlib.suppress(BaseException):
                await asyncio.shield(asyncio.to_thread(self.snapshots.unmount, view))
            with contextlib.suppress(OSError):
                view.rmdir()

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

    def _release_cache(self, key: str) -> None:
        self._cache_users[key] -= 1
        if not self._cache_users[key]:
            del self._cache_users[key]

    # RUN ---------------------------------------------------------------------------------
    def _run_argv(self, ins: Instruction, state: StageState) -> list[str]:
        if ins.json_form:
            return list(ins.args)
        cmd = ins.args[0] if ins.args else ""
        if ins.heredocs:
            stripped = cmd.strip()
            first = ins.heredocs[0]
            if len(ins.heredocs) == 1 and stripped.startswith("<<") and " " not in stripped:
                # BuildKit: a RUN that is only a heredoc runs its body as the script.
                cmd = first.body
            else:
                for h in ins.heredocs:
                    cmd += "\n" + h.content + h.name
        return [*self._shell(state), cmd]

    async def _run(
        self,
        b: _Build,
        stage: Stage,
        ins: Instruction,
        state: StageState,
        say: Emit,
        step_key: str,
    ) -> None:
        argv = self._run_argv(ins, state)
        shebang_script: tuple[str, str] | None = None
        if (
            ins.heredocs
            and not ins.json_form
            and len(ins.heredocs) == 1
            and ins.heredocs[0].body.startswith("#!")
            and argv[-1] == ins.heredocs[0].body
        ):
            shebang_script = (ins.heredocs[0].name, ins.heredocs[0].body)
            argv = [f"/dev/pipes/{ins.heredocs[0].name}"]
        env = state.env
        used = state.args.filter_allowed(env)
        save_cmd = [*state.args.history_prefix(used), *argv] if used else argv
        created_by = " ".join(save_cmd)
        workdir = state.config.get("WorkingDir") or "/"
        mounts = number_ssh_targets(
            [
                parse_mount(expand_word(m, state.expand_env(), b.escape), workdir)
                for m in ins.flag_values("mount")
            ]
        )
        network = ins.flag("network") or b.opts.network
        if network not in ("default", "none", "host"):
            raise InvalidArgument(f"unsupported network mode {network!r} (default, none, host)")
        security = ins.flag("security") or "sandbox"
        if security not in ("sandbox", "insecure"):
            raise InvalidArgument(f"unsupported security mode {security!r}")
        if security == "insecure" and not b.opts.allow_insecure:
            raise BuildFailure(
                "RUN --security=insecure needs the security.insecure entitlement, which this "
                "build does not allow"
            )
        if ins.flag_values("device"):
            raise NotSupported("RUN --device is not supported by dockyard")
        # What bind mounts show the step is an input like COPY's sources (BuildKit keys on it).
        bound: dict[str, str] = {}
        for m in mounts:
            if m.type != "bind":
                continue
            if m.from_:
                ref = m.from_
                diff_ids = await self._source_image(b, stage, ref)
                bound[f"<from {ref}>"] = combined_digest(
                    {str(i): d for i, d in enumerate(diff_ids)}
                )
            else:
                srcs = await asyncio.to_thread(
                    resolve_sources, b.ctx, [m.source or "."], "RUN --mount"
                )
                bound.update(await asyncio.to_thread(file_digests, b.ctx, srcs))
        extra = json.dumps(
            [[m.describe() for m in mounts], network, security, shebang_script, bound],
            sort_keys=True,
        )
        key = self._cache_key(state, created_by, extra)
        if self._try_cache(
            b, key, state, say, step_key, self._inputs(state, created_by, bound), created_by
        ):
            return
        cid = secrets.token_hex(32)
        say({"stream": f" ---> Running in {_short(cid)}\n"})

        def on_output(data: bytes) -> None:
            say({"stream": data.decode(errors="replace")})

        async def work(rootfs: Path) -> None:
            async with contextlib.AsyncExitStack() as stack:
                binds, tmpfs, mount_env = await self._mounts(b, stage, stack, mounts)
                if "SSH_AUTH_SOCK" in env:
                    # BuildKit's ExecOp keeps an SSH_AUTH_SOCK the image already sets.
                    mount_env = [e for e in mount_env if not e.startswith("SSH_AUTH_SOCK=")]
                if shebang_script is not None:
                    pipes = Path(
                        stack.enter_context(tempfile.TemporaryDirectory(dir=self.scratch_dir))
                    )
                    script = pipes / shebang_script[0]
                    script.write_text(shebang_script[1])
                    os.chmod(script, 0o755)
                    binds.append(BindMount(pipes, "/dev/pipes", readonly=True))
                targets = [bm.destination for bm in binds] + [t.destination for t in tmpfs]
                stubs = missing_mount_points(rootfs, targets)
                # Legacy builder: a RUN after VOLUME gets an anonymous volume there (seeded
                # with the image's content), so what it writes inside is discarded while the
                # mount point itself stays in the layer (measured on 20.10).
                for volume in sorted(state.config.get("Volumes") or {}):
                    anon = Path(
                        stack.enter_context(tempfile.TemporaryDirectory(dir=self.scratch_dir))
                    )
                    await asyncio.to_thread(_seed_volume, rootfs, volume, anon / "v")
                    binds.append(BindMount(anon / "v", volume))
                proc = StepProcess(
                    argv=argv,
                    env=[
                        *(state.config.get("Env") or []),
                        *(f"{k}={v}" for k, v in used.items()),
                        *mount_env,
                    ],
                    workdir=workdir,
                    user=state.config.get("User") or "",
                    network="none" if network == "none" else "host",
                    binds=tuple(binds),
                    tmpfs=tuple(tmpfs),
                    privileged=security == "insecure",
                )
                code = await self.runner.run(cid, rootfs, proc, on_output)
                await asyncio.to_thread(remove_stubs, rootfs, stubs, targets)
                if code != 0:
                    raise BuildFailure(
                        f"The command '{' '.join(argv)}' returned a non-zero code: {code}"
                    )

        diff_id = await self._with_rootfs(state, cid, work)
        say({"stream": f"Removing intermediate container {_short(cid)}\n"})
        image_id = self._commit(
            state, created_by, empty_layer=False, cache_key=key, new_diff_id=diff_id
        )
        say({"stream": f" ---> {_short(image_id)}\n"})

    async def _mounts(
        self, b: _Build, stage: Stage, stack: contextlib.AsyncExitStack, specs: list[MountSpec]
    ) -> tuple[list[BindMount], list[TmpfsMount], list[str]]:
        binds: list[BindMount] = []
        tmpfs: list[TmpfsMount] = []
        env: list[str] = []
        for m in specs:
            if m.type == "cache":
                root = self.cache_mounts
                src_dir, created = await asyncio.to_thread(cache_dir, root, m)
                if created and m.from_:
                    # from=: the new cache starts as a copy of that stage's/image's path
                    diff_ids = await self._source_image(b, stage, m.from_)
                    async with self._image_tree(diff_ids) as seed_root:
                        from dockyard.diff.fsutil import resolve_in_root

                        seed = resolve_in_root(seed_root, m.source or "/")
                        if seed.is_dir():
                            await asyncio.to_thread(
                                shutil.copytree, seed, src_dir, symlinks=True, dirs_exist_ok=True
                            )
                if m.sharing == "locked":
                    # one writer at a time across concurrent steps and builds of this daemon
                    lock = self._cache_locks.setdefault(str(src_dir), asyncio.Lock())
                    await stack.enter_async_context(lock)
                elif m.sharing == "private" and self._cache_users.get(str(src_dir), 0):
                    # BuildKit: a private cache already in use gets a new, empty one
                    src_dir = Path(
                        stack.enter_context(tempfile.TemporaryDirectory(dir=self.scratch_dir))
                    )
                key = str(src_dir)
                self._cache_users[key] = self._cache_users.get(key, 0) + 1
                stack.callback(self._release_cache, key)
                binds.append(BindMount(src_dir, m.target, readonly=m.readonly))
            elif m.type == "tmpfs":
                opts = ("size=" + m.size,) if m.size else ()
                tmpfs.append(TmpfsMount(m.target, ("exec", *opts)))
            elif m.type == "bind":
                if m.from_:
                    ref = m.from_
                    diff_ids = await self._source_image(b, stage, ref)
                    tree = await stack.enter_async_context(self._image_tree(diff_ids))
                    root = tree
                else:
                    root = b.ctx.root
                from dockyard.diff.fsutil import resolve_in_root

                src = resolve_in_root(root, m.source or "/")
                if not src.exists():
                    raise BuildFailure(f"failed to compute cache key: {m.source or '/'} not found")
                if not m.readonly:
                    # rw bind mounts get a scratch copy: writes never reach the source.
                    scratch = Path(
                        stack.enter_context(tempfile.TemporaryDirectory(dir=self.scratch_dir))
                    )
                    copy = scratch / "src"
                    if src.is_dir():
                        await asyncio.to_thread(shutil.copytree, src, copy, symlinks=True)
                    else:
                        await asyncio.to_thread(shutil.copy2, src, copy)
                    src = copy
                binds.append(BindMount(src, m.target, readonly=m.readonly))
            elif m.type == "secret":
                data = b.opts.secrets.get(m.id)
                if data is None:
                    if m.required:
                        raise BuildFailure(
                            f"secret {m.id} is required but was not given: pass "
                            f"`dockyard build --secret id={m.id},src=PATH` (the docker CLI's "
                            "legacy builder cannot send secrets)"
                        )
                    continue
                if m.env:
                    env.append(f"{m.env}={data.decode(errors='surrogateescape')}")
                if m.target:
                    # A private directory per step, removed by the exit stack (also on failure).
                    tmp = Path(
                        stack.enter_context(tempfile.TemporaryDirectory(dir=self.scratch_dir))
                    )
                    src = tmp / "secret"
                    await asyncio.to_thread(_write_secret, src, data, m)
                    binds.append(BindMount(src, m.target, readonly=True))
            elif m.type == "ssh":
                sock = b.opts.ssh.get(m.id)
                if sock is None:
                    if m.required:
                        raise BuildFailure(
                            f"ssh agent {m.id} is required but was not given: pass "
                            f"`dockyard build --ssh {m.id}[=SOCKET]`"
                        )
                    continue
                check_agent_socket(sock)
                binds.append(BindMount(Path(sock), m.target))
                if not any(e.startswith("SSH_AUTH_SOCK=") for e in env):
                    # BuildKit points SSH_AUTH_SOCK at the RUN's first ssh mount.
                    env.append(f"SSH_AUTH_SOCK={m.target}")
        return binds, tmpfs, env

    # COPY / ADD ------------------------------------------------------------------------------
    async def _copy(
        self,
        b: _Build,
        stage: Stage,
        ins: Instruction,
        state: StageState,
        say: Emit,
        step_key: str,
    ) -> None:
        cmd = ins.keyword.upper()
        env = state.expand_env()
        heredoc_names = {h.name for h in ins.heredocs}
        words: list[str] = []
        for a in ins.args:
            if (
                not ins.json_form
                and a.startswith("<<")
                and a.lstrip("<-").strip("'\"") in heredoc_names
            ):
                words.append("\0heredoc:" + a.lstrip("<-").strip("'\""))
            else:
                words.append(expand_word(a, env, b.escape))
        *srcs, dest = words
        written_dest = dest
        workdir = state.config.get("WorkingDir") or "/"
        if not dest.startswith("/"):
            trailing = dest.endswith("/") or dest in (".", "./")
            dest = posixpath.join(workdir, dest)
            if trailing and not dest.endswith("/"):
                dest += "/"
        chown = expand_word(ins.flag("chown") or "", env, b.escape)
        chmod_text = expand_word(ins.flag("chmod") or "", env, b.escape)
        chmod = parse_chmod(chmod_text) if chmod_text else None
        from_ref = expand_word(ins.flag("from") or "", env, b.escape)
        parents = ins.flag("parents") == "true"
        excludes = [expand_word(x, env, b.escape) for x in ins.flag_values("exclude")]
        checksum = ins.flag("checksum") or ""
        if checksum and cmd == "COPY":
            raise InvalidArgument("checksum can't be specified for COPY")
        if checksum and len(ins.args) != 2:
            raise InvalidArgument("checksum can't be specified for multiple sources")
        if cmd == "ADD" and from_ref:
            raise InvalidArgument("ADD does not support --from")
        if ins.flag("keep-git-dir"):
            raise NotSupported("ADD --keep-git-dir is not supported (git sources are not)")
        unpack_flag = ins.flag("unpack")
        async with contextlib.AsyncExitStack() as stack:
            if from_ref:
                diff_ids = await self._source_image(b, stage, from_ref)
                root = await stack.enter_async_context(self._image_tree(diff_ids))
                tree = BuildContext(root, None)
            else:
                tree = b.ctx
            # Heredocs and URLs are materialised as files in a scratch tree of their own.
            extra = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=self.scratch_dir)))
            local: list[str] = []
            made: list[tuple[str, Path, bool]] = []  # (name, file, is_url)
            for src in srcs:
                if src.startswith("\0heredoc:"):
                    name = src.removeprefix("\0heredoc:")
                    h = next(x for x in ins.heredocs if x.name == name)
                    body = expand_word_text(h.body, env, b.escape) if h.expand else h.body
                    path = extra / f"h{len(made)}" / posixpath.basename(name)
                    path.parent.mkdir()
                    path.write_text(body)
                    os.chmod(path, 0o644)
                    made.append((posixpath.basename(name), path, False))
                elif cmd == "ADD" and is_url(src):
                    if src.startswith("git@") or src.endswith(".git"):
                        raise NotSupported("ADD of a git repository is not supported")
                    path = await asyncio.to_thread(
                        fetch_url, src, extra / f"u{len(made)}", checksum
                    )
                    made.append((path.name, path, True))
                else:
                    if checksum:
                        raise InvalidArgument("checksum can't be specified for non-HTTP(S) sources")
                    local.append(src)
            exclude = IgnoreMatcher(excludes) if excludes else None
            copts_probe = CopyOptions(chmod=chmod, parents=parents, exclude=exclude)
            sources = (
                await asyncio.to_thread(resolve_sources, tree, local, cmd, parents) if local else []
            )
            digests = await asyncio.to_thread(file_digests, tree, sources, copts_probe)
            extra_tree = BuildContext(extra, None)
            extra_sources = [CopySource(os.path.relpath(p, extra), False) for _, p, _ in made]
            digests.update(
                {
                    f"<{name}>": d
                    for (name, _, _), d in zip(
                        made,
                        (await asyncio.to_thread(file_digests, extra_tree, extra_sources)).values(),
                        strict=False,
                    )
                }
            )
            count = len(sources) + len(made)
            if count > 1 and not dest.endswith("/"):
                raise BuildFailure(
                    f"When using {cmd} with more than one source file, the destination must be "
                    "a directory and end with a /"
                )
            archives: set[str] = set()
            if cmd == "ADD" and unpack_flag != "false":
                for s in sources:
                    if not s.is_dir and await asyncio.to_thread(is_archive, tree.root / s.rel):
                        archives.add(s.rel)
            single = sources[0] if len(sources) == 1 and not made else None
            kind = "multi" if count > 1 else ("dir" if single and single.is_dir else "file")
            digest = combined_digest(digests)
            created_by = (
                f"{' '.join(self._shell(state))} #(nop) {cmd} "
                # Docker writes the flag glued to the source kind: `--chown=a:bfile:<hash>`
                f"{f'--chown={chown}' if chown else ''}{kind}:{digest} in {written_dest} "
            )
            flags_key = json.dumps(
                [
                    chown,
                    chmod,
                    parents,
                    excludes,
                    sorted(archives),
                    from_ref and "from",
                    ins.flag("link"),
                ]
            )
            key = self._cache_key(state, created_by, flags_key)
            if self._try_cache(
                b,
                key,
                state,
                say,
                step_key,
                self._inputs(state, " ".join([cmd, *ins.args]), digests),
                created_by,
            ):
                return
            cid = secrets.token_hex(32)

            def work(rootfs: Path) -> None:
                uid = gid = 0
                if chown:
                    uid, gid = chown_ids(rootfs, chown)
                opts = CopyOptions(uid, gid, chmod, parents, exclude)
                plain = [s for s in sources if s.rel not in archives]
                if plain:
                    copy_into(tree, plain, rootfs, dest, opts, cmd)
                for s in sources:
                    if s.rel in archives:
                        target = mkdir_in_root(rootfs, dest)
                        extract_archive(tree.root / s.rel, target)
                for _name, path, _remote in made:
                    src = CopySource(os.path.relpath(path, extra), False)
                    copy_into(extra_tree, [src], rootfs, dest, opts, cmd)

            async def threaded(rootfs: Path) -> None:
                await asyncio.to_thread(work, rootfs)

            # No init layer: COPY sees only the image (a COPY into /etc of a scratch image
            # creates /etc, owned by --chown, as in Docker)
            diff_id = await self._with_rootfs(state, cid, threaded, init=False)
            image_id = self._commit(
                state, created_by, empty_layer=False, cache_key=key, new_diff_id=diff_id
            )
            say({"stream": f" ---> {_short(image_id)}\n"})

    async def _workdir(
        self, b: _Build, ins: Instruction, state: StageState, say: Emit, step_key: str
    ) -> None:
        path = expand_word(ins.args[0] if ins.args else ins.rest, state.expand_env(), b.escape)
        current = state.config.get("WorkingDir") or "/"
        # normalizeWorkdir: an absolute path is kept as written ("/a/"), a relative one joined
        # and cleaned
        if not path:
            raise InvalidArgument("cannot normalize nothing")
        workdir = (
            path if path.startswith("/") else posixpath.normpath(posixpath.join("/", current, path))
        )
        saved = state.config.get("WorkingDir")
        state.config["WorkingDir"] = workdir
        created_by = f"{' '.join(self._shell(state))} #(nop) WORKDIR {workdir}"
        key = self._cache_key(state, created_by)
        if self._try_cache(
            b, key, state, say, step_key, self._inputs(state, created_by), created_by
        ):
            return
        cid = secrets.token_hex(32)
        say({"stream": f" ---> Running in {_short(cid)}\n"})

        def work(rootfs: Path) -> None:
            mkdir_in_root(rootfs, workdir)

        try:
            diff_id = await self._with_rootfs(state, cid, work)
        except BaseException:
            state.config["WorkingDir"] = saved
            raise
        say({"stream": f"Removing intermediate container {_short(cid)}\n"})
        image_id = self._commit(
            state, created_by, empty_layer=False, cache_key=key, new_diff_id=diff_id
        )
        say({"stream": f" ---> {_short(image_id)}\n"})


def expand_word_text(text: str, env: dict[str, str], escape: str) -> str:
    """Heredoc bodies are expanded like a double-quoted word (BuildKit expands `$VAR` in
    unquoted heredocs of COPY/ADD)."""
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "$" and i + 1 < len(text):
            j = i + 1
            if text[j] == "{":
                k = text.find("}", j)
                if k != -1:
                    out.append(expand_word(text[i : k + 1], env, escape))
                    i = k + 1
                    continue
            elif text[j] == "_" or text[j].isalpha():
                k = j
                while k < len(text) and (text[k] == "_" or text[k].isalnum()):
                    k += 1
                out.append(env.get(text[j:k], ""))
                i = k
                continue
        if ch == "\\" and i + 1 < len(text) and text[i + 1] == "$":
            out.append("$")
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def chown_ids(rootfs: Path, chown: str) -> tuple[int, int]:
    """The legacy builder's parseChownFlag: `user` alone means `user:user`; names are looked
    up in the image's /etc/passwd and /etc/group (an error when absent), numbers taken as is."""
    from dockyard.diff.fsutil import resolve_in_root

    parts = chown.split(":")
    if len(parts) > 2:
        raise InvalidArgument(f"invalid chown string format: {chown}")
    user, group = (parts[0], parts[0]) if len(parts) == 1 else (parts[0], parts[1])

    def lookup(name: str, path: str, what: str, kind: str) -> int:
        if name.isdigit():
            return int(name)
        try:
            lines = resolve_in_root(rootfs, path).read_text(errors="replace").splitlines()
        except OSError:
            raise InvalidArgument(
                f"can't find {what} for {kind} {name}: no such file {path}"
            ) from None
        for line in lines:
            fields = line.split(":")
            if len(fields) >= 3 and fields[0] == name and fields[2].isdigit():
                return int(fields[2])
        raise InvalidArgument(f"can't find {what} for {kind} {name}: no such {kind} in {path}")

    return lookup(user, "/etc/passwd", "uid", "user"), lookup(group, "/etc/group", "gid", "group")


def _with_label_steps(plan: Plan, target: int, labels: dict[str, str], line: int) -> Plan:
    """`--label k=v`: the legacy builder appends one LABEL step per label (sorted by key) to
    the target stage (buildLabelOptions), unexpanded."""
    if not labels:
        return plan
    from dataclasses import replace

    extra = tuple(
        Instruction("label", (k, labels[k]), False, (), f"LABEL {k}={labels[k]}", line, line)
        for k in sorted(labels)
    )
    stage = plan.stages[target]
    stages = list(plan.stages)
    stages[target] = replace(stage, commands=(*stage.commands, *extra))
    return replace(plan, stages=tuple(stages))


def _seed_volume(rootfs: Path, volume: str, target: Path) -> None:
    from dockyard.diff.fsutil import resolve_in_root

    src = resolve_in_root(rootfs, volume)
    if src.is_dir():
        shutil.copytree(src, target, symlinks=True)
        st = os.lstat(src)
        os.chown(target, st.st_uid, st.st_gid)
    else:
        target.mkdir(mode=0o755)


def _relined(ins: Instruction, line: int) -> Instruction:
    from dataclasses import replace

    return replace(ins, line=line, end_line=line)


def _write_secret(path: Path, data: bytes, spec: MountSpec) -> None:
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
        f.write(data)
        # BuildKit's secret mount defaults: mode 0400, owner 0:0.
        os.fchown(f.fileno(), spec.uid or 0, spec.gid or 0)
        os.fchmod(f.fileno(), spec.mode if spec.mode is not None else 0o400)


def _short(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]
