"""The daemon re-executes itself in place once idle, to give back what its work left in its
heap (api/idle_reexec.py, issue 17 row h): same pid, clients that connect meanwhile served,
the event history kept, and never while it holds something only in memory."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from dockyard.api.handoff import ENV, Handoff, TcpListener, UnixListener
from dockyard.api.idle_reexec import IdleReexec
from tests.conftest import Clients, short_tmp, with_busybox
from tests.support.daemons import DockyardDaemon

DONE = "re-executed in place"  # the log line of a process that came from a re-exec


# the timer's logic ----------------------------------------------------------------------
def test_the_reexec_comes_once_the_daemon_is_quiet_grown_and_holds_nothing() -> None:
    rss = [100]
    held: list[str | None] = [None]
    due: list[float] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        idle = IdleReexec(0.05, 10, lambda: due.append(loop.time()), rss=lambda: rss[0])
        idle.arm(lambda: held[0])
        await asyncio.sleep(0.1)
        assert due == []  # nothing served since the start: nothing to give back
        idle.activity()
        await asyncio.sleep(0.1)
        assert due == []  # served, but the RSS grew less than 10
        rss[0] = 110
        held[0] = "a running container"
        idle.activity()
        await asyncio.sleep(0.12)
        assert due == []  # grown, but held: it looks again every 0.05 s
        held[0] = None
        for _ in range(4):  # requests keep coming: no re-exec while they do
            idle.activity()
            await asyncio.sleep(0.03)
        assert due == []
        await asyncio.sleep(0.1)
        assert len(due) == 1
        await asyncio.sleep(0.1)
        assert len(due) == 1  # once, until it resumes
        # called off at the last moment (a client connected): it looks again against the
        # RSS of the start, not the grown one
        idle.resume()
        await asyncio.sleep(0.1)
        assert len(due) == 2

    asyncio.run(main())


def test_the_handoff_goes_through_the_environment_and_only_once() -> None:
    handoff = Handoff(
        unix=UnixListener("/run/d.sock", 7, 1, 2),
        tcp=(TcpListener("127.0.0.1", 2375, 8),),
        locks={"/root/daemon.lock": 5},
        events="/root/events.handoff",
    )
    env = handoff.environment({"PATH": "/bin"})
    assert env["PATH"] == "/bin"
    assert Handoff.take(env) == handoff
    assert ENV not in env  # taken out: the daemon's children never see it
    assert Handoff.take(env) is None
    assert Handoff.take({ENV: "{not json"}) is None
    assert sorted(handoff.fds()) == [5, 7, 8]


# the daemon --------------------------------------------------------------------------------
def _reexecs(d: DockyardDaemon) -> int:
    return d.log.read_text(errors="replace").count(DONE)


def _wait(what: Callable[[], bool], timeout: float, why: str) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, why
        time.sleep(0.05)


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _signals_held(pid: int) -> bool:
    """SIGTERM blocked in the daemon's main thread: from the old process's last moments
    to the new one's handlers (api/daemon.py _signals_held), the socket accepts nothing."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigBlk:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    return False


def _bridge_indexes(root: Path) -> dict[str, int]:
    """The interface index of each bridge the daemon on `root` has up (a bridge made again
    gets a new one)."""
    out = {}
    for path in (root / "networks").glob("*.json"):
        name = json.loads(path.read_text()).get("Bridge") or ""
        index = Path(f"/sys/class/net/{name}/ifindex")
        if name and index.exists():
            out[name] = int(index.read_text())
    return out


@contextmanager
def _daemon(*args: str, busybox: bool = False) -> Iterator[tuple[DockyardDaemon, Clients]]:
    d = DockyardDaemon(short_tmp("dyi-"), extra_args=list(args))
    try:
        d.start()
        yield d, with_busybox(d) if busybox else Clients(d)
    finally:
        d.cleanup()


def _ping_unix(path: Path) -> int:
    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(30)
    sock.connect(str(path))
    conn = http.client.HTTPConnection("localhost", timeout=30)
    conn.sock = sock
    conn.request("GET", "/_ping")
    status = conn.getresponse().status
    conn.close()
    return status


