"""The legacy builder's step containers that outlive the build (dockerd's `rm` and `forcerm`).

dockerd 20.10's legacy builder runs every RUN and config-only step in a container of the
engine's and removes it after the step with `rm` (the default): a RUN whose command fails
keeps its container (Exited (N), with what the command wrote), unless `forcerm`; with
`rm=false` every step's container stays (a RUN's Exited (0), a config step's Created). COPY
and ADD show none (measured on 20.10: `docker ps -a` after `build`, `--force-rm`,
`--rm=false`; moby builder/dockerfile/containerbackend.go RemoveAll). BuildKit runs no
containers of the engine's, so under its semantics nothing stays.

The builder hands such a step to the engine as a `KeptStep`; the engine makes it a container
like any other (`ps -a`, `rm`, `start`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from dockyard.errors import BuildFailure


class StepCommandFailed(BuildFailure):
    """A RUN's command exited non-zero (the legacy builder keeps its container for that)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class KeptStep:
    """A step's container as the engine keeps it."""

    id: str  # the ID `Running in` showed
    image_id: str  # the image the step ran on
    config: Mapping[str, Any]  # the step's container config (Cmd: its command)
    network_mode: str  # the build's --network
    snapshot: int | None  # the active snapshot holding its writes; None: it never ran
    exit_code: int | None  # None: never started (a config-only step: Created)
    started: str
    finished: str


class StepContainers(Protocol):
    """The engine's containers, as the builder leaves steps' containers to them."""

    def keep(self, step: KeptStep) -> None: ...


@dataclass(frozen=True)
class KeepPolicy:
    """Which steps' containers stay: a failed RUN's (`rm` without `forcerm`), every one's
    (`rm=false`), or none (`forcerm`, BuildKit)."""

    failed: bool = False
    done: bool = False

    @staticmethod
    def of(step_containers: bool, rm: bool, force_rm: bool) -> KeepPolicy:
        if not step_containers or force_rm:
            return KeepPolicy()
        return KeepPolicy(failed=True, done=not rm)


def step_config(config: Mapping[str, Any], command: Sequence[str]) -> dict[str, Any]:
    """The container config a step runs with: its image's, with the step's command."""
    out = dict(config)
    out["Cmd"] = list(command)
    out["Entrypoint"] = []  # cleared, as the API's create takes it (the step runs Cmd alone)
    return out
