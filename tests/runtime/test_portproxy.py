"""The port proxy, both kinds (data/dockyard-portproxy.c and portproxy.py), on loopback.

The daemon's part (binding, handing the sockets over) is engine/network.py's; here the test
plays the daemon and the container: a server on 127.0.0.1 stands in for the container.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.runtime.portproxy import is_port_proxy, proxy_command


@pytest.fixture(params=["native", "python"])
def kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "python":
        monkeypatch.setenv("DOCKYARD_PORTPROXY", "python")
    else:
        monkeypatch.delenv("DOCKYARD_PORTPROXY", raising=False)
    return str(request.param)


def tcp_server(handler: object) -> tuple[socket.socket, int]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(128)  # a full accept queue resets connections: not under test

    def loop() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            threading.Thread(target=handler, args=(conn,), daemon=True).start()  # type: ignore[arg-type]

    threading.Thread(target=loop, daemon=True).start()
    return srv, srv.getsockname()[1]


def upper_after_eof(conn: socket.socket) -> None:
    """Reads to EOF (the client's half-close), then answers and closes."""
    with conn:
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
        conn.sendall(data.upper())


class Proxy:
    def __init__(self, tmp: Path, target_port: int, udp_port: int = 0, watch_pid: int = 0):
        self.pid_file = tmp / "proxy.pid"
        self.tcp = socket.socket()
        self.tcp.bind(("127.0.0.1", 0))
        self.tcp.listen(16)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        specs = [f"{self.tcp.fileno()}:tcp:{target_port}", f"{self.udp.fileno()}:udp:{udp_port}"]
        argv = [*proxy_command(tmp / "bin"), "--id", "c0ffee", "--target", "127.0.0.1"]
        argv += ["--pid-file", str(self.pid_file), "--watch-pid", str(watch_pid), *specs]
        proc = subprocess.run(argv, pass_fds=(self.tcp.fileno(), self.udp.fileno()), timeout=30)
        assert proc.returncode == 0
        self.pid = int(self.pid_file.read_text())
        self.tcp_port = self.tcp.getsockname()[1]
        self.udp_port = self.udp.getsockname()[1]
        self.tcp.close()
        self.udp.close()

    def cmdline(self) -> bytes:
        return Path(f"/proc/{self.pid}/cmdline").read_bytes()

    def alive(self) -> bool:
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        # Not ours to reap (it forked away): a zombie counts as gone.
        return "Z" not in Path(f"/proc/{self.pid}/stat").read_text().split()[2]

    def stop(self) -> None:
        if self.alive():
            os.kill(self.pid, signal.SIGTERM)


@pytest.fixture
def proxy(kind: str, tmp_path: Path) -> Iterator[Proxy]:
    srv, port = tcp_server(upper_after_eof)
    udp_srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp_srv.bind(("127.0.0.1", 0))

    def echo() -> None:
        while True:
            try:
                data, addr = udp_srv.recvfrom(65536)
            except OSError:
                return
            udp_srv.sendto(data.upper() + f"|{addr[1]}".encode(), addr)

    threading.Thread(target=echo, daemon=True).start()
    p = Proxy(tmp_path, port, udp_srv.getsockname()[1])
    yield p
    p.stop()
    srv.close()
    udp_srv.close()


def test_the_native_proxy_is_the_default(kind: str, proxy: Proxy) -> None:
    assert is_port_proxy(proxy.cmdline())
    assert (b"dockyard-portproxy-" in proxy.cmdline()) == (kind == "native")
    assert not is_port_proxy(b"/usr/bin/python3\0-m\0http.server\0")


def test_tcp_half_close_and_a_large_transfer(proxy: Proxy) -> None:
    payload = os.urandom(3 * 1024 * 1024).hex().encode()[: 5 * 1024 * 1024]
    with socket.create_connection(("127.0.0.1", proxy.tcp_port), timeout=20) as c:
        c.sendall(payload)
        c.shutdown(socket.SHUT_WR)  # the server answers only after our EOF
        got = b""
        while chunk := c.recv(1 << 20):
            got += chunk
    assert got == payload.upper()


def test_many_connections_at_once(proxy: Proxy) -> None:
    conns = [socket.create_connection(("127.0.0.1", proxy.tcp_port), timeout=20) for _ in range(40)]
    for i, c in enumerate(conns):
        c.sendall(f"conn {i}".encode())
        c.shutdown(socket.SHUT_WR)
    for i, c in enumerate(conns):
        with c:
            assert c.recv(100) == f"CONN {i}".encode()


def test_udp_keeps_one_upstream_per_client(proxy: Proxy) -> None:
    clients = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
    seen = []
    for c in clients:
        c.settimeout(10)
        for msg in (b"ping", b"again"):
            c.sendto(msg, ("127.0.0.1", proxy.udp_port))
            reply, _ = c.recvfrom(1000)
            text, _, upstream_port = reply.partition(b"|")
            assert text == msg.upper()
            seen.append((c.getsockname()[1], upstream_port))
        c.close()
    # the same client keeps its upstream socket; another client gets its own
    assert seen[0][1] == seen[1][1] and seen[2][1] == seen[3][1] and seen[0][1] != seen[2][1]


def test_ends_on_sigterm_and_closes_the_ports(proxy: Proxy) -> None:
    os.kill(proxy.pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while proxy.alive():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", proxy.tcp_port), timeout=5)


def test_ends_with_the_watched_process(kind: str, tmp_path: Path) -> None:
    sleeper = subprocess.Popen(["sleep", "30"])
    p = Proxy(tmp_path, 9, watch_pid=sleeper.pid)
    try:
        assert p.alive()
        sleeper.kill()
        sleeper.wait()
        deadline = time.monotonic() + 10
        while p.alive():
            assert time.monotonic() < deadline, "the proxy outlived the container's init"
            time.sleep(0.02)
    finally:
        p.stop()
