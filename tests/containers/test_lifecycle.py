"""The `docker run` life cycle through the real docker CLI against our daemon."""

from __future__ import annotations

import json
import re
import subprocess
import tarfile
import time
from io import BytesIO
from pathlib import Path

import pytest

from tests.conftest import Clients
from tests.containers.helpers import docker_ok, inspect, wait_for

pytestmark = pytest.mark.root


@pytest.fixture
def name(request: pytest.FixtureRequest, clients: Clients) -> str:
    n = f"lc-{request.node.name[5:30].replace('_', '-')}-{time.monotonic_ns() % 100000}"
    yield n
    clients.docker("rm", "-f", n)


def test_detached_run_exec_logs_top_stats_port(clients: Clients, name: str) -> None:
    cid = docker_ok(
        clients,
        "run",
        "-d",
        "--name",
        name,
        "-l",
        "team=lc",
        "-p",
        "127.0.0.1::80",
        "busybox",
        "sh",
        "-c",
        "echo started; echo err >&2; exec sleep 300",
    ).strip()
    assert re.fullmatch(r"[0-9a-f]{64}", cid)
    assert docker_ok(clients, "exec", name, "echo", "hi") == "hi\n"
    out = docker_ok(
        clients,
        "exec",
        "-e",
        "FOO=bar",
        "-w",
        "/tmp",
        "-u",
        "1000:100",
        name,
        "sh",
        "-c",
        "echo $FOO $(pwd) $(id -u):$(id -g)",
    )
    assert out == "bar /tmp 1000:100\n"
    proc = clients.docker("exec", name, "sh", "-c", "exit 7")
    assert proc.returncode == 7
    proc = clients.docker("exec", name, "no-such-command")
    assert proc.returncode in (126, 127), proc.stderr
    docker_ok(clients, "exec", "-d", name, "sh", "-c", "touch /tmp/detached-ran")
    wait_for(
        lambda: clients.docker("exec", name, "test", "-f", "/tmp/detached-ran").returncode == 0
    )

    logs = clients.docker("logs", name)
    assert logs.stdout == "started\n" and logs.stderr == "err\n"
    stamped = docker_ok(clients, "logs", "-t", "--tail", "1", name)
    assert re.match(r"^\d{4}-\d\d-\d\dT[\d:.]+Z started\n$", stamped) or stamped == ""
    assert docker_ok(clients, "logs", "--since", "2000-01-01T00:00:00Z", name) == "started\n"
    assert docker_ok(clients, "logs", "--until", "2000-01-01T00:00:00Z", name) == ""

    top = docker_ok(clients, "top", name)
    assert "sleep 300" in top and "PID" in top
    stats = docker_ok(clients, "stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}", name)
    assert stats.split() == [name, "1"]
    port = docker_ok(clients, "port", name, "80")
    assert re.fullmatch(r"127\.0\.0\.1:\d+\n", port)


def test_ps_filters_and_format(clients: Clients, name: str) -> None:
    docker_ok(
        clients, "run", "-d", "--name", name, "-l", "role=ps-probe", "busybox", "sleep", "300"
    )
    docker_ok(clients, "create", "--name", name + "-c", "-l", "role=ps-probe", "busybox", "true")
    try:
        fmt = "{{.Names}}"
        assert (
            docker_ok(clients, "ps", "--filter", "label=role=ps-probe", "--format", fmt)
            == f"{name}\n"
        )
        both = docker_ok(clients, "ps", "-a", "--filter", "label=role=ps-probe", "--format", fmt)
        assert sorted(both.split()) == sorted([name, name + "-c"])
        created = docker_ok(
            clients,
            "ps",
            "-a",
            "--filter",
            "status=created",
            "--filter",
            "label=role",
            "--format",
            fmt,
        )
        assert created.split() == [name + "-c"]
        assert (
            docker_ok(clients, "ps", "-q", "--filter", f"name={name}$").strip()
            == (inspect(clients, name)["Id"][:12])
        )
        assert name in docker_ok(clients, "ps", "--filter", "ancestor=busybox", "--format", fmt)
        row = docker_ok(
            clients,
            "ps",
            "--filter",
            f"name={name}$",
            "--format",
            "{{.Image}}|{{.Command}}|{{.Status}}",
        )
        assert re.fullmatch(r'busybox\|"sleep 300"\|Up .*\n', row), row
        bad = clients.docker("ps", "--filter", "status=sleepy")
        assert bad.returncode != 0 and "status=sleepy" in bad.stderr
    finally:
        clients.docker("rm", "-f", name + "-c")


