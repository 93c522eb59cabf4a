"""Big logs: `logs --tail` reads from the end, every read is off the event loop and bounded,
and a container writing hundreds of megabytes keeps the daemon small. One daemon of its own
(its RSS is the measure), one 300 MB json-file log made by a real container."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from tests.conftest import Clients, own_daemon, short_tmp
from tests.containers.helpers import docker_ok
from tests.support.api import PeakRSS, frames, request

pytestmark = pytest.mark.root

LIMIT_MB = 100
OUTPUT = 300_000_000  # bytes of stdout: about 300 MB of log in 16 KiB lines
LINE = 16 * 1024  # the monitor's json-file line limit (runtime/monitor.py)


@pytest.fixture(scope="module")
def big() -> Iterator[tuple[Clients, PeakRSS]]:
    with own_daemon(short_tmp("dylog-")) as c:
        assert c.daemon.proc is not None
        # `tr` numbers nothing, so make the last lines recognisable with a tail of digits.
        script = f"head -c {OUTPUT - 40} /dev/zero | tr '\\0' x; echo; seq 1000 1004"
        with PeakRSS(c.daemon.proc.pid) as writing:
            docker_ok(c, "run", "-d", "--name", "big", "busybox", "sh", "-c", script)
            assert docker_ok(c, "wait", "big").strip() == "0"
        yield c, writing


def _pid(c: Clients) -> int:
    assert c.daemon.proc is not None
    return c.daemon.proc.pid


def test_a_container_writing_300mb_keeps_the_daemon_small(big: tuple[Clients, PeakRSS]) -> None:
    c, writing = big
    log = next((c.daemon.root / "containers").glob("*/container.log"))
    assert log.stat().st_size > OUTPUT
    assert writing.peak_mb < LIMIT_MB, f"daemon RSS reached {writing.peak_mb:.0f} MB"


def test_tail_reads_from_the_end(big: tuple[Clients, PeakRSS]) -> None:
    c, _ = big
    with PeakRSS(_pid(c)) as reading:
        reply = request(c.daemon.socket, "GET", "/v1.44/containers/big/logs?stdout=1&tail=5")
    assert reply.status == 200
    got = [payload for _, payload in frames(reply.body)]
    assert got == [f"{n}\n".encode() for n in range(1000, 1005)]
    reply = request(c.daemon.socket, "GET", "/v1.44/containers/big/logs?stdout=1&tail=7")
    got = [payload for _, payload in frames(reply.body)]
    assert len(got) == 7 and set(got[0]) == {ord("x")} and got[2] == b"1000\n"
    assert reading.peak_mb < LIMIT_MB, f"daemon RSS reached {reading.peak_mb:.0f} MB"


def test_ping_is_answered_while_a_big_logs_stream_is_being_read(
    big: tuple[Clients, PeakRSS],
) -> None:
    """An ordering, not a timing: with a logs stream of the whole 300 MB open and its client
    not reading, the daemon answers /_ping, and the stream is still unfinished after."""
    c, _ = big
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(30)
    s.connect(str(c.daemon.socket))
    try:
        with PeakRSS(_pid(c)) as streaming:
            s.sendall(
                b"GET /v1.44/containers/big/logs?stdout=1&tail=all HTTP/1.1\r\n"
                b"Host: localhost\r\n\r\n"
            )
            first = s.recv(65536)
            assert first.startswith(b"HTTP/1.1 200"), first[:200]
            time.sleep(0.5)  # let the daemon fill whatever buffer it fills
            pong = request(c.daemon.socket, "GET", "/_ping", timeout=10)
            assert (pong.status, pong.body) == (200, b"OK")
            more = s.recv(65536)
            assert more, "the logs stream ended before the ping was answered"
        assert streaming.peak_mb < LIMIT_MB, f"daemon RSS reached {streaming.peak_mb:.0f} MB"
    finally:
        s.close()


def test_tail_values_as_dockerd(big: tuple[Clients, PeakRSS]) -> None:
    c, _ = big
    docker_ok(c, "run", "--name", "few", "busybox", "sh", "-c", "seq 1 6")
    try:
        for tail, want in [("2", "5 6"), ("0", ""), ("-3", "1 2 3 4 5 6"), ("abc", "1 2 3 4 5 6")]:
            reply = request(
                c.daemon.socket, "GET", f"/v1.44/containers/few/logs?stdout=1&tail={tail}"
            )
            assert reply.status == 200, (tail, reply.body)
            text = b"".join(p for _, p in frames(reply.body)).decode().split()
            assert " ".join(text) == want, tail
    finally:
        docker_ok(c, "rm", "few")
