"""Daemon side of the per-container monitor (see `monitor.py`).

`spawn_monitor` starts a monitor with one end of a socketpair, so no output is lost before
anybody attaches; `attach_monitor` reconnects to a running monitor through its socket (a
restarted daemon). A handle has one output consumer; the engine fans out to attach clients.
Signals do not go through the monitor: the daemon calls `runc kill` itself.

The monitor is `data/dockyard-monitor.c` (built by runtime/native.py; ~0.3 MiB PSS where the
Python one costs ~13 MiB) and `monitor.py` where no C compiler is at hand: both speak the same
arguments, frames and files, so a daemon restarted onto the other kind reattaches to either.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import socket
import subprocess
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path

from dockyard.errors import RuntimeFailure
from dockyard.runtime import monitor_protocol as proto
from dockyard.runtime import native
from dockyard.runtime.monitor_protocol import EXIT_NAME, SOCKET_NAME, LogOptions
from dockyard.runtime.runc import ContainerStartError, Runc

# Output the handle holds for its consumer before it stops reading the monitor's socket: the
# monitor then stops reading the container's output (its own high-water mark), so a slow
# consumer slows the container instead of filling the daemon's memory.
_HIGH_WATER = 1 << 20


class MonitorHandle:
    """One connection to a container's monitor.

    Its output has one consumer (`output()`); one that stops consuming calls
    `discard_output()`, or the container would wait for it.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        state_dir: Path,
    ) -> None:
        self.pid = 0
        self.state_dir = state_dir
        self._reader = reader
        self._writer = writer
        # Frames to the monitor go out through a socket of their own, a dup of the
        # connection's: a send that fails because the monitor has finished (EPIPE,
        # ECONNRESET) is a *fatal* error of an asyncio transport, which then drops its
        # reader, and the monitor's last frames, still unread in the socket, were lost. A quick
        # exec whose client closed stdin at once (`docker compose exec -T ... </dev/null`)
        # ended with no output, and exit.json's 0 for an exit code (test_monitor_handle.py).
        conn = writer.get_extra_info("socket")
        self._out = socket.socket(fileno=os.dup(conn.fileno()))
        self._out.setblocking(False)
        # In order and whole, as a transport's buffer would send them: one task sends the
        # queue, and a sender that is cancelled does not cut its frame short.
        self._out_queue: collections.deque[tuple[bytes, asyncio.Future[None]]] = collections.deque()
        self._out_task: asyncio.Task[None] | None = None
        self._out_closed = False
        loop = asyncio.get_running_loop()
        self._started: asyncio.Future[int] = loop.create_future()
        self._exited: asyncio.Future[int] = loop.create_future()
        self._output: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue()
        self._buffered = 0  # bytes of output in `_output`
        self._room = asyncio.Event()
        self._room.set()
        self._discard = False
        self._task = asyncio.create_task(self._read_loop())

    async def _read_loop(self) -> None:
        decoder = proto.FrameDecoder()
        try:
            while True:
                data = await self._reader.read(65536)
                if not data:
                    break
                for kind, payload in decoder.feed(data):
                    self._dispatch(kind, payload)
                await self._wait_for_room()
        except (OSError, ValueError):
            pass
        finally:
            self._writer.close()
            self._close_out()
            self._output.put_nowait(None)
            self._settle_at_eof()

    async def _wait_for_room(self) -> None:
        """Hold off reading while the consumer is behind. The exit frame comes after the
        output, so meanwhile the exit is looked for in exit.json: a container stopped while
        its attached client reads nothing still exits."""
        while self._buffered > _HIGH_WATER:
            self._room.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._room.wait(), 0.5)
            if not self._exited.done() and (code := read_exit_code(self.state_dir)) is not None:
                self._exited.set_result(code)

    def _dispatch(self, kind: int, payload: bytes) -> None:
        if kind in (proto.STDOUT, proto.STDERR):
            if self._discard:
                return
            self._buffered += len(payload)
            self._output.put_nowait((kind, payload))
        elif kind == proto.STARTED:
            self.pid = int(json.loads(payload)["pid"])
            if not self._started.done():
                self._started.set_result(self.pid)
        elif kind == proto.START_FAILED:
            body = json.loads(payload)
            err = ContainerStartError(str(body["message"]), int(body["exit_code"]))
            if not self._started.done():
                self._started.set_exception(err)
            if not self._exited.done():
                self._exited.set_exception(err)
        elif kind == proto.EXITED and not self._exited.done():
            self._exited.set_result(int(json.loads(payload)["exit_code"]))
            # All output came before the exit; the connection ends later, after the
            # monitor's `runc delete` (closed()), which the output's consumer need not await.
            self._output.put_nowait(None)

    def _settle_at_eof(self) -> None:
        # The connection ended without a verdict: the monitor died, or we detached.
        exit_code = read_exit_code(self.state_dir)
        for fut in (self._started, self._exited):
            if fut.done():
                continue
            if fut is self._exited and exit_code is not None:
                fut.set_result(exit_code)
            else:
                fut.set_exception(
                    RuntimeFailure(
                        f"lost the connection to the container monitor in {self.state_dir}"
                    )
                )
        for fut in (self._started, self._exited):
            # Nobody may ever await these; do not warn about unretrieved exceptions.
            if fut.done() and not fut.cancelled():
                fut.exception()

    async def started(self) -> int:
        """The init pid once `runc start` succeeded; ContainerStartError if it failed."""
        return await asyncio.shield(self._started)

    async def output(self) -> AsyncIterator[tuple[int, bytes]]:
        """(1 = stdout | 2 = stderr, data) from the start until the container's pipes close."""
        while True:
            item = await self._output.get()
            if item is None:
                self._output.put_nowait(None)
                return
            self._buffered -= len(item[1])
            if self._buffered <= _HIGH_WATER:
                self._room.set()
            yield item

    def discard_output(self) -> None:
        """Nobody reads the output any more (a detached exec, a client gone): drop it, so
        the process is not held up for it."""
        self._discard = True
        ended = False
        while not self._output.empty():
            ended = self._output.get_nowait() is None or ended
        if ended:
            self._output.put_nowait(None)
        self._buffered = 0
        self._room.set()

    async def _send(self, data: bytes) -> None:
        """Send one frame, waiting while the monitor holds its input back. To a monitor that
        has gone it is dropped: nobody is left to take it, and what the monitor sent before
        it went is still read to the end."""
        if self._out_closed:
            return
        sent = asyncio.get_running_loop().create_future()
        self._out_queue.append((data, sent))
        if self._out_task is None or self._out_task.done():
            self._out_task = asyncio.create_task(self._send_queued())
        await asyncio.shield(sent)

    async def _send_queued(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._out_queue and not self._out_closed:
                data, sent = self._out_queue[0]
                try:
                    await loop.sock_sendall(self._out, data)
                except OSError:  # EPIPE, ECONNRESET: the monitor has gone
                    self._close_out()
                    return
                self._out_queue.popleft()
                if not sent.done():
                    sent.set_result(None)
        finally:
            if self._out_closed:
                # here, once the loop has let go of the fd (a cancelled sock_sendall
                # unregisters it): closed earlier, its number could be another's by then
                self._out.close()

    def _close_out(self) -> None:
        """No more frames go to the monitor; senders still waiting are let go."""
        self._out_closed = True
        while self._out_queue:
            _, sent = self._out_queue.popleft()
            if not sent.done():
                sent.set_result(None)
        task = self._out_task
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()  # its `finally` closes the socket
        else:
            self._out.close()

    async def write_stdin(self, data: bytes) -> None:
        await self._send(proto.frame(proto.STDIN, data))

    async def close_stdin(self) -> None:
        await self._send(proto.frame(proto.STDIN_CLOSE))

    async def resize(self, height: int, width: int) -> None:
        """Set a terminal container's window size (ignored without a terminal)."""
        await self._send(proto.control(proto.RESIZE, {"height": height, "width": width}))

    async def wait(self) -> int:
        """The container's exit code (128+N when killed by signal N)."""
        return await asyncio.shield(self._exited)

    async def closed(self) -> None:
        """Until the monitor has let go of the container: after the exit it still runs
        `runc delete`, and only then does its connection end."""
        await asyncio.shield(self._task)

    async def detach(self) -> None:
        """Drop the connection; the monitor, the container and its log carry on."""
        self._close_out()  # the monitor sees the end once both fds of ours are closed
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()
        await self._task


def read_exit_code(state_dir: Path) -> int | None:
    """The exit code a monitor recorded in `exit.json`, if it has."""
    try:
        return int(json.loads((state_dir / EXIT_NAME).read_text())["exit_code"])
    except (FileNotFoundError, ValueError, KeyError):
        return None


def _launch(argv: list[str], state_dir: Path, fd: int) -> subprocess.Popen[bytes]:
    # Not an asyncio subprocess: its transport kills a still-running child when collected,
    # and the monitor must outlive every handle. The monitor forks itself away (--detach), so
    # the caller waits only for the short-lived intermediate (`_reaped`).
    with (state_dir / "monitor.log").open("ab") as log:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            pass_fds=(fd,),
            cwd=state_dir,
            # Its own session: a Ctrl-C or SIGHUP aimed at the daemon must not reach it.
            start_new_session=True,
        )


