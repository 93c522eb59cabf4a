"""In-memory fakes behind the builder's small protocols, for fast tests without root.

`FakeImages` keeps configs and the build cache in dicts; `FakeRootfs` gives each step an empty
directory (no overlay) and names the layer after what the step wrote; `FakeRunner` records
the processes RUN would start and answers with a chosen exit code. With them the real
`Builder`, handlers and executor run a Dockerfile in milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockyard.builder.builder import Builder
from dockyard.builder.cachelog import StepInputs
from dockyard.builder.context import BuildContext
from dockyard.builder.kept import KeptStep, StepCommandFailed
from dockyard.builder.mounts import CacheMounts
from dockyard.builder.progress import CacheCheck, StepInfo
from dockyard.builder.rootfs import Keep, UpperWork, Work
from dockyard.builder.runner import StepProcess
from dockyard.builder.state import BuildOptions
from dockyard.errors import DockyardError, NotFound
from dockyard.image.config import (
    EMPTY_LAYER_DIFF_ID,
    ImageConfig,
    build_image_config,
    now_rfc3339,
)
from dockyard.image.reference import parse_reference
from dockyard.store.images import Image

BASE_ENV = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]


class FakeImages:
    def __init__(self) -> None:
        self.configs: dict[str, bytes] = {}
        self.tags: dict[str, str] = {}
        self.cache: dict[str, str] = {}
        self.linked: dict[str, str] = {}  # COPY --link's parent-free keys
        self.parents: dict[str, str | None] = {}

    def add_base(self, name: str, cmd: list[str] | None = None) -> str:
        raw = build_image_config(
            container_config={"Env": BASE_ENV, "Cmd": cmd or ["sh"]},
            diff_ids=["sha256:" + "b" * 64],
            history=[{"created": now_rfc3339(), "created_by": "base"}],
            created=now_rfc3339(),
        )
        image_id = self.put(raw)
        self.tag(image_id, name)
        return image_id

    def _id(self, name: str) -> str | None:
        if name in self.configs:
            return name
        try:
            return self.tags.get(str(parse_reference(name)))
        except DockyardError:
            return None

    def try_resolve(self, name: str) -> str | None:
        return self._id(name)

    def get(self, name_or_id: str) -> Image:
        image_id = self._id(name_or_id)
        if image_id is None:
            raise NotFound(f"No such image: {name_or_id}")
        return Image(image_id, self.config(image_id), [])

    def config(self, image_id: str) -> ImageConfig:
        return ImageConfig.from_bytes(self.configs[image_id])

    def parent_of(self, image_id: str) -> str | None:
        return self.parents.get(image_id)

    def put(
        self,
        raw_config: bytes,
        *,
        parent: str | None = None,
        cache_key: str | None = None,
        link_key: str | None = None,
    ) -> str:
        image_id = "sha256:" + hashlib.sha256(raw_config).hexdigest()
        self.configs[image_id] = raw_config
        self.parents[image_id] = parent
        if cache_key:
            self.cache[cache_key] = image_id
        if link_key:
            self.linked[link_key] = image_id
        return image_id

    def tag(self, source: str, target: str) -> None:
        image_id = self._id(source)
        assert image_id is not None
        self.tags[str(parse_reference(target))] = image_id

    def lookup(self, key: str) -> str | None:  # the BuildCache protocol
        return self.cache.get(key)

    def lookup_linked(self, link_key: str) -> str | None:
        return self.linked.get(link_key)


class FakeLog:
    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], StepInputs] = {}

    def get(self, build: str, step: str) -> StepInputs | None:
        return self.rows.get((build, step))

    def put(self, build: str, step: str, inputs: StepInputs) -> None:
        self.rows[(build, step)] = inputs


def _tree_digest(root: Path) -> str:
    """A stand-in diff ID: what the step left in its (fake) root, or the empty layer's."""
    h = hashlib.sha256()
    empty = True
    for dirpath, dirnames, filenames in sorted(os.walk(root)):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            empty = False
            path = Path(dirpath) / name
            h.update(os.fsencode(path.relative_to(root)) + b"\0")
            if path.is_file() and not path.is_symlink():
                h.update(path.read_bytes())
    return EMPTY_LAYER_DIFF_ID if empty else "sha256:" + h.hexdigest()


class FakeRootfs:
    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        self.mounted: list[tuple[tuple[str, ...], bool]] = []  # (parent layers, init layer)
        self.written: list[dict[str, tuple[int, int]]] = []  # per step: path -> (uid, gid)
        self.empty_roots: list[tuple[str, ...]] = []  # COPY --link: the parents' layers
        self.stacked: list[tuple[tuple[str, ...], str]] = []  # (parents, reused layer)

    async def with_rootfs(
        self,
        diff_ids: Sequence[str],
        step_id: str,
        work: Work,
        *,
        init: bool,
        keep_empty: bool,
        sandbox: bool = False,
        keep: Keep | None = None,
        keep_done: bool = False,
        upper_work: UpperWork | None = None,
    ) -> str:
        del keep_empty, sandbox  # a fake layer needs no storing
        self.mounted.append((tuple(diff_ids), init))
        root = self.scratch / step_id / "rootfs"
        root.mkdir(parents=True)
        try:
            try:
                await work(root, step_id)
            except StepCommandFailed as failed:
                if keep is not None:
                    keep(0, failed.exit_code)  # a fake snapshot number
                raise
            if upper_work is not None:
                await asyncio.to_thread(upper_work, root)  # no mount: the root is the upper
            if keep is not None and keep_done:
                keep(0, 0)
            self.written.append(
                {
                    "/" + str(p.relative_to(root)): (p.lstat().st_uid, p.lstat().st_gid)
                    for p in root.rglob("*")
                }
            )
            return await asyncio.to_thread(_tree_digest, root)
        finally:
            shutil.rmtree(root.parent)

    async def with_empty_root(
        self, diff_ids: Sequence[str], step_id: str, work: Work, *, keep_empty: bool
    ) -> str:
        self.empty_roots.append(tuple(diff_ids))
        return await self.with_rootfs((), step_id, work, init=False, keep_empty=keep_empty)

    async def stack(self, diff_ids: Sequence[str], diff_id: str) -> None:
        self.stacked.append((tuple(diff_ids), diff_id))

    @contextlib.asynccontextmanager
    async def image_tree(self, diff_ids: Sequence[str]) -> AsyncIterator[Path]:
        del diff_ids
        with tempfile.TemporaryDirectory(dir=self.scratch) as view:
            yield Path(view)


