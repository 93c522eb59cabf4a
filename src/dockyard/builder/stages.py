"""Stages of a Dockerfile: splitting, the target, which stages it needs, ordered output.

The legacy builder builds every stage up to the target in order; BuildKit builds only what
the target needs, independent stages in parallel. dockyard does the latter, and keeps the
output readable by buffering a stage's messages until the stages before it have finished.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dockyard.errors import InvalidArgument
from dockyard.frontend.commands import Instruction
from dockyard.frontend.expand import (
    ExpansionError,
    expand_word,
    parse_arg_values,
    parse_key_values,
)

Emit = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class Stage:
    index: int
    name: str  # lower-cased `AS name`, "" without one
    from_ins: Instruction
    commands: tuple[Instruction, ...]

    @property
    def base(self) -> str:
        return self.from_ins.args[0]


@dataclass(frozen=True)
class Plan:
    meta_args: tuple[Instruction, ...]
    stages: tuple[Stage, ...]


class StageError(InvalidArgument):
    """A problem with the stage graph; `line` names the Dockerfile line."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line


def split_stages(instructions: list[Instruction]) -> Plan:
    meta: list[Instruction] = []
    stages: list[Stage] = []
    current: Instruction | None = None
    commands: list[Instruction] = []
    names: set[str] = set()

    def close() -> None:
        if current is not None:
            name = current.args[2].lower() if len(current.args) == 3 else ""
            stages.append(Stage(len(stages), name, current, tuple(commands)))

    for ins in instructions:
        if ins.keyword == "from":
            close()
            current, commands = ins, []
            if len(ins.args) == 3:
                name = ins.args[2].lower()
                if name in names:
                    raise StageError(ins.line, f'duplicate stage name "{name}"')
                names.add(name)
        elif current is None:
            meta.append(ins)
        else:
            commands.append(ins)
    close()
    if not stages:
        raise StageError(instructions[-1].line if instructions else 1, "no build stage found")
    return Plan(tuple(meta), tuple(stages))


def stage_by_ref(
    stages: tuple[Stage, ...], ref: str, before: int, allow_index: bool = True
) -> Stage | None:
    """The stage `ref` names (a name, or an index for COPY --from) among those before `before`."""
    low = ref.lower()
    for s in stages[:before]:
        if s.name and s.name == low:
            return s
    if allow_index and ref.isdigit() and int(ref) < before:
        return stages[int(ref)]
    return None


def _quiet_expand(word: str, env: Mapping[str, str], escape: str) -> str:
    try:
        return expand_word(word, env, escape)
    except ExpansionError:
        return word


def dependencies(
    plan: Plan,
    stage: Stage,
    meta_env: Mapping[str, str],
    escape: str,
    build_args: Mapping[str, str] | None = None,
) -> list[int]:
    """Stages that `stage` reads: its base, COPY --from and RUN --mount from=, as far as they
    can be known before the build. ARG and ENV of the stage are followed (an ARG takes its
    --build-arg value, else its default, else the global one); a reference still unknown
    is resolved by the builder when the step runs."""
    given = build_args or {}
    deps: set[int] = set()
    base = stage_by_ref(
        plan.stages, _quiet_expand(stage.base, meta_env, escape), stage.index, allow_index=False
    )
    if base is not None:
        deps.add(base.index)
    env: dict[str, str] = {}
    for ins in stage.commands:
        if ins.keyword in ("arg", "env"):
            _track(ins, env, meta_env, given, escape)
            continue
        refs: list[str] = []
        if ins.keyword in ("copy", "add") and ins.flag("from"):
            refs.append(ins.flag("from") or "")
        if ins.keyword == "run":
            for m in ins.flag_values("mount"):
                for part in m.split(","):
                    k, _, v = part.partition("=")
                    if k.strip() == "from":
                        refs.append(v)
        for ref in refs:
            found = stage_by_ref(plan.stages, _quiet_expand(ref, env, escape), stage.index)
            if found is not None:
                deps.add(found.index)
    return sorted(deps)


def _track(
    ins: Instruction,
    env: dict[str, str],
    meta_env: Mapping[str, str],
    given: Mapping[str, str],
    escape: str,
) -> None:
    try:
        if ins.keyword == "arg":
            for k, v in parse_arg_values(ins.rest, env, escape):
                value = given.get(k, v if v is not None else meta_env.get(k))
                if value is not None:
                    env.setdefault(k, value)
        else:
            env.update(parse_key_values(ins.rest, "ENV", env, escape))
    except InvalidArgument:
        pass


def needed_stages(
    plan: Plan,
    target: int,
    meta_env: Mapping[str, str],
    escape: str,
    build_args: Mapping[str, str] | None = None,
) -> list[int]:
    seen: set[int] = set()
    todo = [target]
    while todo:
        i = todo.pop()
        if i in seen:
            continue
        seen.add(i)
        todo.extend(dependencies(plan, plan.stages[i], meta_env, escape, build_args))
    return sorted(seen)


@dataclass
class OrderedOutput:
    """Lets stages run concurrently while the stream reads as if they ran one by one."""

    emit: Emit
    order: list[int]
    _buffers: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    _done: set[int] = field(default_factory=set)
    _cursor: int = 0

    def _live(self, stage: int) -> bool:
        return self._cursor < len(self.order) and self.order[self._cursor] == stage

    def for_stage(self, stage: int) -> Emit:
        def emit(msg: dict[str, Any]) -> None:
            if stage not in self.order or self._live(stage):
                self.emit(msg)
            else:
                self._buffers.setdefault(stage, []).append(msg)

        return emit

    def finished(self, stage: int) -> None:
        self._done.add(stage)
        while self._cursor < len(self.order) and self.order[self._cursor] in self._done:
            self._cursor += 1
            if self._cursor < len(self.order):
                nxt = self.order[self._cursor]
                for msg in self._buffers.pop(nxt, []):
                    self.emit(msg)

    def flush(self) -> None:
        for i in self.order:
            for msg in self._buffers.pop(i, []):
                self.emit(msg)
