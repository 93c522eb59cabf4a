"""The builder's step messages turned into BuildKit vertexes.

Interim: the builder speaks the legacy builder's JSON messages (`Step N/M : …`,
` ---> Using cache`, the RUN output). Until it reports steps through a progress interface,
this reads those messages and writes BuildKit's vertexes, named as BuildKit names them:
`[N/M] INSTRUCTION` per stage (`[name N/M]` when the Dockerfile has several stages, `stage-i`
for an unnamed one), M counting the stage's FROM and its instructions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from dockyard.session.progress import Trace, Vertex

_STEP = re.compile(r"^Step \d+/\d+ : (.*)\n?$", re.S)
_QUIET_LINES = re.compile(
    r"^( ---> Running in [0-9a-f]+| ---> [0-9a-f]{12}|Removing intermediate container [0-9a-f]+"
    r"|Successfully built [0-9a-f]+|Successfully tagged .*| ---> Cache miss: .*)\n?$"
)


@dataclass(frozen=True)
class StagePlan:
    label: str  # "" for a single-stage Dockerfile, else the stage's name or stage-i
    from_text: str  # the FROM line as written
    base_name: str  # the base as BuildKit shows it (docker.io/library/alpine:latest)
    commands: tuple[str, ...]  # its instructions as written, in order
    # which of them BuildKit shows as a vertex (filesystem steps; config-only ones are none)
    vertex: tuple[bool, ...] = ()


class StepProgress:
    """An `emit` for the builder that writes the trace instead."""

    def __init__(self, trace: Trace, stages: list[StagePlan]) -> None:
        self.trace = trace
        self.stages = stages
        self._stage = -1
        self._pos = 0  # commands of the stage seen
        self._index = 0  # vertexes of the stage shown, 1 = FROM
        self.current: Vertex | None = None
        self.image_id = ""

    def _name(self, text: str) -> str:
        st = self.stages[self._stage]
        total = sum(st.vertex) + 1
        prefix = f"{st.label} " if st.label else ""
        return f"[{prefix}{self._index}/{total}] {text}"

    def _start(self, name: str) -> None:
        self.finish()
        self.current = self.trace.start(name)

    def finish(self, error: str = "") -> None:
        if self.current is not None:
            self.trace.complete(self.current, error=error)
            if not error:
                self.current = None

    def _step(self, text: str) -> None:
        for i in range(self._stage + 1, len(self.stages)):
            if self.stages[i].from_text == text:
                self._stage = i
                self._pos = 0
                self._index = 1
                self._start(self._name(f"FROM {self.stages[i].base_name}"))
                return
        if self._stage < 0:
            return  # a meta ARG: BuildKit shows no vertex for it
        st = self.stages[self._stage]
        for pos in range(self._pos, len(st.commands)):
            if st.commands[pos] == text:
                self._pos = pos + 1
                if st.vertex[pos]:
                    self._index += 1
                    self._start(self._name(text))
                else:
                    self.finish()
                return
        # anything else (a --label step, ONBUILD triggers) belongs to the current vertex

    def __call__(self, msg: dict[str, Any]) -> None:
        if "aux" in msg and isinstance(msg["aux"], dict):
            self.image_id = str(msg["aux"].get("ID", ""))
            return
        text = msg.get("stream")
        if not isinstance(text, str):
            return
        step = _STEP.match(text)
        if step:
            self._step(step.group(1).rstrip("\n"))
            return
        if text in (" ---> Using cache\n", " ---> Using cache"):
            if self.current is not None:
                self.current.cached = True
            return
        if _QUIET_LINES.match(text):
            return
        if self.current is not None:
            self.trace.log(self.current, text.encode())
