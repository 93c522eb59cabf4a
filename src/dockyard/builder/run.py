"""RUN: the command in a temporary container on the step's root (runner.StepRunner).

The cache key sees the command as the history writes it (`|N K=V` for the build args it gets,
prependEnvOnCmd), the mounts, the effective network, the security mode and the digests of
what bind mounts show the step (BuildKit keys on those too). Cache mounts, secrets and ssh
agents are not inputs: their contents change nothing the key promises.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from dockyard.builder.copy import combined_digest, file_digests, resolve_sources
from dockyard.builder.executor import Step
from dockyard.builder.kept import StepCommandFailed
from dockyard.builder.mounts import (
    MountSpec,
    check_agent_socket,
    missing_mount_points,
    number_ssh_targets,
    parse_mount,
    remove_stubs,
)
from dockyard.builder.progress import StepInfo
from dockyard.builder.runner import StepProcess
from dockyard.builder.state import StageState, effective_network
from dockyard.builder.stepcontext import Dispatch
from dockyard.diff.fsutil import resolve_in_root
from dockyard.errors import BuildFailure, NotSupported
from dockyard.frontend.commands import RunInstruction
from dockyard.frontend.expand import expand_word
from dockyard.runtime.spec import BindMount, TmpfsMount


def run_argv(ins: RunInstruction, shell: list[str]) -> list[str]:
    """The process RUN starts: exec form as given, shell form under the config's SHELL."""
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
    return [*shell, cmd]


def shebang_script(ins: RunInstruction, argv: list[str]) -> tuple[str, str] | None:
    """A RUN that is one heredoc starting with `#!` runs as that script (BuildKit)."""
    if ins.json_form or len(ins.heredocs) != 1:
        return None
    h = ins.heredocs[0]
    if h.body.startswith("#!") and argv[-1] == h.body:
        return h.name, h.body
    return None


@dataclass(frozen=True)
class _Run:
    """A RUN as expanded for this stage: what the process gets and what its key sees."""

    argv: list[str]
    env: list[str]  # the config's, then the build args the step sees
    mounts: list[MountSpec]
    network: str  # effective: "host" or "none"
    privileged: bool
    script: tuple[str, str] | None  # (name, body) of a `#!` heredoc run as the command


async def dispatch_run(
    d: Dispatch, ins: RunInstruction, state: StageState, info: StepInfo
) -> StageState:
    argv = run_argv(ins, state.shell)
    script = shebang_script(ins, argv)
    if script is not None:
        argv = [f"/dev/pipes/{script[0]}"]
    used = state.build_args_seen()
    env = state.expand_env()
    history = d.semantics.run_history(argv, d.semantics.run_arg_prefix(state.args, used, env))
    mounts = [parse_mount(expand_word(m, env, d.escape), state.workdir) for m in ins.mounts]
    if ins.security == "insecure" and not d.opts.allow_insecure:
        raise BuildFailure(
            "RUN --security=insecure needs the security.insecure entitlement, which this "
            "build does not allow"
        )
    if ins.devices:
        raise NotSupported("RUN --device is not supported by dockyard")
    run = _Run(
        argv,
        state.step_env(),
        number_ssh_targets(mounts),
        effective_network(ins.network or d.opts.network),
        ins.security == "insecure",
        script,
    )
    options = {
        "mounts": json.dumps([m.describe() for m in run.mounts]),
        "network": run.network,
        "security": ins.security,
        "script": json.dumps(script),
    }

    async def work(rootfs: Path, container: str) -> None:
        await _run_in(d, run, state, info, rootfs, container)

    bound = await _bound_digests(d, run.mounts)
    step = Step(
        info,
        history,
        history,
        options=options,
        files=bound,
        work=work,
        sandbox_init=d.semantics.run_in_buildkit_sandbox,
        command=run.argv,
        starts=True,
    )
    return await d.executor.execute(state, step)


