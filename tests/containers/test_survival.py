"""Containers outlive the daemon: stop or crash it, start a new one, find everything again."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

from tests.conftest import Clients
from tests.containers.helpers import docker_ok, inspect, wait_for

pytestmark = [pytest.mark.root, pytest.mark.slow]


def _runc_running(clients: Clients) -> set[str]:
    out = subprocess.run(
        ["runc", "--root", str(clients.daemon.root / "runc"), "list", "-q"],
        capture_output=True,
        text=True,
    ).stdout
    return set(out.split())


def _crash(clients: Clients) -> None:
    proc = clients.daemon.proc
    assert proc is not None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    clients.daemon.proc = None


@pytest.mark.parametrize("how", ["stop", "crash"])
def test_running_containers_survive_and_are_found_again(fresh_clients: Clients, how: str) -> None:
    c = fresh_clients
    cid = docker_ok(
        c,
        "run",
        "-d",
        "--name",
        "survivor",
        "-p",
        "127.0.0.1::80",
        "busybox",
        "sh",
        "-c",
        "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done",
    ).strip()
    docker_ok(
        c, "run", "-d", "--name", "finisher", "busybox", "sh", "-c", "echo bye; sleep 1; exit 5"
    )
    docker_ok(
        c,
        "run",
        "-d",
        "--name",
        "phoenix",
        "--restart",
        "on-failure",
        "busybox",
        "sh",
        "-c",
        "echo run; sleep 1; exit 1",
    )
    wait_for(lambda: "tick 2" in c.docker("logs", "survivor").stdout)
    if how == "stop":
        c.daemon.stop()
    else:
        _crash(c)
    assert cid in _runc_running(c), "the container must keep running without the daemon"
    time.sleep(2.5)  # finisher and phoenix exit while no daemon runs
    c.daemon.start()

    state = inspect(c, "survivor")["State"]
    assert state["Running"] and state["Status"] == "running"
    logs = c.docker("logs", "survivor").stdout
    assert "tick 0" in logs and "tick 12" in logs, "output made while we were down is logged"
    n = len(logs.splitlines())
    wait_for(lambda: len(c.docker("logs", "survivor").stdout.splitlines()) > n + 2)
    assert docker_ok(c, "exec", "survivor", "echo", "exec-after-restart") == "exec-after-restart\n"
    assert int(inspect(c, "survivor")["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"]) > 0

    fin = inspect(c, "finisher")["State"]
    assert (fin["Status"], fin["ExitCode"]) == ("exited", 5)
    assert c.docker("logs", "finisher").stdout == "bye\n"
    wait_for(lambda: inspect(c, "phoenix")["RestartCount"] >= 1, timeout=20)

    docker_ok(c, "stop", "-t", "1", "survivor")
    assert inspect(c, "survivor")["State"]["Status"] == "exited"
    assert docker_ok(c, "wait", "finisher") == "5\n"
    docker_ok(c, "rm", "-f", "survivor", "finisher", "phoenix")
    assert _runc_running(c) == set()


def test_unless_stopped_comes_back_after_daemon_restart(fresh_clients: Clients) -> None:
    c = fresh_clients
    docker_ok(
        c, "run", "-d", "--name", "svc", "--restart", "unless-stopped", "busybox", "sleep", "300"
    )
    docker_ok(
        c, "run", "-d", "--name", "manual", "--restart", "unless-stopped", "busybox", "sleep", "300"
    )
    docker_ok(c, "stop", "-t", "0", "manual")
    svc_id = inspect(c, "svc")["Id"]
    c.daemon.stop()
    subprocess.run(
        ["runc", "--root", str(c.daemon.root / "runc"), "kill", svc_id, "KILL"], capture_output=True
    )
    time.sleep(1)
    c.daemon.start()
    try:
        wait_for(lambda: inspect(c, "svc")["State"]["Running"], timeout=20)
    except AssertionError:
        state = inspect(c, "svc")["State"]
        raise AssertionError(f"{state}\n{c.daemon.log.read_text()[-3000:]}") from None
    assert not inspect(c, "manual")["State"]["Running"], "a user stop is remembered"
    docker_ok(c, "rm", "-f", "svc", "manual")


def test_published_ports_answer_while_the_daemon_is_down(fresh_clients: Clients) -> None:
    import socket

    c = fresh_clients
    docker_ok(
        c,
        "run",
        "-d",
        "--name",
        "web",
        "-p",
        "127.0.0.1::80",
        "busybox",
        "sh",
        "-c",
        "echo up > /tmp/index.html; exec httpd -f -p 80 -h /tmp",
    )
    info = inspect(c, "web")
    port = int(info["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"])

    def get() -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
            s.sendall(b"GET /index.html HTTP/1.0\r\n\r\n")
            data = b""
            while chunk := s.recv(4096):
                data += chunk
            return data

    assert b"up" in wait_for(lambda: _try(get))
    c.daemon.stop()
    assert b"up" in get(), "the port proxy serves without the daemon"
    # The container dies behind everybody's back: its proxy goes with it.
    subprocess.run(
        ["runc", "--root", str(c.daemon.root / "runc"), "kill", info["Id"], "KILL"],
        capture_output=True,
    )
    wait_for(lambda: _try(get) is None, timeout=10)
    c.daemon.start()
    assert inspect(c, "web")["State"]["Status"] == "exited"
    docker_ok(c, "start", "web")
    new_port = int(inspect(c, "web")["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"])
    port = new_port
    assert b"up" in wait_for(lambda: _try(get))
    docker_ok(c, "rm", "-f", "web")


def _try(fn):  # type: ignore[no-untyped-def]
    try:
        return fn()
    except OSError:
        return None
