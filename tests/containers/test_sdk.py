"""The docker Python SDK (docker-py) drives our daemon: the other big client of the API."""

from __future__ import annotations

import pytest

from tests.conftest import Clients

pytestmark = pytest.mark.root
docker = pytest.importorskip("docker")


def test_sdk_container_life(clients: Clients) -> None:
    client = docker.DockerClient(base_url=clients.daemon.host)
    assert client.containers.run("busybox", ["echo", "sdk-ok"], remove=True) == b"sdk-ok\n"
    ct = client.containers.run(
        "busybox",
        ["sleep", "300"],
        detach=True,
        mem_limit="64m",
        environment={"A": "1"},
        ports={"80/tcp": ("127.0.0.1", None)},
    )
    try:
        ct.reload()
        assert ct.status == "running"
        assert int(ct.ports["80/tcp"][0]["HostPort"]) > 0
        assert ct.exec_run(["sh", "-c", "echo $A"]).output == b"1\n"
        assert ct.top()["Processes"][0][-1] == "sleep 300"
        _, stat = ct.get_archive("/etc/hostname")
        assert stat["name"] == "hostname"
        ct.stop(timeout=1)
        ct.reload()
        assert (ct.status, ct.attrs["State"]["ExitCode"]) == ("exited", 137)
    finally:
        ct.remove(force=True)
    net = client.networks.create("sdk-net")
    vol = client.volumes.create("sdk-vol")
    assert "sdk-net" in [n.name for n in client.networks.list()]
    net.remove()
    vol.remove()
    client.close()
