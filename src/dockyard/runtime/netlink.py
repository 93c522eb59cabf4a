"""The few rtnetlink requests a container's network needs, without a process per request.

A container start used to run `unshare --net=FILE true`, `nsenter … ip link set lo up`,
`ip link add … veth`, `ip link set … netns`, `nsenter … ip -batch -` and `ip link set …
master`: seven processes, each ~5-20 ms on an idle machine and far more under load (issue 17
row d). The same requests go here over NETLINK_ROUTE sockets, as libnetwork does them
through vishvananda/netlink:

- `new_netns(path)` makes a network namespace, bind-mounted at `path` (what `unshare
  --net=FILE` does), with its loopback up, and returns a socket inside it;
- `Netlink.open(path)` is a socket inside the namespace at `path` (a file or
  /proc/PID/ns/net);
- `add_veth` makes the pair with the peer already in the namespace, named, with its MAC,
  and the host end on its bridge and up, in one request (`ip link add … peer … netns`);
- `add_address`, `add_route`, `set_up`, `index_of`, `delete_link` inside or outside.

A socket belongs to the network namespace its thread was in when it was made, whatever the
thread does later: so entering a namespace happens on a short-lived thread of its own
(setns and unshare act on the calling thread only), which makes the socket and ends, and no
thread of the daemon's pools is ever left in a container's namespace.

Message layouts: linux/netlink.h, linux/rtnetlink.h, linux/if_link.h, linux/veth.h.
"""

from __future__ import annotations

import ctypes
import errno
import ipaddress
import os
import socket
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from dockyard.snapshot import mountcall

NETLINK_ROUTE = 0
NLMSG_ERROR = 2
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_NEWROUTE = 20, 24
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MASTER, IFLA_LINKINFO, IFLA_NET_NS_FD = 1, 3, 10, 18, 28
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
VETH_INFO_PEER = 1
IFA_ADDRESS, IFA_LOCAL, IFA_BROADCAST = 1, 2, 4
IFA_F_NODAD = 0x02
RTA_GATEWAY, RTA_OIF = 5, 4
RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST = 254, 3, 0, 1
IFF_UP = 0x1
NLA_F_NESTED = 0x8000
CLONE_NEWNET = 0x40000000

_IFINFO = struct.Struct("=BxHiII")  # family, type, index, flags, change
_IFADDR = struct.Struct("=BBBBI")  # family, prefixlen, flags, scope, index
_RTMSG = struct.Struct("=BBBBBBBBI")  # family, dst_len, src_len, tos, table, proto, scope, type
_NLMSG = struct.Struct("=IHHII")  # len, type, flags, seq, pid

_libc = ctypes.CDLL(None, use_errno=True)

T = TypeVar("T")


class NetlinkError(OSError):
    """The kernel refused a request (its errno, with the request named as `ip` would)."""


def _attr(kind: int, payload: bytes) -> bytes:
    body = struct.pack("=HH", 4 + len(payload), kind) + payload
    return body + b"\0" * (-len(body) % 4)


def _nested(kind: int, *attrs: bytes) -> bytes:
    return _attr(kind | NLA_F_NESTED, b"".join(attrs))


def _name(value: str) -> bytes:
    return value.encode() + b"\0"


def _mac(value: str) -> bytes:
    return bytes.fromhex(value.replace(":", ""))


def _on_own_thread(fn: Callable[[], T]) -> T:
    """Run `fn` on a fresh thread that ends after it (so a namespace it enters dies with it)."""
    out: list[T] = []
    err: list[BaseException] = []

    def body() -> None:
        try:
            out.append(fn())
        except BaseException as e:  # handed to the caller
            err.append(e)

    t = threading.Thread(target=body, name="dockyard-netns")
    t.start()
    t.join()
    if err:
        raise err[0]
    return out[0]


def _check(rc: int, what: str) -> None:
    if rc != 0:
        e = ctypes.get_errno()
        raise NetlinkError(e, f"{what}: {os.strerror(e)}")