def test_stop_uses_stopsignal_then_sigkill(clients: Clients, name: str) -> None:
    script = "trap 'echo got-usr1; exit 7' USR1; echo ready; while true; do sleep 0.1; done"
    docker_ok(
        clients, "run", "-d", "--name", name, "--stop-signal", "USR1", "busybox", "sh", "-c", script
    )
    wait_for(lambda: "ready" in clients.docker("logs", name).stdout)
    docker_ok(clients, "stop", "-t", "5", name)
    state = inspect(clients, name)["State"]
    assert (state["Status"], state["ExitCode"]) == ("exited", 7)
    assert "got-usr1" in clients.docker("logs", name).stdout

    # sleep as PID 1 ignores SIGTERM: stop must escalate to SIGKILL after -t.
    docker_ok(clients, "start", name)  # restarts the trap script
    other = name + "-k"
    docker_ok(clients, "run", "-d", "--name", other, "busybox", "sleep", "300")
    try:
        t0 = time.monotonic()
        docker_ok(clients, "stop", "-t", "1", other)
        assert 0.9 < time.monotonic() - t0 < 8
        assert inspect(clients, other)["State"]["ExitCode"] == 137
    finally:
        clients.docker("rm", "-f", other)


def test_kill_signal_wait_restart_rm(clients: Clients, name: str) -> None:
    docker_ok(
        clients,
        "run",
        "-d",
        "--name",
        name,
        "busybox",
        "sh",
        "-c",
        "trap 'exit 42' HUP; echo ready; while true; do sleep 0.1; done",
    )
    wait_for(lambda: "ready" in clients.docker("logs", name).stdout)
    docker_ok(clients, "kill", "-s", "HUP", name)
    assert docker_ok(clients, "wait", name) == "42\n"
    bad = clients.docker("kill", name)
    assert bad.returncode != 0 and "is not running" in bad.stderr

    first = inspect(clients, name)["State"]["StartedAt"]
    docker_ok(clients, "restart", "-t", "1", name)
    state = inspect(clients, name)["State"]
    assert state["Running"] and state["StartedAt"] != first
    refused = clients.docker("rm", name)
    assert refused.returncode != 0 and "force" in refused.stderr
    docker_ok(clients, "rm", "-f", name)
    assert clients.docker("inspect", name).returncode != 0


def test_restart_keeps_a_rm_container_and_its_exit_later_removes_it(
    clients: Clients, name: str
) -> None:
    """Docker's restart of a --rm container restarts it (moby daemon/restart.go turns
    AutoRemove off for the stop alone); its next exit removes it as --rm says."""
    docker_ok(clients, "run", "-d", "--rm", "--name", name, "busybox", "sleep", "300")
    first = inspect(clients, name)["State"]["StartedAt"]
    docker_ok(clients, "restart", "-t", "0", name)
    state = inspect(clients, name)["State"]
    assert state["Running"] and state["StartedAt"] != first
    docker_ok(clients, "stop", "-t", "0", name)
    wait_for(lambda: clients.docker("inspect", name).returncode != 0)


def test_rename_pause_unpause_update(clients: Clients, name: str) -> None:
    docker_ok(clients, "run", "-d", "--name", name + "-old", "busybox", "sleep", "300")
    docker_ok(clients, "rename", name + "-old", name)
    info = inspect(clients, name)
    assert info["Name"] == f"/{name}"
    docker_ok(clients, "pause", name)
    assert inspect(clients, name)["State"]["Status"] == "paused"
    assert "(Paused)" in docker_ok(
        clients, "ps", "--filter", f"name={name}$", "--format", "{{.Status}}"
    )
    assert clients.docker("exec", name, "true").returncode != 0
    docker_ok(clients, "unpause", name)
    assert inspect(clients, name)["State"]["Status"] == "running"

    docker_ok(
        clients, "update", "--memory", "64m", "--memory-swap", "128m", "--pids-limit", "20", name
    )
    cg = Path("/sys/fs/cgroup")
    if (cg / "memory").exists():
        mem = (cg / "memory" / "dockyard" / info["Id"] / "memory.limit_in_bytes").read_text()
        assert int(mem) == 64 << 20
        pids = (cg / "pids" / "dockyard" / info["Id"] / "pids.max").read_text().strip()
        assert pids == "20"
    assert inspect(clients, name)["HostConfig"]["Memory"] == 64 << 20


