"""One handler per instruction, and the table that picks it (moby's dispatchers.go shape).

A handler prepares its instruction as a `Step` for the executor (executor.py) and returns the
stage's next state; config-only instructions are in metadata.py, RUN in run.py, COPY and
ADD in copystep.py. FROM starts a stage and is the stage walker's (builder.py).
"""

from __future__ import annotations

import asyncio
import os
import posixpath
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from dockyard.builder import metadata
from dockyard.builder.copystep import dispatch_copy
from dockyard.builder.executor import Step
from dockyard.builder.progress import StepInfo
from dockyard.builder.run import dispatch_run
from dockyard.builder.state import StageState
from dockyard.builder.stepcontext import Dispatch, config_step
from dockyard.diff.fsutil import mkdir_in_root, resolve_in_root
from dockyard.errors import InvalidArgument, NotSupported
from dockyard.frontend import commands as c
from dockyard.frontend.commands import ArgInstruction, Instruction, WorkdirInstruction
from dockyard.frontend.expand import expand_word, parse_arg_values
from dockyard.runtime.users import resolve_user

# (each handler takes its own instruction type: the table below is what pairs them)
Handler = Callable[[Dispatch, Any, StageState, StepInfo], Awaitable[StageState]]


async def dispatch_arg(
    d: Dispatch, ins: ArgInstruction, state: StageState, info: StepInfo
) -> StageState:
    args = state.args
    overrides = set(state.arg_overrides)
    parts = []
    for k, v in parse_arg_values(ins.rest, state.expand_env(), d.escape):
        args = args.with_arg(k, v)
        parts.append(k if v is None else f"{k}={v}")
        if d.semantics.args_override_env and args.all_allowed().get(k) is not None:
            overrides.add(k)  # BuildKit's dispatchArg adds a valued arg to the step's env
    state = replace(state, args=args, arg_overrides=frozenset(overrides))
    return await config_step(d, state, info, "ARG " + " ".join(parts))


async def dispatch_workdir(
    d: Dispatch, ins: WorkdirInstruction, state: StageState, info: StepInfo
) -> StageState:
    path = expand_word(ins.path, state.expand_env(), d.escape)
    # normalizeWorkdir: an absolute path is kept as written ("/a/"), a relative one joined
    # and cleaned
    if not path:
        raise InvalidArgument("cannot normalize nothing")
    if not path.startswith("/"):
        path = posixpath.normpath(posixpath.join("/", state.workdir, path))
    owner = str(state.config.get("User") or "") if d.semantics.workdir_owned_by_user else ""

    async def work(rootfs: Path, _container: str) -> None:
        await asyncio.to_thread(_make_workdir, rootfs, path, owner)

    history = d.semantics.workdir_history(state.shell, path)
    config = state.with_config(WorkingDir=path)
    # moby dispatchWorkdir runs its step container with withCmdCommentString: the shell and
    # one "#(nop) WORKDIR /w" word (a step container kept with rm=false shows that Cmd)
    command = (*state.shell, f"#(nop) WORKDIR {path}")
    step = Step(info, history, history, config=config, command=command)
    if d.semantics.workdir_is_step(path):
        step = replace(step, work=work)
    return await d.executor.execute(state, step)


def _make_workdir(rootfs: Path, path: str, owner: str) -> None:
    """The directory, with its missing parents; those owned by `owner` (a USER) when given."""
    parts = [p for p in path.split("/") if p]
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    missing = [p for p in prefixes if not resolve_in_root(rootfs, p).exists()] if owner else []
    mkdir_in_root(rootfs, path)
    if missing:
        user = resolve_user(rootfs, owner)
        name, _, group = owner.partition(":")
        # BuildKit's readUser: a user given by number has that number as its group too
        gid = user.uid if name.isdigit() and not group else user.gid
        for rel in missing:
            os.lchown(resolve_in_root(rootfs, rel), user.uid, gid)


HANDLERS: dict[type[Instruction], Handler] = {
    c.RunInstruction: dispatch_run,
    c.CopyInstruction: dispatch_copy,
    c.AddInstruction: dispatch_copy,
    c.WorkdirInstruction: dispatch_workdir,
    c.ArgInstruction: dispatch_arg,
    c.EnvInstruction: metadata.dispatch_env,
    c.LabelInstruction: metadata.dispatch_label,
    c.MaintainerInstruction: metadata.dispatch_maintainer,
    c.ExposeInstruction: metadata.dispatch_expose,
    c.CmdInstruction: metadata.dispatch_cmd,
    c.EntrypointInstruction: metadata.dispatch_entrypoint,
    c.UserInstruction: metadata.dispatch_user,
    c.VolumeInstruction: metadata.dispatch_volume,
    c.ShellInstruction: metadata.dispatch_shell,
    c.StopsignalInstruction: metadata.dispatch_stopsignal,
    c.HealthcheckInstruction: metadata.dispatch_healthcheck,
    c.OnbuildInstruction: metadata.dispatch_onbuild,
}


async def dispatch(d: Dispatch, ins: Instruction, state: StageState, info: StepInfo) -> StageState:
    handler = HANDLERS.get(type(ins))
    if handler is None:
        raise NotSupported(f"{ins.keyword.upper()} is not supported by dockyard yet")
    return await handler(d, ins, state, info)
