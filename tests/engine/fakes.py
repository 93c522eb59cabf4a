"""In-memory fakes behind the container manager's protocols (engine/seams.py), for unit tests
of its rules without root: states, restart policy and back-off, AutoRemove, what a failed
start undoes, recovery.

`FakeRuntime` starts `FakeProcess`es that run until the test (or a signal) ends them;
`FakeSnapshots` "mounts" a directory; `FakeNetworks` hands out addresses and records what is
plugged in and published. `fake_manager` builds the real ContainerManager on them, with the
real metadata, content, image and layer stores on a temporary directory.
"""

from __future__ import annotations

import asyncio
import builtins
import secrets
import signal as signals
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockyard.content.store import ContentStore
from dockyard.engine.containers import ContainerManager
from dockyard.engine.dns import DnsResponders
from dockyard.engine.endpoint_config import EndpointRequest
from dockyard.engine.network import Endpoint
from dockyard.engine.volumes import VolumeStore
from dockyard.errors import NotFound, RuntimeFailure
from dockyard.image.config import build_image_config, now_rfc3339
from dockyard.metadata.store import MetadataStore
from dockyard.runtime.monitor import LogOptions
from dockyard.runtime.runc import ContainerStartError
from dockyard.snapshot.overlay import OverlaySnapshotter
from dockyard.store.images import ImageStore
from dockyard.store.layers import LayerStore


class FakeProcess:
    """A container's process: runs until `exit(code)`; signals end it as the kernel would."""

    def __init__(self, container_id: str, pid: int, *, ignores: set[int]) -> None:
        self.container_id = container_id
        self.pid = pid
        self.ignores = ignores  # signals it survives (a process that traps SIGTERM)
        self.paused = False
        self.stdin: list[bytes] = []
        self._exited: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._output: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue()

    def exit(self, code: int) -> None:
        if not self._exited.done():
            self._output.put_nowait(None)
            self._exited.set_result(code)

    def say(self, stream: int, data: bytes) -> None:
        self._output.put_nowait((stream, data))

    @property
    def exited(self) -> bool:
        return self._exited.done()

    async def started(self) -> int:
        return self.pid

    async def output(self) -> AsyncIterator[tuple[int, bytes]]:
        while (item := await self._output.get()) is not None:
            yield item

    def discard_output(self) -> None:
        pass

    async def write_stdin(self, data: bytes) -> None:
        self.stdin.append(data)

    async def close_stdin(self) -> None:
        self.stdin.append(b"<eof>")

    async def resize(self, height: int, width: int) -> None:
        pass

    async def wait(self) -> int:
        return await asyncio.shield(self._exited)

    async def closed(self) -> None:
        await asyncio.shield(self._exited)

    async def detach(self) -> None:
        pass