@dataclass
class FakeRunner:
    code: int = 0
    output: bytes = b""
    runs: list[StepProcess] = field(default_factory=list)

    async def run(
        self,
        container_id: str,
        rootfs: Path,
        proc: StepProcess,
        on_output: Callable[[bytes, bool], None],
    ) -> int:
        del container_id, rootfs
        self.runs.append(proc)
        if self.output:
            on_output(self.output, False)
        return self.code


@dataclass
class RecordingProgress:
    """A Progress that keeps (event, step text, detail) tuples."""

    events: list[tuple[str, str, Any]] = field(default_factory=list)

    def planned(self, stages: Sequence[int], total: int) -> None:
        self.events.append(("planned", "", (list(stages), total)))

    def warning(self, text: str) -> None:
        self.events.append(("warning", "", text))

    def step_started(self, step: StepInfo) -> None:
        self.events.append(("started", step.text, step.number))

    def cache_checked(self, step: StepInfo, check: CacheCheck) -> None:
        self.events.append(("checked", step.text, check))

    def step_cached(self, step: StepInfo, image_id: str) -> None:
        self.events.append(("cached", step.text, image_id))

    def step_running(self, step: StepInfo, container_id: str) -> None:
        self.events.append(("running", step.text, container_id))

    def step_log(self, step: StepInfo, data: bytes, stderr: bool = False) -> None:
        self.events.append(("log", step.text, data))

    def container_removed(self, step: StepInfo, container_id: str) -> None:
        self.events.append(("removed", step.text, container_id))

    def step_done(self, step: StepInfo, image_id: str) -> None:
        self.events.append(("done", step.text, image_id))

    def step_error(self, step: StepInfo, message: str) -> None:
        self.events.append(("error", step.text, message))

    def triggers(self, step: StepInfo, count: int) -> None:
        self.events.append(("triggers", step.text, count))

    def pull_status(self, step: StepInfo, message: dict[str, Any]) -> None:
        self.events.append(("pull", step.text, message))

    def stage_finished(self, stage: int) -> None:
        self.events.append(("stage_finished", "", stage))

    def stages_ended(self) -> None:
        self.events.append(("stages_ended", "", None))

    def finished(self, image_id: str, tags: Sequence[str], unused_args: Sequence[str]) -> None:
        self.events.append(("finished", "", list(unused_args)))

    def kinds(self, text: str) -> list[str]:
        return [e[0] for e in self.events if e[1] == text]


@dataclass
class FakeContainers:
    """The engine's containers as builder/kept.py leaves steps to them."""

    kept: list[KeptStep] = field(default_factory=list)

    def keep(self, step: KeptStep) -> None:
        self.kept.append(step)


@dataclass
class FakeBuild:
    """A Builder on fakes, with a context directory to write Dockerfiles into."""

    root: Path
    images: FakeImages = field(default_factory=FakeImages)
    log: FakeLog = field(default_factory=FakeLog)
    runner: FakeRunner = field(default_factory=FakeRunner)
    containers: FakeContainers = field(default_factory=FakeContainers)

    def __post_init__(self) -> None:
        self.context = self.root / "ctx"
        self.context.mkdir()
        scratch = self.root / "scratch"
        scratch.mkdir()
        self.rootfs = FakeRootfs(scratch)
        self.builder = Builder(
            self.images,
            self.rootfs,
            self.runner,
            scratch,
            cache=self.images,
            log=self.log,
            caches=CacheMounts(self.root / "cachemounts", scratch),
            containers=self.containers,
        )
        self.images.add_base("busybox")

    def build(
        self, dockerfile: str, files: dict[str, str] | None = None, **options: Any
    ) -> tuple[str, list[dict[str, Any]]]:
        (self.context / "Dockerfile").write_text(dockerfile)
        for name, text in (files or {}).items():
            (self.context / name).write_text(text)
        messages: list[dict[str, Any]] = []
        opts = BuildOptions(**options)
        ctx = BuildContext(self.context, None)
        image_id = asyncio.run(self.builder.build(ctx, opts, messages.append))
        return image_id, messages

    def build_with(self, dockerfile: str, progress: RecordingProgress, **options: Any) -> str:
        (self.context / "Dockerfile").write_text(dockerfile)
        ctx = BuildContext(self.context, None)
        return asyncio.run(self.builder.build(ctx, BuildOptions(**options), progress=progress))

    def history(self, image_id: str) -> list[str]:
        return [str(h.get("created_by", "")) for h in self.images.config(image_id).history]
