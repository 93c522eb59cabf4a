"""`docker run` configuration: env, user, mounts and volumes, limits, confinement switches."""

from __future__ import annotations

import json
import resource
import time
from pathlib import Path

import pytest

from tests.conftest import Clients, write_context
from tests.containers.helpers import docker_ok, inspect

pytestmark = pytest.mark.root

CAP_NET_ADMIN = 12


def _run(clients: Clients, *args: str) -> str:
    return docker_ok(clients, "run", "--rm", *args)


def _status(clients: Clients, *args: str) -> dict[str, str]:
    out = _run(clients, *args, "busybox", "cat", "/proc/self/status")
    return dict(line.split(":\t", 1) for line in out.splitlines() if ":\t" in line)


def test_env_file_workdir_user_entrypoint(clients: Clients, tmp_path: Path) -> None:
    env_file = tmp_path / "env"
    env_file.write_text("# comment\nFROM_FILE=1\nSPACED=a b\n")
    out = _run(
        clients,
        "--env-file",
        str(env_file),
        "-e",
        "X=2",
        "-w",
        "/usr",
        "-u",
        "nobody",
        "--entrypoint",
        "sh",
        "busybox",
        "-c",
        'echo "$FROM_FILE|$SPACED|$X|$(pwd)|$(id -un)|$HOME"',
    )
    assert out == "1|a b|2|/usr|nobody|/home\n" or out.startswith("1|a b|2|/usr|nobody|")
    bad = clients.docker("run", "--rm", "-u", "nosuchuser", "busybox", "true")
    assert bad.returncode != 0 and "nosuchuser" in bad.stderr


def test_read_only_tmpfs_and_shm(clients: Clients) -> None:
    out = _run(
        clients,
        "--read-only",
        "--tmpfs",
        "/scratch:size=1m",
        "--shm-size",
        "8m",
        "busybox",
        "sh",
        "-c",
        "touch /x 2>/dev/null && echo rw || echo ro; touch /scratch/ok && echo tmpfs-ok;"
        " df -k /dev/shm /scratch | tail -2 | awk '{print $2}'",
    )
    lines = out.split()
    assert lines[:2] == ["ro", "tmpfs-ok"]
    assert lines[2:] == ["8192", "1024"]


def test_bind_mounts_and_named_volume_life(clients: Clients, tmp_path: Path) -> None:
    (tmp_path / "host.txt").write_text("from-host\n")
    vol = f"vol{time.monotonic_ns() % 1000000}"
    out = _run(
        clients,
        "-v",
        f"{tmp_path}:/h:ro",
        "-v",
        f"{vol}:/v",
        "--mount",
        f"type=bind,source={tmp_path},target=/h2",
        "busybox",
        "sh",
        "-c",
        "cat /h/host.txt; touch /h/x 2>/dev/null || echo ro-ok; echo data > /v/f;"
        " echo via-mount > /h2/written",
    )
    assert out == "from-host\nro-ok\n"
    assert (tmp_path / "written").read_text() == "via-mount\n"
    assert _run(clients, "-v", f"{vol}:/v", "busybox", "cat", "/v/f") == "data\n"
    info = json.loads(docker_ok(clients, "volume", "inspect", vol))[0]
    assert info["Driver"] == "local" and Path(info["Mountpoint"], "f").read_text() == "data\n"
    assert vol in docker_ok(clients, "volume", "ls", "-q").split()
    docker_ok(clients, "create", "--name", vol + "-user", "-v", f"{vol}:/v", "busybox", "true")
    busy = clients.docker("volume", "rm", vol)
    assert busy.returncode != 0 and "in use" in busy.stderr
    docker_ok(clients, "rm", vol + "-user")
    docker_ok(clients, "volume", "rm", vol)
    assert clients.docker("volume", "inspect", vol).returncode != 0
    missing = clients.docker(
        "run", "--rm", "--mount", "type=bind,source=/no/such/dir,target=/x", "busybox", "true"
    )
    assert missing.returncode != 0 and "does not exist" in missing.stderr


