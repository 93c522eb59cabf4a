"""Container processes as the engine runs them: runc under a per-container monitor.

One object for what the container manager asks of the runtime (engine/seams.py's
ContainerRuntime): start a process under a monitor (monitor_client.py), rejoin one after a
daemon restart, read an exit recorded meanwhile, and the runc subcommands on a running
container (runc.py).
"""

from __future__ import annotations

import builtins
import contextlib
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

from dockyard.errors import RuntimeFailure
from dockyard.runtime.cgroupwarm import AttachWarmer
from dockyard.runtime.monitor_client import (
    MonitorHandle,
    attach_monitor,
    read_exit_code,
    spawn_monitor,
)
from dockyard.runtime.monitor_protocol import LogOptions
from dockyard.runtime.runc import Runc


class RuncProcesses:
    def __init__(self, runc: Runc, warmer: AttachWarmer | None = None) -> None:
        self.runc = runc
        # runc's cgroup attach waits an RCU grace period unless one just passed: started
        # here, that wait overlaps the monitor's and runc's start (runtime/cgroupwarm.py)
        self.warmer = warmer or AttachWarmer()

    def prepare_start(self) -> None:
        self.warmer.kick()

    async def spawn(
        self,
        container_id: str,
        bundle: Path,
        state_dir: Path,
        *,
        open_stdin: bool,
        tty: bool,
        exec_process: Path | None = None,
        log: LogOptions | None = None,
        ephemeral: bool = False,
        ready: Awaitable[object] | None = None,
    ) -> MonitorHandle:
        self.warmer.kick()
        if exec_process is None and (self.runc.state_root / container_id).is_dir():
            # A stopped container of an earlier run whose monitor died before its `runc
            # delete` (the exit is reported before it): runc would refuse the ID.
            with contextlib.suppress(RuntimeFailure):
                await self.runc.delete(container_id, force=True)
        return await spawn_monitor(
            container_id=container_id,
            bundle=bundle,
            state_dir=state_dir,
            runc=self.runc,
            open_stdin=open_stdin,
            tty=tty,
            exec_process=exec_process,
            log=log,
            ephemeral=ephemeral,
            ready=ready,
        )

    async def attach(self, state_dir: Path) -> MonitorHandle:
        return await attach_monitor(state_dir)

    def exit_code(self, state_dir: Path) -> int | None:
        return read_exit_code(state_dir)

    async def kill(self, container_id: str, signal: int = 15, all: bool = False) -> None:
        await self.runc.kill(container_id, signal, all=all)

    async def pause(self, container_id: str) -> None:
        await self.runc.pause(container_id)

    async def resume(self, container_id: str) -> None:
        await self.runc.resume(container_id)

    async def update(self, container_id: str, resources: Path) -> None:
        await self.runc.update(container_id, resources)

    async def state(self, container_id: str) -> dict[str, Any] | None:
        return await self.runc.state(container_id)

    async def delete(self, container_id: str, force: bool = False) -> None:
        await self.runc.delete(container_id, force=force)

    async def ps(self, container_id: str) -> builtins.list[int]:
        return await self.runc.ps(container_id)
