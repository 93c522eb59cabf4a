"""Endpoint settings as docker-py sends them (create's NetworkingConfig and `network connect`):
a fixed IPv4 address, link-local addresses, a MAC address and driver options, honoured on
the container's interface and shown by inspect; refused in dockerd's words where it refuses."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import Clients

pytestmark = pytest.mark.root
docker = pytest.importorskip("docker")


@pytest.fixture
def api(clients: Clients) -> Iterator[docker.APIClient]:
    client = docker.APIClient(base_url=clients.daemon.host, version="1.41", timeout=60)
    client.made = []  # type: ignore[attr-defined]
    yield client
    for cid in client.made:  # type: ignore[attr-defined]
        try:
            client.remove_container(cid, force=True)
        except docker.errors.NotFound:
            pass
    client.close()


@pytest.fixture
def fixed_net(api: docker.APIClient) -> Iterator[str]:
    pool = docker.types.IPAMPool(
        subnet="172.27.0.0/16", iprange="172.27.5.0/24", gateway="172.27.5.254"
    )
    name = "ep-fixed-net"
    net = api.create_network(name, ipam=docker.types.IPAMConfig(pool_configs=[pool]))
    yield name
    for cid in api.made:  # type: ignore[attr-defined]
        try:
            api.remove_container(cid, force=True)
        except docker.errors.NotFound:
            pass
    api.remove_network(net["Id"])


def _exec(api: docker.APIClient, cid: str, cmd: str) -> str:
    out: bytes = api.exec_start(api.exec_create(cid, ["sh", "-c", cmd]))
    return out.decode()


def _top(api: docker.APIClient, **kw: object) -> str:
    cid: str = api.create_container("busybox", "top", **kw)["Id"]
    api.made.append(cid)  # type: ignore[attr-defined]
    return cid


def test_fixed_ipv4_at_create_and_on_connect(api: docker.APIClient, fixed_net: str) -> None:
    cid = _top(
        api,
        host_config=api.create_host_config(network_mode=fixed_net),
        networking_config=api.create_networking_config(
            {fixed_net: api.create_endpoint_config(ipv4_address="172.27.0.23")}
        ),
    )
    api.start(cid)
    ep = api.inspect_container(cid)["NetworkSettings"]["Networks"][fixed_net]
    # outside IPRange but inside the subnet: libnetwork hands a requested address out
    assert ep["IPAMConfig"] == {"IPv4Address": "172.27.0.23"}
    assert ep["IPAddress"] == "172.27.0.23"
    assert "inet 172.27.0.23/16" in _exec(api, cid, "ip addr show eth0")
    # The same address for a second container is taken.
    other = _top(
        api,
        host_config=api.create_host_config(network_mode=fixed_net),
        networking_config=api.create_networking_config(
            {fixed_net: api.create_endpoint_config(ipv4_address="172.27.0.23")}
        ),
    )
    with pytest.raises(docker.errors.APIError, match="Address already in use"):
        api.start(other)
    # Disconnect and connect again with another fixed address, while running.
    api.disconnect_container_from_network(cid, fixed_net)
    api.connect_container_to_network(cid, fixed_net, ipv4_address="172.27.5.24")
    ep = api.inspect_container(cid)["NetworkSettings"]["Networks"][fixed_net]
    assert (ep["IPAMConfig"], ep["IPAddress"]) == ({"IPv4Address": "172.27.5.24"}, "172.27.5.24")
    assert "inet 172.27.5.24/16" in _exec(api, cid, "ip addr")


@pytest.mark.parametrize(
    ("network", "address", "message"),
    [
        ("bridge", "172.17.0.99", "supported on user defined networks only"),
        ("ep-auto-net", "10.99.0.5", "only when connecting to networks with user configured"),
        ("ep-fixed-net", "10.1.2.3", "does not belong to any of this network's subnets"),
        ("ep-fixed-net", "172.27.0.300", "invalid IPv4 address: 172.27.0.300"),
    ],
)
def test_fixed_address_refusals(
    api: docker.APIClient, fixed_net: str, network: str, address: str, message: str
) -> None:
    auto = api.create_network("ep-auto-net")
    try:
        with pytest.raises(docker.errors.APIError, match=message) as err:
            _top(
                api,
                host_config=api.create_host_config(network_mode=network),
                networking_config=api.create_networking_config(
                    {network: api.create_endpoint_config(ipv4_address=address)}
                ),
            )
        assert err.value.response.status_code == 400
    finally:
        api.remove_network(auto["Id"])


def test_mac_address_of_the_container_and_of_a_connect(
    api: docker.APIClient, fixed_net: str
) -> None:
    cid = _top(api, mac_address="02:42:ac:11:00:0a")
    try:
        api.start(cid)
        inspect = api.inspect_container(cid)
        assert inspect["NetworkSettings"]["MacAddress"] == "02:42:ac:11:00:0a"
        assert inspect["Config"]["MacAddress"] == "02:42:ac:11:00:0a"
        assert "02:42:ac:11:00:0a" in _exec(api, cid, "cat /sys/class/net/eth0/address")
    finally:
        api.remove_container(cid, force=True)
    created = _top(api)
    try:
        api.connect_container_to_network(created, fixed_net, mac_address="02:42:ac:11:00:02")
        ep = api.inspect_container(created)["NetworkSettings"]["Networks"][fixed_net]
        assert ep["MacAddress"] == "02:42:ac:11:00:02"
        api.start(created)
        assert "02:42:ac:11:00:02" in _exec(api, created, "cat /sys/class/net/eth1/address")
    finally:
        api.remove_container(created, force=True)
    with pytest.raises(docker.errors.APIError, match="invalid MAC address"):
        _top(api, mac_address="02:42:zz")


def test_link_local_addresses_and_driver_opts(api: docker.APIClient) -> None:
    cid = _top(
        api,
        host_config=api.create_host_config(network_mode="bridge"),
        networking_config=api.create_networking_config(
            {
                "bridge": api.create_endpoint_config(
                    link_local_ips=["169.254.8.8"], driver_opt={"com.docker-py.setting": "on"}
                )
            }
        ),
    )
    try:
        api.start(cid)
        ep = api.inspect_container(cid)["NetworkSettings"]["Networks"]["bridge"]
        assert ep["IPAMConfig"] == {"LinkLocalIPs": ["169.254.8.8"]}
        assert ep["DriverOpts"] == {"com.docker-py.setting": "on"}
        assert "inet 169.254.8.8" in _exec(api, cid, "ip addr show eth0")
    finally:
        api.remove_container(cid, force=True)


def test_ipv6_network(api: docker.APIClient) -> None:
    pool6 = docker.types.IPAMPool(
        subnet="fd00:d0c:4e5::/64", iprange="fd00:d0c:4e5::/96", gateway="fd00:d0c:4e5::ffff"
    )
    net = api.create_network(
        "ep-v6-net", enable_ipv6=True, ipam=docker.types.IPAMConfig(pool_configs=[pool6])
    )
    try:
        info = api.inspect_network(net["Id"])
        assert info["EnableIPv6"] is True
        v6 = [c for c in info["IPAM"]["Config"] if ":" in c["Subnet"]]
        v4 = [c for c in info["IPAM"]["Config"] if ":" not in c["Subnet"]]
        assert v6 == [
            {
                "Subnet": "fd00:d0c:4e5::/64",
                "IPRange": "fd00:d0c:4e5::/96",
                "Gateway": "fd00:d0c:4e5::ffff",
            }
        ]
        assert len(v4) == 1  # an IPv4 pool is picked as libnetwork does
        cid = _top(api, host_config=api.create_host_config(network_mode="ep-v6-net"))
        api.start(cid)
        ep = api.inspect_container(cid)["NetworkSettings"]["Networks"]["ep-v6-net"]
        assert (ep["GlobalIPv6Address"], ep["GlobalIPv6PrefixLen"]) == ("fd00:d0c:4e5::1", 64)
        assert ep["IPv6Gateway"] == "fd00:d0c:4e5::ffff"
        assert "inet6 fd00:d0c:4e5::1/64" in _exec(api, cid, "ip -6 addr show eth0")
        # the gateway (our bridge) answers over IPv6
        assert " 0% packet loss" in _exec(api, cid, "ping -c 1 -W 5 fd00:d0c:4e5::ffff")
        api.disconnect_container_from_network(cid, "ep-v6-net")
        api.connect_container_to_network(cid, "ep-v6-net", ipv6_address="fd00:d0c:4e5::f00d")
        ep = api.inspect_container(cid)["NetworkSettings"]["Networks"]["ep-v6-net"]
        assert ep["IPAMConfig"] == {"IPv6Address": "fd00:d0c:4e5::f00d"}
        assert ep["GlobalIPv6Address"] == "fd00:d0c:4e5::f00d"
        assert "inet6 fd00:d0c:4e5::f00d/64" in _exec(api, cid, "ip -6 addr")
        cid2 = _top(api, host_config=api.create_host_config(network_mode="ep-v6-net"))
        api.start(cid2)
        assert " 0% packet loss" in _exec(api, cid2, "ping -c 1 -W 5 fd00:d0c:4e5::f00d")
    finally:
        for c in api.made:  # type: ignore[attr-defined]
            api.remove_container(c, force=True)
        api.made.clear()  # type: ignore[attr-defined]
        api.remove_network(net["Id"])


def test_ipv6_address_without_enable_ipv6_is_kept_not_assigned(api: docker.APIClient) -> None:
    # dockerd: a requested IPv6 address needs an IPv6 pool; without EnableIPv6 it is kept in
    # IPAMConfig and no IPv6 address is assigned.
    pool6 = docker.types.IPAMPool(subnet="fd00:d0c:4e6::/64")
    net = api.create_network("ep-v6-off", ipam=docker.types.IPAMConfig(pool_configs=[pool6]))
    try:
        assert api.inspect_network(net["Id"])["EnableIPv6"] is False
        cid = _top(
            api,
            host_config=api.create_host_config(network_mode="ep-v6-off"),
            networking_config=api.create_networking_config(
                {"ep-v6-off": api.create_endpoint_config(ipv6_address="fd00:d0c:4e6::f00d")}
            ),
        )
        api.start(cid)
        ep = api.inspect_container(cid)["NetworkSettings"]["Networks"]["ep-v6-off"]
        assert ep["IPAMConfig"] == {"IPv6Address": "fd00:d0c:4e6::f00d"}
        assert ep["GlobalIPv6Address"] == "" and ep["IPAddress"]
        auto = api.create_network("ep-auto-6")  # no IPv6 pool
        try:
            with pytest.raises(docker.errors.APIError, match="user configured subnets"):
                _top(
                    api,
                    host_config=api.create_host_config(network_mode="ep-auto-6"),
                    networking_config=api.create_networking_config(
                        {"ep-auto-6": api.create_endpoint_config(ipv6_address="fd00::1")}
                    ),
                )
        finally:
            api.remove_network(auto["Id"])
    finally:
        for c in api.made:  # type: ignore[attr-defined]
            api.remove_container(c, force=True)
        api.made.clear()  # type: ignore[attr-defined]
        api.remove_network(net["Id"])
