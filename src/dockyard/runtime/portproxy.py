"""The port proxy of a container (our docker-proxy): published ports, outside the daemon.

The daemon binds the host sockets (so a taken port fails the start at once) and starts this
process with them; it forwards every TCP connection and UDP exchange to the container's
address and lives until the daemon ends it at the container's exit (SIGTERM), so published
ports keep answering while the daemon is stopped or restarting.

Usage: python -m dockyard.runtime.portproxy --id CID --target IP --pid-file F FD:PROTO:PORT...
It forks itself away (so nobody has to reap it) and writes its pid before it serves; with
--watch-pid it also ends when the container's init does.

This module is the fallback: `proxy_command` prefers data/dockyard-portproxy.c (the same
arguments and behaviour; ~0.3 MiB PSS where this costs ~12 MiB), built by runtime/native.py.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from dockyard.runtime import native

_MODULE = "dockyard.runtime.portproxy"


def proxy_command(cache_dir: Path) -> list[str]:
    """argv[0:n] of a port proxy: the C one, else this module (`DOCKYARD_PORTPROXY=python`)."""
    return native.command(native.PORTPROXY, cache_dir, _MODULE, "DOCKYARD_PORTPROXY")


def is_port_proxy(cmdline: bytes) -> bool:
    """Whether a /proc/PID/cmdline is one of our port proxies (either kind)."""
    argv = cmdline.split(b"\0")
    return bool(argv) and (
        Path(os.fsdecode(argv[0])).name.startswith(native.PORTPROXY.name)
        or _MODULE.encode() in argv
    )


def tcp_forwarder(target_ip: str, port: int) -> Any:
    # The loop holds tasks weakly, and a StreamReaderProtocol holds its reader weakly
    # (asyncio/streams.py): once the client has half-closed, nothing the loop reaches leads
    # back to a connection's task, and the garbage collector destroys it while it waits for
    # the container's answer (the client saw EOF and no data). This set is the strong owner.
    live: set[asyncio.Task[None]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        live.add(task)
        try:
            await forward(reader, writer)
        finally:
            live.discard(task)

    async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection(target_ip, port)
        except OSError:
            writer.close()
            return

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            try:
                while data := await r.read(65536):
                    w.write(data)
                    await w.drain()
                if w.can_write_eof():
                    w.write_eof()
            except (OSError, RuntimeError):
                pass

        await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))
        for w in (writer, up_w):
            w.close()

    return handle


class UdpProxy(asyncio.DatagramProtocol):
    """One upstream socket per client address, as docker-proxy does for UDP."""

    def __init__(self, target_ip: str, port: int) -> None:
        self.target = (target_ip, port)
        self.transport: asyncio.DatagramTransport | None = None
        self.upstreams: dict[tuple[str, int], asyncio.DatagramTransport] = {}
        self._pending: set[asyncio.Future[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        up = self.upstreams.get(addr)
        if up is not None:
            up.sendto(data)
            return
        self._pending.add(asyncio.ensure_future(self._open(data, addr)))
        self._pending = {t for t in self._pending if not t.done()}

    async def _open(self, data: bytes, addr: tuple[str, int]) -> None:
        loop = asyncio.get_running_loop()
        outer = self

        class Back(asyncio.DatagramProtocol):
            def datagram_received(self, reply: bytes, _: tuple[str, int]) -> None:
                if outer.transport is not None:
                    outer.transport.sendto(reply, addr)

        up, _ = await loop.create_datagram_endpoint(Back, remote_addr=self.target)
        self.upstreams[addr] = up
        up.sendto(data)

    def connection_lost(self, exc: Exception | None) -> None:
        for up in self.upstreams.values():
            up.close()


async def serve(target: str, specs: list[str], watch_pid: int = 0) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    if watch_pid:
        # The container's init: when it is gone there is nothing to forward to, whoever
        # forgot to end us (a daemon that crashed, a test harness).
        try:
            loop.add_reader(os.pidfd_open(watch_pid), stop.set)
        except ProcessLookupError:
            return
    closers: list[Any] = []
    for spec in specs:
        fd_s, proto, port_s = spec.split(":")
        sock = socket.socket(fileno=int(fd_s))
        if proto == "tcp":
            server = await asyncio.start_server(tcp_forwarder(target, int(port_s)), sock=sock)
            closers.append(server)
        else:
            transport, _ = await loop.create_datagram_endpoint(
                lambda port=int(port_s): UdpProxy(target, port),  # type: ignore[misc]
                sock=sock,
            )
            closers.append(transport)
    await stop.wait()
    for c in closers:
        c.close()


def main(argv: list[str] | None = None) -> int:
    import argparse  # the proxy process's: the daemon imports this module, not its parser

    p = argparse.ArgumentParser(prog="dockyard.runtime.portproxy")
    p.add_argument("--id", required=True)
    p.add_argument("--target", required=True)
    p.add_argument("--pid-file", required=True)
    p.add_argument("--watch-pid", type=int, default=0)
    p.add_argument("specs", nargs="+")
    args = p.parse_args(argv)
    if os.fork() != 0:
        # Wait for the child's pid file so the daemon knows it runs when we return.
        pid_file = Path(args.pid_file)
        for _ in range(200):
            if pid_file.exists():
                return 0
            import time

            time.sleep(0.01)
        return 1
    os.setsid()
    Path(args.pid_file).write_text(f"{os.getpid()}\n")
    asyncio.run(serve(args.target, args.specs, args.watch_pid))
    return 0


if __name__ == "__main__":
    sys.exit(main())
