"""Containers: records in metadata, a writable snapshot each, and a monitor while running.

Lifecycle (Docker's states): create → created; start → running (overlay mounted, bundle
written, monitor spawned, runc create + start); exit → exited (rootfs unmounted, exit code
recorded; `--rm` removes it); remove → gone (snapshot, state dir and record deleted).
Output is fanned out in the daemon from the monitor's one stream to every attached client;
clients that attach before start (the docker CLI always does) get everything from the start.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import signal as signal_module
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockyard.store.images import ImageStore
from dockyard.store.layers import LayerStore
from dockyard.engine.names import random_name
from dockyard.runtime.users import resolve_user
from dockyard.errors import Conflict, InvalidArgument, NotFound, NotSupported, RuntimeFailure
from dockyard.image.config import now_rfc3339
from dockyard.metadata.store import ContainerRecord, MetadataStore
from dockyard.runtime.monitor_client import MonitorHandle, spawn_monitor
from dockyard.runtime.runc import ContainerStartError, Runc
from dockyard.runtime.process import process_env
from dockyard.runtime.etcfiles import effective_hostname, write_etc_files
from dockyard.runtime.spec import ContainerConfig, build_spec, write_bundle
from dockyard.snapshot.overlay import OverlaySnapshotter

ZERO_TIME = "0001-01-01T00:00:00Z"
SUPPORTED_NETWORKS = {"default", "none", "host", ""}


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
    subscribers: list[asyncio.Queue[tuple[int, bytes] | None]] = field(default_factory=list)
    monitor: MonitorHandle | None = None
    started: asyncio.Event = field(default_factory=asyncio.Event)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    removed: asyncio.Event = field(default_factory=asyncio.Event)
    exit_generation: int = 0
    stdin_queue: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)


class ContainerManager:
    def __init__(
        self,
        root: Path,
        meta: MetadataStore,
        images: ImageStore,
        layers: LayerStore,
        snapshots: OverlaySnapshotter,
        runc: Runc,
    ) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.meta = meta
        self.images = images
        self.layers = layers
        self.snapshots = snapshots
        self.runc = runc
        self.live: dict[str, LiveContainer] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_exit: dict[str, int] = {}

    # lookup ------------------------------------------------------------------------------
    def resolve(self, name_or_id: str) -> ContainerRecord:
        name = name_or_id.lstrip("/")
        records = self.meta.containers()
        for rec in records:
            if rec.id == name or rec.name == name:
                return rec
        matches = [r for r in records if r.id.startswith(name)] if name else []
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise InvalidArgument(f"multiple IDs found with provided prefix: {name_or_id}")
        raise NotFound(f"No such container: {name_or_id}")

    def _live(self, cid: str) -> LiveContainer:
        if cid not in self.live:
            self.live[cid] = LiveContainer(cid)
        return self.live[cid]

    def users_of_image(self, image_id: str) -> list[tuple[str, bool]]:
        return [
            (r.id, bool(r.state.get("Running")))
            for r in self.meta.containers()
            if r.image_id == image_id
        ]

    # create ------------------------------------------------------------------------------
    def create(self, body: dict[str, Any], name: str | None) -> tuple[str, list[str]]:
        config = dict(body)
        host_config = config.pop("HostConfig", None) or {}
        config.pop("NetworkingConfig", None)
        self._check_host_config(host_config)
        image_name = config.get("Image") or ""
        if not image_name:
            raise InvalidArgument("no image specified")
        image = self.images.get(image_name)
        img_cfg = image.config.container_config
        if name:
            name = name.lstrip("/")
            if not name or not all(c.isalnum() or c in "_.-" for c in name):
                raise InvalidArgument(
                    f'Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed'
                )
            if existing := self.meta.name_in_use(name):
                raise Conflict(
                    f'Conflict. The container name "/{name}" is already in use by container '
                    f'"{existing}". You have to remove (or rename) that container to be able to '
                    "reuse that name."
                )
        else:
            name = random_name(lambda n: self.meta.name_in_use(n) is not None)
        cid = secrets.token_hex(32)
        merged = self._merge_config(config, img_cfg, cid)
        if not merged["Entrypoint"] and not merged["Cmd"]:
            raise InvalidArgument("No command specified")
        snapshot = self.layers.new_active()
        argv = list(merged["Entrypoint"] or []) + list(merged["Cmd"] or [])
        record = ContainerRecord(
            id=cid,
            name=name,
            image_id=image.id,
            created=now_rfc3339(),
            config={
                "Config": merged,
                "HostConfig": host_config,
                "Snapshot": snapshot,
                "Path": argv[0],
                "Args": argv[1:],
                "ImageName": image_name,
            },
            state=self._state("created"),
        )
        self.meta.put_container(record)
        (self.root / cid).mkdir(parents=True, exist_ok=True)
        return cid, []

    @staticmethod
    def _state(status: str, **kw: Any) -> dict[str, Any]:
        state: dict[str, Any] = {
            "Status": status,
            "Running": status == "running",
            "Paused": False,
            "Restarting": False,
            "OOMKilled": False,
            "Dead": status == "dead",
            "Pid": 0,
            "ExitCode": 0,
            "Error": "",
            "StartedAt": ZERO_TIME,
            "FinishedAt": ZERO_TIME,
        }
        state.update(kw)
        return state

    @staticmethod
    def _check_host_config(hc: dict[str, Any]) -> None:
        """Refuse, by name, every HostConfig setting we cannot honour yet (DESIGN.md)."""
        mode = hc.get("NetworkMode") or "default"
        if mode not in SUPPORTED_NETWORKS:
            raise NotSupported(f'network mode "{mode}" is not supported yet (use host or none)')
        unsupported = {
            "Binds": "bind mounts (-v)",
            "Mounts": "mounts (--mount)",
            "PortBindings": "published ports (-p)",
            "PublishAllPorts": "published ports (-P)",
            "Privileged": "--privileged",
            "CapAdd": "--cap-add",
            "CapDrop": "--cap-drop",
            "Memory": "memory limits (-m)",
            "NanoCpus": "--cpus",
            "PidsLimit": "--pids-limit",
            "ReadonlyRootfs": "--read-only",
            "Tmpfs": "--tmpfs",
            "Init": "--init",
            "Ulimits": "--ulimit",
            "Devices": "--device",
            "Dns": "--dns",
            "ExtraHosts": "--add-host",
            "VolumesFrom": "--volumes-from",
            "SecurityOpt": "--security-opt",
            "Links": "--link",
        }
        for key, what in unsupported.items():
            value = hc.get(key)
            if value and value != -1 and value != 0:
                raise NotSupported(f"{what} is not supported by dockyard yet")
        policy = (hc.get("RestartPolicy") or {}).get("Name") or "no"
        if policy not in ("no", ""):
            raise NotSupported(f"restart policy {policy!r} is not supported by dockyard yet")

    @staticmethod
    def _merge_config(req: dict[str, Any], img: dict[str, Any], cid: str) -> dict[str, Any]:
        """The container's Config: the request's values over the image's, as Docker merges."""
        merged = dict(img)
        for key in ("User", "WorkingDir", "Tty", "OpenStdin", "StdinOnce", "AttachStdin",
                    "AttachStdout", "AttachStderr", "StopSignal", "Hostname", "Domainname"):
            if req.get(key):
                merged[key] = req[key]
        env = list(img.get("Env") or [])
        for item in req.get("Env") or []:
            key = item.split("=", 1)[0]
            env = [e for e in env if e.split("=", 1)[0] != key]
            env.append(item)
        merged["Env"] = env
        if req.get("Entrypoint") is not None:
            merged["Entrypoint"] = req["Entrypoint"] or None
            # A new entrypoint drops the image's Cmd (Docker: daemon/create.go merge)
            merged["Cmd"] = req.get("Cmd") or None
        elif req.get("Cmd"):
            merged["Cmd"] = req["Cmd"]
        labels = dict(img.get("Labels") or {})
        labels.update(req.get("Labels") or {})
        merged["Labels"] = labels
        merged["Image"] = req.get("Image", "")
        if not merged.get("Hostname"):
            merged["Hostname"] = cid[:12]
        return merged

    # start -------------------------------------------------------------------------------
    async def start(self, name_or_id: str) -> None:
        rec = self.resolve(name_or_id)
        if rec.state.get("Running"):
            return
        live = self._live(rec.id)
        state_dir = self.root / rec.id
        state_dir.mkdir(parents=True, exist_ok=True)
        rootfs = state_dir / "rootfs"
        cfg = rec.config["Config"]
        hc = rec.config["HostConfig"]
        image_cfg = self.images.config(rec.image_id)
        chain = self.layers.chain_for(image_cfg.diff_ids)
        await asyncio.to_thread(
            self.snapshots.mount, rootfs, chain.lowers_top_first, rec.config["Snapshot"]
        )
        try:
            spec_cfg = self._runtime_config(rec, rootfs, state_dir, cfg, hc)
            bundle = state_dir / "bundle"
            write_bundle(bundle, build_spec(spec_cfg))
            (state_dir / "exit.json").unlink(missing_ok=True)
            handle = await spawn_monitor(
                container_id=rec.id,
                bundle=bundle,
                state_dir=state_dir,
                runc=self.runc,
                open_stdin=bool(cfg.get("OpenStdin")),
            )
            pid = await handle.started()
        except ContainerStartError as exc:
            await asyncio.to_thread(self.snapshots.unmount, rootfs)
            self.meta.update_container_state(
                rec.id,
                self._state("created", ExitCode=exc.exit_code, Error=str(exc)),
            )
            raise
        except BaseException:
            await asyncio.to_thread(self.snapshots.unmount, rootfs)
            raise
        live.monitor = handle
        self.meta.update_container_state(
            rec.id, self._state("running", Pid=pid, StartedAt=now_rfc3339())
        )
        live.started.set()
        task = asyncio.create_task(self._supervise(rec.id, live, handle, rootfs))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _runtime_config(
        self,
        rec: ContainerRecord,
        rootfs: Path,
        state_dir: Path,
        cfg: dict[str, Any],
        hc: dict[str, Any],
    ) -> ContainerConfig:
        network = hc.get("NetworkMode") or "default"
        host_net = network == "host"
        hostname = effective_hostname(cfg.get("Hostname") or rec.id[:12], host_net)
        binds = write_etc_files(state_dir, hostname, host_net)
        user = resolve_user(rootfs, cfg.get("User") or "")
        env = process_env(list(cfg.get("Env") or []), hostname, user.home)
        argv = [rec.config["Path"], *rec.config["Args"]]
        return ContainerConfig(
            rootfs=rootfs,
            args=tuple(argv),
            env=tuple(env),
            cwd=cfg.get("WorkingDir") or "/",
            uid=user.uid,
            gid=user.gid,
            additional_gids=user.additional_gids,
            hostname=hostname,
            terminal=bool(cfg.get("Tty")),
            network="host" if host_net else "none",
            binds=binds,
            cgroups_path=f"/dockyard/{rec.id}",
        )

    async def _supervise(
        self, cid: str, live: LiveContainer, handle: MonitorHandle, rootfs: Path
    ) -> None:
        pump = asyncio.create_task(self._pump_output(live, handle))
        stdin = asyncio.create_task(self._pump_stdin(live, handle))
        try:
            code = await handle.wait()
        except Exception as exc:  # the monitor died: record what we know
            code = 255
            error = f"monitor failed: {exc}"
        else:
            error = ""
        await pump
        stdin.cancel()
        await asyncio.to_thread(self.snapshots.unmount, rootfs)
        rec = self.meta.get_container(cid)
        if rec is not None:
            self.meta.update_container_state(
                cid,
                self._state(
                    "exited",
                    ExitCode=code,
                    Error=error,
                    StartedAt=rec.state.get("StartedAt", ZERO_TIME),
                    FinishedAt=now_rfc3339(),
                ),
            )
        live.monitor = None
        live.started.clear()
        self._last_exit[cid] = code
        async with live.changed:
            live.exit_generation += 1
            live.changed.notify_all()
        if rec is not None and rec.config["HostConfig"].get("AutoRemove"):
            try:
                await self.remove(cid, force=True)
            except NotFound:
                pass

    async def _pump_output(self, live: LiveContainer, handle: MonitorHandle) -> None:
        async for stream, data in handle.output():
            for q in list(live.subscribers):
                q.put_nowait((stream, data))
        for q in list(live.subscribers):
            q.put_nowait(None)

    async def _pump_stdin(self, live: LiveContainer, handle: MonitorHandle) -> None:
        while True:
            data = await live.stdin_queue.get()
            if data is None:
                await handle.close_stdin()
                return
            await handle.write_stdin(data)

    # attach / wait -----------------------------------------------------------------------
    def subscribe(self, name_or_id: str) -> tuple[ContainerRecord, asyncio.Queue[tuple[int, bytes] | None]]:
        rec = self.resolve(name_or_id)
        q: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue()
        live = self._live(rec.id)
        live.subscribers.append(q)
        if rec.state.get("Running") and live.monitor is None:
            q.put_nowait(None)  # running under another daemon instance: no stream to join
        return rec, q

    def unsubscribe(self, cid: str, q: asyncio.Queue[tuple[int, bytes] | None]) -> None:
        live = self.live.get(cid)
        if live and q in live.subscribers:
            live.subscribers.remove(q)

    def send_stdin(self, cid: str, data: bytes | None) -> None:
        self._live(cid).stdin_queue.put_nowait(data)

    async def wait(self, name_or_id: str, condition: str) -> dict[str, Any]:
        rec = self.resolve(name_or_id)
        live = self._live(rec.id)
        if condition == "removed":
            await live.removed.wait()
            return {"StatusCode": self._last_exit.get(rec.id, 0), "Error": None}
        if condition not in ("next-exit", "not-running", ""):
            raise InvalidArgument(f"invalid condition: {condition!r}")
        if condition in ("not-running", "") and not rec.state.get("Running"):
            return {"StatusCode": rec.state.get("ExitCode", 0), "Error": None}
        await self._exited_after(live, live.exit_generation)
        rec2 = self.meta.get_container(rec.id)
        code = rec2.state.get("ExitCode", 0) if rec2 else self._last_exit.get(rec.id, 0)
        return {"StatusCode": code, "Error": None}

    # signals -----------------------------------------------------------------------------
    async def kill(self, name_or_id: str, signal: str | int | None) -> None:
        rec = self.resolve(name_or_id)
        sig = parse_signal(signal)
        if not rec.state.get("Running"):
            raise Conflict(f"Cannot kill container: {name_or_id}: Container {rec.id} is not running")
        await self.runc.kill(rec.id, sig, all=False)

    async def stop(self, name_or_id: str, timeout: int | None) -> None:
        rec = self.resolve(name_or_id)
        if not rec.state.get("Running"):
            return
        live = self._live(rec.id)
        sig = parse_signal(rec.config["Config"].get("StopSignal"), signal_module.SIGTERM)
        generation = live.exit_generation
        try:
            await self.runc.kill(rec.id, sig)
        except RuntimeFailure:
            pass
        wait_s = 10 if timeout is None or timeout < 0 else timeout
        try:
            await asyncio.wait_for(self._exited_after(live, generation), wait_s)
        except TimeoutError:
            try:
                await self.runc.kill(rec.id, signal_module.SIGKILL, all=True)
            except RuntimeFailure:
                pass
            await self._exited_after(live, generation)

    @staticmethod
    async def _exited_after(live: LiveContainer, generation: int) -> None:
        async with live.changed:
            await live.changed.wait_for(lambda: live.exit_generation != generation)

    # remove ------------------------------------------------------------------------------
    async def remove(self, name_or_id: str, *, force: bool) -> None:
        rec = self.resolve(name_or_id)
        if rec.state.get("Running"):
            if not force:
                raise Conflict(
                    f"You cannot remove a running container {rec.id}. Stop the container "
                    "before attempting removal or force remove"
                )
            await self.stop(rec.id, 0)
            rec = self.resolve(rec.id)
        self._last_exit[rec.id] = int(rec.state.get("ExitCode", 0))
        state_dir = self.root / rec.id
        await asyncio.to_thread(self.snapshots.unmount, state_dir / "rootfs")
        if os.path.ismount(state_dir / "rootfs"):
            raise RuntimeFailure(f"cannot remove {rec.id[:12]}: its root filesystem is still mounted")
        self.meta.delete_container(rec.id)
        self.layers.discard_active(int(rec.config["Snapshot"]))
        await asyncio.to_thread(shutil.rmtree, state_dir, True)
        live = self._live(rec.id)
        live.removed.set()

    # views -------------------------------------------------------------------------------
    def list(self, all_: bool) -> list[dict[str, Any]]:
        out = []
        for rec in self.meta.containers():
            if not all_ and not rec.state.get("Running"):
                continue
            cfg = rec.config["Config"]
            out.append(
                {
                    "Id": rec.id,
                    "Names": [f"/{rec.name}"],
                    "Image": rec.config.get("ImageName") or rec.image_id,
                    "ImageID": rec.image_id,
                    "Command": " ".join([rec.config["Path"], *rec.config["Args"]]),
                    "Created": _unix(rec.created),
                    "Ports": [],
                    "Labels": cfg.get("Labels") or {},
                    "State": rec.state["Status"],
                    "Status": _status_text(rec.state),
                    "HostConfig": {"NetworkMode": rec.config["HostConfig"].get("NetworkMode") or "default"},
                    "NetworkSettings": {"Networks": {}},
                    "Mounts": [],
                }
            )
        return out

    def inspect(self, name_or_id: str) -> dict[str, Any]:
        rec = self.resolve(name_or_id)
        state_dir = self.root / rec.id
        hc = dict(rec.config["HostConfig"])
        hc.setdefault("NetworkMode", "default")
        return {
            "Id": rec.id,
            "Created": rec.created,
            "Path": rec.config["Path"],
            "Args": rec.config["Args"],
            "State": rec.state,
            "Image": rec.image_id,
            "ResolvConfPath": str(state_dir / "resolv.conf"),
            "HostnamePath": str(state_dir / "hostname"),
            "HostsPath": str(state_dir / "hosts"),
            "LogPath": str(state_dir / "container.log"),
            "Name": f"/{rec.name}",
            "RestartCount": 0,
            "Driver": "overlay2",
            "Platform": "linux",
            "MountLabel": "",
            "ProcessLabel": "",
            "AppArmorProfile": "",
            "ExecIDs": None,
            "HostConfig": hc,
            "GraphDriver": {
                "Data": {"UpperDir": str(self.snapshots.fs(rec.config["Snapshot"]))},
                "Name": "overlay2",
            },
            "Mounts": [],
            "Config": rec.config["Config"],
            "NetworkSettings": {"Networks": {}, "Ports": {}},
        }

    async def logs(
        self, name_or_id: str, *, stdout: bool, stderr: bool, tail: str, timestamps: bool
    ) -> AsyncIterator[tuple[int, bytes]]:
        rec = self.resolve(name_or_id)
        path = self.root / rec.id / "container.log"
        lines: list[str] = []
        if path.exists():
            lines = path.read_text(errors="replace").splitlines()
        if tail not in ("", "all"):
            try:
                n = int(tail)
            except ValueError:
                raise InvalidArgument(f"invalid tail value {tail!r}") from None
            lines = lines[-n:] if n > 0 else []
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            stream = 2 if entry.get("stream") == "stderr" else 1
            if (stream == 1 and not stdout) or (stream == 2 and not stderr):
                continue
            data = entry.get("log", "")
            if timestamps:
                data = f"{entry.get('time', '')} {data}"
            yield stream, data.encode()

    async def shutdown(self) -> None:
        """Daemon stop: containers keep running under their monitors (they outlive us)."""
        for task in list(self._tasks):
            task.cancel()


def _unix(created: str) -> int:
    from dockyard.store.images import created_unix

    return created_unix(created)


def _status_text(state: dict[str, Any]) -> str:
    from datetime import UTC, datetime

    def ago(ts: str) -> str:
        try:
            then = datetime.fromisoformat(ts[:19] + "+00:00")
        except ValueError:
            return ""
        secs = max(0, int((datetime.now(UTC) - then).total_seconds()))
        if secs < 1:
            return "Less than a second"
        if secs < 60:
            return f"{secs} seconds"
        if secs < 3600:
            m = secs // 60
            return "About a minute" if m == 1 else f"{m} minutes"
        h = secs // 3600
        return "About an hour" if h == 1 else f"{h} hours" if h < 48 else f"{h // 24} days"

    status = state.get("Status")
    if status == "running":
        return f"Up {ago(state.get('StartedAt', ''))}"
    if status == "exited":
        return f"Exited ({state.get('ExitCode', 0)}) {ago(state.get('FinishedAt', ''))} ago"
    return "Created"

