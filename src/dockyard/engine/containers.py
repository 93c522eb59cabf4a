"""Containers: records in metadata, a writable snapshot each, and a monitor while running.

Lifecycle (Docker's states): create → created (HostConfig checked first: bad input leaves
nothing behind); start → running (overlay mounted, volumes and binds resolved, network
namespace plugged into its networks, bundle written, monitor spawned, runc run --detach,
ports published); pause ⇄ paused; exit → exited (ports, endpoints, namespace and rootfs
released, exit code recorded; the restart policy may start it again; `--rm` removes it);
remove → gone (snapshot, anonymous volumes with `-v`, state dir and record deleted).

Output is fanned out in the daemon from the monitor's one stream to every attached client;
clients that attach before start (the docker CLI always does) get everything from the start.
Containers outlive the daemon: `recover()` (Engine.start, at daemon start) reattaches to
the monitors of running containers, records the exits that happened while no daemon ran,
brings published ports back and applies restart policies.

The record of each container is typed (engine/container_record.py, its State in
container_state.py) and `write()` is its one writer: it reads the record, applies a change
and stores it under the container's lock. Health (health.py) and network attach
(network_attach.py) change records through it too. A removed container leaves nothing here.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import dataclasses
import json
import logging
import os
import signal as signal_module
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dockyard.content.trash import Trash
from dockyard.engine import links
from dockyard.engine.container_create import new_container
from dockyard.engine.container_logs import parse_time
from dockyard.engine.container_record import (
    Container,
    HostConfig,
    RuntimeFacts,
)
from dockyard.engine.container_records import ContainerRecords
from dockyard.engine.container_setup import PROXY_PID, publish_ports, rewrite_hosts
from dockyard.engine.container_state import Health, State
from dockyard.engine.dns import DnsResponders
from dockyard.engine.events import EventBus
from dockyard.engine.fanout import Fanout, Subscriber
from dockyard.engine.hostconfig import RunOptions, updated_host_config
from dockyard.engine.links import linked_address
from dockyard.engine.names import valid_name
from dockyard.engine.seams import ContainerRuntime, Networking, ProcessHandle, Snapshots
from dockyard.engine.volumes import VolumeStore
from dockyard.errors import Conflict, InvalidArgument, NotFound, RuntimeFailure
from dockyard.image.config import now_rfc3339
from dockyard.metadata.store import MetadataStore
from dockyard.runtime.runc import ContainerStartError
from dockyard.runtime.spec import (
    ContainerConfig,
    build_spec,
    write_bundle,
)
from dockyard.snapshot.mountinfo import mounts_under
from dockyard.statefile import write_json
from dockyard.store.images import ImageStore
from dockyard.store.layers import LayerStore

if TYPE_CHECKING:
    from dockyard.builder.kept import KeptStep
    from dockyard.engine.exec import ExecManager

log = logging.getLogger("dockyard.containers")


def parse_signal(value: str | int | None, default: int = signal_module.SIGKILL) -> int:
    if value in (None, ""):
        return default
    if isinstance(value, int) or str(value).isdigit():
        return int(value)
    name = str(value).upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    try:
        return int(signal_module.Signals[name])
    except KeyError:
        raise InvalidArgument(f"Invalid signal: {value}") from None


@dataclass
class LiveContainer:
    """In-memory state of a container the daemon is serving (output fan-out, waiters)."""

    id: str
    output: Fanout = field(default_factory=Fanout)  # to the attached clients
    monitor: ProcessHandle | None = None
    started: asyncio.Event = field(default_factory=asyncio.Event)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    removed: asyncio.Event = field(default_factory=asyncio.Event)
    exit_generation: int = 0
    stdin_queue: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)
    stop_requested: bool = False
    # Set for the stop of a `restart`: the exit it causes does not auto-remove a --rm
    # container (moby daemon/restart.go clears AutoRemove around that stop and restores it).
    restarting_by_user: bool = False
    restart_task: asyncio.Task[None] | None = None
    health_task: asyncio.Task[None] | None = None
    # Held across a whole start (its steps await); record writes take `record_lock` instead,
    # which is never held across an await, so a start's own writes cannot deadlock on it.
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    last_exit: int = 0  # for `wait condition=removed`, answered after the record is gone
    record_lock: threading.Lock = field(default_factory=threading.Lock)
    # The endpoints of a start in progress, from the moment its process can run until the
    # record says running: its own first lookups (and its peers') must already resolve, as
    # dockerd's embedded DNS knows an endpoint from sandbox join, before the task starts.
    starting: RuntimeFacts | None = None
    # The monitor of the latest run, until it is gone: it reports the exit before its `runc
    # delete` of the container's ID, so a start again waits for it (runtime/monitor.py).
    last_monitor: ProcessHandle | None = None


class ContainerManager:
    def __init__(
        self,
        root: Path,
        meta: MetadataStore,
        images: ImageStore,
        layers: LayerStore,
        snapshots: Snapshots,
        runtime: ContainerRuntime,
        *,
        networks: Networking,
        volumes: VolumeStore,
        dns: DnsResponders,
        events: EventBus | None = None,
        restart_sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.root = root
        self.events = events or EventBus()
        root.mkdir(parents=True, exist_ok=True)
        self.meta = meta
        self.images = images
        self.layers = layers
        self.snapshots = snapshots
        self.runtime = runtime
        # How a restart waits out its back-off (a test's fake records it instead).
        self.restart_sleep = restart_sleep
        daemon_root = root.absolute().parent
        self.daemon_root = daemon_root
        # Owned by the Engine, handed in: they outlive any one container.
        self.networks = networks
        self.volumes = volumes
        self.dns = dns
        self.live: dict[str, LiveContainer] = {}
        # Removed containers' state directories, deleted in the background (content/trash.py).
        self.trash = Trash(daemon_root / "trash" / "containers")
        # The stored records, parsed once; write(), create(), keep() and remove() keep it
        # what the database holds (container_records.py).
        self.records = ContainerRecords(meta.containers())
        self._tasks: set[asyncio.Task[None]] = set()
        self._orphan_lock = threading.Lock()  # writes to a container with no live entry
        self._closing = False
        from dockyard.engine.container_views import ListEntries

        self._execs: ExecManager | None = None
        self._list_entries = ListEntries()

    @property
    def execs(self) -> ExecManager:
        """`docker exec`'s records (engine/exec.py), made at the first exec: an idle daemon
        does not load that module."""
        if self._execs is None:
            from dockyard.engine.exec import ExecManager

            self._execs = ExecManager(self)
        return self._execs

    def event(self, rec: Container, action: str, **extra: str) -> None:
        """Publish a container event with dockerd's attributes (daemon/events.go): the
        container's labels, the image as it was named, the name, then the action's own."""
        attrs = {str(k): str(v) for k, v in rec.config.labels.items()}
        attrs.update(extra)
        attrs["image"] = rec.image_name or rec.image_id
        attrs["name"] = rec.name
        self.events.publish("container", action, rec.id, attrs)

    # lookup ------------------------------------------------------------------------------
    def get(self, cid: str) -> Container | None:
        return self.records.get(cid)

    def all(self) -> builtins.list[Container]:
        """Every container, newest first."""
        return self.records.all()

    def resolve(self, name_or_id: str) -> Container:
        return self.records.find(name_or_id)

    def _live(self, cid: str) -> LiveContainer:
        if cid not in self.live:
            self.live[cid] = LiveContainer(cid)
        return self.live[cid]

    # the one writer ----------------------------------------------------------------------
    def write(self, cid: str, change: Callable[[Container], None]) -> Container | None:
        """Every change of a stored container: under the container's lock, read the record,
        let `change` edit it (its State through the named transitions), store it. A
        container that is gone stays gone (None)."""
        live = self.live.get(cid)
        lock = live.record_lock if live is not None else self._orphan_lock
        with lock:
            rec = self.get(cid)
            if rec is None:
                return None
            change(rec)
            self._store(rec)
            return rec

    def _store(self, rec: Container) -> None:
        """The database row, then the in-memory table from it: the only way a record is
        stored, so the two never disagree (container_records.py)."""
        self.meta.put_container(rec.to_row())
        self.records.put(rec)

    def set_health(self, cid: str, health: Health) -> None:
        """A probe's verdict (health.py); only a container with a process has one."""

        def change(c: Container) -> None:
            if c.state.alive:
                c.state.set_health(health)

        self.write(cid, change)

    def _forget(self, cid: str) -> None:
        """A removed container leaves nothing in memory."""
        self.live.pop(cid, None)

    def users_of_image(self, image_id: str) -> list[tuple[str, bool]]:
        return [(r.id, r.state.alive) for r in self.all() if r.image_id == image_id]

    def volume_users(self, name: str) -> list[str]:
        return [r.id for r in self.all() if any(m.volume == name for m in r.mounts)]

    @staticmethod
    def networks_of(rec: Container, *, attached_only: bool) -> set[str]:
        """The one meaning of "a container uses a network": its process is plugged into it
        (the endpoints of a running container), or, unless `attached_only`, the container
        asked for it at create or connect."""
        nets = set(rec.runtime.network_ids) if rec.state.alive else set()
        if not attached_only:
            nets |= set(rec.networks)
        return nets

    def networks_in_use(self, *, attached_only: bool) -> set[str]:
        return {n for r in self.all() for n in self.networks_of(r, attached_only=attached_only)}

    def network_users(self, net_id: str) -> list[str]:
        """Containers plugged into the network: `network rm` refuses while there are any."""
        return [r.id for r in self.all() if net_id in self.networks_of(r, attached_only=True)]

    def dns_lookup(self, net_id: str, name: str, asker: str = "") -> str | None:
        """The address `name` has on the network for the container at `asker`: its own links
        first (engine/links.py), then names, short IDs, hostnames and aliases."""
        answering = self._answering()
        linked = linked_address(answering, net_id, name, asker)
        if linked is not None:
            return linked
        for rec, runtime in answering:
            ep = runtime.endpoints.get(net_id)
            if not ep:
                continue
            want = rec.networks.get(net_id)
            aliases = want.aliases if want is not None else ()
            names = {rec.name, rec.id[:12], rec.config.hostname, *aliases}
            if name in {n.lower() for n in names if n}:
                return ep.ip
        return None

    def _answering(self) -> list[tuple[Container, RuntimeFacts]]:
        """The containers names resolve to, with the endpoints they have: the running ones,
        and those whose start has plugged them in but not yet recorded it."""
        out = []
        for rec in self.all():
            live = self.live.get(rec.id)
            if rec.state.alive:
                out.append((rec, rec.runtime))
            elif live is not None and live.starting is not None:
                out.append((rec, live.starting))
        return out

    async def ensure_dns(self, runtime: RuntimeFacts) -> None:
        bridge = self.networks.get("bridge")["Id"]
        for net_id, ep in runtime.endpoints.items():
            if net_id != bridge:
                await self.dns.ensure(net_id, ep.gateway)

    def state_dir(self, cid: str) -> Path:
        return self.root / cid

    # create ------------------------------------------------------------------------------
    def create(self, body: dict[str, Any], name: str | None) -> tuple[str, list[str]]:
        """`docker create`: the record planned by container_create.py, stored as the
        container's first write (nothing else knows its ID yet: no lock to take)."""
        # Its snapshot is held from allocation to the record (a system check meanwhile must
        # not take it for an orphan).
        # `docker run` starts it a few ms from now: the kernel's wait for its cgroup attach
        # starts here, in the background (runtime/cgroupwarm.py)
        self.runtime.prepare_start()
        with self.meta.lease():
            record, warnings = new_container(self, body, name)
            self._store(record)
        (self.root / record.id).mkdir(mode=0o700, parents=True, exist_ok=True)  # rootperms.py
        self.event(record, "create")
        return record.id, warnings

    def keep(self, step: KeptStep) -> None:
        """A legacy build step's container that stays (builder/kept.py: a failed RUN's, or
        every step's with rm=false): a container like any other, Exited (N) with what its
        command wrote, or Created for a step that ran nothing."""
        body = {
            **step.config,
            "Image": step.image_id,
            "HostConfig": {"NetworkMode": step.network_mode},
        }
        with self.meta.lease():
            record, _ = new_container(self, body, None, cid=step.id, snapshot=step.snapshot)
            if step.exit_code is not None:
                record.state.set_running(0, step.started)
                record.state.set_stopped(step.exit_code, "", False, step.finished)
            self._store(record)
        (self.root / record.id).mkdir(mode=0o700, parents=True, exist_ok=True)  # rootperms.py
        self.event(record, "create")

    def check_name_free(self, name: str) -> None:
        if existing := self.meta.name_in_use(name):
            raise Conflict(
                f'Conflict. The container name "/{name}" is already in use by container '
                f'"{existing}". You have to remove (or rename) that container to be able to '
                "reuse that name."
            )

    # start -------------------------------------------------------------------------------
    async def start(self, name_or_id: str) -> None:
        rec = self.resolve(name_or_id)
        live = self._live(rec.id)
        try:
            async with live.lock:
                rec = self.resolve(rec.id)
                if rec.state.alive:
                    return
                await self._start_locked(rec, live)
        except Exception:
            # dockerd (daemon/start.go): an AutoRemove container that fails to start goes.
            if rec.host_config.auto_remove:
                with contextlib.suppress(Exception):
                    await self.remove(rec.id, force=True, volumes=True)
            raise

    async def _start_locked(self, rec: Container, live: LiveContainer) -> None:
        self.runtime.prepare_start()  # again: one just passed makes runc's attach quick
        live.stop_requested = False
        if live.last_monitor is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(live.last_monitor.closed(), 10)
            live.last_monitor = None
        state_dir = self.root / rec.id
        state_dir.mkdir(parents=True, exist_ok=True)
        rootfs = state_dir / "rootfs"
        cfg = rec.config
        opts = rec.host_config.options
        image_cfg = self.images.config(rec.image_id)
        chain = self.layers.chain_for(image_cfg.diff_ids)
        undo: list[Any] = []
        # A --rm container's upper dir goes with it: never synced (snapshot/overlay.py).
        volatile = rec.host_config.auto_remove
        await asyncio.to_thread(
            partial(self.snapshots.mount, volatile=volatile),
            rootfs,
            chain.lowers_top_first,
            rec.snapshot,
        )
        undo.append(lambda: self.snapshots.unmount(rootfs))
        handle: ProcessHandle | None = None
        pid = 0
        bundle = state_dir / "bundle"

        async def prepared() -> RuntimeFacts:
            runtime, spec_cfg = await self._prepare(rec, opts, rootfs, state_dir, undo)
            write_bundle(bundle, build_spec(spec_cfg))
            live.starting = runtime
            return runtime

        try:
            (state_dir / "exit.json").unlink(missing_ok=True)
            # The monitor starts while the bundle is made; it runs runc once that is done.
            preparing = asyncio.ensure_future(prepared())
            try:
                handle = await self.runtime.spawn(
                    rec.id,
                    bundle,
                    state_dir,
                    open_stdin=cfg.open_stdin,
                    tty=cfg.tty,
                    log=opts.logging,
                    # A --rm container's exit.json goes with it: not fsynced.
                    ephemeral=rec.host_config.auto_remove,
                    ready=preparing,
                )
            except BaseException:
                # What it made is on `undo` only once each step is done: let it finish.
                with contextlib.suppress(BaseException):
                    await asyncio.shield(preparing)
                raise
            runtime = preparing.result()
            pid = await handle.started()
            ports = await publish_ports(self, rec.id, runtime, opts, cfg, pid)
            runtime = dataclasses.replace(runtime, ports=ports)
        except ContainerStartError as exc:
            live.starting = None
            log.info("container %s failed to start: %s", rec.id[:12], exc)
            # moby's containerStart resets a container whose start failed, which closes its
            # streams: the attach `docker run` opened before the start ends with it.
            live.output.end()
            await self._undo(undo)
            code, message = exc.exit_code, str(exc)
            self.write(rec.id, lambda c: c.state.set_start_failed(code, message))
            raise
        except BaseException:
            live.starting = None
            live.output.end()
            if handle is not None and pid:
                # Started, but what came after failed (a published port is taken): take it
                # down again and let its monitor collect it before we release its resources.
                with contextlib.suppress(Exception):
                    await self.runtime.kill(rec.id, signal_module.SIGKILL, all=True)
                    await asyncio.wait_for(handle.wait(), 10)
            await self._undo(undo)
            raise
        live.monitor = live.last_monitor = handle
        started_at = now_rfc3339()

        def running(c: Container) -> None:
            c.runtime = runtime
            c.state.set_running(pid, started_at)

        self.write(rec.id, running)
        live.starting = None
        self.refresh_peers(runtime)
        live.started.set()
        log.info("container %s started (%s, pid %d)", rec.id[:12], rec.name.lstrip("/"), pid)
        self.event(rec, "start")
        self._spawn(self._supervise(rec.id, live, handle, rootfs))
        if cfg.has_healthcheck:
            self._start_health(rec.id, live)

    async def _undo(self, undo: list[Any]) -> None:
        for step in reversed(undo):
            try:
                await asyncio.to_thread(step)
            except Exception as e:  # keep undoing; report what could not be undone
                log.warning("cleanup after a failed start: %s", e)

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _prepare(
        self,
        rec: Container,
        opts: RunOptions,
        rootfs: Path,
        state_dir: Path,
        undo: list[Any],
    ) -> tuple[RuntimeFacts, ContainerConfig]:
        from dockyard.engine.container_setup import prepare

        return await prepare(self, rec, opts, rootfs, state_dir, undo)

    def refresh_peers(self, runtime: RuntimeFacts) -> None:
        """Rewrite /etc/hosts of every running container on the user networks touched."""
        nets = set(runtime.network_ids)
        bridge = self.networks.get("bridge")["Id"]
        nets.discard(bridge)  # the default bridge has no name resolution (Docker's rule)
        if not nets:
            return
        running = [r for r in self.all() if r.state.alive]
        for rec in running:
            if nets & rec.runtime.network_ids:
                rewrite_hosts(self, rec, running)

    # exit --------------------------------------------------------------------------------
    async def _supervise(
        self, cid: str, live: LiveContainer, handle: ProcessHandle, rootfs: Path
    ) -> None:
        pump = asyncio.create_task(self._pump_output(live, handle))
        stdin = asyncio.create_task(self._pump_stdin(live, handle))
        try:
            code = await handle.wait()
        except asyncio.CancelledError:
            pump.cancel()
            stdin.cancel()
            raise
        except Exception as exc:  # the monitor died: record what we know
            code = 255
            error = f"monitor failed: {exc}"
        else:
            error = ""
        await live.output.finish(pump)
        stdin.cancel()
        await self._finish(cid, live, code, error)

    async def _finish(self, cid: str, live: LiveContainer, code: int, error: str) -> None:
        """Release what a run held, record the exit, then restart or auto-remove."""
        if live.health_task is not None:
            live.health_task.cancel()
            live.health_task = None
        rec = self.get(cid)
        if rec is not None:
            try:
                await self._release_runtime(rec)
            except Exception as e:  # the exit must be recorded whatever: waiters hang otherwise
                log.warning("releasing the network of %s: %s", cid[:12], e, exc_info=True)
        await asyncio.to_thread(self.snapshots.unmount, self.root / cid / "rootfs")
        oom = False
        with contextlib.suppress(OSError, ValueError):
            oom = bool(json.loads((self.root / cid / "exit.json").read_text()).get("oom_killed"))
        log.info(
            "container %s exited with status %d%s%s",
            cid[:12],
            code,
            " (OOM killed)" if oom else "",
            f": {error}" if error else "",
        )
        finished_at = now_rfc3339()
        rec = self.write(cid, lambda c: c.state.set_stopped(code, error, oom, finished_at))
        if rec is not None:
            if oom:
                self.event(rec, "oom")
            self.event(rec, "die", exitCode=str(code))
        if self._execs is not None:
            self._execs.forget_container(cid)
        live.monitor = None
        live.started.clear()
        live.last_exit = code
        async with live.changed:
            live.exit_generation += 1
            live.changed.notify_all()
        if rec is None or self._closing:
            return
        if self._should_restart(rec, code, live):
            rec = self.write(cid, lambda c: c.state.set_restarting(code, error)) or rec
            live.restart_task = self._spawn(self._restart_later(cid, live, rec))
        elif rec.host_config.auto_remove and not live.restarting_by_user:
            with contextlib.suppress(NotFound):
                await self.remove(cid, force=True, volumes=True)

    async def _release_runtime(self, rec: Container) -> None:
        runtime = rec.runtime
        self.networks.unpublish(rec.id, self.root / rec.id / PROXY_PID)
        for ep in runtime.endpoints.values():
            await asyncio.to_thread(self.networks.disconnect, ep, rec.id, None)
        if runtime.netns:
            await asyncio.to_thread(self.networks.delete_netns, Path(runtime.netns))
        if runtime.endpoints:
            self.write(rec.id, _clear_runtime)
            self.refresh_peers(runtime)

    @staticmethod
    def _should_restart(rec: Container, code: int, live: LiveContainer) -> bool:
        name, retries = rec.host_config.restart_policy
        if live.stop_requested or name == "no":
            return False
        if name == "on-failure":
            return code != 0 and (retries == 0 or rec.restart_count < retries)
        return True

    async def _restart_later(self, cid: str, live: LiveContainer, rec: Container) -> None:
        await self.restart_sleep(restart_delay(rec.restart_count, rec.state))
        try:
            async with live.lock:
                # Looked at under the lock: a stop or rm that came during the back-off (or
                # while we waited for the lock) calls the restart off.
                current = self.get(cid)
                if current is None or live.stop_requested:
                    self.write(cid, lambda c: c.state.set_restart_cancelled())
                    return
                if current.state.alive:
                    return  # somebody started it meanwhile
                current = self.write(cid, _count_restart) or current
                await self._start_locked(current, live)
        except Exception as e:
            log.warning("restarting %s failed: %s", cid[:12], e, exc_info=True)
            message = str(e)
            self.write(cid, lambda c: c.state.set_start_failed(128, message))

    async def _pump_output(self, live: LiveContainer, handle: ProcessHandle) -> None:
        async for item in handle.output():
            await live.output.send(item)  # waits for the slowest client (engine/fanout.py)
        live.output.end()

    async def _pump_stdin(self, live: LiveContainer, handle: ProcessHandle) -> None:
        while True:
            data = await live.stdin_queue.get()
            if data is None:
                await handle.close_stdin()
                return
            await handle.write_stdin(data)

    # attach / wait -----------------------------------------------------------------------
    def subscribe(self, name_or_id: str) -> tuple[Container, Subscriber]:
        rec = self.resolve(name_or_id)
        live = self._live(rec.id)
        sub = live.output.join()
        self.event(rec, "attach")  # moby daemon/attach.go ContainerAttach
        if rec.state.alive and live.monitor is None:
            sub.end()  # running under another daemon instance: no stream to join
        return rec, sub

    def unsubscribe(self, cid: str, sub: Subscriber) -> None:
        live = self.live.get(cid)
        if live:
            live.output.leave(sub)
        sub.leave()

    async def resize(self, name_or_id: str, height: int, width: int) -> None:
        rec = self.resolve(name_or_id)
        live = self.live.get(rec.id)
        if not rec.state.alive or live is None or live.monitor is None:
            raise Conflict(f"Container {rec.id} is not running")
        if rec.config.tty:
            await live.monitor.resize(height, width)

    def send_stdin(self, cid: str, data: bytes | None) -> None:
        self._live(cid).stdin_queue.put_nowait(data)

    def begin_wait(self, name_or_id: str, condition: str) -> Coroutine[Any, Any, dict[str, Any]]:
        """Register a waiter now (the exit generation is taken at this call) and return what
        awaits it: the API answers the header in between, as dockerd does, so a client that
        sends `start` after the header cannot have the exit slip past its wait."""
        rec = self.resolve(name_or_id)
        live = self._live(rec.id)
        if condition not in ("next-exit", "not-running", "", "removed"):
            raise InvalidArgument(f"invalid condition: {condition!r}")
        generation = live.exit_generation
        running = rec.state.alive

        # dockerd's key order (ContainerWaitOKBody: Error, then StatusCode)
        async def waiting() -> dict[str, Any]:
            if condition == "removed":
                await live.removed.wait()
                return {"Error": None, "StatusCode": live.last_exit}
            if condition in ("not-running", "") and not running:
                return {"Error": None, "StatusCode": rec.state.exit_code}
            await self._exited_after(live, generation)
            rec2 = self.get(rec.id)
            code = rec2.state.exit_code if rec2 else live.last_exit
            return {"Error": None, "StatusCode": code}

        return waiting()

    async def wait(self, name_or_id: str, condition: str) -> dict[str, Any]:
        return await self.begin_wait(name_or_id, condition)

    # signals -----------------------------------------------------------------------------
    async def kill(self, name_or_id: str, signal: str | int | None) -> None:
        rec = self.resolve(name_or_id)
        sig = parse_signal(signal)
        live = self._live(rec.id)
        if not rec.state.alive:
            if live.restart_task is not None and not live.restart_task.done():
                live.stop_requested = True
                return
            raise Conflict(
                f"Cannot kill container: {name_or_id}: Container {rec.id} is not running"
            )
        stop_sig = parse_signal(rec.config.stop_signal, signal_module.SIGTERM)
        if sig in (signal_module.SIGKILL, signal_module.SIGTERM, signal_module.SIGINT, stop_sig):
            # docker kill docs: a fatal signal (and the stop signal) disables the restart
            # policy until the next start; SIGUSR1 and the like leave it in place.
            live.stop_requested = True
        if rec.state.paused and sig == signal_module.SIGKILL:
            with contextlib.suppress(RuntimeFailure):
                await self.runtime.resume(rec.id)
        generation = live.exit_generation
        await self.runtime.kill(rec.id, sig, all=sig == signal_module.SIGKILL)
        self.event(rec, "kill", signal=str(int(sig)))
        if sig == signal_module.SIGKILL and live.monitor is not None:
            # moby daemon/kill.go Kill: a SIGKILL answers once the container is not running
            # (exit 137 recorded), waiting up to 10 s; other signals answer on delivery.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._exited_after(live, generation), 10)

    async def stop(self, name_or_id: str, timeout: int | None) -> None:
        rec = self.resolve(name_or_id)
        was_running = rec.state.running
        await self._stop(rec, timeout)
        if was_running:
            self.event(rec, "stop")

    async def _stop(self, rec: Container, timeout: int | None) -> None:
        live = self._live(rec.id)
        live.stop_requested = True
        cancel_restart = await self._call_off_restart(live)
        rec = self.resolve(rec.id)  # a restart already starting has run it

        def stopped_by_user(c: Container) -> None:
            c.stopped_by_user = True
            if cancel_restart:
                c.state.set_restart_cancelled()

        self.write(rec.id, stopped_by_user)
        if not rec.state.alive:
            return
        sig = parse_signal(rec.config.stop_signal, signal_module.SIGTERM)
        log.info("stopping container %s (signal %d, timeout %s)", rec.id[:12], sig, timeout)
        generation = live.exit_generation
        if rec.state.paused:
            with contextlib.suppress(RuntimeFailure):
                await self.runtime.resume(rec.id)
            self.write(rec.id, lambda c: c.state.set_unpaused())
        with contextlib.suppress(RuntimeFailure):
            await self.runtime.kill(rec.id, sig)
        if timeout is None or timeout < -1:
            timeout = int(rec.config.stop_timeout or 10)
        if live.monitor is None:
            await self._wait_unattached(rec, timeout)
            return
        try:
            if timeout == -1:
                await self._exited_after(live, generation)
            else:
                await asyncio.wait_for(self._exited_after(live, generation), timeout)
        except TimeoutError:
            with contextlib.suppress(RuntimeFailure):
                await self.runtime.kill(rec.id, signal_module.SIGKILL, all=True)
            await self._exited_after(live, generation)

    async def _call_off_restart(self, live: LiveContainer) -> bool:
        """Cancel a pending restart; True if one was pending and now will not happen.

        A restart already inside its start (it holds the container's lock) is let finish
        it, and the caller then stops what it started: cancelled in there, the monitor would
        run the container on with nobody to collect it.
        """
        task = live.restart_task
        if task is None or task.done():
            return False
        async with live.lock:
            live.stop_requested = True  # a start resets it
            if task.done():
                return False  # it restarted (or failed to) while we waited
            task.cancel()  # waiting out its back-off, or for the lock
            return True

    async def _wait_unattached(self, rec: Container, timeout: int) -> None:
        """A running container with no monitor connection (should not happen): poll runc."""
        deadline = time.monotonic() + max(timeout, 0)
        while time.monotonic() < deadline:
            st = await self.runtime.state(rec.id)
            if st is None or st.get("status") == "stopped":
                break
            await asyncio.sleep(0.1)
        with contextlib.suppress(RuntimeFailure):
            await self.runtime.kill(rec.id, signal_module.SIGKILL, all=True)

    async def restart(self, name_or_id: str, timeout: int | None) -> None:
        rec = self.resolve(name_or_id)
        live = self._live(rec.id)
        live.restarting_by_user = True
        try:
            await self.stop(rec.id, timeout)
        finally:
            live.restarting_by_user = False
        await self.start(rec.id)
        self.event(rec, "restart")

    @staticmethod
    async def _exited_after(live: LiveContainer, generation: int) -> None:
        async with live.changed:
            await live.changed.wait_for(lambda: live.exit_generation != generation)

    async def pause(self, name_or_id: str) -> None:
        rec = self.resolve(name_or_id)
        if not rec.state.alive:
            raise Conflict(f"Container {rec.id} is not running")
        if rec.state.paused:
            raise Conflict(f"Container {rec.id} is already paused")
        await self.runtime.pause(rec.id)
        self.write(rec.id, lambda c: c.state.set_paused())
        self.event(rec, "pause")

    async def unpause(self, name_or_id: str) -> None:
        rec = self.resolve(name_or_id)
        if not rec.state.paused:
            raise Conflict(f"Container {rec.id} is not paused")
        await self.runtime.resume(rec.id)
        self.write(rec.id, lambda c: c.state.set_unpaused())
        self.event(rec, "unpause")

    def rename(self, name_or_id: str, new_name: str) -> None:
        rec = self.resolve(name_or_id)
        if not new_name:
            raise InvalidArgument("Neither old nor new names may be empty")
        # dockerd compares and then validates the name with its slash (daemon/rename.go).
        if not new_name.startswith("/"):
            new_name = "/" + new_name
        if new_name == "/" + rec.name:
            raise InvalidArgument("Renaming a container with the same name as its current name")
        try:
            new_name = valid_name(new_name)
        except InvalidArgument as exc:
            raise InvalidArgument(f"Error when allocating new name: {exc}") from None
        self.check_name_free(new_name)

        def renamed(c: Container) -> None:
            c.name = new_name

        updated = self.write(rec.id, renamed)
        if updated is not None:
            self.event(updated, "rename", oldName=f"/{rec.name}")
        if rec.state.alive:
            self.refresh_peers(rec.runtime)

    async def update(self, name_or_id: str, body: dict[str, Any]) -> list[str]:
        """`docker update`: new limits (applied live with `runc update`) and restart policy."""
        rec = self.resolve(name_or_id)
        hc, opts = updated_host_config(rec.host_config.to_docker(), body)
        if rec.state.alive:
            res_file = self.root / rec.id / "resources.json"
            write_json(res_file, opts.resources.to_oci())
            try:
                await self.runtime.update(rec.id, res_file)
            except RuntimeFailure as e:
                raise RuntimeFailure(f"Cannot update container {rec.id}: {e}") from None
            finally:
                res_file.unlink(missing_ok=True)

        def updated(c: Container) -> None:
            c.host_config = HostConfig(hc)

        self.write(rec.id, updated)
        return []

    # remove ------------------------------------------------------------------------------
    def remove_link(self, name: str) -> None:
        """`DELETE /containers/PARENT/ALIAS?link=1` (moby daemon.rmLink): the parent's legacy
        link goes; both containers stay."""
        parent_name, alias = links.split_link_name(name)
        try:
            parent = self.resolve(parent_name)
        except NotFound:
            raise NotFound(f"No such container: {name}") from None
        if not any(a == alias for _, a in parent.legacy_links):
            raise NotFound(f"No such container: {name}")

        def unlinked(c: Container) -> None:
            c.legacy_links = tuple(link for link in c.legacy_links if link[1] != alias)

        self.write(parent.id, unlinked)

    async def remove(self, name_or_id: str, *, force: bool, volumes: bool = False) -> None:
        rec = self.resolve(name_or_id)
        live = self._live(rec.id)
        if rec.state.running:  # running, paused or restarting
            if not force:
                raise Conflict(
                    f"You cannot remove a running container {rec.id}. Stop the container "
                    "before attempting removal or force remove"
                )
            live.stop_requested = True
            await self._call_off_restart(live)
            rec = self.resolve(rec.id)  # a restart already starting has run it
            if rec.state.alive:
                # It may exit (and its monitor `runc delete` it) before we kill it: runc then
                # says "container does not exist", and the exit is on its way to us.
                with contextlib.suppress(RuntimeFailure):
                    await self.kill(rec.id, "KILL")
            if rec.state.alive:
                if live.monitor is not None:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._exited_after(live, live.exit_generation), 10)
                else:
                    await self._finish(rec.id, live, 137, "")
            rec = self.resolve(rec.id)
        live.last_exit = rec.state.exit_code
        state_dir = self.root / rec.id
        # An overlay has a device of its own, so ismount (two stats) tells; the exit already
        # unmounted it, and the snapshotter's check reads the whole mount table.
        rootfs = state_dir / "rootfs"
        if os.path.ismount(rootfs):
            await asyncio.to_thread(self.snapshots.unmount, rootfs)
            if os.path.ismount(rootfs):
                raise RuntimeFailure(
                    f"cannot remove {rec.id[:12]}: its root filesystem is still mounted"
                )
        with live.record_lock:
            self.meta.delete_container(rec.id)
            self.records.drop(rec.id)
        self._list_entries.forget(rec.id)
        live.output.end()  # no output will ever come: attached clients get their EOF
        self._forget(rec.id)
        self.layers.discard_active(rec.snapshot)
        # One rename; the reaper deletes it (~4 ms of rmtree off every `run --rm`). Its
        # monitor may still be running `runc delete` in it: it writes nothing there any more.
        self.trash.put(state_dir)
        for m in rec.mounts:
            # Docker removes anonymous volumes with the container only when asked (-v, --rm).
            if m.anonymous and m.volume and (volumes or rec.host_config.auto_remove):
                with contextlib.suppress(NotFound, Conflict):
                    self.volumes.remove(m.volume)
        log.info("container %s removed", rec.id[:12])
        self.event(rec, "destroy")
        live.removed.set()

    async def prune(
        self, *, until: float, labels: builtins.list[str]
    ) -> tuple[builtins.list[str], int]:
        """`container prune`: every container not running, created before `until` (a Unix
        time; 0 = any) and carrying all of `labels` (`key` or `key=value`). The IDs removed
        and the bytes reclaimed: dockerd sums each one's writable layer
        (GetContainerLayerSize)."""
        deleted = []
        reclaimed = 0
        for rec in self.all():
            if rec.state.running:
                continue
            if until and (parse_time(rec.created) or time.time()) > until:
                continue
            own = rec.config.labels
            if labels and not all(
                (k in own and (not sep or own[k] == v))
                for k, sep, v in (lbl.partition("=") for lbl in labels)
            ):
                continue
            size = (await self.sizes(rec.id))["SizeRw"]
            await self.remove(rec.id, force=False)
            deleted.append(rec.id)
            reclaimed += size
        return deleted, reclaimed

    # logs --------------------------------------------------------------------------------
    async def logs(
        self,
        name_or_id: str,
        *,
        stdout: bool,
        stderr: bool,
        tail: str,
        timestamps: bool,
        follow: bool = False,
        since: float = 0.0,
        until: float = 0.0,
    ) -> AsyncIterator[tuple[int, bytes]]:
        from dockyard.engine.container_logs import read_logs

        async for item in read_logs(
            self,
            name_or_id,
            stdout=stdout,
            stderr=stderr,
            tail=tail,
            timestamps=timestamps,
            follow=follow,
            since=since,
            until=until,
        ):
            yield item

    # views -------------------------------------------------------------------------------
    def list(
        self, all_: bool, filters: dict[str, list[str]] | None = None, limit: int = -1
    ) -> builtins.list[dict[str, Any]]:
        from dockyard.engine.container_views import list_containers

        return list_containers(self, all_, filters or {}, limit)

    def list_json(
        self, all_: bool, filters: dict[str, builtins.list[str]] | None = None, limit: int = -1
    ) -> bytes:
        """`list` as the JSON body of GET /containers/json, each entry rendered once per
        version of its record (container_views.ListEntries)."""
        return self._list_entries.render(self, all_, filters or {}, limit)

    async def sizes(self, name_or_id: str) -> dict[str, int]:
        """SizeRw (the writable layer) and SizeRootFs (image + writable layer), as Docker's."""
        rec = self.resolve(name_or_id)
        upper = self.snapshots.fs(rec.snapshot)
        rw = await asyncio.to_thread(_tree_size, upper)
        image = self.images.size(self.images.config(rec.image_id))
        return {"SizeRw": rw, "SizeRootFs": image + rw}

    def inspect(self, name_or_id: str) -> dict[str, Any]:
        from dockyard.engine.container_views import inspect_container

        return inspect_container(self, self.resolve(name_or_id))

    # daemon life -------------------------------------------------------------------------
    async def recover(self, *, resumed: bool = False) -> None:
        """Daemon start: rejoin running containers, record exits that happened meanwhile.
        `resumed`: the daemon re-executed itself while idle (api/idle_reexec.py), which no
        client sees as a daemon start: restart policies are not applied again (an `always`
        container the user stopped stays stopped)."""
        # Bridges no running container uses (left by a crash) go; they come back on use. The
        # process before a re-exec in place left them as they were, on purpose (shutdown).
        if not resumed:
            self.networks.teardown_unused(self.networks_in_use(attached_only=True))
        for rec in self.all():
            try:
                await self._recover_one(rec)
            except Exception as e:
                log.warning("recovering container %s: %s", rec.id[:12], e)
        for rec in self.all():
            # moby daemon.restore: an AutoRemove container found stopped (the daemon died
            # between its exit and its removal) is removed now.
            if rec.host_config.auto_remove and not rec.state.alive:
                with contextlib.suppress(Exception):
                    await self.remove(rec.id, force=True, volumes=True)
        # A state directory no record names: a crash between a removal's record and its
        # rename into the trash (the record goes first, as every reference before referent).
        # One with a mount in it waits for the next start: fsck.sweep unmounts it first.
        known = {r.id for r in self.all()}
        mounted = {
            Path(m).relative_to(self.root.resolve()).parts[0] for m in mounts_under(self.root)
        }
        for entry in list(self.root.iterdir()):
            if entry.is_dir() and entry.name not in known | mounted:
                self.trash.put(entry)
        running = {r.id for r in self.all() if r.state.alive}
        self.networks.prune_allocations(running)
        if resumed:
            return
        for rec in self.all():
            policy, _ = rec.host_config.restart_policy
            if rec.state.running or rec.state.status == "created":
                continue
            # Docker at daemon start: `always` comes back even after a manual stop,
            # `unless-stopped` unless the user stopped it (on-failure is decided at exit).
            if policy == "always" or (policy == "unless-stopped" and not rec.stopped_by_user):
                with contextlib.suppress(Exception):
                    await self.start(rec.id)

    async def _resume_if_frozen(self, cid: str) -> None:
        """A commit pauses the container for its copy (container_fs.py); a daemon killed
        meanwhile left it frozen though no one paused it: it runs on (issue 10 §1)."""
        with contextlib.suppress(RuntimeFailure):
            st = await self.runtime.state(cid)
            if st is not None and st.get("status") == "paused":
                await self.runtime.resume(cid)
                log.info("resumed %s: a commit of the previous daemon had paused it", cid[:12])

    async def _recover_one(self, rec: Container) -> None:
        if rec.state.restarting:
            self.write(rec.id, lambda c: c.state.set_restart_cancelled())
            return
        if not rec.state.alive:
            return
        if not rec.state.paused:
            await self._resume_if_frozen(rec.id)
        state_dir = self.root / rec.id
        live = self._live(rec.id)
        try:
            handle = await self.runtime.attach(state_dir)
        except RuntimeFailure:
            handle = None
        if handle is not None:
            live.monitor = live.last_monitor = handle
            live.started.set()
            runtime = rec.runtime
            eps = list(runtime.endpoints.values())
            pid_file = state_dir / PROXY_PID
            if runtime.ports and eps and not self.networks.proxy_running(rec.id, pid_file):
                # The proxy outlives the daemon; only a crashed or killed one is replaced.
                try:
                    pid_file.unlink(missing_ok=True)
                    await self.networks.publish(
                        rec.id,
                        eps[0].ip,
                        [
                            (p.container_port, p.proto, p.host_ip, p.host_port)
                            for p in runtime.ports
                        ],
                        pid_file,
                        rec.state.pid,
                    )
                except Exception as e:
                    log.warning("republishing ports of %s: %s", rec.id[:12], e)
            with contextlib.suppress(Exception):
                await self.ensure_dns(runtime)
            self._spawn(self._supervise(rec.id, live, handle, state_dir / "rootfs"))
            if rec.config.has_healthcheck:
                self._start_health(rec.id, live)
            return
        code = self.runtime.exit_code(state_dir)
        if code is None:
            st = await self.runtime.state(rec.id)
            if st is not None and st.get("status") in ("running", "paused"):
                # Its monitor is gone, so nobody can collect its exit: stop it cleanly.
                with contextlib.suppress(RuntimeFailure):
                    await self.runtime.kill(rec.id, signal_module.SIGKILL, all=True)
                await asyncio.sleep(0.1)
            with contextlib.suppress(RuntimeFailure):
                await self.runtime.delete(rec.id, force=True)
            code, error = 255, "the container's monitor died while the daemon was down"
        else:
            error = ""
        self.write(rec.id, _mark_recovered_exit)
        await self._finish(rec.id, live, code, error)

    def held_in_memory(self) -> str | None:
        """What only this process holds about containers, which a re-exec of the daemon would
        lose (api/idle_reexec.py), or None: a running, paused or restarting container (its
        monitor connection, output fan-out, health checks, restart back-off), a task of the
        manager's, or an exec instance (`exec inspect` answers for it; the instances go when
        their container stops, as dockerd's do: ExecManager.forget_container)."""
        for rec in self.all():
            if rec.state.running:
                return f"container {rec.id[:12]} is {rec.state.status}"
        if self._tasks:
            return f"{len(self._tasks)} container task(s) in progress"
        if self._execs is not None:
            for ex in self._execs.execs.values():
                if self.get(ex.container_id) is not None:
                    return f"exec instance {ex.id[:12]} of container {ex.container_id[:12]}"
        return None

    async def shutdown(self, *, keep_networks: bool = False) -> None:
        """Daemon stop: containers keep running under their monitors (they outlive us).
        `keep_networks`: the bridges no container uses stay up too, for the process of a
        re-exec in place (api/idle_reexec.py), which would otherwise set them up again at
        its first run (~45 ms) and take the host's interfaces down and up for nothing."""
        self._closing = True
        for task in list(self._tasks):
            task.cancel()
        for live in self.live.values():
            if live.monitor is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(live.monitor.detach(), 2)
        self.dns.close()
        if keep_networks:
            return
        with contextlib.suppress(Exception):
            self.networks.teardown_unused(self.networks_in_use(attached_only=True))

    # health ------------------------------------------------------------------------------
    def _start_health(self, cid: str, live: LiveContainer) -> None:
        from dockyard.engine.health import run_healthchecks

        if live.health_task is not None:
            live.health_task.cancel()
        live.health_task = self._spawn(run_healthchecks(self, cid))


def _tree_size(path: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, f)).st_size
    return total


def _seconds_since(ts: str) -> float:
    t = parse_time(ts)
    return time.time() - t if t else 0.0


def restart_delay(restart_count: int, state: State) -> float:
    """Docker's restart manager (moby restartmanager): 100 ms doubling per restart, at most
    a minute, back to 100 ms once a run lasted more than 10 s."""
    ran = _seconds_since(state.started_at) - _seconds_since(state.finished_at)
    return 0.1 if ran > 10 else min(0.1 * 2 ** min(restart_count, 10), 60.0)


def _mark_recovered_exit(c: Container) -> None:
    c.recovered_exit = True


def _clear_runtime(c: Container) -> None:
    c.runtime = RuntimeFacts()


def _count_restart(c: Container) -> None:
    c.restart_count += 1
