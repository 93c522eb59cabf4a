"""Networking: the default bridge, user networks with names, published ports, outbound NAT.

Traffic goes only to 127.0.0.1 and into namespaces the tests make ("outside" is a network
namespace of our own behind a veth pair with TEST-NET addresses).
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Clients
from tests.containers.helpers import docker_ok, inspect, snapshot_leftovers, wait_for

pytestmark = pytest.mark.root


@pytest.fixture
def uniq() -> str:
    return f"n{time.monotonic_ns() % 10_000_000}"


def _http_get(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /index.html HTTP/1.0\r\n\r\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    return data


def test_published_tcp_and_udp_ports_on_loopback(clients: Clients, uniq: str) -> None:
    docker_ok(
        clients,
        "run",
        "-d",
        "--name",
        uniq,
        "-p",
        "127.0.0.1::80",
        "-p",
        "127.0.0.1::5353/udp",
        "busybox",
        "sh",
        "-c",
        "echo page > /tmp/index.html; exec httpd -f -p 80 -h /tmp",
    )
    try:
        ports = inspect(clients, uniq)["NetworkSettings"]["Ports"]
        tcp = int(ports["80/tcp"][0]["HostPort"])
        udp = int(ports["5353/udp"][0]["HostPort"])
        assert ports["80/tcp"][0]["HostIp"] == "127.0.0.1"
        body = wait_for(lambda: _try(lambda: _http_get(tcp)))
        assert b"page" in body
        # busybox has no UDP server: a UDP echo runs in the container's network namespace.
        netns = inspect(clients, uniq)["NetworkSettings"]["SandboxKey"]
        echo = subprocess.Popen(
            [
                "nsenter",
                f"--net={netns}",
                "python3",
                "-c",
                "import socket\ns=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                "s.bind(('0.0.0.0', 5353)); d, a = s.recvfrom(100); s.sendto(d.upper(), a)",
            ],
        )
        try:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(0.5)
            got = b""
            for _ in range(20):
                s.sendto(b"ping-udp", ("127.0.0.1", udp))
                try:
                    got = s.recv(100)
                    break
                except TimeoutError:
                    continue
            s.close()
            assert got == b"PING-UDP"
        finally:
            echo.kill()
            echo.wait()
        listing = docker_ok(clients, "ps", "--filter", f"name={uniq}$", "--format", "{{.Ports}}")
        assert f"127.0.0.1:{tcp}->80/tcp" in listing
    finally:
        clients.docker("rm", "-f", uniq)
    with pytest.raises(OSError):
        _http_get(tcp)


def _try(fn):  # type: ignore[no-untyped-def]
    try:
        return fn()
    except OSError:
        return None


def test_publish_all_uses_exposed_ports(clients: Clients, uniq: str) -> None:
    docker_ok(
        clients, "run", "-d", "--name", uniq, "--expose", "8080", "-P", "busybox", "sleep", "300"
    )
    try:
        ports = inspect(clients, uniq)["NetworkSettings"]["Ports"]
        assert int(ports["8080/tcp"][0]["HostPort"]) > 0
    finally:
        clients.docker("rm", "-f", uniq)


def test_a_process_that_ends_at_once_still_runs_with_published_ports(clients: Clients) -> None:
    # The port proxy watches the container's process and ends with it; for `true` that is
    # before the proxy serves. dockerd starts docker-proxy before the task, so `docker run
    # --rm -p 80 busybox true` exits 0 there: a short-lived process is not a failed start.
    for publish in ("80", "127.0.0.1::80/udp"):
        for _ in range(3):
            docker_ok(clients, "run", "--rm", "-p", publish, "busybox", "true")


def test_port_already_in_use_is_a_clear_error(clients: Clients, uniq: str) -> None:
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    port = blocker.getsockname()[1]
    docker_ok(clients, "run", "--rm", "busybox", "true")  # the default bridge exists
    before = snapshot_leftovers(clients.daemon.root)
    try:
        proc = clients.docker(
            "run", "-d", "--name", uniq, "-p", f"127.0.0.1:{port}:80", "busybox", "sleep", "300"
        )
        assert proc.returncode != 0
        assert f"127.0.0.1:{port}" in proc.stderr and "failed" in proc.stderr
        assert not inspect(clients, uniq)["State"]["Running"]
        assert snapshot_leftovers(clients.daemon.root) == before
    finally:
        blocker.close()
        clients.docker("rm", "-f", uniq)


def test_user_network_names_connect_disconnect(clients: Clients, uniq: str) -> None:
    net = f"{uniq}-net"
    docker_ok(clients, "network", "create", net)
    try:
        docker_ok(
            clients,
            "run",
            "-d",
            "--name",
            f"{uniq}-db",
            "--network",
            net,
            "--network-alias",
            "database",
            "busybox",
            "sleep",
            "300",
        )
        out = docker_ok(
            clients,
            "run",
            "--rm",
            "--network",
            net,
            "busybox",
            "sh",
            "-c",
            f"ping -c1 -W2 {uniq}-db >/dev/null && ping -c1 -W2 database "
            ">/dev/null && echo reachable",
        )
        assert out == "reachable\n"
        info = json.loads(docker_ok(clients, "network", "inspect", net))[0]
        assert [c["Name"] for c in info["Containers"].values()] == [f"{uniq}-db"]
        assert net in docker_ok(clients, "network", "ls", "--format", "{{.Name}}").split()

        # A container on the default bridge joins the network while running.
        docker_ok(clients, "run", "-d", "--name", f"{uniq}-app", "busybox", "sleep", "300")
        assert (
            clients.docker("exec", f"{uniq}-app", "ping", "-c1", "-W1", f"{uniq}-db").returncode
            != 0
        )
        docker_ok(clients, "network", "connect", net, f"{uniq}-app")
        nets = inspect(clients, f"{uniq}-app")["NetworkSettings"]["Networks"]
        assert set(nets) == {"bridge", net}
        assert (
            docker_ok(clients, "exec", f"{uniq}-app", "sh", "-c", "ip -o -4 addr | wc -l").strip()
            == "3"
        )
        docker_ok(clients, "network", "disconnect", net, f"{uniq}-app")
        assert (
            docker_ok(clients, "exec", f"{uniq}-app", "sh", "-c", "ip -o -4 addr | wc -l").strip()
            == "2"
        )
        # Networks are isolated from each other, as Docker's are.
        other = f"{uniq}-other"
        docker_ok(clients, "network", "create", other)
        try:
            db_ip = inspect(clients, f"{uniq}-db")["NetworkSettings"]["Networks"][net]["IPAddress"]
            cross = clients.docker(
                "run", "--rm", "--network", other, "busybox", "ping", "-c1", "-W1", db_ip
            )
            assert cross.returncode != 0
        finally:
            clients.docker("network", "rm", other)
        busy = clients.docker("network", "rm", net)
        assert busy.returncode != 0 and "active endpoints" in busy.stderr
    finally:
        clients.docker("rm", "-f", f"{uniq}-db", f"{uniq}-app")
        clients.docker("network", "rm", net)
    assert net not in docker_ok(clients, "network", "ls", "--format", "{{.Name}}").split()


def test_default_bridge_etc_files_and_options(clients: Clients) -> None:
    out = docker_ok(
        clients,
        "run",
        "--rm",
        "--hostname",
        "web1",
        "--add-host",
        "db.local:10.9.8.7",
        "--dns",
        "10.0.0.53",
        "--dns-search",
        "corp.example",
        "busybox",
        "sh",
        "-c",
        "hostname; cat /etc/hosts; cat /etc/resolv.conf; ip -o -4 addr show eth0",
    )
    lines = out.splitlines()
    assert lines[0] == "web1"
    assert any(line.endswith("\tweb1") or " web1" in line or "\tweb1 " in line for line in lines)
    assert "10.9.8.7\tdb.local" in out
    assert "nameserver 10.0.0.53" in out and "search corp.example" in out
    assert "inet 10.213." in out
    host = docker_ok(clients, "run", "--rm", "--network", "host", "busybox", "hostname")
    assert host.strip() == socket.gethostname()
    none = docker_ok(
        clients, "run", "--rm", "--network", "none", "busybox", "sh", "-c", "ip -o link | wc -l"
    )
    assert none.strip() == "1"


@pytest.fixture
def outside() -> Iterator[tuple[str, str]]:
    """A namespace standing for the outside world, reachable from the host via a veth."""
    tag = f"{time.monotonic_ns() % 100000}"
    ns, host_if, peer_if = f"dyout{tag}", f"dyo{tag}", f"dyp{tag}"
    host_ip, out_ip = "198.18.77.1", "198.18.77.2"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(
            ["ip", "link", "add", host_if, "type", "veth", "peer", "name", peer_if, "netns", ns],
            check=True,
        )
        subprocess.run(["ip", "addr", "add", f"{host_ip}/30", "dev", host_if], check=True)
        subprocess.run(["ip", "link", "set", host_if, "up"], check=True)
        for cmd in (
            ["ip", "addr", "add", f"{out_ip}/30", "dev", peer_if],
            ["ip", "link", "set", peer_if, "up"],
            ["ip", "link", "set", "lo", "up"],
        ):
            subprocess.run(["ip", "netns", "exec", ns, *cmd], check=True)
        yield ns, out_ip
    finally:
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def test_outbound_traffic_is_masqueraded(clients: Clients, outside: tuple[str, str]) -> None:
    ns, out_ip = outside
    server = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            ns,
            "python3",
            "-c",
            "import socket\ns=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
            f"s.bind(('{out_ip}', 7777)); s.listen(1); print('listening', flush=True)\n"
            "c, a = s.accept(); print(a[0], flush=True)\n"
            "c.sendall(b'hello-outside\\n'); c.close()",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        # Listening before the container dials (a fixed sleep lost that race under load once
        # a container started in less than the server's Python start-up: connection refused).
        assert server.stdout is not None and server.stdout.readline() == "listening\n"
        out = docker_ok(clients, "run", "--rm", "busybox", "nc", "-w", "5", out_ip, "7777")
        assert out == "hello-outside\n"
        peer = server.communicate(timeout=10)[0].strip()
        assert peer == "198.18.77.1", "the container's address must be NATed to the host's"
    finally:
        server.kill()


def test_nothing_left_after_the_daemon_stops(fresh_clients: Clients) -> None:
    c = fresh_clients
    docker_ok(c, "network", "create", "leftover-net")
    docker_ok(
        c,
        "run",
        "-d",
        "--name",
        "left",  # Docker's names have two characters at least
        "--network",
        "leftover-net",
        "-p",
        "127.0.0.1::80",
        "busybox",
        "sleep",
        "300",
    )
    docker_ok(c, "run", "--rm", "busybox", "true")
    bridges = [
        json.loads(p.read_text()).get("Bridge") for p in (c.daemon.root / "networks").glob("*.json")
    ]
    bridges = [b for b in bridges if b]
    assert any(Path(f"/sys/class/net/{b}").exists() for b in bridges)
    docker_ok(c, "rm", "-f", "left")
    c.daemon.stop()
    for b in bridges:
        assert not Path(f"/sys/class/net/{b}").exists(), f"bridge {b} left behind"
    rules = subprocess.run(
        ["iptables", "-w", "-t", "nat", "-S"], capture_output=True, text=True
    ).stdout
    assert not any(b in rules for b in bridges)


def test_network_container_mode_shares_the_namespace(clients: Clients, uniq: str) -> None:
    docker_ok(
        clients, "run", "-d", "--name", uniq, "--hostname", "shared-host", "busybox", "sleep", "300"
    )
    try:
        mine = docker_ok(clients, "exec", uniq, "ip", "-o", "-4", "addr", "show", "eth0")
        out = docker_ok(
            clients,
            "run",
            "--rm",
            "--network",
            f"container:{uniq}",
            "busybox",
            "sh",
            "-c",
            "ip -o -4 addr show eth0; hostname",
        )
        assert out.splitlines()[0].split()[3] == mine.split()[3]
        assert out.splitlines()[1] == "shared-host"
    finally:
        clients.docker("rm", "-f", uniq)
