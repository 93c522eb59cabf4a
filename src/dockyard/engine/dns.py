"""Name resolution on user-defined networks: a small DNS responder per network, in the daemon.

Docker answers container names from an embedded server at 127.0.0.11; dockyard listens on
the network's gateway address (port 53, UDP) instead, and the containers' resolv.conf names
that address. Names of running containers on the network (name, aliases, short ID) get A
records; every other question is relayed to the host's own nameservers (from its
resolv.conf), never to a public resolver. Static binaries (busybox) resolve this way too,
where /etc/hosts entries need glibc's NSS modules.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import struct
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("dockyard.dns")

Lookup = Callable[[str, str, str], str | None]  # (network ID, name, asker IP) → IPv4
QTYPE_A = 1
FLAG_QR = 0x8000
FLAG_RD = 0x0100
FLAG_RA = 0x0080
RCODE_SERVFAIL = 2


def host_nameservers(resolv: str | None = None) -> list[str]:
    if resolv is None:
        try:
            resolv = Path("/etc/resolv.conf").read_text()
        except OSError:
            return []
    out = []
    for line in resolv.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            out.append(parts[1])
    return out


def parse_question(msg: bytes) -> tuple[int, int, str, int, int] | None:
    """(id, flags, name, qtype, end offset of the question) or None if malformed."""
    if len(msg) < 12:
        return None
    qid, flags, qd = struct.unpack(">HHH", msg[:6])
    if qd != 1:
        return None
    pos = 12
    labels = []
    while True:
        if pos >= len(msg):
            return None
        n = msg[pos]
        pos += 1
        if n == 0:
            break
        if n & 0xC0 or pos + n > len(msg):
            return None
        labels.append(msg[pos : pos + n].decode(errors="replace"))
        pos += n
    if pos + 4 > len(msg):
        return None
    qtype, _ = struct.unpack(">HH", msg[pos : pos + 4])
    return qid, flags, ".".join(labels), qtype, pos + 4


def answer(msg: bytes, end: int, qid: int, flags: int, ip: str | None, qtype: int) -> bytes:
    """A reply to the question in msg[12:end]: one A record, or an empty NOERROR answer."""
    rd = flags & FLAG_RD
    records = b""
    count = 0
    if ip is not None and qtype == QTYPE_A:
        # Name pointer to the question (offset 12), type A, class IN, TTL 600, 4 bytes.
        records = struct.pack(">HHHIH", 0xC00C, 1, 1, 600, 4) + ipaddress.IPv4Address(ip).packed
        count = 1
    # Not authoritative, as dockerd's embedded DNS (libnetwork resolver.go createRespMsg:
    # SetReply + RecursionAvailable only): nslookup then says "Non-authoritative answer:"
    header = struct.pack(">HHHHHH", qid, FLAG_QR | FLAG_RA | rd, 1, count, 0, 0)
    return header + msg[12:end] + records


class _Server(asyncio.DatagramProtocol):
    def __init__(self, net_id: str, lookup: Lookup, upstreams: list[str]) -> None:
        self.net_id = net_id
        self.lookup = lookup
        self.upstreams = upstreams
        self.transport: asyncio.DatagramTransport | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        q = parse_question(data)
        if q is None or self.transport is None:
            return
        qid, flags, name, qtype, end = q
        ip = self.lookup(self.net_id, name.rstrip(".").lower(), addr[0])
        if ip is not None:
            self.transport.sendto(answer(data, end, qid, flags, ip, qtype), addr)
            return
        task = asyncio.create_task(self._relay(data, addr, qid, flags, end))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _relay(
        self, data: bytes, addr: tuple[str, int], qid: int, flags: int, end: int
    ) -> None:
        loop = asyncio.get_running_loop()
        for server in self.upstreams:
            reply: asyncio.Future[bytes] = loop.create_future()

            try:
                transport, _ = await loop.create_datagram_endpoint(
                    lambda reply=reply: _Reply(reply),  # type: ignore[misc]
                    remote_addr=(server, 53),
                )
            except OSError:
                continue
            try:
                transport.sendto(data)
                result = await asyncio.wait_for(reply, 3)
            except TimeoutError:
                continue
            finally:
                transport.close()
            if self.transport is not None:
                self.transport.sendto(result, addr)
            return
        if self.transport is not None:
            header = struct.pack(
                ">HHHHHH", qid, FLAG_QR | FLAG_RA | (flags & FLAG_RD) | RCODE_SERVFAIL, 1, 0, 0, 0
            )
            self.transport.sendto(header + data[12:end], addr)


class _Reply(asyncio.DatagramProtocol):
    def __init__(self, reply: asyncio.Future[bytes]) -> None:
        self.reply = reply

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if not self.reply.done():
            self.reply.set_result(data)


class DnsResponders:
    """One responder per user-defined network, started on first use."""

    def __init__(self, lookup: Lookup) -> None:
        self.lookup = lookup
        self._servers: dict[str, asyncio.DatagramTransport] = {}

    async def ensure(self, net_id: str, gateway: str) -> None:
        if net_id in self._servers:
            return
        loop = asyncio.get_running_loop()
        upstreams = [s for s in host_nameservers() if s != gateway]
        try:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _Server(net_id, self.lookup, upstreams), local_addr=(gateway, 53)
            )
        except OSError as e:
            log.warning("DNS for network %s on %s:53: %s", net_id[:12], gateway, e)
            return
        self._servers[net_id] = transport

    def stop(self, net_id: str) -> None:
        transport = self._servers.pop(net_id, None)
        if transport is not None:
            transport.close()

    def close(self) -> None:
        for net_id in list(self._servers):
            with contextlib.suppress(Exception):
                self.stop(net_id)
