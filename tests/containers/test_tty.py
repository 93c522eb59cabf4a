"""Terminals end to end: `docker run -it`, `exec -it` and `attach` with detach keys, on a pty."""

from __future__ import annotations

import time

import pytest

from tests.conftest import Clients
from tests.containers.helpers import PtyProcess, docker_ok, inspect, wait_for

pytestmark = pytest.mark.root


def test_run_it_shell_sees_window_size_and_exit_code(clients: Clients) -> None:
    name = f"tty-run-{time.monotonic_ns() % 100000}"
    term = PtyProcess(
        ["docker", "run", "-it", "--rm", "--name", name, "busybox", "sh"],
        clients.daemon.env(),
        rows=31,
        cols=97,
    )
    try:
        term.read_until(b"# ")
        term.send(b"stty size; tty; echo $((6*7))\r")
        out = term.read_until(b"42\r\n")
        assert b"31 97" in out and b"/dev/pts/0" in out
        term.set_size(40, 120)  # SIGWINCH → the CLI resizes the container's terminal
        # the resize reaches the container when the CLI's handler has run: ask until it has
        for _ in range(30):
            mark = len(term.output)
            term.send(b"stty size\r")
            try:
                term.read_until(b"40 120", timeout=0.5, start=mark)
                break
            except AssertionError:
                continue
        else:
            raise AssertionError(f"the window size never reached the container: {term.output!r}")
        term.send(b"exit 3\r")
        assert term.wait() == 3
    finally:
        clients.docker("rm", "-f", name)


def test_exec_it_on_a_terminal(clients: Clients) -> None:
    name = f"tty-exec-{time.monotonic_ns() % 100000}"
    docker_ok(clients, "run", "-d", "--name", name, "busybox", "sleep", "300")
    try:
        term = PtyProcess(
            ["docker", "exec", "-it", name, "sh"], clients.daemon.env(), rows=20, cols=70
        )
        term.read_until(b"# ")
        term.send(b"stty size; echo exec-$((1+1))\r")
        out = term.read_until(b"exec-2")
        assert b"20 70" in out
        term.send(b"exit 4\r")
        assert term.wait() == 4
    finally:
        clients.docker("rm", "-f", name)


def test_attach_and_detach_with_ctrl_p_ctrl_q(clients: Clients) -> None:
    name = f"tty-attach-{time.monotonic_ns() % 100000}"
    docker_ok(clients, "run", "-dit", "--name", name, "busybox", "sh")
    try:
        term = PtyProcess(["docker", "attach", name], clients.daemon.env())
        term.until_shell_answers()
        term.send(b"echo attached-$((2*3))\r")
        term.read_until(b"attached-6")
        term.send(b"\x10\x11")  # ctrl-p ctrl-q
        code = term.wait()
        assert b"read escape sequence" in term.output, term.output
        # The docker CLI's attach returns the escape as an error (status 1), as with dockerd.
        assert code in (0, 1), term.output
        time.sleep(0.3)
        assert inspect(clients, name)["State"]["Running"], "detaching must not stop it"
        # Attach again; `exit` then ends the container.
        term = PtyProcess(["docker", "attach", name], clients.daemon.env())
        term.until_shell_answers()
        term.send(b"exit 5\r")
        term.wait()
        wait_for(lambda: not inspect(clients, name)["State"]["Running"])
        assert inspect(clients, name)["State"]["ExitCode"] == 5
    finally:
        clients.docker("rm", "-f", name)


def test_run_i_pipes_stdin_without_tty(clients: Clients) -> None:
    proc = clients.docker(
        "run", "-i", "--rm", "busybox", "sh", "-c", "tr a-z A-Z; exit 2", input=b"hello\n"
    )
    assert proc.stdout == "HELLO\n" and proc.returncode == 2


def test_our_cli_attach_detach_and_exec_tty(clients: Clients) -> None:
    import sys

    name = f"tty-ours-{time.monotonic_ns() % 100000}"
    cli = [sys.executable, "-m", "dockyard.cli.main"]
    docker_ok(clients, "run", "-dit", "--name", name, "busybox", "sh")
    try:
        term = PtyProcess([*cli, "attach", name], clients.daemon.env())
        term.until_shell_answers()
        term.send(b"echo ours-$((3*3))\r")
        term.read_until(b"ours-9")
        term.send(b"\x10\x11")
        assert term.wait() == 1 and b"read escape sequence" in term.output
        assert inspect(clients, name)["State"]["Running"]
        other = name + "-run"
        term = PtyProcess(
            [*cli, "run", "-it", "--name", other, "busybox", "sh"], clients.daemon.env()
        )
        term.read_until(b"# ")
        term.send(b"\x10\x11")
        assert term.wait() == 0
        assert inspect(clients, other)["State"]["Running"], "run -it detach leaves it running"
        clients.docker("rm", "-f", other)
        term = PtyProcess([*cli, "exec", "-it", name, "sh"], clients.daemon.env(), rows=22, cols=66)
        term.read_until(b"# ")
        term.send(b"stty size; exit 3\r")
        term.read_until(b"22 66")
        assert term.wait() == 3
    finally:
        clients.docker("rm", "-f", name)


def test_our_cli_takes_every_detach_key_the_daemon_takes(clients: Clients) -> None:
    """One parser for both: `ctrl-@` and `ctrl-[` (refused by the CLI before) detach."""
    import sys

    name = f"tty-keys-{time.monotonic_ns() % 100000}"
    cli = [sys.executable, "-m", "dockyard.cli.main"]
    docker_ok(clients, "run", "-dit", "--name", name, "busybox", "sh")
    try:
        term = PtyProcess(
            [*cli, "attach", "--detach-keys", "ctrl-@,ctrl-[", name], clients.daemon.env()
        )
        term.until_shell_answers()
        term.send(b"echo keys-$((4*4))\r")
        term.read_until(b"keys-16")
        term.send(b"\x00\x1b")
        assert term.wait() == 1 and b"read escape sequence" in term.output
        assert b"invalid detach escape keys" not in term.output
        assert inspect(clients, name)["State"]["Running"]
        # An invalid sequence: the CLI warns and keeps the default, the daemon refuses it.
        bad = PtyProcess([*cli, "attach", "--detach-keys", "ctrl-1", name], clients.daemon.env())
        assert bad.wait() != 0
        assert b"Invalid detach keys (ctrl-1) provided" in bad.output, bad.output
    finally:
        clients.docker("rm", "-f", name)
