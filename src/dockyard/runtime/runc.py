"""The runc driver: one method per runc subcommand, run as asyncio child processes.

runc reports failures on stderr and, with `--log --log-format json`, as JSON lines in a log
file; the file is what we read, because a container's stderr is the same fd as runc's own and
may belong to somebody else (a pipe to a monitor, a build's output). Container state lives
under `--root`, so dockyard's containers never mix with other runc users'.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import functools
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from dockyard.errors import RuntimeFailure

_NOISE_PREFIXES = (
    "runc run failed: ",
    "runc create failed: ",
    "runc start failed: ",
    "unable to start container process: ",
    "unable to create new parent process: ",
)


class ContainerStartError(RuntimeFailure):
    """runc could not start the container's process.

    `exit_code` follows the docker CLI: 127 when the command is not found, 126 when it cannot
    be invoked, 125 for any other failure to start.
    """

    def __init__(self, message: str, exit_code: int = 125) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def clean_message(raw: str) -> str:
    """runc's error without the wrapping prefixes that say nothing to a user."""
    msg = raw.strip()
    changed = True
    while changed:
        changed = False
        for prefix in _NOISE_PREFIXES:
            if msg.startswith(prefix):
                msg = msg[len(prefix) :]
                changed = True
    return msg


def start_exit_code(message: str) -> int:
    """The docker CLI exit code for a failed start (see ContainerStartError)."""
    low = message.lower()
    if "executable file not found" in low or "no such file or directory" in low:
        return 127
    if "permission denied" in low:
        return 126
    return 125


def start_error(message: str) -> ContainerStartError:
    msg = clean_message(message)
    return ContainerStartError(msg, start_exit_code(msg))