def _ping_tcp(port: int) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/_ping")
    status = conn.getresponse().status
    conn.close()
    return status


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.root
def test_an_idle_daemon_reexecs_in_place_and_gives_back_its_memory() -> None:
    with _daemon("--idle-reexec-after", "1", "--idle-reexec-growth", "4m", busybox=True) as (
        d,
        c,
    ):
        assert d.proc is not None
        pid = d.proc.pid
        time.sleep(2)
        idle = _rss_kib(pid)
        ctx = d.base / "ctx"
        ctx.mkdir()
        (ctx / "Dockerfile").write_text("FROM busybox\nRUN echo a > /a\nRUN echo b > /b\n")
        before = _reexecs(d)
        c.ok("build", "-q", "-t", "grown", str(ctx))
        c.ok("save", "-o", str(d.base / "grown.tar"), "grown")
        c.ok("load", "-i", str(d.base / "grown.tar"))
        grown = _rss_kib(pid)
        _wait(lambda: _reexecs(d) > before, 30, "no re-exec after the work")
        time.sleep(0.5)
        after = _rss_kib(pid)
        # the builder, the frontend and the tar code are gone with the old process
        assert after <= idle + 2048, (idle, grown, after)
        assert d.proc.poll() is None and d.proc.pid == pid
        assert c.ok("image", "inspect", "-f", "{{.Id}}", "grown").startswith("sha256:")
        # the locks went over with it: nobody else can take the root
        other = subprocess.run(
            [
                sys.executable,
                "-m",
                "dockyard.api.daemon",
                "--root",
                str(d.root),
                "-H",
                f"unix://{d.base / 'other.sock'}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert other.returncode == 1 and "another daemon holds" in other.stderr


@pytest.mark.root
def test_clients_that_connect_during_the_reexec_are_served() -> None:
    port = _free_port()
    with _daemon(
        "--idle-reexec-after",
        "0.5",
        "--idle-reexec-growth",
        "0",
        "-H",
        f"tcp://127.0.0.1:{port}",
    ) as (d, _c):
        assert d.proc is not None
        pid = d.proc.pid
        before = _reexecs(d)
        assert _ping_unix(d.socket) == 200
        _wait(lambda: _signals_held(pid), 30, "the daemon never stopped to re-exec")
        results: list[int | str] = []

        def ping(fn: Callable[[], int]) -> None:
            try:
                results.append(fn())
            except OSError as exc:
                results.append(repr(exc))

        threads: list[threading.Thread] = []
        for _ in range(8):
            threads.append(threading.Thread(target=ping, args=(lambda: _ping_unix(d.socket),)))
            threads.append(threading.Thread(target=ping, args=(lambda: _ping_tcp(port),)))
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert results == [200] * 16
        assert _reexecs(d) == before + 1  # answered by the process after the re-exec
        assert d.proc.poll() is None and d.proc.pid == pid


@pytest.mark.root
def test_events_since_answers_across_the_reexec() -> None:
    with _daemon("--idle-reexec-after", "0.5", "--idle-reexec-growth", "0") as (d, c):
        since = str(int(time.time()) - 1)
        before = _reexecs(d)
        c.ok("volume", "create", "kept-vol")
        c.ok("network", "create", "kept-net")
        _wait(lambda: _reexecs(d) > before, 30, "no re-exec")
        out = c.ok(
            "events",
            "--since",
            since,
            "--until",
            str(int(time.time()) + 1),
            "--format",
            "{{.Type}} {{.Action}}",
        )
        assert "volume create" in out.splitlines()
        assert "network create" in out.splitlines()
        assert not (d.root / "events.handoff").exists()


@pytest.mark.root
def test_a_running_container_or_an_open_stream_keeps_the_daemon_as_it_is() -> None:
    with _daemon("--idle-reexec-after", "0.5", "--idle-reexec-growth", "0", busybox=True) as (
        d,
        c,
    ):
        _wait(lambda: _reexecs(d) >= 1, 30, "no re-exec after the import")
        # a container that runs: its monitor connection, output and restart policy live here
        c.ok("run", "-d", "--name", "keep", "--restart", "always", "busybox", "sleep", "300")
        before = _reexecs(d)
        time.sleep(3)
        assert _reexecs(d) == before
        bridges = _bridge_indexes(d.root)
        assert bridges  # the default bridge, up for the container
        c.ok("stop", "-t", "1", "keep")
        _wait(lambda: _reexecs(d) > before, 30, "no re-exec once the container stopped")
        # the host's interfaces are left as they were: not taken down and made again
        assert _bridge_indexes(d.root) == bridges
        # the new process does not apply restart policies again: the user stopped it
        time.sleep(0.5)
        assert c.ok("inspect", "-f", "{{.State.Status}}", "keep").strip() == "exited"
        # an open stream (docker events) is a client that would see the daemon go
        before = _reexecs(d)
        events = subprocess.Popen(
            [sys.executable, "-m", "dockyard.cli.main", "events"],
            env=d.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(3)
            assert _reexecs(d) == before
        finally:
            events.terminate()
            events.wait(10)
        _wait(lambda: _reexecs(d) > before, 30, "no re-exec once the stream ended")
        c.ok("rm", "keep")


@pytest.mark.root
def test_a_changed_configuration_file_holds_the_reexec_off(tmp_path: Path) -> None:
    # a re-exec reads the configuration again: it must not apply a change a restart would
    config = tmp_path / "daemon.json"
    config.write_text('{"max-concurrent-downloads": 3}')
    flags = ("--idle-reexec-after", "0.5", "--idle-reexec-growth", "0")
    with _daemon(*flags, "--config-file", str(config)) as (d, c):
        before = _reexecs(d)
        config.write_text('{"max-concurrent-downloads": 4}')
        c.ok("version")
        time.sleep(2.5)
        assert _reexecs(d) == before
        config.write_text('{"max-concurrent-downloads": 3}')  # as it was at the start
        _wait(lambda: _reexecs(d) > before, 30, "no re-exec once the file was as it was")


@pytest.mark.root
def test_a_stop_signal_during_the_reexec_is_a_clean_shutdown() -> None:
    with _daemon("--idle-reexec-after", "0.5", "--idle-reexec-growth", "0") as (d, _c):
        assert d.proc is not None
        assert _ping_unix(d.socket) == 200
        _wait(lambda: _signals_held(d.proc.pid), 30, "the daemon never stopped to re-exec")
        os.kill(d.proc.pid, signal.SIGTERM)
        assert d.proc.wait(20) == 0
        assert not d.socket.exists()
        assert not (d.root / "daemon.pid").exists()


@pytest.mark.root
def test_a_stray_handoff_in_the_environment_is_not_taken_for_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # descriptors this process holds, but not as a handed-off socket or lock: stdout as the
    # socket, stdin as the locks; the daemon binds and locks afresh and closes none of them
    base = short_tmp("dyi-")
    bogus = Handoff(
        unix=UnixListener(str(base / "dockyard.sock"), 1, 0, 0),
        tcp=(TcpListener("127.0.0.1", 1, 2),),
        locks={str(base / "root" / "daemon.lock"): 0},
        events=str(base / "nowhere"),
    )
    monkeypatch.setenv(ENV, bogus.environment({})[ENV])
    d = DockyardDaemon(base)
    try:
        d.start()
        assert Clients(d).ok("version", "--format", "{{.Server.Version}}").strip()
        d.stop()
        assert "shut down" in d.log.read_text()  # its stdout stayed open to the end
    finally:
        d.cleanup()


def test_the_reexec_settings_are_checked() -> None:
    from dockyard.api.daemon import parse_args

    args = parse_args(["--idle-reexec-after", "2.5", "--idle-reexec-growth", "16m"])
    assert (args.idle_reexec_after, args.idle_reexec_growth) == (2.5, 16 << 20)
    defaults = parse_args([])
    assert (defaults.idle_reexec_after, defaults.idle_reexec_growth) == (60.0, 8 << 20)
    for bad in (["--idle-reexec-after", "-1"], ["--idle-reexec-growth", "lots"]):
        with pytest.raises(SystemExit) as exc:
            parse_args(bad)
        assert "invalid --idle-reexec" in str(exc.value.code)
