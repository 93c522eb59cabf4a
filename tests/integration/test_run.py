"""`dockyard run` and friends: the image's config, overrides, exit codes, ps/logs/rm."""

from __future__ import annotations

import json
import re
import secrets
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Clients, write_context

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def app_image(clients: Clients, tmp_path_factory: pytest.TempPathFactory) -> str:
    ctx = write_context(
        tmp_path_factory.mktemp("app"),
        'FROM busybox\nENV FROM_IMAGE=yes\nWORKDIR /srv\nCMD ["sh", "-c", "echo cmd in $(pwd) $FROM_IMAGE"]\n',
    )
    clients.ok("build", "-t", "run-app", str(ctx))
    return "run-app"


def test_runs_the_image_cmd_with_its_env_and_workdir(clients: Clients, app_image: str) -> None:
    assert clients.ok("run", "--rm", app_image) == "cmd in /srv yes\n"


def test_command_env_workdir_overrides(clients: Clients, app_image: str) -> None:
    out = clients.ok(
        "run",
        "--rm",
        "-e",
        "FROM_IMAGE=no",
        "-e",
        "EXTRA=1",
        "-w",
        "/tmp",
        app_image,
        "sh",
        "-c",
        "echo $(pwd) $FROM_IMAGE $EXTRA $HOSTNAME $HOME; echo to-stderr >&2",
    )
    pwd, from_image, extra, hostname, home = out.split()
    assert (pwd, from_image, extra, home) == ("/tmp", "no", "1", "/root")
    assert re.fullmatch(r"[0-9a-f]{12}", hostname)


def test_stdout_and_stderr_reach_the_terminal(clients: Clients, app_image: str) -> None:
    proc = clients.dockyard("run", "--rm", app_image, "sh", "-c", "echo out; echo err >&2")
    assert (proc.stdout, proc.stderr, proc.returncode) == ("out\n", "err\n", 0)


def test_entrypoint_override(clients: Clients, app_image: str) -> None:
    assert clients.ok("run", "--rm", "--entrypoint", "echo", app_image, "a", "b") == "a b\n"


@pytest.mark.parametrize(
    ("command", "code"),
    [(["sh", "-c", "exit 3"], 3), (["no-such-command"], 127), (["/etc/passwd"], 126)],
)
def test_exit_codes(clients: Clients, app_image: str, command: list[str], code: int) -> None:
    proc = clients.dockyard("run", "--rm", app_image, *command)
    assert proc.returncode == code, proc.stderr


def test_killed_container_exits_128_plus_signal(clients: Clients, app_image: str) -> None:
    cid = clients.ok("run", "-d", app_image, "sleep", "60").strip()
    clients.ok("kill", cid)
    assert clients.ok("wait", cid).strip() == "137"
    clients.ok("rm", cid)


def test_daemon_error_exits_125(clients: Clients) -> None:
    proc = clients.dockyard("run", "--rm", "no-such-image-anywhere")
    assert proc.returncode == 125


def test_pid_uts_ipc_mount_namespaces(clients: Clients, app_image: str) -> None:
    out = clients.ok(
        "run", "--rm", app_image, "sh", "-c", "echo $$; hostname; ls /proc | grep -c '^[0-9]'"
    )
    pid, hostname, nprocs = out.split()
    assert pid == "1"
    assert hostname != Path("/etc/hostname").read_text().strip()
    assert int(nprocs) <= 3


def test_network_none_and_host(clients: Clients, app_image: str) -> None:
    none = clients.ok("run", "--rm", "--network", "none", app_image, "ls", "/sys/class/net")
    assert none.split() == ["lo"]
    # A veth of our own marks the host's namespace (no dummy driver in this kernel): other
    # tests and daemons add and remove veths meanwhile, so comparing whole listings would race.
    marker = f"dyt{secrets.token_hex(4)}"
    subprocess.run(
        ["ip", "link", "add", marker, "type", "veth", "peer", "name", f"{marker}p"], check=True
    )
    try:
        host = clients.ok("run", "--rm", "--network", "host", app_image, "ls", "/sys/class/net")
    finally:
        subprocess.run(["ip", "link", "del", marker], check=False)
    assert marker in host.split() and "lo" in host.split()


def test_unsupported_settings_are_refused_by_name(clients: Clients, app_image: str) -> None:
    proc = clients.dockyard(
        "run", "--rm", "--network", "bridge-that-does-not-exist", app_image, "true"
    )
    assert proc.returncode == 125
    assert "bridge-that-does-not-exist" in proc.stderr


def test_name_ps_logs_rm(clients: Clients, app_image: str) -> None:
    proc = clients.dockyard(
        "run", "--name", "run-named", app_image, "sh", "-c", "echo logged; echo e >&2; exit 2"
    )
    assert proc.returncode == 2
    ps = clients.ok("ps", "-a")
    line = next(li for li in ps.splitlines() if li.endswith("run-named"))
    assert "Exited (2)" in line
    assert "run-named" not in clients.ok("ps")
    logs = clients.dockyard("logs", "run-named")
    assert (logs.stdout, logs.stderr) == ("logged\n", "e\n")
    info = json.loads(clients.ok("inspect", "run-named"))[0]
    assert info["Name"] == "/run-named" and info["State"]["ExitCode"] == 2
    dup = clients.dockyard("run", "--name", "run-named", app_image, "true")
    assert dup.returncode == 125 and "already in use" in dup.stderr
    assert clients.ok("rm", "run-named") == "run-named\n"
    assert clients.dockyard("inspect", "run-named").returncode != 0


