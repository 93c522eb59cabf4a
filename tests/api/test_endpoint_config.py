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
