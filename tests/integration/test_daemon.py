"""The daemon and the client: autostart on first use, one daemon per root, the wire basics."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import Clients, short_tmp
from tests.support.daemons import (
    DockyardDaemon,
    kill_containers_of,
    mounts_under,
    unmount_all_under,
)

pytestmark = pytest.mark.root


def _http(sock: Path, request: bytes) -> bytes:
    s = socket.socket(socket.AF_UNIX)
    s.connect(str(sock))
    s.sendall(request)
    chunks = []
    while data := s.recv(65536):
        chunks.append(data)
    s.close()
    return b"".join(chunks)


def test_cli_autostarts_the_daemon_and_it_stops_cleanly() -> None:
    base = short_tmp("dya-")
    env = dict(os.environ, DOCKYARD_HOST=f"unix://{base}/d.sock", DOCKYARD_ROOT=str(base / "root"))
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "dockyard.cli.main", "version"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        assert "API version:" in proc.stdout and "1.44" in proc.stdout
        pid = int((base / "root" / "daemon.pid").read_text())
        # A second command finds the running daemon instead of starting another
        subprocess.run(
            [sys.executable, "-m", "dockyard.cli.main", "ps"],
            env=env,
            check=True,
            capture_output=True,
            timeout=60,
        )
        assert int((base / "root" / "daemon.pid").read_text()) == pid
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            pytest.fail("daemon did not stop on SIGTERM")
        assert not (base / "d.sock").exists()
        assert mounts_under(base) == []
    finally:
        kill_containers_of(base / "root")
        unmount_all_under(base)
        subprocess.run(["rm", "-rf", str(base)])


def test_a_second_daemon_on_the_same_root_is_refused(daemon: DockyardDaemon) -> None:
    other = short_tmp("dyb-")
    try:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "dockyard.api.daemon",
                "--root",
                str(daemon.root),
                "--host",
                f"unix://{other}/d.sock",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert proc.returncode != 0
        assert "another daemon" in proc.stderr
    finally:
        subprocess.run(["rm", "-rf", str(other)])


def test_ping_and_api_versions(clients: Clients) -> None:
    sock = clients.daemon.socket
    head = _http(sock, b"HEAD /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").decode()
    assert head.startswith("HTTP/1.1 200")
    assert "Api-Version: 1.44" in head and "Builder-Version: 2" in head and "Ostype: linux" in head
    get = _http(sock, b"GET /v1.24/_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert get.endswith(b"OK")
    old = _http(sock, b"GET /v1.12/version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert old.startswith(b"HTTP/1.1 400") and b"too old" in old
    missing = _http(
        sock, b"GET /v1.44/images/nope:1/json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert missing.startswith(b"HTTP/1.1 404")
    body = missing.split(b"\r\n\r\n", 1)[1]
    assert json.loads(body) == {"message": "No such image: nope:1"}


def test_docker_cli_version_and_images(clients: Clients) -> None:
    proc = clients.docker("version", "--format", "{{.Server.APIVersion}}")
    assert proc.returncode == 0 and proc.stdout.strip() == "1.44"
    proc = clients.docker("images", "--format", "{{.Repository}}:{{.Tag}}")
    assert "busybox:latest" in proc.stdout.split()


def test_version_format_uses_dockers_field_names(clients: Clients) -> None:
    ours = clients.ok(
        "version", "--format", "{{.Server.APIVersion}} {{.Client.APIVersion}} {{.Server.Os}}"
    )
    theirs = clients.docker("version", "--format", "{{.Server.APIVersion}} {{.Server.Os}}").stdout
    assert ours == "1.44 1.44 linux\n"
    assert theirs == "1.44 linux\n"