async def _reaped(proc: subprocess.Popen[bytes]) -> int:
    """The exit status of `proc`, awaited on the event loop through a pidfd, not a thread.

    A worker thread running Popen and wait() needs the GIL at every step while the loop
    thread builds and writes the bundle: the two took turns at the interpreter's 5 ms switch
    interval, and runc waited for the monitor (issue 17 row d; on this 2-core machine under
    others' load, the start's first 10 ms became 26 on average, 30 starts alternating
    with a daemon spawning it on the loop). Spawned on the loop, the intermediate's exec,
    fork and exit run in parallel with the bundle, and nothing waits for the GIL.
    """
    try:
        pidfd = os.pidfd_open(proc.pid)
    except OSError:  # a kernel without pidfds (< 5.3), or it is already gone and reaped
        return await asyncio.to_thread(proc.wait)
    loop = asyncio.get_running_loop()
    gone: asyncio.Future[None] = loop.create_future()

    def readable() -> None:  # the pidfd stays readable until it is closed
        if not gone.done():
            gone.set_result(None)

    loop.add_reader(pidfd, readable)
    try:
        await gone
    except BaseException:
        # Cancelled: reap it all the same (it exits at once), off the loop.
        loop.run_in_executor(None, proc.wait)
        raise
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)
    return proc.wait()  # it has exited: no wait