def test_rm_refuses_a_running_container_unless_forced(clients: Clients, app_image: str) -> None:
    cid = clients.ok("run", "-d", "--name", "run-long", app_image, "sleep", "60").strip()
    assert re.fullmatch(r"[0-9a-f]{64}", cid)
    assert "Up " in next(li for li in clients.ok("ps").splitlines() if "run-long" in li)
    proc = clients.dockyard("rm", "run-long")
    assert proc.returncode != 0 and "running" in proc.stderr
    clients.ok("rm", "-f", "run-long")
    assert "run-long" not in clients.ok("ps", "-a")


def test_rm_flag_removes_the_container(clients: Clients, app_image: str) -> None:
    before = clients.ok("ps", "-aq")
    clients.ok("run", "--rm", app_image)
    assert clients.ok("ps", "-aq") == before


def test_docker_cli_runs_against_our_daemon(clients: Clients, app_image: str) -> None:
    proc = clients.docker("run", "--rm", app_image, "sh", "-c", "echo via docker; exit 5")
    assert proc.stdout == "via docker\n"
    assert proc.returncode == 5


def test_signals_to_a_foreground_run_reach_the_container(clients: Clients) -> None:
    """The CLI forwards SIGTERM to the container (run.go's sig-proxy, on threadlite.py's
    thread): the trap prints, the container exits 7, and so does the CLI."""
    import signal
    import sys
    import time

    script = 'trap "echo got TERM; exit 7" TERM; echo ready; while :; do sleep 0.1; done'
    proc = subprocess.Popen(
        [sys.executable, "-m", "dockyard.cli.main", "run", "--rm", "busybox", "sh", "-c", script],
        env=clients.daemon.env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"ready\n"
        time.sleep(0.2)  # the trap is set before `ready` is printed; let the CLI settle too
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert (out, proc.returncode) == (b"got TERM\n", 7), err


def test_run_rm_prints_every_byte_written_right_before_exit(clients: Clients) -> None:
    """The last bytes a --rm container writes, to both streams, just before it exits, are
    printed before the CLI returns with the container's status."""
    big = 'head -c 300000 /dev/zero | tr "\\0" y; echo; echo last-out; echo last-err >&2; exit 5'
    for _ in range(3):
        proc = clients.dockyard("run", "--rm", "--network", "none", "busybox", "sh", "-c", big)
        assert proc.returncode == 5
        assert proc.stdout == "y" * 300000 + "\nlast-out\n"
        assert proc.stderr == "last-err\n"


def test_the_installed_launcher_prints_every_byte_and_exits_with_the_status(
    clients: Clients, tmp_path: Path
) -> None:
    """Through the -S launcher (cli/launcher.py), whose `run` ends with os._exit once stdout
    and stderr are flushed (cli/main.py _QUICK_EXIT): the same output, the same status."""
    import sys

    from dockyard.cli import launcher

    script = tmp_path / "dockyard"
    launcher.write(str(script), sys.executable)
    big = 'head -c 300000 /dev/zero | tr "\\0" y; echo; echo last-out; echo last-err >&2; exit 5'
    for _ in range(3):
        proc = subprocess.run(
            [str(script), "run", "--rm", "--network", "none", "busybox", "sh", "-c", big],
            env=clients.daemon.env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=60,
        )
        assert proc.returncode == 5, proc.stderr
        assert proc.stdout == b"y" * 300000 + b"\nlast-out\n"
        assert proc.stderr == b"last-err\n"


def test_a_reader_that_goes_away_ends_run_as_docker_does(clients: Clients) -> None:
    """`dockyard run … | head -1`: once nobody reads our stdout, the CLI prints Go's write
    error (as the docker CLI 28 does against dockerd 20.10, checked here) and exits 1, no
    traceback; the --rm container runs to its end with its output discarded and is removed."""
    import sys
    import time

    name = f"gone-reader-{secrets.token_hex(4)}"
    script = "i=0; while [ $i -lt 20000 ]; do echo line $i; i=$((i+1)); done"
    argv = ["run", "--rm", "--name", name, "busybox", "sh", "-c", script]
    proc = subprocess.Popen(
        [sys.executable, "-m", "dockyard.cli.main", *argv],
        env=clients.daemon.env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.readline() == b"line 0\n"
        proc.stdout.close()
        err = proc.stderr.read()
        assert proc.wait(timeout=30) == 1
    finally:
        proc.kill()
    assert err == b"write /dev/stdout: broken pipe\n"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        left = clients.ok("ps", "-aq", "--filter", f"name={name}").strip()
        if not left:
            break
        time.sleep(0.2)
    assert not left
