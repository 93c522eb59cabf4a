"""The builder's progress events as BuildKit's vertexes (builder.progress.Progress for /build v2).

BuildKit shows a vertex per LLB operation: FROM and the filesystem steps (RUN, COPY, ADD,
WORKDIR), named `[N/M] INSTRUCTION` with N and M counted within the stage (`[name N/M]`, or
`[stage-i N/M]` for an unnamed one, when the Dockerfile has several stages). Config-only
instructions (ENV, CMD, LABEL, …) and the ARGs before the first FROM show none. Stages that
run concurrently show concurrently: vertexes need no ordering.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dockyard.builder.progress import META_STAGE, CacheCheck, StepInfo
from dockyard.session.progress import Trace, Vertex


@dataclass(frozen=True)
class StagePlan:
    label: str  # "" for a single-stage Dockerfile, else the stage's name or stage-i
    from_text: str  # the FROM line as written
    base_name: str  # the base as BuildKit shows it (docker.io/library/alpine:latest)
    commands: tuple[str, ...]  # its instructions as written, in order
    # which of them BuildKit shows as a vertex (filesystem steps; config-only ones are none)
    vertex: tuple[bool, ...] = ()


_RUN_FAILED = re.compile(r"The command '(.*)' returned a non-zero code: (\d+)$", re.S)


def buildkit_message(text: str) -> str:
    """A failed RUN as BuildKit 0.8 (dockerd 20.10) words it; without the legacy wording's
    exit code the docker CLI then exits 1, as it does against dockerd."""
    m = _RUN_FAILED.search(text)
    if not m:
        return text
    return (
        "failed to solve with frontend dockerfile.v0: failed to build LLB: "
        f"executor failed running [{m.group(1)}]: exit code: {m.group(2)}"
    )


class BuildKitProgress:
    def __init__(self, trace: Trace, stages: list[StagePlan]) -> None:
        self.trace = trace
        self.stages = stages
        self._pos: dict[int, int] = {}  # commands of each stage seen so far
        self._open: dict[int, Vertex] = {}  # by step number
        self.image_id = ""

    def _name(self, step: StepInfo) -> str | None:
        if step.stage == META_STAGE or not 0 <= step.stage < len(self.stages):
            return None
        st = self.stages[step.stage]
        prefix = f"{st.label} " if st.label else ""
        total = sum(st.vertex) + 1
        if step.text == st.from_text and step.stage not in self._pos:
            self._pos[step.stage] = 0
            return f"[{prefix}1/{total}] FROM {st.base_name}"
        start = self._pos.get(step.stage, 0)
        for pos in range(start, len(st.commands)):
            if st.commands[pos] == step.text:
                self._pos[step.stage] = pos + 1
                if not st.vertex[pos]:
                    return None
                return f"[{prefix}{1 + sum(st.vertex[: pos + 1])}/{total}] {step.text}"
        return None  # a --label step or an ONBUILD trigger: part of what runs around it

    def planned(self, stages: Sequence[int], total: int) -> None:
        pass

    def warning(self, text: str) -> None:
        pass  # BuildKit 0.8 (the 20.10 client's) has no warnings in its trace

    def step_started(self, step: StepInfo) -> None:
        name = self._name(step)
        if name is not None:
            self._open[step.number] = self.trace.start(name)

    def cache_checked(self, step: StepInfo, check: CacheCheck) -> None:
        pass

    def step_cached(self, step: StepInfo, image_id: str) -> None:
        v = self._open.pop(step.number, None)
        if v is not None:
            self.trace.complete(v, cached=True)

    def step_running(self, step: StepInfo, container_id: str) -> None:
        pass

    def step_log(self, step: StepInfo, data: bytes, stderr: bool = False) -> None:
        v = self._open.get(step.number)
        if v is not None:
            self.trace.log(v, data, 2 if stderr else 1)  # BuildKit's VertexLog stream

    def container_removed(self, step: StepInfo, container_id: str) -> None:
        del step, container_id  # BuildKit runs no containers of the engine's

    def step_done(self, step: StepInfo, image_id: str) -> None:
        v = self._open.pop(step.number, None)
        if v is not None:
            self.trace.complete(v)

    def step_error(self, step: StepInfo, message: str) -> None:
        v = self._open.pop(step.number, None)
        if v is not None:
            self.trace.complete(v, error=buildkit_message(message))

    def triggers(self, step: StepInfo, count: int) -> None:
        pass

    def pull_status(self, step: StepInfo, message: dict[str, Any]) -> None:
        v = self._open.get(step.number)
        status, ident = message.get("status"), message.get("id")
        if v is not None and isinstance(status, str) and isinstance(ident, str):
            self.trace.status(v, f"{ident}: {status}")

    def stage_finished(self, stage: int) -> None:
        pass

    def stages_ended(self) -> None:
        for v in list(self._open.values()):
            self.trace.complete(v, error="cancelled")
        self._open.clear()

    def finished(self, image_id: str, tags: Sequence[str], unused_args: Sequence[str]) -> None:
        self.image_id = image_id

    def fail_open(self, message: str) -> None:
        """The build failed outside a step's own error report: close what is still open."""
        for v in list(self._open.values()):
            self.trace.complete(v, error=message)
        self._open.clear()