def test_cp_both_ways_diff_export_commit(clients: Clients, name: str, tmp_path: Path) -> None:
    docker_ok(
        clients,
        "run",
        "-d",
        "--name",
        name,
        "busybox",
        "sh",
        "-c",
        "mkdir -p /data/sub && echo inside > /data/sub/f && rm /bin/ping; sleep 300",
    )
    wait_for(lambda: clients.docker("exec", name, "test", "-f", "/data/sub/f").returncode == 0)
    (tmp_path / "in.txt").write_text("from host\n")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "a").write_text("a\n")
    docker_ok(clients, "cp", str(tmp_path / "in.txt"), f"{name}:/data/")
    docker_ok(clients, "cp", str(tmp_path / "dir"), f"{name}:/data/copied")
    assert docker_ok(clients, "exec", name, "cat", "/data/in.txt", "/data/copied/a") == (
        "from host\na\n"
    )
    assert docker_ok(clients, "exec", name, "stat", "-c", "%u", "/data/in.txt") == "0\n"
    docker_ok(clients, "cp", f"{name}:/data/sub", str(tmp_path / "out"))
    assert (tmp_path / "out" / "f").read_text() == "inside\n"
    docker_ok(clients, "cp", f"{name}:/data/sub/f", str(tmp_path / "single"))
    assert (tmp_path / "single").read_text() == "inside\n"
    docker_ok(clients, "exec", name, "ln", "-s", "/data/sub/f", "/data/link")
    docker_ok(clients, "cp", f"{name}:/data/link", str(tmp_path / "link"))
    assert (tmp_path / "link").is_symlink()
    assert str((tmp_path / "link").readlink()) == "/data/sub/f"
    docker_ok(clients, "cp", "-L", f"{name}:/data/link", str(tmp_path / "followed"))
    assert (tmp_path / "followed").read_text() == "inside\n"
    missing = clients.docker("cp", f"{name}:/no/such", str(tmp_path / "x"))
    assert missing.returncode != 0 and "Could not find the file /no/such" in missing.stderr

    diff = docker_ok(clients, "diff", name).splitlines()
    assert "A /data" in diff and "A /data/sub/f" in diff and "D /bin/ping" in diff
    assert "C /bin" in diff

    raw = subprocess.run(
        ["docker", "export", name],
        env=clients.daemon.env(),
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    with tarfile.open(fileobj=BytesIO(raw)) as tar:
        names = set(tar.getnames())
    assert "data/sub/f" in names and "bin/sh" in names and "bin/ping" not in names
    assert not any(n.startswith(("proc/", "sys/")) and n.count("/") > 1 for n in names)

    image = f"{name}-img:v1"
    docker_ok(clients, "commit", "-c", 'CMD ["cat", "/data/in.txt"]', "-m", "snap", name, image)
    try:
        assert docker_ok(clients, "run", "--rm", image) == "from host\n"
        hist = docker_ok(clients, "history", "--format", "{{.Comment}}", image)
        assert "snap" in hist
    finally:
        clients.docker("rmi", "-f", image)


@pytest.mark.slow
def test_restart_policies(clients: Clients, name: str) -> None:
    docker_ok(
        clients,
        "run",
        "-d",
        "--name",
        name,
        "--restart",
        "on-failure:2",
        "busybox",
        "sh",
        "-c",
        "exit 3",
    )

    def settled() -> dict[str, object] | None:
        info = inspect(clients, name)
        if info["RestartCount"] == 2 and info["State"]["Status"] == "exited":
            return info
        return None

    info = wait_for(settled, timeout=20)
    assert info["State"]["ExitCode"] == 3
    assert len(clients.docker("logs", name).stdout) == 0

    always = name + "-a"
    docker_ok(
        clients,
        "run",
        "-d",
        "--name",
        always,
        "--restart",
        "always",
        "busybox",
        "sh",
        "-c",
        "sleep 0.2",
    )
    try:
        wait_for(lambda: inspect(clients, always)["RestartCount"] >= 2, timeout=20)
        docker_ok(clients, "stop", "-t", "1", always)
        time.sleep(1)
        assert inspect(clients, always)["State"]["Running"] is False
    finally:
        clients.docker("rm", "-f", always)


def test_init_reaps_and_forwards_signals(clients: Clients, name: str) -> None:
    docker_ok(
        clients,
        "run",
        "-d",
        "--init",
        "--name",
        name,
        "busybox",
        "sh",
        "-c",
        "(sleep 0.1 &) ; exec sleep 300",
    )
    ps = docker_ok(clients, "exec", name, "ps", "-o", "pid,comm")
    assert re.search(r"^\s*1\s+docker-init", ps, re.M), ps
    time.sleep(0.5)
    zombies = docker_ok(
        clients, "exec", name, "sh", "-c", "grep -l '^State:.*Z' /proc/*/status || true"
    )
    assert zombies.strip() == ""
    t0 = time.monotonic()
    docker_ok(clients, "stop", "-t", "10", name)
    assert time.monotonic() - t0 < 5, "SIGTERM should reach sleep through the init"
    assert inspect(clients, name)["State"]["ExitCode"] == 143


@pytest.mark.slow
def test_healthcheck_states(clients: Clients, name: str) -> None:
    docker_ok(
        clients,
        "run",
        "-d",
        "--name",
        name,
        "--health-cmd",
        "test -f /tmp/ok",
        "--health-interval",
        "1s",
        "--health-retries",
        "1",
        "--health-timeout",
        "2s",
        "busybox",
        "sleep",
        "300",
    )
    wait_for(
        lambda: (inspect(clients, name)["State"].get("Health") or {}).get("Status") == "unhealthy",
        timeout=20,
    )
    docker_ok(clients, "exec", name, "touch", "/tmp/ok")
    wait_for(lambda: inspect(clients, name)["State"]["Health"]["Status"] == "healthy", timeout=20)
    status = docker_ok(clients, "ps", "--filter", f"name={name}$", "--format", "{{.Status}}")
    assert "(healthy)" in status
    log = inspect(clients, name)["State"]["Health"]["Log"]
    assert log and log[-1]["ExitCode"] == 0


def test_wait_reports_exit_code_and_inspect_json(clients: Clients, name: str) -> None:
    docker_ok(clients, "run", "-d", "--name", name, "busybox", "sh", "-c", "sleep 0.3; exit 9")
    assert docker_ok(clients, "wait", name) == "9\n"
    info = inspect(clients, name)
    assert info["State"]["Status"] == "exited"
    assert json.loads(docker_ok(clients, "inspect", "-f", "{{json .State.ExitCode}}", name)) == 9


def test_logs_follow_until_exit(clients: Clients, name: str) -> None:
    docker_ok(
        clients,
        "run",
        "-d",
        "--name",
        name,
        "busybox",
        "sh",
        "-c",
        "for i in 1 2 3; do echo line $i; sleep 0.3; done",
    )
    t0 = time.monotonic()
    out = docker_ok(clients, "logs", "-f", name)
    assert out == "line 1\nline 2\nline 3\n"
    assert time.monotonic() - t0 > 0.4, "follow must wait for output that comes later"
    assert docker_ok(clients, "logs", "--tail", "2", name) == "line 2\nline 3\n"


def test_container_volume_network_prune(fresh_clients: Clients) -> None:
    c = fresh_clients
    docker_ok(c, "run", "-d", "--name", "keeper", "busybox", "sleep", "300")
    docker_ok(c, "run", "--name", "done1", "-v", "/anon", "busybox", "true")
    docker_ok(c, "volume", "create", "named-vol")
    docker_ok(c, "network", "create", "unused-net")
    out = docker_ok(c, "container", "prune", "-f")
    assert "Total reclaimed space" in out
    assert docker_ok(c, "ps", "-a", "--format", "{{.Names}}").split() == ["keeper"]
    docker_ok(c, "volume", "prune", "-f")
    assert docker_ok(c, "volume", "ls", "-q").split() == ["named-vol"]
    docker_ok(c, "volume", "prune", "-f", "--all")
    assert docker_ok(c, "volume", "ls", "-q").split() == []
    docker_ok(c, "network", "prune", "-f")
    assert "unused-net" not in docker_ok(c, "network", "ls", "--format", "{{.Name}}")
    docker_ok(c, "rm", "-f", "keeper")


def test_cp_with_a_stopped_container_and_its_volume(
    clients: Clients, name: str, tmp_path: Path
) -> None:
    docker_ok(
        clients,
        "run",
        "--name",
        name,
        "-v",
        "/vol",
        "busybox",
        "sh",
        "-c",
        "echo in-volume > /vol/v; echo in-layer > /etc/layer",
    )
    (tmp_path / "new.txt").write_text("added while stopped\n")
    docker_ok(clients, "cp", str(tmp_path / "new.txt"), f"{name}:/etc/new.txt")
    docker_ok(clients, "cp", f"{name}:/vol/v", str(tmp_path / "v"))
    docker_ok(clients, "cp", f"{name}:/etc/layer", str(tmp_path / "layer"))
    assert (tmp_path / "v").read_text() == "in-volume\n"
    assert (tmp_path / "layer").read_text() == "in-layer\n"
    assert "A /etc/new.txt" in docker_ok(clients, "diff", name).splitlines()
    info = inspect(clients, name)
    assert not info["State"]["Running"]
    from tests.support.daemons import mounts_under

    assert mounts_under(clients.daemon.root / "containers" / info["Id"]) == []


def test_sizes_and_log_opts(clients: Clients, name: str) -> None:
    docker_ok(
        clients, "run", "--name", name, "busybox", "sh", "-c", "head -c 100000 /dev/zero > /big"
    )
    info = json.loads(docker_ok(clients, "inspect", "--size", name))[0]
    assert 100000 <= info["SizeRw"] < 200000 and info["SizeRootFs"] > info["SizeRw"]
    row = docker_ok(clients, "ps", "-a", "-s", "--filter", f"name={name}$", "--format", "{{.Size}}")
    assert row.startswith("100kB") or "kB" in row
    refused = clients.docker("run", "--rm", "--log-opt", "compress=true", "busybox", "true")
    assert refused.returncode != 0 and "--log-opt" in refused.stderr
