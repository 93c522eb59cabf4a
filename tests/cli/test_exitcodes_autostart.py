"""Exit-code mapping (docker/cli runStartContainerErr) and daemon autostart."""

from __future__ import annotations

import os
import signal
import sys
import textwrap
from pathlib import Path

import pytest

from dockyard.cli.autostart import AutostartFailed, start_daemon
from dockyard.cli.client import Client, parse_host
from dockyard.cli.commands.run import start_error_status


def test_start_error_status() -> None:
    assert start_error_status('exec: "x": executable file not found in $PATH') == 127
    assert start_error_status("open /bin/x: no such file or directory") == 127
    assert start_error_status("Error response from daemon: exec /x: permission denied") == 126
    assert start_error_status("read /etc: is a directory") == 126
    assert start_error_status("cgroup trouble") == 125


def test_parse_host() -> None:
    assert parse_host("unix:///run/x.sock").is_unix
    tcp = parse_host("tcp://127.0.0.1:2375")
    assert (tcp.scheme, tcp.address, tcp.port) == ("tcp", "127.0.0.1", 2375)
    with pytest.raises(ValueError):
        parse_host("ssh://x")


def _fake_python(tmp_path: Path, body: str) -> str:
    """An executable standing in for sys.executable: sees `-m dockyard.cli.main daemon …`."""
    script = tmp_path / "fakepython"
    script.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body))
    script.chmod(0o755)
    return str(script)


def test_autostart_failure_reports_log_tail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = _fake_python(
        tmp_path, "import sys\nprint('boom: cannot mount overlay', file=sys.stderr)\nsys.exit(3)\n"
    )
    monkeypatch.setattr(sys, "executable", fake)
    host = f"unix://{tmp_path}/d.sock"
    with pytest.raises(AutostartFailed) as exc:
        start_daemon(host, parse_host(host), str(tmp_path / "root"), timeout=5)
    assert "exited with status 3" in str(exc.value)
    assert "boom: cannot mount overlay" in str(exc.value)


def test_autostart_detaches_and_waits_for_ping(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pidfile = tmp_path / "pid"
    fake = _fake_python(
        tmp_path,
        f"""
        import os, socket, sys, time
        args = sys.argv[1:]
        assert args[:3] == ["-m", "dockyard.cli.main", "daemon"], args
        path = args[args.index("--host") + 1].removeprefix("unix://")
        open({str(pidfile)!r}, "w").write(str(os.getpid()))
        time.sleep(0.2)
        s = socket.socket(socket.AF_UNIX); s.bind(path); s.listen(4)
        while True:
            c, _ = s.accept()
            c.recv(4096)
            c.sendall(b"HTTP/1.1 200 OK\\r\\nApi-Version: 1.44\\r\\nContent-Length: 0\\r\\n\\r\\n")
            c.close()
        """,
    )
    monkeypatch.setattr(sys, "executable", fake)
    host = f"unix://{tmp_path}/d.sock"
    try:
        start_daemon(host, parse_host(host), str(tmp_path / "root"), timeout=10)
        pid = int(pidfile.read_text())
        assert os.getsid(pid) == pid  # its own session: survives the CLI's terminal
        assert Client(parse_host(host)).ping()["api-version"] == "1.44"
        assert (tmp_path / "root" / "daemon.log").exists()
    finally:
        if pidfile.exists():
            os.kill(int(pidfile.read_text()), signal.SIGKILL)


def test_a_socket_named_by_docker_host_is_never_autostarted(tmp_path: Path) -> None:
    """DOCKER_HOST is docker's setting: like the docker CLI, ours says it cannot connect and
    starts nothing (an autostart there once made a daemon on /var/lib/dockyard). Our own
    DOCKYARD_HOST (and the default socket) still start one."""
    import subprocess

    sock = tmp_path / "missing.sock"
    env = {k: v for k, v in os.environ.items() if k not in ("DOCKYARD_HOST", "DOCKER_CONTEXT")}
    env.update(
        DOCKER_HOST=f"unix://{sock}",
        DOCKYARD_ROOT=str(tmp_path / "root"),
        DOCKER_CONFIG=str(tmp_path / "cfg"),
    )
    proc = subprocess.run(
        [sys.executable, "-m", "dockyard.cli.main", "ps"], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 1, proc.stderr
    assert f"Cannot connect to the dockyard daemon at unix://{sock}" in proc.stderr
    assert not sock.exists() and not (tmp_path / "root").exists()


def test_an_own_socket_without_a_root_is_not_autostarted(tmp_path: Path) -> None:
    """DOCKYARD_HOST naming a socket nobody answers on, and no DOCKYARD_ROOT: the default
    root is the default socket's daemon's, so nothing starts (a helper's test daemon being
    restarted once got a second daemon on /var/lib/dockyard that way)."""
    import subprocess

    sock = tmp_path / "missing.sock"
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DOCKER_HOST", "DOCKYARD_ROOT", "DOCKER_CONTEXT")
    }
    env.update(DOCKYARD_HOST=f"unix://{sock}", DOCKER_CONFIG=str(tmp_path / "cfg"))
    for args in (["ps"], ["--host", f"unix://{sock}", "ps"]):
        proc = subprocess.run(
            [sys.executable, "-m", "dockyard.cli.main", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert proc.returncode == 1, proc.stderr
        assert f"Cannot connect to the dockyard daemon at unix://{sock}" in proc.stderr
        assert not sock.exists()
