"""SIGTERM ends the daemon promptly, streams that follow included (api/inflight.py).

aiohttp alone waits its shutdown_timeout for each open handler and then as long again after
cancelling it: an open `docker events` kept the daemon alive ~6 s after SIGTERM, and the
test harness's shared daemon its whole 20 s. dockerd ends such streams at shutdown.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.daemons import wait_for_socket

pytestmark = pytest.mark.root


def _open_stream(sock: Path, request: bytes) -> socket.socket:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(30)
    s.connect(str(sock))
    s.sendall(request)
    assert s.recv(12).startswith(b"HTTP/1.1 200")  # the stream has begun
    return s


def test_sigterm_ends_open_streams_and_the_daemon_within_a_few_seconds(base: Path) -> None:
    sock, log = base / "d.sock", base / "daemon.log"
    argv = [sys.executable, "-m", "dockyard.api.daemon", "--root", str(base / "root")]
    with open(log, "wb") as logf:
        proc = subprocess.Popen(
            [*argv, "--host", f"unix://{sock}"], stdout=logf, stderr=subprocess.STDOUT
        )
    streams: list[socket.socket] = []
    try:
        wait_for_socket(sock, proc, log)
        for _ in range(3):
            streams.append(_open_stream(sock, b"GET /v1.44/events HTTP/1.1\r\nHost: d\r\n\r\n"))
        began = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()
        took = time.monotonic() - began
        # 1 s of grace for requests in flight, then the streams are cancelled (6.1 s before)
        assert took < 4.0, f"the daemon took {took:.1f} s to stop\n{log.read_text()}"
        for s in streams:
            while s.recv(65536):  # the rest of the stream, then EOF: the daemon closed it
                pass
    finally:
        for s in streams:
            s.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
