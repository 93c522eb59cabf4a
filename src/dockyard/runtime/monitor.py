"""The per-container monitor process (our conmon / containerd-shim).

Started once per container as `python -m dockyard.runtime.monitor …` in a session of its own,
it outlives the daemon that started it. It is the child subreaper, so the container's init is
reparented to it when `runc run --detach` exits and only it can collect the exit status. It
holds the container's stdio pipes, appends every byte of output to a json-file log in Docker's
format, forwards output to its peers (the daemon over an inherited socketpair, later daemons
through `<state_dir>/monitor.sock`), feeds stdin from them, and at exit writes
`<state_dir>/exit.json`, reports the exit code and runs `runc delete`.

Lifecycle: run --detach (create and start in one runc) → (output, stdin)* → exit → exit.json →
EXITED → delete → gone (the connections end).
A peer going away never stops the container or the log.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import errno
import fcntl
import json
import os
import selectors
import socket
import struct
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path
from typing import BinaryIO

from dockyard.runtime import monitor_protocol as proto

# the daemon's side reads these from monitor_protocol, without this module (termios and the
# monitor's loop: 0.15 MiB of an idle daemon's RSS)
from dockyard.runtime.monitor_protocol import (
    CONSOLE_NAME,
    EXIT_NAME,
    LOG_NAME,
    MONITOR_PID_NAME,
    PID_NAME,
    SOCKET_NAME,
    LogOptions,
)
from dockyard.runtime.runc import ContainerStartError, Runc
from dockyard.statefile import write_json

PR_SET_CHILD_SUBREAPER = 36

# Docker's json-file copier emits a partial line when its 16 KiB buffer fills.
_MAX_LINE = 16 * 1024
# While a peer (the daemon) has this much unsent, the container's output is not read: a slow
# attached client slows the container, as dockerd's 1 MiB BytesPipe blocks its copier, instead
# of the output piling up in the daemon's memory. After init exits the outputs are read
# regardless; a peer that then falls _MAX_PEER_BACKLOG behind is dropped.
_PEER_HIGH_WATER = 1 << 20
_MAX_PEER_BACKLOG = 64 * 1024 * 1024
# After init exits, stray holders of the output pipes get this long before we stop reading.
_DRAIN_SECONDS = 5.0


# Go's encoding/json (Docker's writer) escapes these even inside strings.
_GO_JSON_ESCAPES = {
    ord("<"): "\\u003c",
    ord(">"): "\\u003e",
    ord("&"): "\\u0026",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}


def rfc3339nano(ns: int | None = None) -> str:
    """Go's time.RFC3339Nano in UTC (trailing zeros of the fraction trimmed)."""
    ns = time.time_ns() if ns is None else ns
    secs, frac = divmod(ns, 1_000_000_000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    digits = f"{frac:09d}".rstrip("0")
    return f"{base}.{digits}Z" if digits else f"{base}Z"


class JsonFileLog:
    """Docker's json-file log driver format: one JSON object per line of output.

    Rotation as moby's loggerutils.LogFile: before an entry is written, a file that has
    reached max-size is rotated (`.1` … `.N-1` shift up, the current file becomes `.1`, a
    new one starts); with max-file 1 the file starts anew.
    """

    def __init__(self, path: Path, options: LogOptions | None = None) -> None:
        self._path = path
        self._options = options or LogOptions()
        self._file: BinaryIO | None = None
        self._size = 0
        if self._options.driver != "none":
            # 0640 as rootperms.LOG_MODE (the monitor does not import it: its start stays light)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
            self._file = os.fdopen(fd, "ab")
            self._size = os.fstat(self._file.fileno()).st_size
        self._pending: dict[str, bytes] = {"stdout": b"", "stderr": b""}

    def _rotate(self) -> None:
        assert self._file is not None
        self._file.close()
        name = str(self._path)
        if self._options.max_file >= 2:
            for i in range(self._options.max_file - 1, 1, -1):
                with contextlib.suppress(FileNotFoundError):
                    os.rename(f"{name}.{i - 1}", f"{name}.{i}")
            with contextlib.suppress(FileNotFoundError):
                os.rename(name, f"{name}.1")
        else:
            # moby truncates in place; a new file (a new inode) reads the same to a client
            # and lets a follower that holds the old one tell that it was rotated.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name)
        fd = os.open(
            name, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o640
        )
        self._file = os.fdopen(fd, "ab")  # kept open for the container's life
        self._size = 0

    def _emit(self, stream: str, line: bytes) -> None:
        if self._file is None:
            return
        entry = {"log": line.decode("utf-8", errors="replace"), "stream": stream}
        entry["time"] = rfc3339nano()
        text = json.dumps(entry, ensure_ascii=False, separators=(",", ":"))
        data = text.translate(_GO_JSON_ESCAPES).encode() + b"\n"
        if 0 <= self._options.max_size <= self._size:
            self._file.flush()
            self._rotate()
        self._file.write(data)
        self._size += len(data)

    def write(self, stream: str, data: bytes) -> None:
        # moby's copier (daemon/logger/copier.go) reads into a 16 KiB buffer and logs each
        # line in it; a buffer that fills without a newline is logged as a partial line. So a
        # line is cut every 16 KiB from its start, whether or not its newline follows.
        buf = self._pending[stream] + data
        start = 0
        while True:
            nl = buf.find(b"\n", start, start + _MAX_LINE)
            if nl >= 0:
                self._emit(stream, buf[start : nl + 1])
                start = nl + 1
            elif len(buf) - start >= _MAX_LINE:
                self._emit(stream, buf[start : start + _MAX_LINE])
                start += _MAX_LINE
            else:
                break
        self._pending[stream] = buf[start:]
        if self._file is not None:
            self._file.flush()

    def close_stream(self, stream: str) -> None:
        if self._pending[stream]:
            self._emit(stream, self._pending[stream])
            self._pending[stream] = b""
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        for stream in self._pending:
            self.close_stream(stream)
        if self._file is not None:
            self._file.close()


class Peer:
    """A daemon-side connection: frames out (buffered, non-blocking), frames in."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.out = bytearray()
        self.decoder = proto.FrameDecoder()


class Monitor:
    def __init__(self, args: argparse.Namespace) -> None:
        self.container_id: str = args.id
        self.bundle = Path(args.bundle)
        self.state_dir = Path(args.state_dir)
        self.runc = Runc(args.runc, Path(args.runc_root))
        self.open_stdin: bool = args.open_stdin
        self.tty: bool = args.tty
        self.durable: bool = not args.ephemeral
        self.hold: bool = args.hold
        # Exec mode: run `runc exec` with this process.json in a running container instead
        # of creating one; nothing to delete at the end.
        self.exec_process: Path | None = Path(args.exec_process) if args.exec_process else None
        self.sel = selectors.DefaultSelector()
        self.peers: list[Peer] = []
        self.pid = 0
        self.started = False
        self.exit_code: int | None = None
        self.stdin_w: int | None = None
        self.stdin_buf = bytearray()
        self.stdin_closing = False
        self.outputs: dict[int, tuple[int, str]] = {}
        self.outputs_held = False  # unregistered from the selector while a peer is behind
        self.log = JsonFileLog(
            self.state_dir / LOG_NAME,
            LogOptions(args.log_driver, args.log_max_size, args.log_max_file),
        )
        self.listener: socket.socket | None = None
        if args.fd is not None:
            self._add_peer(socket.socket(fileno=args.fd))

    # -- peers ---------------------------------------------------------------------------

    def _add_peer(self, sock: socket.socket) -> Peer:
        peer = Peer(sock)
        self.peers.append(peer)
        self.sel.register(sock, selectors.EVENT_READ, ("peer", peer))
        return peer

    def _drop_peer(self, peer: Peer) -> None:
        if peer in self.peers:
            self.peers.remove(peer)
            self.sel.unregister(peer.sock)
            peer.sock.close()

    def _send(self, peer: Peer, data: bytes) -> None:
        peer.out += data
        self._flush_peer(peer)

    def _broadcast(self, data: bytes) -> None:
        for peer in list(self.peers):
            self._send(peer, data)

    def _flush_peer(self, peer: Peer) -> None:
        try:
            while peer.out:
                n = peer.sock.send(peer.out)
                del peer.out[:n]
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            # EPIPE / ECONNRESET: the daemon went away; the container and the log go on.
            self._drop_peer(peer)
            return
        if len(peer.out) > _MAX_PEER_BACKLOG:
            self._drop_peer(peer)
            return
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if peer.out else 0)
        self.sel.modify(peer.sock, events, ("peer", peer))

    def _on_peer(self, peer: Peer, mask: int) -> None:
        if mask & selectors.EVENT_WRITE:
            self._flush_peer(peer)
        if not mask & selectors.EVENT_READ or peer not in self.peers:
            return
        try:
            data = peer.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop_peer(peer)
            return
        try:
            frames = peer.decoder.feed(data)
        except ValueError:
            self._drop_peer(peer)
            return
        for kind, payload in frames:
            if kind == proto.STDIN and self.stdin_w is not None and not self.stdin_closing:
                self.stdin_buf += payload
                self._flush_stdin()
            elif kind == proto.STDIN_CLOSE:
                self.stdin_closing = True
                self._flush_stdin()
            elif kind == proto.RESIZE:
                self._resize(payload)

    def _accept(self) -> None:
        assert self.listener is not None
        try:
            sock, _ = self.listener.accept()
        except OSError:
            return
        peer = self._add_peer(sock)
        if self.started:
            self._send(peer, proto.control(proto.STARTED, {"pid": self.pid}))

    # -- stdin ---------------------------------------------------------------------------

    def _flush_stdin(self) -> None:
        if self.stdin_w is None:
            return
        try:
            while self.stdin_buf:
                n = os.write(self.stdin_w, self.stdin_buf)
                del self.stdin_buf[:n]
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            # The container closed its stdin; what is left can never be delivered.
            self.stdin_buf.clear()
            self.stdin_closing = True
        registered = self.stdin_w in self.sel.get_map()
        if self.stdin_buf and not registered:
            self.sel.register(self.stdin_w, selectors.EVENT_WRITE, ("stdin", None))
        elif not self.stdin_buf:
            if registered:
                self.sel.unregister(self.stdin_w)
            if self.stdin_closing:
                os.close(self.stdin_w)
                self.stdin_w = None

    # -- lifecycle -----------------------------------------------------------------------

    def _listen(self) -> None:
        path = self.state_dir / SOCKET_NAME
        path.unlink(missing_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # Relative to our cwd (the state dir) so a long state path cannot overflow sun_path.
        sock.bind(SOCKET_NAME if Path.cwd() == self.state_dir.resolve() else str(path))
        os.chmod(path, 0o600)
        sock.listen(8)
        sock.setblocking(False)
        self.listener = sock
        self.sel.register(sock, selectors.EVENT_READ, ("listen", None))

    def _fail(self, err: ContainerStartError) -> int:
        if self.exec_process is None:
            with contextlib.suppress(Exception):
                asyncio.run(self.runc.delete(self.container_id, force=True))
        write_json(
            self.state_dir / EXIT_NAME,
            {"exit_code": err.exit_code, "finished_at": rfc3339nano(), "error": str(err)},
            durable=self.durable,
        )
        self._broadcast(
            proto.control(proto.START_FAILED, {"message": str(err), "exit_code": err.exit_code})
        )
        self._final_flush()
        return 1

    def _create_pipes(self) -> list[tuple[int, int, str]]:
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        if self.open_stdin:
            in_r, in_w = os.pipe()
            self.stdin_w = in_w
            os.set_blocking(in_w, False)
        else:
            in_r = os.open(os.devnull, os.O_RDONLY)
        try:
            asyncio.run(self._runc_start(stdin=in_r, stdout=out_w, stderr=err_w))
        except BaseException:
            for fd in (out_r, err_r):
                os.close(fd)
            raise
        finally:
            for fd in (in_r, out_w, err_w):
                os.close(fd)
        return [(out_r, proto.STDOUT, "stdout"), (err_r, proto.STDERR, "stderr")]

    async def _runc_start(
        self, *, stdin: int, stdout: int, stderr: int, console_socket: Path | None = None
    ) -> None:
        if self.exec_process is not None:
            await self.runc.exec(
                self.container_id,
                self.exec_process,
                stdin=stdin,
                stdout=stdout,
                stderr=stderr,
                pid_file=self.state_dir / PID_NAME,
                console_socket=console_socket,
            )
            return
        await self.runc.run_detached(
            self.container_id,
            self.bundle,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            pid_file=self.state_dir / PID_NAME,
            console_socket=console_socket,
        )

    def _create_tty(self) -> list[tuple[int, int, str]]:
        # runc hands the pty master over the console socket while it runs (SCM_RIGHTS);
        # the container's stdio are all the slave side, so there is one output stream.
        # runc dials the console socket by absolute path, and sun_path holds 107 bytes: a
        # state dir under a long root would overflow it, so the socket lives in a short
        # private temp dir instead.
        sock_dir = Path(tempfile.mkdtemp(prefix="dy-console-"))
        path = sock_dir / CONSOLE_NAME
        console = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        console.bind(str(path))
        console.listen(1)
        console.settimeout(30)
        received: list[int] = []

        def accept() -> None:
            try:
                conn, _ = console.accept()
                with conn:
                    _, fds, _, _ = socket.recv_fds(conn, 4096, 1)
                    received.extend(fds)
            except OSError:
                pass

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        null = os.open(os.devnull, os.O_RDWR)
        try:
            asyncio.run(self._runc_start(stdin=null, stdout=null, stderr=null, console_socket=path))
            thread.join(30)
        finally:
            os.close(null)
            console.close()
            path.unlink(missing_ok=True)
            sock_dir.rmdir()
        if not received:
            raise ContainerStartError("runc did not send the container's terminal")
        master = received[0]
        if self.open_stdin:
            self.stdin_w = os.dup(master)
            os.set_blocking(self.stdin_w, False)
        return [(master, proto.STDOUT, "stdout")]

    def _resize(self, payload: bytes) -> None:
        size = json.loads(payload)
        for fd, (_, stream) in self.outputs.items():
            if self.tty and stream == "stdout":
                winsize = struct.pack("HHHH", int(size["height"]), int(size["width"]), 0, 0)
                with contextlib.suppress(OSError):
                    fcntl.ioctl(fd, termios.TIOCSWINSZ, winsize)

    def _await_go(self) -> bool:
        """--hold: the first frame is GO, or the connection's end called the start off."""
        if not self.peers:
            return False
        sock = self.peers[0].sock
        sock.setblocking(True)
        header = b""
        try:
            while len(header) < proto.HEADER.size:
                chunk = sock.recv(proto.HEADER.size - len(header))
                if not chunk:
                    return False
                header += chunk
        except OSError:
            return False
        finally:
            sock.setblocking(False)
        return proto.HEADER.unpack(header) == (proto.GO, 0)

    def run(self) -> int:
        if self.hold and not self._await_go():
            (self.state_dir / MONITOR_PID_NAME).unlink(missing_ok=True)  # nothing else was made
            return 0
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")
        self._listen()

        try:
            outputs = self._create_tty() if self.tty else self._create_pipes()
        except ContainerStartError as e:
            return self._fail(e)
        except Exception as e:
            return self._fail(ContainerStartError(str(e)))
        self.pid = int((self.state_dir / PID_NAME).read_text().strip())
        self.started = True
        self._broadcast(proto.control(proto.STARTED, {"pid": self.pid}))

        for fd, kind, stream in outputs:
            os.set_blocking(fd, False)
            self.outputs[fd] = (kind, stream)
            self.sel.register(fd, selectors.EVENT_READ, ("output", fd))
        pidfd = os.pidfd_open(self.pid)
        self.sel.register(pidfd, selectors.EVENT_READ, ("pidfd", None))

        drain_deadline: float | None = None
        while self.outputs or self.exit_code is None:
            if self.exit_code is not None and drain_deadline is None:
                drain_deadline = time.monotonic() + _DRAIN_SECONDS
            if drain_deadline is not None and time.monotonic() > drain_deadline:
                break
            self._hold_outputs(
                self.exit_code is None and any(len(p.out) > _PEER_HIGH_WATER for p in self.peers)
            )
            for key, mask in self.sel.select(timeout=0.5):
                what, obj = key.data
                if what == "output":
                    self._on_output(obj)
                elif what == "peer":
                    self._on_peer(obj, mask)
                elif what == "listen":
                    self._accept()
                elif what == "stdin":
                    self._flush_stdin()
                elif what == "pidfd":
                    self.sel.unregister(pidfd)
                    os.close(pidfd)
                    self._reap()
            self._reap()

        for fd in list(self.outputs):
            self._close_output(fd)
        self.log.close()
        # Read before `runc delete` removes the cgroup.
        oom = self._oom_killed() if self.exec_process is None else False
        assert self.exit_code is not None
        finished = rfc3339nano()
        write_json(
            self.state_dir / EXIT_NAME,
            {"exit_code": self.exit_code, "finished_at": finished, "oom_killed": oom},
            durable=self.durable,
        )
        self._broadcast(
            proto.control(proto.EXITED, {"exit_code": self.exit_code, "finished_at": finished})
        )
        # The exit is reported before `runc delete` (data/dockyard-monitor.c says why); the
        # peers' connections end after it.
        if self.exec_process is None:
            try:
                asyncio.run(self.runc.delete(self.container_id, force=True))
            except Exception as e:
                print(f"runc delete {self.container_id}: {e}", file=sys.stderr)
        self._final_flush()
        return 0

    def _on_output(self, fd: int) -> None:
        kind, stream = self.outputs[fd]
        try:
            data = os.read(fd, 65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            # A pty master reads EIO once the last slave fd is closed: that is its EOF.
            if e.errno != errno.EIO:
                raise
            data = b""
        if not data:
            self._close_output(fd)
            return
        self.log.write(stream, data)
        self._broadcast(proto.frame(kind, data))

    def _hold_outputs(self, hold: bool) -> None:
        if hold == self.outputs_held:
            return
        self.outputs_held = hold
        for fd in self.outputs:
            if hold:
                self.sel.unregister(fd)
            else:
                self.sel.register(fd, selectors.EVENT_READ, ("output", fd))

    def _close_output(self, fd: int) -> None:
        _, stream = self.outputs.pop(fd)
        if not self.outputs_held:
            self.sel.unregister(fd)
        os.close(fd)
        self.log.close_stream(stream)

    def _oom_killed(self) -> bool:
        """Whether the kernel's OOM killer acted in the container's memory cgroup."""
        try:
            spec = json.loads((self.bundle / "config.json").read_text())
        except (OSError, ValueError):
            return False
        path = str(spec.get("linux", {}).get("cgroupsPath") or "").lstrip("/")
        if not path:
            return False
        for f, key in (
            (Path("/sys/fs/cgroup/memory") / path / "memory.oom_control", "oom_kill"),
            (Path("/sys/fs/cgroup") / path / "memory.events", "oom_kill"),
        ):
            try:
                for line in f.read_text().splitlines():
                    name, _, value = line.partition(" ")
                    if name == key:
                        return int(value or 0) > 0
            except (OSError, ValueError):
                continue
        return False

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            except OSError as e:
                if e.errno == errno.EINTR:
                    continue
                raise
            if pid == 0:
                return
            if pid == self.pid:
                code = os.waitstatus_to_exitcode(status)
                # Docker reports death by signal N as 128+N.
                self.exit_code = 128 - code if code < 0 else code

    def _final_flush(self) -> None:
        deadline = time.monotonic() + 5.0
        while any(p.out for p in self.peers) and time.monotonic() < deadline:
            for key, mask in self.sel.select(timeout=0.2):
                what, obj = key.data
                if what == "peer":
                    self._on_peer(obj, mask)
        # The socket goes first: a peer that sees the end must not find it to reconnect to.
        if self.listener is not None:
            self.sel.unregister(self.listener)
            self.listener.close()
            (self.state_dir / SOCKET_NAME).unlink(missing_ok=True)
        for peer in list(self.peers):
            self._drop_peer(peer)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dockyard.runtime.monitor")
    parser.add_argument("--id", required=True)
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--runc", default="runc")
    parser.add_argument("--runc-root", required=True)
    parser.add_argument("--fd", type=int, default=None)
    parser.add_argument("--open-stdin", action="store_true")
    parser.add_argument("--tty", action="store_true")
    parser.add_argument("--detach", action="store_true")
    parser.add_argument("--exec-process", default=None)
    # The container is removed at its exit (--rm): exit.json need not survive a power loss.
    parser.add_argument("--ephemeral", action="store_true")
    # Wait for the daemon's GO frame before runc runs (monitor_protocol.GO).
    parser.add_argument("--hold", action="store_true")
    parser.add_argument("--log-driver", default="json-file", choices=("json-file", "none"))
    parser.add_argument("--log-max-size", type=int, default=-1)
    parser.add_argument("--log-max-file", type=int, default=1)
    args = parser.parse_args(argv)
    if args.detach and os.fork() != 0:
        # The spawner reaps this intermediate at once; the monitor is nobody's child then, so
        # neither a dying daemon nor its child watcher can take it down.
        os._exit(0)
    # Written whole under another name, then renamed: whoever reads it sees no file or the pid,
    # never the empty file between open and write.
    pid_file = Path(args.state_dir) / MONITOR_PID_NAME
    partial = pid_file.with_name(MONITOR_PID_NAME + ".tmp")
    partial.write_text(f"{os.getpid()}\n")
    partial.rename(pid_file)
    return Monitor(args).run()


if __name__ == "__main__":
    sys.exit(main())