class Netlink:
    """One NETLINK_ROUTE socket; requests are answered in turn (each waits for its ack)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._seq = 0

    @classmethod
    def host(cls) -> Netlink:
        """A socket in the calling thread's namespace (the daemon's)."""
        sock = socket.socket(
            socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE
        )
        sock.bind((0, 0))
        return cls(sock)

    @classmethod
    def open(cls, netns: str | Path) -> Netlink:
        """A socket inside the network namespace at `netns`."""

        def enter() -> Netlink:
            fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
            try:
                _check(_libc.setns(fd, CLONE_NEWNET), f"setns {netns}")
            finally:
                os.close(fd)
            return cls.host()

        return _on_own_thread(enter)

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Netlink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # transport -----------------------------------------------------------------------------
    def _request(self, kind: int, flags: int, body: bytes, what: str) -> list[bytes]:
        """Send one request; return the payloads of the answers (for a dump or a get)."""
        self._seq += 1
        seq = self._seq
        head = _NLMSG.pack(_NLMSG.size + len(body), kind, NLM_F_REQUEST | NLM_F_ACK | flags, seq, 0)
        self._sock.sendall(head + body)
        answers: list[bytes] = []
        while True:
            data = self._sock.recv(65536)
            off = 0
            while off + _NLMSG.size <= len(data):
                length, mtype, _flags, mseq, _pid = _NLMSG.unpack_from(data, off)
                payload = data[off + _NLMSG.size : off + length]
                off += (length + 3) & ~3
                if mseq != seq:
                    continue
                if mtype == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", payload)[0]
                    if code:
                        raise NetlinkError(code, f"{what}: {os.strerror(code)}")
                    return answers
                answers.append(payload)

    # links -----------------------------------------------------------------------------------
    def index_of(self, name: str) -> int:
        try:
            got = self._request(
                RTM_GETLINK,
                0,
                _IFINFO.pack(0, 0, 0, 0, 0) + _attr(IFLA_IFNAME, _name(name)),
                f"link {name}",
            )
        except NetlinkError as e:
            if e.errno == errno.ENODEV:
                raise NetlinkError(e.errno, f"Cannot find device {name!r}") from None
            raise
        return int(_IFINFO.unpack_from(got[0])[2])

    def set_up(self, index: int) -> None:
        self._request(RTM_NEWLINK, 0, _IFINFO.pack(0, 0, index, IFF_UP, IFF_UP), "link set up")

    def add_veth(
        self, host_name: str, master: int, peer_name: str, peer_mac: str, peer_netns: int
    ) -> None:
        """`ip link add HOST master BR up type veth peer name PEER address MAC netns FD`."""
        peer = _IFINFO.pack(0, 0, 0, 0, 0) + b"".join(
            (
                _attr(IFLA_IFNAME, _name(peer_name)),
                _attr(IFLA_ADDRESS, _mac(peer_mac)),
                _attr(IFLA_NET_NS_FD, struct.pack("=I", peer_netns)),
            )
        )
        info = _nested(
            IFLA_LINKINFO,
            _attr(IFLA_INFO_KIND, b"veth"),
            _nested(IFLA_INFO_DATA, _attr(VETH_INFO_PEER, peer)),
        )
        body = _IFINFO.pack(0, 0, 0, IFF_UP, IFF_UP) + b"".join(
            (
                _attr(IFLA_IFNAME, _name(host_name)),
                _attr(IFLA_MASTER, struct.pack("=I", master)),
                info,
            )
        )
        self._request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body, f"veth {host_name}")

    def delete_link(self, name: str) -> None:
        body = _IFINFO.pack(0, 0, 0, 0, 0) + _attr(IFLA_IFNAME, _name(name))
        self._request(RTM_DELLINK, 0, body, f"link del {name}")

    # addresses and routes ------------------------------------------------------------------
    def add_address(
        self, index: int, address: str, prefix: int | None = None, *, nodad: bool = False
    ) -> None:
        """`ip addr add ADDR/PREFIX dev IF` (a bare address is a host address, as ip takes
        it), with the IPv4 broadcast address libnetwork gives an endpoint."""
        ip = ipaddress.ip_address(address)
        family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
        bits = ip.max_prefixlen if prefix is None else prefix
        attrs = [_attr(IFA_LOCAL, ip.packed), _attr(IFA_ADDRESS, ip.packed)]
        if ip.version == 4 and bits < 31:
            net = ipaddress.ip_network(f"{ip}/{bits}", strict=False)
            attrs.append(_attr(IFA_BROADCAST, net.broadcast_address.packed))
        flags = IFA_F_NODAD if nodad else 0
        body = _IFADDR.pack(family, bits, flags, 0, index) + b"".join(attrs)
        self._request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, body, f"addr add {address}")

    def add_default_route(self, index: int, gateway: str) -> None:
        """`ip route add default via GW dev IF`."""
        gw = ipaddress.ip_address(gateway)
        family = socket.AF_INET if gw.version == 4 else socket.AF_INET6
        body = _RTMSG.pack(
            family, 0, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST, 0
        )
        body += _attr(RTA_GATEWAY, gw.packed) + _attr(RTA_OIF, struct.pack("=I", index))
        self._request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, body, f"route add via {gateway}")


def new_netns(path: Path) -> None:
    """A new network namespace kept by a bind mount at `path` (an existing empty file), its
    loopback up (what `unshare --net=PATH true` and `ip link set lo up` in it did)."""

    def make() -> None:
        _check(_libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
        own = f"/proc/self/task/{threading.get_native_id()}/ns/net"
        mountcall.mount(own, path, None, mountcall.MS_BIND)
        with Netlink.host() as nl:
            nl.set_up(1)  # lo is interface 1 in every new namespace

    _on_own_thread(make)
