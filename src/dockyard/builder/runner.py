"""Runs one build step's process in a temporary container (Docker's legacy builder model).

The container's root is an overlay of the parent image's layers under a fresh active
snapshot; the process runs through `runc run` in the foreground with Docker's default
confinement and the host network (so a step can fetch packages), none, or a user-defined network
the engine plugs a namespace of the step's into (StepNetworks); /etc/hosts, /etc/hostname and
/etc/resolv.conf are bind-mounted from a state directory, so none of them is left in the layer
(BuildKit's sandbox binds /etc/hosts and /etc/resolv.conf only, read-only).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from dockyard.errors import NotSupported
from dockyard.runtime.cgroupwarm import AttachWarmer
from dockyard.runtime.etcfiles import (
    BUILDKIT_HOSTNAME,
    write_buildkit_etc_files,
    write_etc_files,
)
from dockyard.runtime.process import process_env
from dockyard.runtime.runc import Runc
from dockyard.runtime.spec import (
    DEFAULT_SHM_SIZE,
    BindMount,
    ContainerConfig,
    TmpfsMount,
    build_spec,
    write_bundle,
)
from dockyard.runtime.users import resolve_user


@dataclass(frozen=True)
class StepProcess:
    argv: list[str]
    env: list[str]
    workdir: str
    user: str
    network: str = "host"
    binds: tuple[BindMount, ...] = field(default=())
    tmpfs: tuple[TmpfsMount, ...] = field(default=())
    privileged: bool = False
    shm_size: int = 0  # bytes; 0 keeps Docker's 64 MiB default
    extra_hosts: tuple[tuple[str, str], ...] = ()  # `--add-host` entries for /etc/hosts
    # BuildKit's executor (Semantics.run_in_buildkit_sandbox): hostname `buildkitsandbox`,
    # its own /etc/hosts, /etc/hosts and /etc/resolv.conf read-only, no /etc/hostname bind
    buildkit_sandbox: bool = False


_log = logging.getLogger("dockyard.builder")


class StepNetworks(Protocol):
    """User-defined networks for `docker build --network NAME` (the engine owns them)."""

    async def attach(self, network: str, step_id: str, netns: Path) -> tuple[str, ...]:
        """Plug a new namespace at `netns` into `network`; the DNS servers to use there."""
        ...

    async def detach(self, step_id: str, netns: Path) -> None:
        """Undo `attach` (whatever part of it was done)."""
        ...


class StepRunner:
    def __init__(
        self,
        runc: Runc,
        state_root: Path,
        networks: StepNetworks | None = None,
        warmer: AttachWarmer | None = None,
    ) -> None:
        self.runc = runc
        self.state_root = state_root
        self.networks = networks
        # runc's cgroup attach waits an RCU grace period unless one just passed: started as
        # the step begins, it overlaps the bundle and runc's start (runtime/cgroupwarm.py)
        self.warmer = warmer or AttachWarmer()

    async def run(
        self,
        container_id: str,
        rootfs: Path,
        proc: StepProcess,
        on_output: Callable[[bytes, bool], None],
    ) -> int:
        """Run `proc` in the mounted `rootfs`; stream its output as it comes, each chunk with
        whether it came from stderr (Docker marks those in the build stream); return its
        exit code."""
        self.warmer.kick()
        state_dir = self.state_root / container_id
        netns: Path | None = None
        finished = False  # `runc run` returned the process's exit code
        try:
            hostname = container_id[:12]
            network = proc.network
            dns: tuple[str, ...] = ()
            if network not in ("host", "none"):
                # a user-defined network (moby: the step container is attached to it)
                if self.networks is None:
                    raise NotSupported(f"build network {network!r}: no networks here")
                netns = state_dir / "netns"
                state_dir.mkdir(parents=True, exist_ok=True)
                dns = await self.networks.attach(network, container_id, netns)
                network = str(netns)
            if proc.buildkit_sandbox:
                hostname = BUILDKIT_HOSTNAME
                binds = write_buildkit_etc_files(
                    state_dir, network == "host", dns=dns, extra_hosts=proc.extra_hosts
                )
            else:
                binds = write_etc_files(
                    state_dir, hostname, network == "host", dns=dns, extra_hosts=proc.extra_hosts
                )
            user = resolve_user(rootfs, proc.user)
            workdir = proc.workdir or "/"
            cfg = ContainerConfig(
                rootfs=rootfs,
                args=tuple(proc.argv),
                env=tuple(process_env(proc.env, hostname, user.home)),
                cwd=workdir,
                uid=user.uid,
                gid=user.gid,
                additional_gids=user.additional_gids,
                hostname=hostname,
                network=network,
                binds=(*binds, *proc.binds),
                tmpfs=proc.tmpfs,
                privileged=proc.privileged,
                cgroups_path=f"/dockyard/{container_id}",
                shm_size=proc.shm_size or DEFAULT_SHM_SIZE,
            )
            bundle = state_dir / "bundle"
            write_bundle(bundle, build_spec(cfg))
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            readers = [
                asyncio.create_task(_pump(out_r, lambda d: on_output(d, False))),
                asyncio.create_task(_pump(err_r, lambda d: on_output(d, True))),
            ]
            try:
                code = await self.runc.run(
                    container_id, bundle, stdin=None, stdout=out_w, stderr=err_w
                )
                finished = True
            finally:
                os.close(out_w)
                os.close(err_w)
                if not finished:
                    # cancelled (the client went away): the process still holds the pipes'
                    # write ends, so kill it before waiting for the readers to see EOF
                    with contextlib.suppress(BaseException):
                        await asyncio.shield(self._destroy(container_id))
                await asyncio.gather(*readers)
            return code
        finally:
            # shielded: a cancelled build must still kill its step's container. A `runc run`
            # in the foreground that returned the exit code has destroyed its container
            # itself (runc's runner.run: destroy once the process is reaped): then the
            # `runc delete` would only start a runc to say "does not exist" (4-6 ms a RUN
            # step, measured here). Its state directory says whether anything is left.
            if not finished or _runc_knows(self.runc, container_id):
                with contextlib.suppress(BaseException):
                    await asyncio.shield(self._destroy(container_id))
            if netns is not None and self.networks is not None:
                with contextlib.suppress(BaseException):
                    await asyncio.shield(self.networks.detach(container_id, netns))
            shutil.rmtree(state_dir, ignore_errors=True)

    async def _destroy(self, container_id: str) -> None:
        """Kill and delete a step's container; errors are logged, not raised. `runc delete
        --force` first; should it fail (runc refused, a state in flux under load), SIGKILL
        every process in the container and delete again, and say so in the daemon's log, so
        a cancelled step cannot run on unseen."""
        try:
            await self.runc.delete(container_id, force=True)
            return
        except Exception as exc:
            first = exc
        if not _runc_knows(self.runc, container_id):
            return  # gone meanwhile (its `runc run` destroyed it)
        _log.warning("runc delete --force of step %s failed (%s): killing it", container_id, first)
        try:
            await self.runc.kill(container_id, 9, all=True)
        except Exception as exc:
            _log.warning("runc kill of step %s failed: %s", container_id, exc)
        try:
            await self.runc.delete(container_id, force=True)
        except Exception as exc:
            _log.warning("step %s may be left running: runc delete failed: %s", container_id, exc)


def _runc_knows(runc: Runc, container_id: str) -> bool:
    """Whether runc still holds state for the container: `<--root>/<id>`, the directory
    runc's libcontainer keeps each container's state.json in until it is destroyed."""
    return os.path.lexists(runc.state_root / container_id)


async def _pump(fd: int, on_output: Callable[[bytes], None]) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", buffering=0)
    )
    try:
        while chunk := await reader.read(65536):
            on_output(chunk)
    finally:
        transport.close()
