"""The step executor: the one template every build step follows.

A handler (dispatchers.py) turns an instruction into a `Step`: what it is (its instruction
text and history), what its result depends on (options, file digests) and, when it writes
files, its `work`. The executor then does the rest, the same way for every step:

  cache probe → (hit) the cached image, nothing mounted or started
              → (miss) `Running in` → mount → work → commit the layer → commit the image
              → ` ---> id`

and reports each phase to the build's `Progress`. The cache key is `StepInputs.key()` over
the parent image, the step's inputs, the config its image carries, the author and the
semantics' name, so the legacy and BuildKit builders never share a cached step.
The state a step starts from is never changed: `execute` returns the next one.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from dockyard.builder.cachelog import BuildCache, StepInputs, StepLog, changed_files, explain_miss
from dockyard.builder.inlinecache import recorded_keys
from dockyard.builder.kept import (
    KeepPolicy,
    KeptStep,
    StepCommandFailed,
    StepContainers,
    step_config,
)
from dockyard.builder.progress import CacheCheck, Progress, StepInfo
from dockyard.builder.rootfs import Rootfs, UpperWork, Work
from dockyard.builder.semantics import Semantics
from dockyard.builder.state import StageState
from dockyard.builder.steplocks import StepLocks
from dockyard.errors import InvalidArgument, NotFound
from dockyard.image.config import (
    EMPTY_LAYER_DIFF_ID,
    ImageConfig,
    build_image_config,
    now_rfc3339,
)
from dockyard.store.images import Image


class StepImages(Protocol):
    """The image store as the executor uses it."""

    def get(self, name_or_id: str) -> Image: ...

    def config(self, image_id: str) -> ImageConfig: ...

    def try_resolve(self, name: str) -> str | None: ...

    def parent_of(self, image_id: str) -> str | None:
        """The image a build made `image_id` on (None for a base or a pulled image)."""

    def put(
        self,
        raw_config: bytes,
        *,
        parent: str | None = ...,
        cache_key: str | None = ...,
        link_key: str | None = ...,
    ) -> str:
        """Store a config; record `cache_key` (and a `COPY --link` step's `link_key`) ->
        its ID in the build cache."""


@dataclass(frozen=True)
class Step:
    """One instruction, prepared by its handler for the executor."""

    info: StepInfo
    instruction: str  # as expanded, for the cache explanation
    history: str | None  # the `created_by` text of the image it makes; None: no entry
    config: Mapping[str, Any] | None = None  # the config after the step (None: unchanged)
    author: str | None = None  # the author after the step (None: unchanged)
    options: Mapping[str, str] = field(default_factory=dict)  # what else changes its result
    files: Mapping[str, str] = field(default_factory=dict)  # digests of what it reads
    work: Work | None = None  # writes into the step's root; None: a config-only step
    # then, in a worker thread, on the unmounted upper dir (COPY's links, copylinks.py)
    upper_work: UpperWork | None = None
    container: bool = True  # the legacy builder shows a container for it (not COPY/ADD)
    command: Sequence[str] = ()  # what that container runs (builder/kept.py)
    # the container is started (RUN); WORKDIR's is only created, and stays Created when kept
    # (moby dispatchWorkdir: ContainerCreateWorkdir, no start)
    starts: bool = False
    init_layer: bool = True  # runc's mount points under the rootfs (not for COPY/ADD)
    # BuildKit's RUN: its sandbox's mount points instead of Docker's init layer (no
    # /.dockerenv, /etc/mtab or /etc/hostname; Semantics.run_in_buildkit_sandbox)
    sandbox_init: bool = False
    # `COPY --link`: the work writes into an empty root, and the layer it makes is stacked on
    # the parent's; a later build on another parent reuses that layer (StepInputs.link_key)
    independent: bool = False


@dataclass(frozen=True)
class CachePolicy:
    no_cache: bool = False
    cache_from: Sequence[str] = ()
    explain: bool = False


class StepExecutor:
    """Runs the steps of one build (one executor per build: it knows the build's identity,
    options and progress)."""

    def __init__(
        self,
        images: StepImages,
        cache: BuildCache,
        log: StepLog,
        rootfs: Rootfs,
        progress: Progress,
        semantics: Semantics,
        policy: CachePolicy,
        build_id: str,
        steps: StepLocks,
        containers: StepContainers | None = None,
        keep: KeepPolicy | None = None,
        network_mode: str = "default",
    ) -> None:
        self.images = images
        self.cache = cache
        self.log = log
        self.rootfs = rootfs
        self.progress = progress
        self.semantics = semantics
        self.policy = policy
        self.build_id = build_id
        self.steps = steps
        # The engine's containers, for steps' containers that outlive the build (kept.py)
        self.containers = containers
        self.keep = keep if keep is not None and containers is not None else KeepPolicy()
        self.network_mode = network_mode

    def inputs(self, state: StageState, step: Step) -> StepInputs:
        return StepInputs(
            parent=state.image_id or "scratch",
            instruction=step.instruction,
            args=state.build_args_seen(),
            files=dict(step.files),
            history=step.history or "",
            options=dict(step.options),
            config=dict(state.config if step.config is None else step.config),
            author=state.author if step.author is None else step.author,
            semantics=self.semantics.name,
        )

    async def execute(self, state: StageState, step: Step) -> StageState:
        inputs = self.inputs(state, step)
        key = inputs.key()
        cached = self._probe(state, step, inputs, key)
        if cached is None and not self.policy.no_cache:
            # Another build may be running this very step: wait for it, then look again.
            async with self.steps.hold(key):
                cached = self._lookup(state, step, key)
                if cached is None and step.independent:
                    cached = await self._relink(state, step, inputs, key)
                if cached is None:
                    return await self._run(state, step, key, inputs)
        elif cached is None:
            return await self._run(state, step, key, inputs)
        self.progress.step_cached(step.info, cached)
        return replace(
            StageState.of_image(cached, self.images.config(cached), state.args),
            cmd_set=state.cmd_set,
            arg_overrides=state.arg_overrides,
        )

    async def _run(self, state: StageState, step: Step, key: str, inputs: StepInputs) -> StageState:
        container = secrets.token_hex(32)
        if step.container:
            self.progress.step_running(step.info, container)
        keeps = step.container and bool(state.image_id) and (self.keep.failed or self.keep.done)
        started = now_rfc3339()

        def kept(snapshot: int | None, exit_code: int | None) -> None:
            assert self.containers is not None
            config = step_config(state.config, step.command)
            ran = exit_code if step.starts else None  # WORKDIR's container is only created
            self.containers.keep(
                KeptStep(
                    container,
                    state.image_id or "",
                    config,
                    self.network_mode,
                    snapshot,
                    ran,
                    started if ran is not None else "",
                    now_rfc3339() if ran is not None else "",
                )
            )

        diff_id: str | None = None
        if step.work is not None and step.independent:
            diff_id = await self.rootfs.with_empty_root(
                state.diff_ids,
                container,
                step.work,
                keep_empty=self.semantics.keep_empty_layers,
            )
        elif step.work is not None:
            try:
                diff_id = await self.rootfs.with_rootfs(
                    state.diff_ids,
                    container,
                    step.work,
                    upper_work=step.upper_work,
                    init=step.init_layer,
                    sandbox=step.sandbox_init,
                    keep_empty=self.semantics.keep_empty_layers,
                    keep=kept if keeps else None,
                    keep_done=self.keep.done,
                )
            except StepCommandFailed:
                if step.container and not self.keep.failed:
                    self.progress.container_removed(step.info, container)
                raise
        elif keeps and self.keep.done:
            kept(None, None)
        link_key = inputs.link_key() if step.independent else None
        after = self.commit(state, step, key, diff_id, link_key)
        assert after.image_id is not None
        if step.container and not self.keep.done:
            self.progress.container_removed(step.info, container)
        self.progress.step_done(step.info, after.image_id)
        return after

    async def _relink(
        self, state: StageState, step: Step, inputs: StepInputs, key: str
    ) -> str | None:
        """A `COPY --link` step made on another parent: its layer, byte for byte the same
        blob, stacked on this one (BuildKit's MergeOp of a cached scratch copy; measured on
        dockerd 26.1 with the containerd image store: the same layer digest after the base
        changed). None when no such image is left."""
        link_key = inputs.link_key()
        made = self.cache.lookup_linked(link_key)
        if made is None:
            return None
        cfg = self.images.config(made)
        top = cfg.history[-1] if cfg.history else {}
        diff_id: str | None = None
        if not top.get("empty_layer"):
            if not cfg.diff_ids:
                return None
            diff_id = cfg.diff_ids[-1]
            try:
                await self.rootfs.stack(state.diff_ids, diff_id)
            except NotFound:
                return None  # its blob was collected meanwhile: make the layer again
        after = self.commit(state, step, key, diff_id, link_key)
        assert after.image_id is not None
        return after.image_id

    async def execute_quietly(self, state: StageState, step: Step) -> StageState:
        """A config-only step that is not one of the Dockerfile's (BuildKit's --label):
        cached and committed as any other, with no progress."""
        assert step.work is None
        key = self.inputs(state, step).key()
        cached = None if self.policy.no_cache else self.cache.lookup(key)
        if cached is not None:
            return replace(
                StageState.of_image(cached, self.images.config(cached), state.args),
                cmd_set=state.cmd_set,
                arg_overrides=state.arg_overrides,
            )
        return self.commit(state, step, key, None)

    def _probe(self, state: StageState, step: Step, inputs: StepInputs, key: str) -> str | None:
        """The cached image for `key` (or --cache-from's); records the inputs, explains."""
        cached = None if self.policy.no_cache else self._lookup(state, step, key)
        previous = self.log.get(self.build_id, step.info.key)
        if previous != inputs:  # a rebuild's are mostly the same: 5,000 digests, 40 ms
            self.log.put(self.build_id, step.info.key, inputs)
        if self.policy.explain:
            hit = cached is not None
            reasons = [] if hit else explain_miss(previous, inputs, self.policy.no_cache)
            files = {} if hit else changed_files(previous, inputs)
            self.progress.cache_checked(
                step.info, CacheCheck(inputs.instruction, hit, reasons, files)
            )
        return cached

    def _lookup(self, state: StageState, step: Step, key: str) -> str | None:
        cached = self.cache.lookup(key)
        if (
            cached is not None
            and self.policy.cache_from
            and self.semantics.cache_from_replaces_local
            and not self._in_sources(cached)
        ):
            # moby's ImageCache with sources: a local hit counts only when it is in the
            # ancestry of an image given with --cache-from (image/cache/cache.go).
            cached = None
        if cached is None and self.policy.cache_from:
            cached = self._from_cache_images(state, step, key)
        return cached

    def _in_sources(self, image_id: str) -> bool:
        for name in self.policy.cache_from:
            try:
                current = self.images.try_resolve(name)
            except InvalidArgument:
                continue  # dockerd skips a cache-from it cannot use
            for _ in range(10_000):
                if current is None:
                    break
                if current == image_id:
                    return True
                current = self.images.parent_of(current)
        return False

    def _from_cache_images(self, state: StageState, step: Step, key: str) -> str | None:
        """--cache-from: a step hits when an image given has this stage's history (and
        layers) as a prefix and the next history entry is this step (image/cache/cache.go);
        under BuildKit's semantics only when the image's inline cache records this step's key
        too (builder/inlinecache.py)."""
        n = len(state.history)
        for name in self.policy.cache_from:
            try:
                target = self.images.get(name).config
            except NotFound:
                continue
            th = target.history
            if len(th) <= n or th[:n] != list(state.history):
                continue
            if target.diff_ids[: len(state.diff_ids)] != list(state.diff_ids):
                continue
            entry = th[n]
            if step.history is None or entry.get("created_by", "") != step.history:
                continue
            if self.semantics.cache_from_needs_keys:
                keys = recorded_keys(target.doc)
                if keys is None or len(keys) <= n or keys[n] != key:
                    continue
            diff_ids = list(state.diff_ids)
            if not entry.get("empty_layer"):
                layer_index = sum(1 for h in th[: n + 1] if not h.get("empty_layer")) - 1
                if layer_index >= len(target.diff_ids):
                    continue
                diff_ids.append(target.diff_ids[layer_index])
            container_config = dict(state.config if step.config is None else step.config)
            container_config["Image"] = state.image_id or ""
            raw = build_image_config(
                container_config=container_config,
                diff_ids=diff_ids,
                history=[*state.history, entry],
                created=str(entry.get("created", now_rfc3339())),
                parent=state.parent_cfg,
                author=str(target.doc.get("author", "")),
                oci=self.semantics.oci_config,
            )
            return self.images.put(raw, parent=state.image_id, cache_key=key)
        return None

    def commit(
        self,
        state: StageState,
        step: Step,
        key: str | None,
        diff_id: str | None,
        link_key: str | None = None,
    ) -> StageState:
        """The image of `step` on top of `state`: a layer when `diff_id` is a real one (or
        the empty one, under semantics that keep empty layers), an `empty_layer` history entry
        otherwise (Docker's NewChildImage); no history entry for a step without one."""
        created = now_rfc3339()
        diff_ids = list(state.diff_ids)
        empty_layer = diff_id is None or (
            diff_id == EMPTY_LAYER_DIFF_ID and not self.semantics.keep_empty_layers
        )
        if not empty_layer:
            assert diff_id is not None
            diff_ids.append(diff_id)
        author = state.author if step.author is None else step.author
        config = dict(state.config if step.config is None else step.config)
        history = list(state.history)
        if step.history is not None:
            history.append(self._entry(created, author, step.history, empty_layer))
        config["Image"] = state.image_id or ""
        raw = build_image_config(
            container_config=config,
            diff_ids=diff_ids,
            history=history,
            created=created,
            parent=state.parent_cfg,
            author=author,
            oci=self.semantics.oci_config,
        )
        image_id = self.images.put(raw, parent=state.image_id, cache_key=key, link_key=link_key)
        cfg = ImageConfig.from_bytes(raw)
        return replace(
            state,
            image_id=image_id,
            parent_cfg=cfg,
            config=dict(cfg.container_config),
            diff_ids=tuple(diff_ids),
            history=tuple(history),
            author=author,
        )

    def _entry(self, created: str, author: str, created_by: str, empty: bool) -> dict[str, Any]:
        entry: dict[str, Any] = {"created": created}
        if author and not self.semantics.oci_config:
            entry["author"] = author  # BuildKit's history entries name no author
        entry["created_by"] = created_by
        if self.semantics.history_comment:
            entry["comment"] = self.semantics.history_comment
        if empty:
            entry["empty_layer"] = True
        return entry