async def _run_in(
    d: Dispatch, run: _Run, state: StageState, info: StepInfo, rootfs: Path, container: str
) -> None:
    """The RUN's process in the mounted `rootfs`, with its mounts; then its stubs go."""
    async with contextlib.AsyncExitStack() as stack:
        binds, tmpfs, mount_env = await _step_mounts(d, stack, run.mounts)
        if "SSH_AUTH_SOCK" in state.env:
            # BuildKit's ExecOp keeps an SSH_AUTH_SOCK the image already sets.
            mount_env = [e for e in mount_env if not e.startswith("SSH_AUTH_SOCK=")]
        if run.script is not None:
            binds.append(_script_bind(stack, d.scratch, *run.script))
        targets = [bm.destination for bm in binds] + [t.destination for t in tmpfs]
        stubs = missing_mount_points(rootfs, targets)
        if not d.semantics.run_keeps_volume_writes:
            binds.extend(await _anonymous_volumes(stack, d.scratch, rootfs, state))
        proc = StepProcess(
            argv=run.argv,
            env=[*run.env, *mount_env],
            workdir=state.workdir,
            user=str(state.config.get("User") or ""),
            network=run.network,
            binds=tuple(binds),
            tmpfs=tuple(tmpfs),
            privileged=run.privileged,
            extra_hosts=tuple(d.opts.extra_hosts),
            shm_size=d.opts.shm_size,
            buildkit_sandbox=d.semantics.run_in_buildkit_sandbox,
        )
        code = await d.runner.run(
            container, rootfs, proc, lambda data, err: d.progress.step_log(info, data, err)
        )
        if stubs:  # most RUNs bind nothing new: no worker thread's wake-up to wait for
            await asyncio.to_thread(remove_stubs, rootfs, stubs, targets)
    if code != 0:
        raise StepCommandFailed(
            f"The command '{' '.join(run.argv)}' returned a non-zero code: {code}", code
        )


async def _bound_digests(d: Dispatch, mounts: list[MountSpec]) -> dict[str, str]:
    """What bind mounts show the step is an input, like COPY's sources (BuildKit keys on it)."""
    bound: dict[str, str] = {}
    for m in mounts:
        if m.type != "bind":
            continue
        if m.from_:
            diff_ids = await d.source_layers(m.from_)
            bound[f"<from {m.from_}>"] = combined_digest(
                {str(i): x for i, x in enumerate(diff_ids)}
            )
        else:
            srcs = await asyncio.to_thread(
                resolve_sources, d.context, [m.source or "."], "RUN --mount"
            )
            bound.update(await asyncio.to_thread(file_digests, d.context, srcs))
    return bound


def _script_bind(
    stack: contextlib.ExitStack | contextlib.AsyncExitStack, scratch: Path, name: str, body: str
) -> BindMount:
    pipes = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=scratch)))
    script = pipes / name
    script.write_text(body)
    os.chmod(script, 0o755)
    return BindMount(pipes, "/dev/pipes", readonly=True)


async def _anonymous_volumes(
    stack: contextlib.AsyncExitStack, scratch: Path, rootfs: Path, state: StageState
) -> list[BindMount]:
    """Legacy builder: a RUN after VOLUME gets an anonymous volume there (seeded with the
    image's content), so what it writes inside is discarded while the mount point itself
    stays in the layer (measured on 20.10)."""
    out: list[BindMount] = []
    for volume in sorted(state.config.get("Volumes") or {}):
        anon = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=scratch)))
        await asyncio.to_thread(_seed_volume, rootfs, volume, anon / "v")
        out.append(BindMount(anon / "v", volume))
    return out


def _seed_volume(rootfs: Path, volume: str, target: Path) -> None:
    src = resolve_in_root(rootfs, volume)
    if src.is_dir():
        shutil.copytree(src, target, symlinks=True)
        st = os.lstat(src)
        os.chown(target, st.st_uid, st.st_gid)
    else:
        target.mkdir(mode=0o755)