def monitor_command(cache_dir: Path) -> list[str]:
    """argv[0:n] of a monitor: the C one, else monitor.py (`DOCKYARD_MONITOR=python`)."""
    return native.command(native.MONITOR, cache_dir, "dockyard.runtime.monitor", "DOCKYARD_MONITOR")


async def spawn_monitor(
    *,
    container_id: str,
    bundle: Path,
    state_dir: Path,
    runc: Runc,
    open_stdin: bool,
    tty: bool = False,
    exec_process: Path | None = None,
    log: LogOptions | None = None,
    ephemeral: bool = False,
    ready: Awaitable[object] | None = None,
) -> MonitorHandle:
    """Start a monitor that creates and starts the container in `bundle`.

    `tty` must match the spec's `process.terminal`; the terminal's output arrives as stdout.
    With `ready`, the monitor starts while the caller still writes the bundle (~3 ms of a
    start overlapped, issue 17 row d) and runs runc once `ready` is done; should `ready`
    fail, the monitor is called off (it exits, having made nothing) and the error raised.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    # runc's state lives in the daemon's root (`<root>/runc`): binaries go to `<root>/bin`,
    # where --init's is built too.
    cache_dir = runc.state_root.absolute().parent / "bin"
    prefix = native.known_command(native.MONITOR, cache_dir, "DOCKYARD_MONITOR")
    if prefix is None:  # the first start: found or built in a worker thread
        prefix = await asyncio.to_thread(monitor_command, cache_dir)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    argv = [
        *prefix,
        "--id",
        container_id,
        "--bundle",
        str(bundle.absolute()),
        "--state-dir",
        str(state_dir.absolute()),
        "--runc",
        runc.executable,
        "--runc-root",
        str(runc.state_root.absolute()),
        "--fd",
        str(theirs.fileno()),
    ]
    if open_stdin:
        argv.append("--open-stdin")
    if tty:
        argv.append("--tty")
    if exec_process is not None:
        argv += ["--exec-process", str(exec_process.absolute())]
    if log is not None:
        argv += log.argv()
    if ephemeral:
        argv.append("--ephemeral")
    if ready is not None:
        argv.append("--hold")
    argv.append("--detach")
    try:
        try:
            proc = _launch(argv, state_dir, theirs.fileno())
        finally:
            theirs.close()  # the monitor has its copy once Popen returns
        code = await _reaped(proc)
    except BaseException:
        ours.close()
        raise
    if code != 0:
        ours.close()
        raise RuntimeFailure(
            f"the container monitor failed to start (status {code}); see {state_dir}/monitor.log"
        )
    reader, writer = await asyncio.open_unix_connection(sock=ours)
    handle = MonitorHandle(reader, writer, state_dir)
    if ready is not None:
        try:
            await asyncio.shield(ready)  # a cancelled start still lets the bundle finish
        except BaseException:
            await handle.detach()  # the monitor sees the end instead of GO
            raise
        writer.write(proto.frame(proto.GO))
        await writer.drain()
    return handle


async def attach_monitor(state_dir: Path) -> MonitorHandle:
    """Reconnect to a running monitor; output flows from now on (earlier output is in the log)."""
    # Connect through a directory fd: sun_path holds 107 bytes and state dirs can be longer.
    dir_fd = os.open(state_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        reader, writer = await asyncio.open_unix_connection(f"/proc/self/fd/{dir_fd}/{SOCKET_NAME}")
    except (FileNotFoundError, ConnectionRefusedError) as e:
        raise RuntimeFailure(f"no monitor is running for {state_dir}: {e}") from None
    finally:
        os.close(dir_fd)
    return MonitorHandle(reader, writer, state_dir)
