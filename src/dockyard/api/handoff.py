"""What the daemon hands to the process it re-executes into (api/idle_reexec.py).

The listening sockets stay open across the execve, so a client that connects meanwhile waits
in the socket's backlog and is answered by the next process: it never sees ECONNREFUSED or a
missing socket file. The locks on the root and the socket stay held (flock belongs to the open
file, which the execve keeps), so no autostart can take the root in between. The event
history goes through a file in the root (engine/events.py).

SIGINT and SIGTERM that come meanwhile wait for the next process (`signals_held`).

The inherited descriptors are named in one environment variable, which the next process takes
out of its environment at once (its children must not see it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ENV = "DOCKYARD_DAEMON_HANDOFF"


@dataclass(frozen=True)
class UnixListener:
    path: str
    fd: int
    # the socket file's identity when it was bound: a path that names another file since
    # (someone removed and re-made it) is bound afresh
    dev: int
    ino: int


@dataclass(frozen=True)
class TcpListener:
    address: str
    port: int
    fd: int


@dataclass(frozen=True)
class Handoff:
    unix: UnixListener | None = None
    tcp: tuple[TcpListener, ...] = ()
    locks: dict[str, int] = field(default_factory=dict)
    events: str = ""  # the event history's file (engine/events.py dump_history)

    def fds(self) -> list[int]:
        out = [t.fd for t in self.tcp] + list(self.locks.values())
        return out + ([self.unix.fd] if self.unix is not None else [])

    def environment(self, base: dict[str, str]) -> dict[str, str]:
        """`base` with the handoff in it, for the execve."""
        doc = {
            "unix": None if self.unix is None else vars(self.unix),
            "tcp": [vars(t) for t in self.tcp],
            "locks": self.locks,
            "events": self.events,
        }
        return {**base, ENV: json.dumps(doc)}

    @classmethod
    def take(cls, environ: dict[str, str] | os._Environ[str]) -> Handoff | None:
        """The handoff this process was started with (removed from `environ`), or None for
        a daemon started afresh. A malformed one is none: its descriptors are left alone."""
        raw = environ.pop(ENV, None)
        if raw is None:
            return None
        try:
            doc = json.loads(raw)
            unix = UnixListener(**doc["unix"]) if doc["unix"] else None
            return cls(
                unix=unix,
                tcp=tuple(TcpListener(**t) for t in doc["tcp"]),
                locks={str(k): int(v) for k, v in doc["locks"].items()},
                events=str(doc["events"]),
            )
        except (ValueError, TypeError, KeyError):
            return None

    def unix_socket(self, path: Path) -> socket.socket | None:
        """The inherited listening socket for `path`, if the path still names that socket
        (one whose file was replaced since is closed: the daemon binds the path afresh)."""
        if self.unix is None or self.unix.path != str(path):
            return None
        sock = _adopt(self.unix.fd, lambda name: name == str(path))
        if sock is None:
            return None
        try:
            st = path.lstat()
            same = stat.S_ISSOCK(st.st_mode) and (st.st_dev, st.st_ino) == (
                self.unix.dev,
                self.unix.ino,
            )
        except OSError:
            same = False
        if not same:
            sock.close()
            return None
        return sock

    def tcp_sockets(self, address: str, port: int) -> list[socket.socket]:
        socks = [
            _adopt(t.fd, lambda name: isinstance(name, tuple) and name[1] == port)
            for t in self.tcp
            if (t.address, t.port) == (address, port)
        ]
        return [s for s in socks if s is not None]

    def lock_fd(self, path: Path) -> int | None:
        """The inherited descriptor of the lock file `path`, if it is that file."""
        fd = self.locks.get(str(path))
        if fd is None:
            return None
        try:
            held, named = os.fstat(fd), os.stat(path, follow_symlinks=False)
        except OSError:
            return None
        return fd if (held.st_dev, held.st_ino) == (named.st_dev, named.st_ino) else None

    def close(self) -> None:
        """Close every descriptor: for the process that made this handoff and does not
        execve after all (a stop signal came first)."""
        for fd in self.fds():
            with contextlib.suppress(OSError):
                os.close(fd)


def _adopt(fd: int, named: Callable[[object], bool]) -> socket.socket | None:
    """The listening socket on `fd` whose name `named` accepts, else None (an environment
    that names descriptors this process does not hold as such: it binds afresh)."""
    try:
        sock = socket.socket(fileno=fd)
    except OSError:
        return None
    try:
        listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
        if not (listening and named(sock.getsockname())):
            sock.detach()  # not ours to close
            return None
    except OSError:
        sock.detach()
        return None
    sock.set_inheritable(False)  # the daemon's children (runc, monitors) must not hold it
    sock.setblocking(False)
    return sock


def pass_on(fds: list[int]) -> None:
    """Let `fds` survive the execve (Python opens everything close-on-exec, PEP 446)."""
    for fd in fds:
        os.set_inheritable(fd, True)


STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


class StopSignal:
    """Whether SIGINT or SIGTERM came, for the re-exec, which runs after the loop is gone."""

    seen = False


def stop_and_wake(stop: asyncio.Event, wake: asyncio.Event) -> None:
    """The daemon's handler of STOP_SIGNALS."""
    StopSignal.seen = True
    stop.set()
    wake.set()


async def signals_held(stop: asyncio.Event) -> bool:
    """Hold SIGINT and SIGTERM for the process the daemon re-executes into: it unblocks
    them once its own handlers are in place (the signal mask survives execve, handlers do
    not). True unless one came before: then this is a shutdown.

    The main thread blocks them; a signal the kernel gives a worker thread meanwhile still
    reaches the loop's handler (`stop_and_wake`; the re-exec looks at `StopSignal` last). Once
    asyncio.run has joined the executor's threads, the main thread is the only one: a
    signal then waits, pending, also after the loop's close reset the handlers to the
    default (which, delivered, would kill the process)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    # a signal the loop caught just before is still a byte in its wakeup pipe: its
    # callback runs in the iterations after the one that reads it
    for _ in range(3):
        await asyncio.sleep(0.005)
    return not stop.is_set()
