"""Our CLI's container commands against our daemon: exec, cp, export, commit and friends."""

from __future__ import annotations

import json
import tarfile
import time
from pathlib import Path

import pytest

from tests.conftest import Clients

pytestmark = pytest.mark.root


def test_exec_restart_pause_rename_top_port(clients: Clients) -> None:
    name = f"cliops{time.monotonic_ns() % 100000}"
    clients.ok("run", "-d", "--name", name, "-p", "127.0.0.1::80", "busybox", "sleep", "300")
    try:
        assert (
            clients.ok("exec", "-e", "A=1", "-w", "/tmp", name, "sh", "-c", "echo $A $(pwd)")
            == "1 /tmp\n"
        )
        proc = clients.dockyard("exec", name, "sh", "-c", "echo err >&2; exit 6")
        assert proc.returncode == 6 and proc.stderr == "err\n"
        proc = clients.dockyard("exec", "-i", name, "tr", "a-z", "A-Z", input=b"piped\n")
        assert proc.stdout == "PIPED\n"
        assert "sleep 300" in clients.ok("top", name)
        assert clients.ok("port", name, "80").startswith("127.0.0.1:")
        clients.ok("pause", name)
        assert json.loads(clients.ok("inspect", name))[0]["State"]["Status"] == "paused"
        clients.ok("unpause", name)
        clients.ok("restart", "-t", "0", name)
        clients.ok("rename", name, name + "-2")
        name += "-2"
        assert "PIDS" in clients.ok("stats", "--no-stream", name)
        clients.ok("update", "--memory", "64m", name)
    finally:
        clients.dockyard("rm", "-f", name)


def test_cp_diff_export_commit(clients: Clients, tmp_path: Path) -> None:
    name = f"clifs{time.monotonic_ns() % 100000}"
    clients.ok("run", "--name", name, "busybox", "sh", "-c", "echo made > /made.txt")
    try:
        (tmp_path / "up.txt").write_text("uploaded\n")
        clients.ok("cp", str(tmp_path / "up.txt"), f"{name}:/tmp/")
        clients.ok("cp", f"{name}:/made.txt", str(tmp_path / "down.txt"))
        assert (tmp_path / "down.txt").read_text() == "made\n"
        diff = clients.ok("diff", name).splitlines()
        assert "A /made.txt" in diff and "A /tmp/up.txt" in diff
        clients.ok("export", "-o", str(tmp_path / "fs.tar"), name)
        with tarfile.open(tmp_path / "fs.tar") as tar:
            assert "made.txt" in tar.getnames() and "tmp/up.txt" in tar.getnames()
        image = clients.ok(
            "commit", "-c", 'CMD ["cat", "/tmp/up.txt"]', name, f"{name}:snap"
        ).strip()
        assert image.startswith("sha256:")
        assert clients.ok("run", "--rm", f"{name}:snap") == "uploaded\n"
    finally:
        clients.dockyard("rm", "-f", name)
        clients.dockyard("rmi", "-f", f"{name}:snap")


def test_network_and_volume_groups(clients: Clients) -> None:
    tag = f"g{time.monotonic_ns() % 100000}"
    clients.ok("network", "create", tag + "-net")
    clients.ok("volume", "create", tag + "-vol")
    try:
        assert tag + "-net" in clients.ok("network", "ls")
        assert tag + "-vol" in clients.ok("volume", "ls", "-q").split()
        out = clients.ok(
            "run",
            "--rm",
            "--network",
            tag + "-net",
            "-v",
            f"{tag}-vol:/v",
            "busybox",
            "sh",
            "-c",
            "echo hi > /v/f; cat /v/f",
        )
        assert out == "hi\n"
        info = json.loads(clients.ok("volume", "inspect", tag + "-vol"))[0]
        assert Path(info["Mountpoint"], "f").read_text() == "hi\n"
    finally:
        clients.dockyard("network", "rm", tag + "-net")
        clients.dockyard("volume", "rm", tag + "-vol")
    assert tag + "-net" not in clients.ok("network", "ls")


def test_run_flags_beyond_the_core_set(clients: Clients, tmp_path: Path) -> None:
    profile = tmp_path / "seccomp.json"
    profile.write_text(
        json.dumps(
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}],
            }
        )
    )
    (tmp_path / "m").mkdir()
    out = clients.ok(
        "run",
        "--rm",
        "--dns",
        "10.1.2.3",
        "--add-host",
        "db:10.9.9.9",
        "--ulimit",
        "nofile=512:1024",
        "--shm-size",
        "16m",
        "--mount",
        f"type=bind,source={tmp_path / 'm'},target=/m",
        "--security-opt",
        f"seccomp={profile}",
        "busybox",
        "sh",
        "-c",
        "grep nameserver /etc/resolv.conf; grep -w db /etc/hosts; ulimit -n; touch /m/ok;"
        " df -k /dev/shm | tail -1 | awk '{print $2}'; mkdir /tmp/x 2>/dev/null || echo denied",
    )
    assert out.split("\n")[:2] == ["nameserver 10.1.2.3", "10.9.9.9\tdb"]
    assert "512" in out and "16384" in out and "denied" in out
    assert (tmp_path / "m" / "ok").exists()
    name = f"restartflag{time.monotonic_ns() % 100000}"
    clients.ok("run", "-d", "--name", name, "--restart", "on-failure:1", "busybox", "false")
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            info = json.loads(clients.ok("inspect", name))[0]
            if info["RestartCount"] == 1 and info["State"]["Status"] == "exited":
                break
            time.sleep(0.2)
        assert info["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 1}
        assert info["RestartCount"] == 1
    finally:
        clients.dockyard("rm", "-f", name)