def test_image_volume_is_seeded_and_removed_with_rm_v(clients: Clients, tmp_path: Path) -> None:
    ctx = write_context(
        tmp_path / "ctx", "FROM busybox\nRUN mkdir /data && echo seed > /data/f\nVOLUME /data\n"
    )
    tag = f"volimg{time.monotonic_ns() % 100000}"
    docker_ok(clients, "build", "-q", "-t", tag, str(ctx))
    name = tag + "-c"
    try:
        docker_ok(
            clients, "run", "--name", name, tag, "sh", "-c", "cat /data/f; echo more >> /data/f"
        )
        mounts = inspect(clients, name)["Mounts"]
        assert len(mounts) == 1 and mounts[0]["Destination"] == "/data"
        vol = mounts[0]["Name"]
        assert Path(mounts[0]["Source"], "f").read_text() == "seed\nmore\n"
        assert clients.docker("logs", name).stdout == "seed\n"
        docker_ok(clients, "rm", "-v", name)
        assert clients.docker("volume", "inspect", vol).returncode != 0
    finally:
        clients.docker("rm", "-f", name)
        clients.docker("rmi", "-f", tag)


def test_capabilities_privileged_and_security_opts(clients: Clients, tmp_path: Path) -> None:
    default = int(_status(clients)["CapEff"], 16)
    assert bin(default).count("1") == 14
    added = int(_status(clients, "--cap-add", "NET_ADMIN")["CapEff"], 16)
    assert added & (1 << CAP_NET_ADMIN) and not default & (1 << CAP_NET_ADMIN)
    dropped = int(_status(clients, "--cap-drop", "ALL", "--cap-add", "CHOWN")["CapEff"], 16)
    assert dropped == 1
    assert _status(clients, "--security-opt", "no-new-privileges")["NoNewPrivs"] == "1"
    assert _status(clients)["Seccomp"] == "2"
    assert _status(clients, "--security-opt", "seccomp=unconfined")["Seccomp"] == "0"
    profile = tmp_path / "deny-mkdir.json"
    profile.write_text(
        json.dumps(
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}],
            }
        )
    )
    out = _run(
        clients,
        "--security-opt",
        f"seccomp={profile}",
        "busybox",
        "sh",
        "-c",
        "mkdir /tmp/d 2>&1 || echo denied",
    )
    assert "denied" in out
    priv = _status(clients, "--privileged")
    assert priv["Seccomp"] == "0"
    assert bin(int(priv["CapEff"], 16)).count("1") >= 38
    devs = _run(clients, "--privileged", "busybox", "ls", "/dev")
    assert "loop0" in devs or "tty1" in devs or "mem" in devs


@pytest.mark.slow
def test_cgroup_limits_are_enforced(clients: Clients) -> None:
    name = f"limits{time.monotonic_ns() % 100000}"
    docker_ok(
        clients,
        "run",
        "-d",
        "--name",
        name,
        "-m",
        "32m",
        "--cpus",
        "0.5",
        "--pids-limit",
        "12",
        "busybox",
        "sleep",
        "300",
    )
    try:
        cid = inspect(clients, name)["Id"]
        cg = Path("/sys/fs/cgroup")
        if (cg / "memory").exists():
            assert (
                int((cg / "memory/dockyard" / cid / "memory.limit_in_bytes").read_text())
                == 32 << 20
            )
            assert (cg / "cpu/dockyard" / cid / "cpu.cfs_quota_us").read_text().strip() == "50000"
            assert (cg / "pids/dockyard" / cid / "pids.max").read_text().strip() == "12"
        forks = clients.docker(
            "exec", name, "sh", "-c", "for i in $(seq 30); do sleep 5 & done 2>&1; wait"
        )
        assert "can't fork" in forks.stderr + forks.stdout or forks.returncode != 0
    finally:
        clients.docker("rm", "-f", name)
    oom_name = name + "-oom"
    oom = clients.docker(
        "run",
        "--name",
        oom_name,
        "-m",
        "8m",
        "--memory-swap",
        "8m",
        "busybox",
        "sh",
        "-c",
        "x=$(head -c 64000000 /dev/zero | tr '\\0' a); echo survived",
    )
    try:
        assert oom.returncode == 137 and "survived" not in oom.stdout
        assert inspect(clients, oom_name)["State"]["OOMKilled"] is True
    finally:
        clients.docker("rm", "-f", oom_name)


