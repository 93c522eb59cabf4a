"""What an instruction's handler may use, and the config-only step they share.

A handler gets a `Dispatch` (the build's options and context, the executor, the stage's
way to other stages' layers), the instruction, the stage state and its `StepInfo`, and returns
the next state. It never writes progress text and never changes the state it was given.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from dockyard.builder.context import BuildContext
from dockyard.builder.executor import Step, StepExecutor
from dockyard.builder.mounts import CacheMounts
from dockyard.builder.progress import Progress, StepInfo
from dockyard.builder.rootfs import Rootfs
from dockyard.builder.runner import StepProcess
from dockyard.builder.semantics import Semantics
from dockyard.builder.state import BuildOptions, StageState, shell_of


class Runner(Protocol):
    """Runs a RUN step's process in a mounted root (runner.StepRunner: `runc run`)."""

    async def run(
        self,
        container_id: str,
        rootfs: Path,
        proc: StepProcess,
        on_output: Callable[[bytes, bool], None],
    ) -> int:
        """`on_output(chunk, from_stderr)` sees the process's output as it comes."""


@dataclass(frozen=True)
class Dispatch:
    opts: BuildOptions
    escape: str
    context: BuildContext
    executor: StepExecutor
    rootfs: Rootfs
    runner: Runner
    caches: CacheMounts
    scratch: Path  # for a step's temporary files (heredocs, downloads, secrets)
    # The layers of what `--from=ref` names (a stage before this one, or an image).
    source_layers: Callable[[str], Awaitable[list[str]]]

    @property
    def semantics(self) -> Semantics:
        return self.opts.semantics

    @property
    def progress(self) -> Progress:
        return self.executor.progress


async def config_step(
    d: Dispatch,
    state: StageState,
    info: StepInfo,
    comment: str,
    config: Mapping[str, Any] | None = None,
    author: str | None = None,
) -> StageState:
    """Commit a config-only image, as the legacy builder's `commit` of a metadata step. Its
    history names the shell of the new config (`SHELL` shows its own shell, as Docker)."""
    shell = shell_of(state.config if config is None else config)
    step = Step(
        info,
        instruction=comment,
        history=d.semantics.config_history(shell, comment),
        config=config,
        author=author,
        command=(*shell, "#(nop) ", comment),  # moby withCmdComment
    )
    return await d.executor.execute(state, step)