@dataclass
class FakeRuntime:
    """Processes by container ID, and every call made, in order."""

    processes: dict[str, FakeProcess] = field(default_factory=dict)
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    # A start that fails as runc does for a missing command: ContainerStartError(127).
    fail_start: Callable[[str], ContainerStartError | None] = lambda cid: None
    ignores: set[int] = field(default_factory=set)
    # Exits recorded while "no daemon ran" (RuncProcesses.exit_code reads exit.json).
    recorded_exits: dict[Path, int] = field(default_factory=dict)
    # Set, a start hangs in "runc" (its process exists) until the event is set.
    hold_start: asyncio.Event | None = None
    _pids: int = 100

    def prepare_start(self) -> None:
        self.calls.append(("prepare_start", ""))

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
    ) -> FakeProcess:
        if ready is not None:
            await ready
        self.calls.append(("spawn", container_id))
        assert (bundle / "config.json").is_file(), "the manager writes the bundle first"
        failure = self.fail_start(container_id)
        if failure is not None:
            raise failure
        self._pids += 1
        proc = FakeProcess(container_id, self._pids, ignores=self.ignores)
        self.processes[container_id] = proc
        if self.hold_start is not None:
            await self.hold_start.wait()  # cancelled here, the process runs on (as a monitor)
        return proc

    async def attach(self, state_dir: Path) -> FakeProcess:
        proc = self.processes.get(state_dir.name)
        if proc is None or proc.exited:
            raise RuntimeFailure(f"no monitor is running for {state_dir}")
        return proc

    def exit_code(self, state_dir: Path) -> int | None:
        return self.recorded_exits.get(state_dir)

    def _proc(self, cid: str) -> FakeProcess:
        proc = self.processes.get(cid)
        if proc is None or proc.exited:
            raise RuntimeFailure("container does not exist")
        return proc

    async def kill(self, container_id: str, signal: int = 15, all: bool = False) -> None:
        self.calls.append(("kill", container_id, signal))
        proc = self._proc(container_id)
        if signal == signals.SIGKILL or (signal not in proc.ignores and not proc.paused):
            proc.exit(128 + signal)

    async def pause(self, container_id: str) -> None:
        self.calls.append(("pause", container_id))
        self._proc(container_id).paused = True

    async def resume(self, container_id: str) -> None:
        self.calls.append(("resume", container_id))
        self._proc(container_id).paused = False

    async def update(self, container_id: str, resources: Path) -> None:
        self.calls.append(("update", container_id, resources.read_text()))

    async def state(self, container_id: str) -> dict[str, Any] | None:
        proc = self.processes.get(container_id)
        if proc is None or proc.exited:
            return None
        return {"status": "paused" if proc.paused else "running", "pid": proc.pid}

    async def delete(self, container_id: str, force: bool = False) -> None:
        self.calls.append(("delete", container_id))

    async def ps(self, container_id: str) -> builtins.list[int]:
        return [self._proc(container_id).pid]


class FakeSnapshots:
    """Mounts are directories; the snapshots themselves are the real store's (no overlay)."""

    def __init__(self, real: OverlaySnapshotter) -> None:
        self.real = real
        self.mounted: set[Path] = set()
        self.volatile: set[Path] = set()  # mounted with `volatile`

    def mount(
        self,
        target: Path,
        lowers: list[int],
        upper: int | None,
        *,
        with_init: bool = True,
        volatile: bool = False,
    ) -> None:
        target.mkdir(parents=True, exist_ok=True)
        self.mounted.add(target)
        if volatile:
            self.volatile.add(target)

    def unmount(self, target: Path) -> None:
        self.mounted.discard(target)

    def fs(self, snapshot: int | str) -> Path:
        return self.real.fs(snapshot)


