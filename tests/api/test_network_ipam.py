"""IPAM pools as docker-py creates them: IPRange and AuxiliaryAddresses kept, inspected and
honoured when addresses are handed out (libnetwork's default IPAM)."""

from __future__ import annotations

import ipaddress

import pytest

from tests.conftest import Clients

pytestmark = pytest.mark.root
docker = pytest.importorskip("docker")


def test_ip_range_and_aux_addresses(clients: Clients) -> None:
    api = docker.APIClient(base_url=clients.daemon.host, version="1.41")
    pool = docker.types.IPAMPool(
        subnet="172.29.0.0/16",
        iprange="172.29.5.0/29",
        gateway="172.29.5.1",
        aux_addresses={"a": "172.29.5.2", "b": "172.29.1.6"},
    )
    net = api.create_network("ipam-net", ipam=docker.types.IPAMConfig(pool_configs=[pool]))
    try:
        ipam = api.inspect_network(net["Id"])["IPAM"]
        assert ipam["Driver"] == "default" and ipam.get("Options") is None
        assert ipam["Config"] == [
            {
                "Subnet": "172.29.0.0/16",
                "IPRange": "172.29.5.0/29",
                "Gateway": "172.29.5.1",
                "AuxiliaryAddresses": {"a": "172.29.5.2", "b": "172.29.1.6"},
            }
        ]
        ctr = api.create_container(
            "busybox", "top", host_config=api.create_host_config(network_mode="ipam-net")
        )
        try:
            api.start(ctr)
            ip = api.inspect_container(ctr)["NetworkSettings"]["Networks"]["ipam-net"]
            # the range's first hosts are the gateway (.1) and a reserved address (.2)
            assert ip["IPAddress"] == "172.29.5.3"
            assert ipaddress.ip_address(ip["Gateway"]) == ipaddress.ip_address("172.29.5.1")
        finally:
            api.remove_container(ctr, force=True)
    finally:
        api.remove_network(net["Id"])
    bad = docker.types.IPAMPool(subnet="172.30.0.0/24", iprange="172.31.0.0/24")
    with pytest.raises(docker.errors.APIError, match="not within subnet"):
        api.create_network("ipam-bad", ipam=docker.types.IPAMConfig(pool_configs=[bad]))