def test_ulimits(clients: Clients) -> None:
    out = _run(
        clients, "--ulimit", "nofile=1024:2048", "busybox", "sh", "-c", "ulimit -n; ulimit -Hn"
    )
    assert out.split() == ["1024", "2048"]
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < 65536:
        bad = clients.docker("run", "--rm", "--ulimit", "nofile=65536:65536", "busybox", "true")
        assert bad.returncode != 0
        assert "exceeds this host's hard limit" in bad.stderr
        assert "rlimit type" not in bad.stderr


def test_labels_and_inspect_shapes(clients: Clients) -> None:
    name = f"labels{time.monotonic_ns() % 100000}"
    docker_ok(clients, "create", "--name", name, "-l", "a=1", "--label", "b=two", "busybox", "true")
    try:
        info = inspect(clients, name)
        assert info["Config"]["Labels"] == {"a": "1", "b": "two"}
        assert info["State"]["Status"] == "created"
        assert info["HostConfig"]["RestartPolicy"]["Name"] in ("no", "")
    finally:
        clients.docker("rm", name)


def test_devices_and_volumes_from(clients: Clients) -> None:
    out = _run(
        clients,
        "--device",
        "/dev/null:/dev/mynull:rw",
        "busybox",
        "sh",
        "-c",
        "ls -l /dev/mynull | cut -c1; echo hi > /dev/mynull && echo wrote",
    )
    assert out == "c\nwrote\n"
    src = f"vfrom{time.monotonic_ns() % 100000}"
    docker_ok(
        clients,
        "run",
        "--name",
        src,
        "-v",
        "/shared",
        "busybox",
        "sh",
        "-c",
        "echo from-source > /shared/f",
    )
    try:
        assert _run(clients, "--volumes-from", src, "busybox", "cat", "/shared/f") == (
            "from-source\n"
        )
        ro = clients.docker(
            "run", "--rm", "--volumes-from", f"{src}:ro", "busybox", "touch", "/shared/g"
        )
        assert ro.returncode != 0 and "Read-only" in ro.stderr
    finally:
        clients.docker("rm", "-v", src)


def test_pid_ipc_uts_host_and_container_modes(clients: Clients) -> None:
    import os
    import socket

    out = _run(
        clients,
        "--pid",
        "host",
        "--uts",
        "host",
        "--ipc",
        "host",
        "busybox",
        "sh",
        "-c",
        "readlink /proc/self/ns/pid; readlink /proc/self/ns/ipc; hostname",
    )
    pid_ns, ipc_ns, host = out.split()
    assert pid_ns == os.readlink("/proc/self/ns/pid")
    assert ipc_ns == os.readlink("/proc/self/ns/ipc")
    assert host == socket.gethostname()
    name = f"nsmode{time.monotonic_ns() % 100000}"
    docker_ok(clients, "run", "-d", "--name", name, "busybox", "sleep", "300")
    try:
        theirs = docker_ok(clients, "exec", name, "readlink", "/proc/self/ns/pid").strip()
        mine = _run(
            clients,
            "--pid",
            f"container:{name}",
            "busybox",
            "sh",
            "-c",
            "readlink /proc/self/ns/pid; ps -o comm | grep -c sleep",
        )
        assert mine.split() == [theirs, "1"]
    finally:
        clients.docker("rm", "-f", name)