class FakeNetworks:
    """Docker's three networks plus any `add`ed bridge; addresses from 10.99.N.0/24."""

    def __init__(self) -> None:
        self.nets: dict[str, dict[str, Any]] = {}
        for name, driver in (("bridge", "bridge"), ("host", "host"), ("none", "null")):
            self.add(name, driver)
        self.netns: set[Path] = set()
        self.plugged: dict[tuple[str, str], Endpoint] = {}  # (net, container) → endpoint
        self.published: dict[str, list[tuple[int, str, str, int]]] = {}
        self.events: list[tuple[str, str, dict[str, str]]] = []
        self._port = 40000

    def add(self, name: str, driver: str = "bridge") -> str:
        net_id = secrets.token_hex(32)
        self.nets[net_id] = {"Name": name, "Id": net_id, "Driver": driver, "Index": len(self.nets)}
        return net_id

    def get(self, name_or_id: str) -> dict[str, Any]:
        for net in self.nets.values():
            if name_or_id in (net["Name"], net["Id"]):
                return net
        raise NotFound(f"network {name_or_id} not found")

    def create_netns(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        self.netns.add(path)

    def delete_netns(self, path: Path) -> None:
        path.unlink(missing_ok=True)
        self.netns.discard(path)

    def list(self) -> builtins.list[dict[str, Any]]:
        return list(self.nets.values())

    def event(self, net: dict[str, Any], action: str, **extra: str) -> None:
        self.events.append((action, net["Name"], extra))

    def connect(
        self,
        net_id: str,
        cid: str,
        netns: str,
        ifname: str,
        default_route: bool,
        req: EndpointRequest | None = None,
    ) -> Endpoint:
        net = self.get(net_id)
        host = 2 + sum(1 for n, _ in self.plugged if n == net_id)
        ip = f"10.99.{net['Index']}.{host}"
        ep = Endpoint(net_id, ip, 24, f"10.99.{net['Index']}.1", "02:42:0a:63:00:02", ifname, "v")
        self.plugged[(net_id, cid)] = ep
        return ep

    def disconnect(self, ep: Endpoint, cid: str, netns: str | None) -> None:
        self.plugged.pop((ep.network, cid), None)

    async def publish(
        self,
        cid: str,
        target_ip: str,
        bindings: builtins.list[tuple[int, str, str, int]],
        pid_file: Path,
        watch_pid: int = 0,
    ) -> builtins.list[tuple[int, str, str, int]]:
        out = []
        for cport, proto, hip, hport in bindings:
            self._port += 1
            out.append((cport, proto, hip, hport or self._port))
        self.published[cid] = out
        return out

    def unpublish(self, cid: str, pid_file: Path) -> None:
        self.published.pop(cid, None)

    def proxy_running(self, cid: str, pid_file: Path) -> bool:
        return cid in self.published

    def remove(self, name_or_id: str, users: builtins.list[str]) -> None:
        del self.nets[self.get(name_or_id)["Id"]]

    def prune(self, in_use: set[str]) -> builtins.list[str]:
        return []

    def teardown_unused(self, in_use: set[str]) -> None:
        pass

    def prune_allocations(self, running: set[str]) -> None:
        pass


@dataclass
class Fakes:
    mgr: ContainerManager
    runtime: FakeRuntime
    snapshots: FakeSnapshots
    networks: FakeNetworks
    meta: MetadataStore
    delays: list[float]  # every restart back-off the manager waited, in order

    def add_image(self, name: str = "img", cmd: list[str] | None = None) -> str:
        raw = build_image_config(
            container_config={"Env": ["PATH=/bin"], "Cmd": cmd or ["sh"]},
            diff_ids=[],
            history=[{"created": now_rfc3339(), "created_by": "fake"}],
            created=now_rfc3339(),
        )
        return self.mgr.images.put(raw, tags=[name])


def fake_manager(tmp: Path) -> Fakes:
    meta = MetadataStore(tmp / "metadata.db")
    content = ContentStore(tmp / "content", before_commit=meta.hold_blob)
    overlay = OverlaySnapshotter(tmp / "overlay")
    layers = LayerStore(content, meta, overlay)
    runtime = FakeRuntime()
    snapshots = FakeSnapshots(overlay)
    networks = FakeNetworks()
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)
        await asyncio.sleep(0)

    holder: list[ContainerManager] = []
    mgr = ContainerManager(
        tmp / "containers",
        meta,
        ImageStore(content, meta),
        layers,
        snapshots,
        runtime,
        networks=networks,
        volumes=VolumeStore(tmp / "volumes", lambda name: holder[0].volume_users(name)),
        dns=DnsResponders(lambda net, name, asker: None),
        restart_sleep=sleep,
    )
    holder.append(mgr)
    return Fakes(mgr, runtime, snapshots, networks, meta, delays)


def run_with_fakes(tmp_path: Path, body: Callable[[Fakes], Awaitable[None]]) -> None:
    """Run `body` against a fake-backed manager with image "img", shut down after (10 s cap)."""

    async def main() -> None:
        fakes = fake_manager(tmp_path)
        fakes.add_image("img")
        try:
            await asyncio.wait_for(body(fakes), 10)
        finally:
            await fakes.mgr.shutdown()

    asyncio.run(main())