def read_error_log(path: Path) -> str | None:
    """The last error runc wrote to its JSON log file, if any."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return None
    found: str | None = None
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("level") in ("error", "fatal"):
            found = str(entry.get("msg", ""))
    return found


_LOGRUS_MSG = re.compile(r'level=(?:error|fatal) msg="((?:[^"\\]|\\.)*)"')


def _stderr_error(stderr: str) -> str:
    # Fallback when no log file is available: logrus text lines `time=… level=error msg="…"`.
    msgs = [m.group(1).encode().decode("unicode_escape") for m in _LOGRUS_MSG.finditer(stderr)]
    return msgs[-1] if msgs else stderr.strip()


@functools.cache
def _runc_commit(binary: str) -> str:
    import subprocess

    try:
        out = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=10
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    version = ""
    for line in out.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "commit" and value.strip():
            return value.strip()
        if line.startswith("runc version "):
            version = line.removeprefix("runc version ").strip()
    return version


class Runc:
    """Drives the runc binary with its state under `state_root`."""

    def __init__(self, binary: str = "runc", state_root: Path = Path("/run/dockyard/runc")) -> None:
        self.binary = binary
        self.state_root = state_root
        self._executable: str | None = None

    @property
    def executable(self) -> str:
        """`binary` resolved on PATH once: an exec of a bare name tries every PATH entry
        first (8 failed execve per runc call on these machines, twice per container through
        the monitor, issue 17 row d). Not kept while runc is not found, so one installed
        later is picked up."""
        if self._executable is None:
            found = shutil.which(self.binary)
            if found is None:
                return self.binary
            self._executable = os.path.abspath(found)
        return self._executable

    def commit(self) -> str:
        """What dockerd shows as `runc version` (RuncCommit.ID): the `commit:` line of
        `runc --version`, else its version (moby daemon/info_unix.go parseRuntimeVersion).
        Asked once per process; empty when runc cannot say."""
        return _runc_commit(self.binary)

    def _base(self, log: Path | None = None) -> list[str]:
        argv = [self.executable, "--root", str(self.state_root)]
        if log is not None:
            argv += ["--log", str(log), "--log-format", "json"]
        return argv

    def _log_path(self) -> Path:
        self.state_root.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, name = tempfile.mkstemp(prefix=".log-", suffix=".json", dir=self.state_root)
        os.close(fd)
        return Path(name)

    async def _call(self, *args: str) -> str:
        """Run a runc subcommand that must succeed; its stdout."""
        self.state_root.mkdir(parents=True, exist_ok=True, mode=0o700)
        proc = await asyncio.create_subprocess_exec(
            *self._base(),
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        if proc.returncode != 0:
            msg = clean_message(_stderr_error(err.decode(errors="replace")))
            raise RuntimeFailure(f"runc {args[0]}: {msg or f'exit status {proc.returncode}'}")
        return out.decode(errors="replace")

    async def run(
        self,
        container_id: str,
        bundle: Path,
        *,
        stdin: int | None,
        stdout: int,
        stderr: int,
    ) -> int:
        """`runc run` in the foreground; the container's exit code (128+N if killed by N).

        Raises ContainerStartError when runc could not start the process. runc also prints
        that error on `stderr`.
        """
        log = self._log_path()
        try:
            proc = await asyncio.create_subprocess_exec(
                *self._base(log),
                "run",
                "--bundle",
                str(bundle),
                container_id,
                stdin=stdin if stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
            )
            code = await proc.wait()
            error = read_error_log(log)
        finally:
            log.unlink(missing_ok=True)
        if error is not None:
            # runc leaves nothing behind on a failed run, but be sure a half-made one goes.
            with contextlib.suppress(RuntimeFailure):
                await self.delete(container_id, force=True)
            raise start_error(error)
        return code

    async def run_detached(
        self,
        container_id: str,
        bundle: Path,
        *,
        stdin: int | None,
        stdout: int,
        stderr: int,
        pid_file: Path | None = None,
        console_socket: Path | None = None,
    ) -> None:
        """`runc run --detach`: create and start in one runc process (a `create` then a
        `start` cost two, ~10-40 ms each, issue 17 row d); stdio fds are inherited and the
        init is left to the caller, its subreaper. The daemon sets up everything the
        container needs (network namespace, mounts, the spec) before, so nothing has to
        happen between create and start, the gap dockerd keeps for its network hooks."""
        args = ["run", "--detach", "--bundle", str(bundle)]
        if pid_file is not None:
            args += ["--pid-file", str(pid_file)]
        await self._start_process(args, container_id, stdin, stdout, stderr, console_socket)

    async def exec(
        self,
        container_id: str,
        process: Path,
        *,
        stdin: int | None,
        stdout: int,
        stderr: int,
        pid_file: Path,
        console_socket: Path | None = None,
    ) -> None:
        """`runc exec --detach --process FILE`: the new process is left to our subreaper."""
        args = ["exec", "--detach", "--process", str(process), "--pid-file", str(pid_file)]
        await self._start_process(args, container_id, stdin, stdout, stderr, console_socket)

    async def _start_process(
        self,
        args: list[str],
        container_id: str,
        stdin: int | None,
        stdout: int,
        stderr: int,
        console_socket: Path | None,
    ) -> None:
        """Run a runc command that starts a process with inherited stdio; its failure (read
        from runc's log) becomes a ContainerStartError with docker's 126/127 codes."""
        log = self._log_path()
        argv = [*self._base(log), *args]
        if console_socket is not None:
            argv += ["--console-socket", str(console_socket)]
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                container_id,
                stdin=stdin if stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
            )
            code = await proc.wait()
            error = read_error_log(log)
        finally:
            log.unlink(missing_ok=True)
        if code != 0 or error is not None:
            raise start_error(error or f"runc {args[0]} exited with status {code}")

    async def pause(self, container_id: str) -> None:
        await self._call("pause", container_id)

    async def resume(self, container_id: str) -> None:
        await self._call("resume", container_id)

    async def update(self, container_id: str, resources: Path) -> None:
        """`runc update -r FILE`: new cgroup limits (an OCI linux.resources JSON)."""
        await self._call("update", "--resources", str(resources), container_id)

    async def ps(self, container_id: str) -> builtins.list[int]:
        out = await self._call("ps", "--format", "json", container_id)
        return [int(p) for p in (json.loads(out) if out.strip() else None) or []]

    async def kill(self, container_id: str, signal: int = 15, all: bool = False) -> None:
        args = ["kill"] + (["--all"] if all else []) + [container_id, str(signal)]
        await self._call(*args)

    async def delete(self, container_id: str, force: bool = False) -> None:
        await self._call("delete", *(["--force"] if force else []), container_id)

    async def state(self, container_id: str) -> dict[str, Any] | None:
        """runc's state document, or None when runc does not know the container."""
        try:
            out = await self._call("state", container_id)
        except RuntimeFailure as e:
            if "does not exist" in str(e):
                return None
            raise
        state: dict[str, Any] = json.loads(out)
        return state

    async def list(self) -> builtins.list[dict[str, Any]]:
        out = await self._call("list", "--format", "json")
        data = json.loads(out) if out.strip() else None
        return list(data or [])
