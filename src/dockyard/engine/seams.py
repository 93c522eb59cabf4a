"""What the container manager needs of the layers below it, as small protocols.

The manager (containers.py and its helper modules) talks to a process runtime, a snapshotter
and networking only through these, so its rules (states, restart policy and back-off,
AutoRemove, what a failed start undoes, recovery) run on in-memory fakes in unit tests
without root (tests/engine/fakes.py), as they run on the real ones in the daemon:
runtime/processes.py's RuncProcesses (runc under a per-container monitor),
snapshot/overlay.py's OverlaySnapshotter and engine/network.py's NetworkManager.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any, Protocol

from dockyard.engine.endpoint_config import EndpointRequest
from dockyard.engine.network import Endpoint
from dockyard.runtime.monitor_protocol import LogOptions


class ProcessHandle(Protocol):
    """One running container process (or exec) as its monitor serves it."""

    async def started(self) -> int:
        """Its pid once it runs; ContainerStartError when it could not start."""
        ...

    def output(self) -> AsyncIterator[tuple[int, bytes]]:
        """Its output, for one consumer; past 1 MiB unread the process is held (fanout.py)."""
        ...

    def discard_output(self) -> None:
        """Nobody reads the output any more (a detached exec, a client gone): drop it."""
        ...

    async def write_stdin(self, data: bytes) -> None: ...

    async def close_stdin(self) -> None: ...

    async def resize(self, height: int, width: int) -> None: ...

    async def wait(self) -> int:
        """Its exit code (128+N when killed by signal N)."""
        ...

    async def closed(self) -> None:
        """Until its monitor is gone: the exit is reported first, the runtime's own clean-up
        (`runc delete`) comes after it."""
        ...

    async def detach(self) -> None:
        """Let go of it; it carries on without us (the daemon stops)."""
        ...


class ContainerRuntime(Protocol):
    def prepare_start(self) -> None:
        """A start may come soon (a create, a start request): begin, in the background,
        what the kernel would make the process's start wait for (runtime/cgroupwarm.py).
        Never blocks, never fails."""
        ...

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
    ) -> ProcessHandle:
        """Create and start the container in `bundle` (or, with `exec_process`, a process
        in the running container); its state (exit code, log) goes to `state_dir`.
        `ephemeral`: the container is removed at its exit (--rm), so its exit record need
        not survive a power loss (not fsynced). `ready`: what must be done before the
        process may start (the bundle being written); the monitor starts meanwhile."""
        ...

    async def attach(self, state_dir: Path) -> ProcessHandle:
        """Rejoin a process that outlived the daemon; RuntimeFailure when there is none."""
        ...

    def exit_code(self, state_dir: Path) -> int | None:
        """The exit code recorded while nobody was attached, if any."""
        ...

    async def kill(self, container_id: str, signal: int = 15, all: bool = False) -> None: ...

    async def pause(self, container_id: str) -> None: ...

    async def resume(self, container_id: str) -> None: ...

    async def update(self, container_id: str, resources: Path) -> None: ...

    async def state(self, container_id: str) -> dict[str, Any] | None: ...

    async def delete(self, container_id: str, force: bool = False) -> None: ...

    async def ps(self, container_id: str) -> builtins.list[int]: ...


class Snapshots(Protocol):
    def mount(
        self,
        target: Path,
        lowers: list[int],
        upper: int | None,
        *,
        with_init: bool = True,
        volatile: bool = False,
    ) -> None:
        """`volatile`: an upper dir thrown away after this one mount (a --rm container's),
        never synced (snapshot/overlay.py)."""
        ...

    def unmount(self, target: Path) -> None: ...

    def fs(self, snapshot: int | str) -> Path: ...


class Networking(Protocol):
    def get(self, name_or_id: str) -> dict[str, Any]: ...

    def create_netns(self, path: Path) -> None: ...

    def delete_netns(self, path: Path) -> None: ...

    def list(self) -> builtins.list[dict[str, Any]]: ...

    def event(self, net: dict[str, Any], action: str, **extra: str) -> None:
        """Publish a network event (connect, disconnect, destroy) as dockerd words it."""
        ...

    def connect(
        self,
        net_id: str,
        cid: str,
        netns: str,
        ifname: str,
        default_route: bool,
        req: EndpointRequest | None = None,
    ) -> Endpoint: ...

    def disconnect(self, ep: Endpoint, cid: str, netns: str | None) -> None: ...

    async def publish(
        self,
        cid: str,
        target_ip: str,
        bindings: builtins.list[tuple[int, str, str, int]],
        pid_file: Path,
        watch_pid: int = 0,
    ) -> builtins.list[tuple[int, str, str, int]]: ...

    def unpublish(self, cid: str, pid_file: Path) -> None: ...

    def proxy_running(self, cid: str, pid_file: Path) -> bool: ...

    def remove(self, name_or_id: str, users: builtins.list[str]) -> None: ...

    def prune(self, in_use: set[str]) -> builtins.list[str]: ...

    def teardown_unused(self, in_use: set[str]) -> None: ...

    def prune_allocations(self, running: set[str]) -> None: ...
