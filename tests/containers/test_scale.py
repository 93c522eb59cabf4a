"""Many containers and big output (issue 10 §4), on a daemon of its own (its RSS is measured):
50 containers started at once all run and all stop; 200 `run --rm` (two clients, each
sequential) leave the daemon's RSS where it was; a container writing 200 MB to an attached
client that reads slowly keeps the daemon small (the output waits for the client, as with
dockerd, instead of piling up in the daemon). Timings are bench/bench_robust.py's."""

from __future__ import annotations

import concurrent.futures
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Clients, own_daemon, short_tmp
from tests.containers.helpers import docker_ok, snapshot_leftovers
from tests.support.api import PeakRSS, request, rss

pytestmark = pytest.mark.root

MANY = 50
RUNS = 200
LANES = 2
OUTPUT = 200_000_000


@pytest.fixture(scope="module")
def own() -> Iterator[Clients]:
    with own_daemon(short_tmp("dyscale-")) as c:
        yield c


def _pid(c: Clients) -> int:
    assert c.daemon.proc is not None
    return c.daemon.proc.pid


def _inspect(c: Clients, name: str) -> dict[str, object]:
    reply = request(c.daemon.socket, "GET", f"/v1.44/containers/{name}/json")
    assert reply.status == 200, reply.body
    state = json.loads(reply.body)["State"]
    assert isinstance(state, dict)
    return state


def test_fifty_containers_started_at_once_all_run_and_stop(own: Clients) -> None:
    c = own
    names = [f"many{i}" for i in range(MANY)]
    docker_ok(c, "run", "--rm", "busybox", "true")  # the default bridge and its rules exist
    before = snapshot_leftovers(c.daemon.root)
    with concurrent.futures.ThreadPoolExecutor(MANY) as pool:
        runs = list(
            pool.map(lambda n: c.docker("run", "-d", "--name", n, "busybox", "sleep", "600"), names)
        )
        assert [p.returncode for p in runs] == [0] * MANY, [p.stderr for p in runs if p.returncode]
        for n in names:
            state = _inspect(c, n)
            assert state["Running"] is True and state["Pid"], (n, state)
            assert Path(f"/proc/{state['Pid']}").exists(), n
        stops = list(pool.map(lambda n: c.docker("stop", "-t", "1", n), names))
        assert [p.returncode for p in stops] == [0] * MANY, [
            p.stderr for p in stops if p.returncode
        ]
        for n in names:
            state = _inspect(c, n)
            assert state["Status"] == "exited" and not state["Pid"], (n, state)
        rms = list(pool.map(lambda n: c.docker("rm", n), names))
        assert [p.returncode for p in rms] == [0] * MANY
    assert snapshot_leftovers(c.daemon.root) == before  # no mount, veth, rule or cgroup left
    assert "Traceback" not in c.daemon.log.read_text(errors="replace")


def test_sequential_run_rm_leaves_the_daemon_size_alone(own: Clients) -> None:
    c = own
    for _ in range(20):  # warm up: imports, caches and the allocator's first arenas
        docker_ok(c, "run", "--rm", "busybox", "true")
    before = rss(_pid(c))

    def lane(first: int) -> None:
        for i in range(first, RUNS, LANES):
            proc = c.docker("run", "--rm", "busybox", "echo", str(i))
            assert (proc.returncode, proc.stdout) == (0, f"{i}\n"), proc.stderr

    # RUNS run --rm in LANES clients, each one run after the other: the same 200 container
    # lives (what a leak would grow with), at about half the wall time on the CI's 2 cores
    # (a lone client leaves one core idle while it waits for runc and the monitor)
    with concurrent.futures.ThreadPoolExecutor(LANES) as pool:
        for done in [pool.submit(lane, n) for n in range(LANES)]:
            done.result()
    after = rss(_pid(c))
    grew = (after - before) / (1 << 20)
    print(f"daemon RSS {before / (1 << 20):.1f} -> {after / (1 << 20):.1f} MB over {RUNS} run --rm")
    assert grew < 5, f"daemon RSS grew {grew:.1f} MB over {RUNS} run --rm"
    reply = request(c.daemon.socket, "GET", "/v1.44/containers/json?all=1")
    assert json.loads(reply.body) == []


def test_big_output_to_a_slow_attached_client_keeps_the_daemon_small(own: Clients) -> None:
    c = own
    script = f"head -c {OUTPUT} /dev/zero | tr '\\0' x; echo; echo done"
    with PeakRSS(_pid(c)) as peak:
        proc = subprocess.Popen(
            ["docker", "run", "--name", "loud", "busybox", "sh", "-c", script],
            env=c.daemon.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert proc.stdout is not None
        time.sleep(5)  # the client reads nothing yet
        got, tail = 0, b""
        while chunk := proc.stdout.read(1 << 20):
            got += len(chunk)
            tail = (tail + chunk)[-16:]
        assert proc.wait(60) == 0, proc.stderr.read() if proc.stderr else ""
    assert got == OUTPUT + len("\ndone\n") and tail.endswith(b"x\ndone\n"), (got, tail)
    assert peak.peak_mb < 100, f"daemon RSS reached {peak.peak_mb:.0f} MB"
    assert _inspect(c, "loud")["ExitCode"] == 0
    docker_ok(c, "rm", "loud")


def test_a_client_that_reads_nothing_holds_the_container_not_its_exit(own: Clients) -> None:
    """The output waits for the attached client, but `stop` still stops the container and
    its exit is recorded: the daemon learns of it from exit.json while the stream is held,
    and cuts the client off 2 s after (moby's handleContainerExit)."""
    c = own
    with PeakRSS(_pid(c)) as peak:
        client = subprocess.Popen(
            ["docker", "run", "--name", "stuck", "busybox", "yes"],
            env=c.daemon.env(),
            stdout=subprocess.PIPE,  # never read
            stderr=subprocess.DEVNULL,
        )
        try:
            assert client.stdout is not None
            time.sleep(3)
            assert _inspect(c, "stuck")["Running"] is True
            stop = c.docker("stop", "-t", "1", "stuck", timeout=60)
            assert stop.returncode == 0, stop.stderr
            state = _inspect(c, "stuck")
            assert state["Status"] == "exited" and state["ExitCode"] == 137, state
            client.stdout.close()
            client.wait(30)
        finally:
            client.kill()
            client.wait()
    assert peak.peak_mb < 100, f"daemon RSS reached {peak.peak_mb:.0f} MB"
    docker_ok(c, "rm", "stuck")


def test_a_detached_exec_with_output_is_not_held(own: Clients) -> None:
    c = own
    docker_ok(c, "run", "-d", "--name", "execd", "busybox", "sleep", "600")
    try:
        reply = request(
            c.daemon.socket,
            "POST",
            "/v1.44/containers/execd/exec",
            body=json.dumps(
                {"Cmd": ["sh", "-c", "head -c 20000000 /dev/zero"], "AttachStdout": True}
            ).encode(),
        )
        eid = json.loads(reply.body)["Id"]
        reply = request(
            c.daemon.socket,
            "POST",
            f"/v1.44/exec/{eid}/start",
            body=b'{"Detach": true}',
        )
        assert reply.status == 200, reply.body
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            info = json.loads(request(c.daemon.socket, "GET", f"/v1.44/exec/{eid}/json").body)
            if not info["Running"]:
                break
            time.sleep(0.2)
        assert (info["Running"], info["ExitCode"]) == (False, 0), info
    finally:
        docker_ok(c, "rm", "-f", "execd")
