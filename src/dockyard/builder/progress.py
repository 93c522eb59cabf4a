"""What a build reports while it runs, as events; one renderer per client protocol.

The builder, the step executor and the handlers call a `Progress`; they never format text.
`LegacyProgress` renders the events as the legacy `/build` stream of Docker 20.10 (JSON
messages `{"stream": …}` and `{"aux": …}`, measured: ` ---> Running in …` for metadata steps
too, no ` ---> Using cache` for FROM, ` ---> <id>` after each step). BuildKit's API renders the
same events as StatusResponse vertexes (started/cached/completed/error, logs).

Event order for one step: `step_started`, then either `step_cached` or (`step_running` when the
legacy builder shows a container for it, `step_log`…, `step_done`); `step_error` when it fails
(the exception still carries the error to the caller). `cache_checked` comes before
`step_cached`/`step_running` when the build asked to explain its cache.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from dockyard.builder.stages import OrderedOutput
from dockyard.store.images import ImageStore, familiar

Emit = Callable[[dict[str, Any]], None]
META_STAGE = -1  # the ARG steps before the first FROM belong to no stage


@dataclass(frozen=True)
class StepInfo:
    """One step as the progress sees it: its place in the build and in the Dockerfile."""

    number: int  # 1-based over the steps the build runs (the legacy `Step N/M`)
    total: int
    text: str  # the instruction as written
    line: int
    stage: int  # stage index, META_STAGE for ARGs before the first FROM
    stage_name: str = ""
    key: str = ""  # stable identity of the step across builds (the cache log's)


@dataclass(frozen=True)
class CacheCheck:
    """The outcome of one cache lookup, with the reasons for a miss (--explain-cache)."""

    instruction: str
    hit: bool
    reasons: list[str] = field(default_factory=list)
    files: dict[str, list[str | None]] = field(default_factory=dict)


class Progress(Protocol):
    def planned(self, stages: Sequence[int], total: int) -> None:
        """The stages that will run (in Dockerfile order) and the number of steps."""

    def warning(self, text: str) -> None:
        """A Dockerfile warning (the parser's), reported whatever the verbosity."""

    def step_started(self, step: StepInfo) -> None: ...

    def cache_checked(self, step: StepInfo, check: CacheCheck) -> None: ...

    def step_cached(self, step: StepInfo, image_id: str) -> None: ...

    def step_running(self, step: StepInfo, container_id: str) -> None: ...

    def step_log(self, step: StepInfo, data: bytes, stderr: bool = False) -> None:
        """Output of the step's process, as it came (`stderr`: from its stderr)."""

    def container_removed(self, step: StepInfo, container_id: str) -> None:
        """The step's container went (the legacy builder's `rm`; builder/kept.py)."""

    def step_done(self, step: StepInfo, image_id: str) -> None:
        """The step made `image_id` (for FROM: the base)."""

    def step_error(self, step: StepInfo, message: str) -> None: ...

    def triggers(self, step: StepInfo, count: int) -> None:
        """FROM found `count` ONBUILD triggers in its base; they run next, within this step."""

    def pull_status(self, step: StepInfo, message: dict[str, Any]) -> None:
        """A registry progress message (Docker's JSON shape) while FROM pulls its base."""

    def stage_finished(self, stage: int) -> None: ...

    def stages_ended(self) -> None:
        """Every stage has ended, also after a failure: release what is held back."""

    def finished(self, image_id: str, tags: Sequence[str], unused_args: Sequence[str]) -> None:
        """The build's image, tagged as `tags`; `unused_args` no ARG consumed."""


def _short(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


class LegacyProgress:
    """Docker 20.10's legacy builder stream. Stages may run concurrently; their messages are
    held back so the stream reads in Dockerfile order (stages.OrderedOutput)."""

    def __init__(self, emit: Emit, *, quiet: bool = False) -> None:
        self.emit = emit
        self.quiet = quiet
        self._out = OrderedOutput(self._say, [])
        # `-q` holds the output back (dockerd's notVerboseBuffer) and sends it only when the
        # build fails, before the error: so the error travels in the stream, with its code.
        self._held: list[dict[str, Any]] = []
        self._failed = False

    def _say(self, msg: dict[str, Any]) -> None:
        if self.quiet:
            self._held.append(msg)
        else:
            self.emit(msg)

    def _stream(self, step: StepInfo, text: str) -> None:
        self._out.for_stage(step.stage)({"stream": text})

    def planned(self, stages: Sequence[int], total: int) -> None:
        self._out = OrderedOutput(self._say, list(stages))

    def warning(self, text: str) -> None:
        self.emit({"stream": text + "\n"})

    def step_started(self, step: StepInfo) -> None:
        self._stream(step, f"Step {step.number}/{step.total} : {step.text}\n")

    def cache_checked(self, step: StepInfo, check: CacheCheck) -> None:
        aux = {
            "step": check.instruction,
            "hit": check.hit,
            "reasons": check.reasons,
            "files": check.files,
        }
        self._out.for_stage(step.stage)({"aux": {"cache": aux}})
        if not check.hit:
            self._stream(step, " ---> Cache miss: " + "; ".join(check.reasons) + "\n")

    def step_cached(self, step: StepInfo, image_id: str) -> None:
        self._stream(step, " ---> Using cache\n")
        self._stream(step, f" ---> {_short(image_id)}\n")

    def step_running(self, step: StepInfo, container_id: str) -> None:
        self._stream(step, f" ---> Running in {_short(container_id)}\n")

    def step_log(self, step: StepInfo, data: bytes, stderr: bool = False) -> None:
        text = data.decode(errors="replace")
        # Docker's legacy builder paints every stderr write red for the terminal
        # (pkg/streamformatter.NewStderrWriter): "\x1b[91m" + chunk + "\x1b[0m".
        self._stream(step, f"\x1b[91m{text}\x1b[0m" if stderr else text)

    def container_removed(self, step: StepInfo, container_id: str) -> None:
        self._stream(step, f"Removing intermediate container {_short(container_id)}\n")

    def step_done(self, step: StepInfo, image_id: str) -> None:
        self._stream(step, f" ---> {_short(image_id)}\n")

    def step_error(self, step: StepInfo, message: str) -> None:
        del step, message  # the API's errorDetail message carries it
        self._failed = True

    def triggers(self, step: StepInfo, count: int) -> None:
        word = "trigger" if count == 1 else "triggers"
        self._stream(step, f"# Executing {count} build {word}\n")

    def pull_status(self, step: StepInfo, message: dict[str, Any]) -> None:
        self._out.for_stage(step.stage)(message)

    def stage_finished(self, stage: int) -> None:
        self._out.finished(stage)

    def finished(self, image_id: str, tags: Sequence[str], unused_args: Sequence[str]) -> None:
        if unused_args:
            self._say(
                {
                    "stream": f"[Warning] One or more build-args [{' '.join(unused_args)}] "
                    "were not consumed\n"
                }
            )
        self.emit({"aux": {"ID": image_id}})
        if self.quiet:
            self.emit({"stream": f"{image_id}\n"})
            return
        self.emit({"stream": f"Successfully built {_short(image_id)}\n"})
        for tag in tags:
            self.emit(
                {"stream": f"Successfully tagged {familiar(ImageStore.normalize_tag(tag))}\n"}
            )

    def stages_ended(self) -> None:
        self._out.flush()
        if self._failed:
            for msg in self._held:
                self.emit(msg)
        self._held.clear()
