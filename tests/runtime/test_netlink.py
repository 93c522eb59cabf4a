"""runtime/netlink.py against the kernel: each request as `ip` shows its result.

Everything runs in a network namespace of the test's own (tests/support/netns.py), which
plays the host: bridges and veths made there vanish with it.
"""

from __future__ import annotations

import errno
import os
import socket
import subprocess
from pathlib import Path

import pytest

from dockyard.runtime import netlink
from dockyard.snapshot import mountcall
from tests.conftest import IS_ROOT
from tests.support.netns import in_private_netns, inside, ip_json

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(not IS_ROOT, reason="needs root (network namespaces)"),
]


def _file(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.touch()
    return path


def test_new_netns_is_a_bind_mounted_namespace_with_loopback_up(tmp_path: Path) -> None:
    ns = _file(tmp_path, "netns")
    netlink.new_netns(ns)
    try:
        assert os.path.ismount(ns)
        links = ip_json(ns, "link", "show")
        assert [link["ifname"] for link in links] == ["lo"]
        assert "UP" in links[0]["flags"]  # type: ignore[operator]
    finally:
        mountcall.umount(ns)
    assert not os.path.ismount(ns)


def test_veth_with_its_peer_in_a_namespace_addresses_and_route(tmp_path: Path) -> None:
    ns = _file(tmp_path, "netns")

    def scenario() -> tuple[list[dict[str, object]], ...]:
        subprocess.run(["ip", "link", "add", "br-t", "type", "bridge"], check=True)
        subprocess.run(["ip", "addr", "add", "10.99.0.1/24", "dev", "br-t"], check=True)
        subprocess.run(["ip", "link", "set", "br-t", "up"], check=True)
        netlink.new_netns(ns)
        with netlink.Netlink.host() as host:
            fd = os.open(ns, os.O_RDONLY)
            try:
                host.add_veth("veth-t", host.index_of("br-t"), "eth0", "02:42:0a:63:00:02", fd)
            finally:
                os.close(fd)
        with netlink.Netlink.open(ns) as nl:
            index = nl.index_of("eth0")
            nl.add_address(index, "10.99.0.2", 24)
            nl.add_address(index, "169.254.7.7")
            nl.add_address(index, "fd00::2", 64, nodad=True)
            nl.set_up(index)
            nl.add_default_route(index, "10.99.0.1")
            with pytest.raises(netlink.NetlinkError) as dup:
                nl.add_default_route(index, "10.99.0.1")
            assert dup.value.errno == errno.EEXIST
        host_end = ip_json("/proc/self/ns/net", "link", "show", "veth-t")
        # the container's end reaches the bridge's address through the route
        with socket.create_server(("10.99.0.1", 0)) as server:
            port = server.getsockname()[1]
            inside(ns, lambda: socket.create_connection(("10.99.0.1", port), timeout=5).close())
        addrs = ip_json(ns, "addr", "show", "eth0")
        routes = ip_json(ns, "route", "show")
        with netlink.Netlink.host() as host:
            host.delete_link("veth-t")
            with pytest.raises(OSError):
                socket.if_nametoindex("veth-t")
            with pytest.raises(netlink.NetlinkError):
                host.delete_link("veth-t")
        gone = ip_json(ns, "link", "show")
        return host_end, addrs, routes, gone

    try:
        host_end, addrs, routes, gone = in_private_netns(scenario)
    finally:
        if os.path.ismount(ns):
            mountcall.umount(ns)
    assert host_end[0]["master"] == "br-t"
    assert "UP" in host_end[0]["flags"]  # type: ignore[operator]
    eth0 = addrs[0]
    assert eth0["address"] == "02:42:0a:63:00:02"
    assert "UP" in eth0["flags"]  # type: ignore[operator]
    inet = {(a["local"], a["prefixlen"]) for a in eth0["addr_info"]}  # type: ignore[attr-defined]
    assert {("10.99.0.2", 24), ("169.254.7.7", 32), ("fd00::2", 64)} <= inet
    # the broadcast address libnetwork gives an endpoint (`ip addr` shows brd 10.99.0.255)
    infos: list[dict[str, object]] = eth0["addr_info"]  # type: ignore[assignment]
    assert any(a.get("broadcast") == "10.99.0.255" for a in infos)
    assert {"dst": "default", "gateway": "10.99.0.1", "dev": "eth0"}.items() <= routes[0].items()
    # deleting the host end took the peer inside with it
    assert [link["ifname"] for link in gone] == ["lo"]


def test_open_of_a_missing_namespace_is_an_oserror(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        netlink.Netlink.open(tmp_path / "none")


def test_index_of_a_missing_link_names_it() -> None:
    with netlink.Netlink.host() as nl, pytest.raises(netlink.NetlinkError) as e:
        nl.index_of("dy-no-such0")
    assert e.value.errno == errno.ENODEV and "dy-no-such0" in str(e.value)