async def _step_mounts(
    d: Dispatch, stack: contextlib.AsyncExitStack, specs: list[MountSpec]
) -> tuple[list[BindMount], list[TmpfsMount], list[str]]:
    """The binds, tmpfs mounts and environment of a RUN's `--mount`s, held by `stack`."""
    binds: list[BindMount] = []
    tmpfs: list[TmpfsMount] = []
    env: list[str] = []
    for m in specs:
        if m.type == "cache":
            binds.append(await _cache_mount(d, stack, m))
        elif m.type == "tmpfs":
            opts = ("size=" + m.size,) if m.size else ()
            tmpfs.append(TmpfsMount(m.target, ("exec", *opts)))
        elif m.type == "bind":
            binds.append(await _bind_mount(d, stack, m))
        elif m.type == "secret":
            binds.extend(await _secret_mount(d, stack, m, env))
        elif m.type == "ssh":
            binds.extend(_ssh_mount(d, m, env))
    return binds, tmpfs, env


async def _cache_mount(d: Dispatch, stack: contextlib.AsyncExitStack, m: MountSpec) -> BindMount:
    async def seed(directory: Path) -> None:
        # from=: the new cache starts as a copy of that stage's/image's path
        async with d.rootfs.image_tree(await d.source_layers(m.from_)) as root:
            src = resolve_in_root(root, m.source or "/")
            if src.is_dir():
                await asyncio.to_thread(
                    shutil.copytree, src, directory, symlinks=True, dirs_exist_ok=True
                )

    path = await d.caches.enter(stack, m, seed if m.from_ else None)
    return BindMount(path, m.target, readonly=m.readonly)


async def _bind_mount(d: Dispatch, stack: contextlib.AsyncExitStack, m: MountSpec) -> BindMount:
    if m.from_:
        root = await stack.enter_async_context(d.rootfs.image_tree(await d.source_layers(m.from_)))
    else:
        root = d.context.root
    src = resolve_in_root(root, m.source or "/")
    if not src.exists():
        raise BuildFailure(f"failed to compute cache key: {m.source or '/'} not found")
    if not m.readonly:
        # rw bind mounts get a scratch copy: writes never reach the source.
        copy = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=d.scratch))) / "src"
        if src.is_dir():
            await asyncio.to_thread(shutil.copytree, src, copy, symlinks=True)
        else:
            await asyncio.to_thread(shutil.copy2, src, copy)
        src = copy
    return BindMount(src, m.target, readonly=m.readonly)


async def _secret_mount(
    d: Dispatch, stack: contextlib.AsyncExitStack, m: MountSpec, env: list[str]
) -> list[BindMount]:
    data = d.opts.secrets.get(m.id)
    if data is None:
        if m.required:
            raise BuildFailure(
                f"secret {m.id} is required but was not given: pass "
                f"`dockyard build --secret id={m.id},src=PATH` (the docker CLI's "
                "legacy builder cannot send secrets)"
            )
        return []
    if m.env:
        env.append(f"{m.env}={data.decode(errors='surrogateescape')}")
    if not m.target:
        return []
    # A private directory per step, removed by the exit stack (also on failure).
    src = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=d.scratch))) / "secret"
    await asyncio.to_thread(_write_secret, src, data, m)
    return [BindMount(src, m.target, readonly=True)]


def _write_secret(path: Path, data: bytes, spec: MountSpec) -> None:
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
        f.write(data)
        # BuildKit's secret mount defaults: mode 0400, owner 0:0.
        os.fchown(f.fileno(), spec.uid or 0, spec.gid or 0)
        os.fchmod(f.fileno(), spec.mode if spec.mode is not None else 0o400)


def _ssh_mount(d: Dispatch, m: MountSpec, env: list[str]) -> list[BindMount]:
    sock = d.opts.ssh.get(m.id)
    if sock is None:
        if m.required:
            raise BuildFailure(
                f"ssh agent {m.id} is required but was not given: pass "
                f"`dockyard build --ssh {m.id}[=SOCKET]`"
            )
        return []
    check_agent_socket(sock)
    if not any(e.startswith("SSH_AUTH_SOCK=") for e in env):
        # BuildKit points SSH_AUTH_SOCK at the RUN's first ssh mount.
        env.append(f"SSH_AUTH_SOCK={m.target}")
    return [BindMount(Path(sock), m.target)]
