"""`docker exec`: extra processes in a running container, each under a monitor of its own.

The monitor (runtime/monitor.py in exec mode) runs `runc exec --detach --process FILE` and is
the new process's subreaper, so it holds its stdio (pipes or a pty from --console-socket),
collects its exit code and survives the daemon, exactly as for a container's init.

Lifecycle (Docker's): create (checks the container runs; 409 otherwise) → start (attached:
output streamed over the hijacked connection; detached: nothing) → exit (ExitCode set, kept
for inspect until the container is removed or the daemon restarts). A process that cannot be
started gets exit code 126 and its error on the stream, as moby's ContainerExecStart does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dockyard.engine.seams import ProcessHandle
from dockyard.errors import Conflict, InvalidArgument, NotFound
from dockyard.runtime.detachkeys import InvalidDetachKeys, parse_detach_keys
from dockyard.runtime.process import process_env, replace_or_append
from dockyard.runtime.runc import ContainerStartError
from dockyard.runtime.spec import grantable_capabilities
from dockyard.runtime.users import resolve_user
from dockyard.statefile import write_json

if TYPE_CHECKING:
    from dockyard.engine.container_record import Container
    from dockyard.engine.containers import ContainerManager


@dataclass
class ExecRecord:
    id: str
    container_id: str
    config: dict[str, Any]
    running: bool = False
    exit_code: int | None = None
    pid: int = 0
    handle: ProcessHandle | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    started: bool = False

    @property
    def tty(self) -> bool:
        return bool(self.config.get("Tty"))


class ExecManager:
    def __init__(self, containers: ContainerManager) -> None:
        self.containers = containers
        self.execs: dict[str, ExecRecord] = {}
        self._reapers: set[asyncio.Future[None]] = set()

    def ids_for(self, cid: str) -> list[str] | None:
        ids = [e.id for e in self.execs.values() if e.container_id == cid]
        return ids or None

    def get(self, eid: str) -> ExecRecord:
        rec = self.execs.get(eid)
        if rec is None:
            matches = [e for k, e in self.execs.items() if k.startswith(eid)] if eid else []
            if len(matches) != 1:
                raise NotFound(f"No such exec instance: {eid}")
            rec = matches[0]
        return rec

    def _active_container(self, name_or_id: str) -> Container:
        """The container, if it can take an exec now: moby's getActiveContainer and
        getExecConfig refuse the others (exec create, and exec start before its hijack)."""
        c = self.containers.resolve(name_or_id)
        if c.state.restarting:
            raise Conflict(f"Container {c.id} is restarting, wait until the container is running")
        if not c.state.alive:
            raise Conflict(f"Container {c.id} is not running")
        if c.state.paused:
            raise Conflict(f"Container {c.id} is paused, unpause the container before exec")
        return c

    def create(self, name_or_id: str, body: dict[str, Any]) -> str:
        c = self._active_container(name_or_id)
        cmd = body.get("Cmd")
        if not cmd or not isinstance(cmd, list):
            raise InvalidArgument("No exec command specified")
        wd = body.get("WorkingDir") or ""
        if wd and not wd.startswith("/"):
            raise InvalidArgument(
                f"the working directory '{wd}' is invalid, it needs to be an absolute path"
            )
        keys = body.get("DetachKeys") or ""
        try:
            parse_detach_keys(keys)
        except InvalidDetachKeys:
            # moby daemon/exec.go ContainerExecCreate's words
            raise InvalidArgument(f"Invalid escape keys ({keys}) provided") from None
        eid = secrets.token_hex(32)
        self.execs[eid] = ExecRecord(eid, c.id, dict(body))
        # Docker forgets finished execs eventually; keep the table bounded.
        finished = [e for e in self.execs.values() if e.exit_code is not None]
        for old in finished[:-200]:
            self.execs.pop(old.id, None)
        return eid

    def _process(self, ex: ExecRecord) -> dict[str, Any]:
        c = self.containers.resolve(ex.container_id)
        state_dir = self.containers.state_dir(c.id)
        spec = json.loads((state_dir / "bundle" / "config.json").read_text())
        process: dict[str, Any] = dict(spec["process"])
        cfg = ex.config
        rootfs = state_dir / "rootfs"
        if not any(rootfs.iterdir()) if rootfs.exists() else True:
            rootfs = Path(f"/proc/{c.state.pid}/root")
        user_s = cfg.get("User") or c.config.user
        user = resolve_user(rootfs, user_s)
        # moby daemon/exec.go: the container's environment (with TERM for a TTY exec), then
        # the exec's own Env over it.
        hostname = spec.get("hostname") or c.id[:12]
        container_env = list(c.config.env or ())
        env_list = replace_or_append(container_env, list(cfg.get("Env") or []))
        process["env"] = process_env(env_list, hostname, user.home, tty=bool(cfg.get("Tty")))
        process["args"] = list(cfg["Cmd"])
        process["cwd"] = cfg.get("WorkingDir") or process.get("cwd") or "/"
        process["terminal"] = bool(cfg.get("Tty"))
        process["user"] = {
            "uid": user.uid,
            "gid": user.gid,
            "additionalGids": list(user.additional_gids),
        }
        if cfg.get("Privileged"):
            caps = list(grantable_capabilities())
            process["capabilities"] = {"bounding": caps, "effective": caps, "permitted": caps}
        size = cfg.get("ConsoleSize")
        if cfg.get("Tty") and size and len(size) == 2 and size[0] and size[1]:
            process["consoleSize"] = {"height": int(size[0]), "width": int(size[1])}
        return process

    def startable(self, eid: str) -> ExecRecord:
        """The exec instance, if its container can take it now: what moby's ExecExists
        (getExecConfig) refuses before the start request's hijack, with its words."""
        ex = self.get(eid)
        self._active_container(ex.container_id)
        return ex

    def forget_container(self, cid: str) -> None:
        """The container stopped: its exec instances go with its run (moby daemon/start.go
        Cleanup unregisters them at the exit; exec start and inspect answer 404 after)."""
        for eid in [e.id for e in self.execs.values() if e.container_id == cid]:
            del self.execs[eid]

    async def start(self, eid: str) -> ExecRecord:
        """Start the process; on failure the record holds exit code 126 and re-raises."""
        ex = self.startable(eid)
        # moby ContainerExecStart: these two come after the hijack, in the stream
        if ex.running:
            raise Conflict(f"Error: Exec command {ex.id} is already running")
        if ex.started:
            raise Conflict(f"Error: Exec command {ex.id} has already run")
        cid = ex.container_id  # the full id, as create recorded it
        ex.started = True
        exec_dir = self.containers.state_dir(cid) / "exec" / ex.id[:16]
        exec_dir.mkdir(parents=True, exist_ok=True)
        try:
            process = self._process(ex)
            write_json(exec_dir / "process.json", process)
            handle = await self.containers.runtime.spawn(
                cid,
                self.containers.state_dir(cid) / "bundle",
                exec_dir,
                open_stdin=bool(ex.config.get("AttachStdin")),
                tty=bool(ex.config.get("Tty")),
                exec_process=exec_dir / "process.json",
            )
            ex.pid = await handle.started()
        except Exception as e:  # whatever failed, moby records 126 (its deferred reset)
            ex.exit_code = 126
            ex.done.set()
            shutil.rmtree(exec_dir, ignore_errors=True)
            raise ContainerStartError(f"OCI runtime exec failed: {e}", 126) from None
        ex.handle = handle
        ex.running = True
        self._reapers.add(asyncio.ensure_future(self._reap(ex, handle, exec_dir)))
        self._reapers = {t for t in self._reapers if not t.done()}
        return ex

    async def _reap(self, ex: ExecRecord, handle: ProcessHandle, exec_dir: Path) -> None:
        try:
            ex.exit_code = await handle.wait()
        except Exception:
            ex.exit_code = 126 if ex.exit_code is None else ex.exit_code
        ex.running = False
        ex.done.set()
        with contextlib.suppress(Exception):
            await asyncio.sleep(0.5)  # let the attached stream drain before the dir goes
            shutil.rmtree(exec_dir, ignore_errors=True)

    def detached(self, ex: ExecRecord) -> None:
        """The client detached from the exec's stream; the process keeps running and its
        further output is discarded (nobody is attached to read it)."""
        if ex.handle is not None:
            self._reapers.add(asyncio.ensure_future(_discard(ex.handle)))
        c = self.containers.get(ex.container_id)
        if c is not None:
            self.containers.event(c, "exec_detach", execID=ex.id)

    async def resize(self, eid: str, height: int, width: int) -> None:
        ex = self.get(eid)
        if ex.handle is None or not ex.running:
            raise Conflict(f"Exec {eid} is not running")
        if ex.tty:
            await ex.handle.resize(height, width)

    def inspect(self, eid: str) -> dict[str, Any]:
        ex = self.get(eid)
        cfg = ex.config
        return {
            "ID": ex.id,
            "Running": ex.running,
            "ExitCode": ex.exit_code,
            "ProcessConfig": {
                "tty": bool(cfg.get("Tty")),
                "entrypoint": cfg["Cmd"][0],
                "arguments": list(cfg["Cmd"][1:]),
                "privileged": bool(cfg.get("Privileged")),
                "user": cfg.get("User") or "",
            },
            "OpenStdin": bool(cfg.get("AttachStdin")),
            "OpenStderr": bool(cfg.get("AttachStderr")),
            "OpenStdout": bool(cfg.get("AttachStdout")),
            "CanRemove": False,
            "ContainerID": ex.container_id,
            "DetachKeys": cfg.get("DetachKeys") or "",
            "Pid": ex.pid,
        }

    async def run_captured(self, cid: str, cmd: list[str], timeout: float) -> tuple[int, str]:
        """Run `cmd` in the container and collect its output (healthchecks)."""
        eid = self.create(cid, {"Cmd": cmd, "AttachStdout": True, "AttachStderr": True})
        try:
            ex = await self.start(eid)
        except ContainerStartError as e:
            return 126, str(e)
        assert ex.handle is not None
        out = bytearray()

        async def collect() -> None:
            assert ex.handle is not None
            async for _, data in ex.handle.output():
                if len(out) < 4096:
                    out.extend(data)

        try:
            await asyncio.wait_for(asyncio.gather(collect(), ex.done.wait()), timeout)
        except TimeoutError:
            if ex.pid:
                with contextlib.suppress(OSError):
                    import os
                    import signal

                    os.kill(ex.pid, signal.SIGKILL)
            self.execs.pop(eid, None)
            return -1, f"Health check exceeded timeout ({timeout:g}s)"
        self.execs.pop(eid, None)
        return int(ex.exit_code or 0), out.decode(errors="replace")


async def _discard(handle: ProcessHandle) -> None:
    async for _ in handle.output():
        pass
