"""Bad input: a clear one-line error, and nothing left behind (mount, veth, rule, runc state)."""

from __future__ import annotations

import json
import time
import urllib.parse
from typing import Any

import pytest

from tests.conftest import Clients
from tests.containers.helpers import (
    docker_ok,
    leftovers_back_to,
    settled_leftovers,
    snapshot_leftovers,
)

pytestmark = pytest.mark.root


def _api(clients: Clients, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    import http.client
    import socket

    class Conn(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.connect(str(clients.daemon.socket))

    conn = Conn("localhost")
    data = json.dumps(body).encode() if body is not None else None
    conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    raw = resp.read()
    conn.close()
    return resp.status, json.loads(raw) if raw else None


def _names(clients: Clients) -> list[str]:
    return sorted(docker_ok(clients, "ps", "-a", "--format", "{{.Names}}").split())


def _error_line(stderr: str) -> str:
    lines = [
        line for line in stderr.splitlines() if line.strip() and "docker run --help" not in line
    ]
    assert lines, stderr
    return lines[0]


@pytest.fixture
def clean(clients: Clients):  # type: ignore[no-untyped-def]
    # Make sure the default bridge exists, so the snapshot sees its rules.
    docker_ok(clients, "run", "--rm", "busybox", "true")
    before = settled_leftovers(clients.daemon.root)
    names = _names(clients)
    yield
    assert leftovers_back_to(clients.daemon.root, before) == before
    assert _names(clients) == names


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-v", "/src:/dst:bogus"], "invalid mode"),
        (["--mount", "type=bind,source=/no/such/src,target=/x"], "does not exist"),
        (["--network", "no-such-net"], "no-such-net"),
        (["--network", "container:no-such-ctr"], "no-such-ctr"),
        (["--cap-add", "NOT_A_CAP"], "CAP_NOT_A_CAP"),
        (["--ulimit", "nofile=999999999:999999999"], "nofile"),
        (["--security-opt", "seccomp=/no/such/profile.json"], "seccomp"),
        (["--device", "/no/such/device"], "/no/such/device"),
        (["--volumes-from", "no-such-source"], "no-such-source"),
        (["--ip", "10.213.250.9"], "supported on user defined networks only"),
        (["--log-driver", "asdf"], "logger: no log driver named 'asdf' is registered"),
        (["--log-opt", "max-sized=1m"], "unknown log opt 'max-sized' for json-file log driver"),
    ],
)
def test_bad_run_options(clients: Clients, clean: None, args: list[str], message: str) -> None:
    proc = clients.docker("run", "--rm", *args, "busybox", "true")
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_unknown_image(clients: Clients, clean: None) -> None:
    proc = clients.docker("run", "--rm", "--pull", "never", "no-such-image:1", "true")
    assert proc.returncode != 0 and "no-such-image" in _error_line(proc.stderr)


def test_bad_port_specs_through_the_api(clients: Clients, clean: None) -> None:
    for bindings in (
        {"99999/tcp": [{"HostPort": "80"}]},
        {"80/tcp": [{"HostIp": "not-an-ip", "HostPort": "80"}]},
        {"80/tcp": [{"HostPort": "http"}]},
        {"80/sctp": [{"HostPort": "80"}]},
    ):
        status, body = _api(
            clients,
            "POST",
            "/v1.44/containers/create",
            {"Image": "busybox", "Cmd": ["true"], "HostConfig": {"PortBindings": bindings}},
        )
        assert status in (400, 501), (bindings, body)
        assert "\n" not in body["message"]


def test_name_in_use(clients: Clients, clean: None) -> None:
    name = f"taken{time.monotonic_ns() % 100000}"
    docker_ok(clients, "create", "--name", name, "busybox", "true")
    try:
        before = snapshot_leftovers(clients.daemon.root)
        proc = clients.docker("run", "--name", name, "busybox", "true")
        assert proc.returncode != 0 and "is already in use" in proc.stderr
        assert snapshot_leftovers(clients.daemon.root) == before
    finally:
        docker_ok(clients, "rm", name)


def test_failed_start_releases_network_and_mounts(clients: Clients, clean: None) -> None:
    name = f"nocmd{time.monotonic_ns() % 100000}"
    before = snapshot_leftovers(clients.daemon.root)
    try:
        proc = clients.docker(
            "run", "--name", name, "-p", "127.0.0.1::80", "busybox", "no-such-command"
        )
        assert proc.returncode == 127
        assert "no-such-command" in proc.stderr
        # The record stays (as Docker's), but nothing it held while starting.
        assert snapshot_leftovers(clients.daemon.root) == before
    finally:
        clients.docker("rm", "-f", name)


def test_wrong_container_operations(clients: Clients, clean: None) -> None:
    for args in (
        ["stop", "nosuch"],
        ["kill", "nosuch"],
        ["exec", "nosuch", "true"],
        ["logs", "nosuch"],
        ["cp", "nosuch:/x", "/tmp/x"],
    ):
        proc = clients.docker(*args)
        assert proc.returncode != 0 and "nosuch" in proc.stderr, args
    status, body = _api(
        clients,
        "GET",
        "/v1.44/containers/json?filters=" + urllib.parse.quote(json.dumps({"bogus": ["1"]})),
    )
    assert status == 400 and "bogus" in body["message"]
