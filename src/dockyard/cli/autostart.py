"""Starting a daemon in the background the first time a command finds no one listening."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from dockyard.cli.client import Client, DaemonUnreachable, Host

START_TIMEOUT = 15.0


class AutostartFailed(Exception):
    """The daemon did not answer `/_ping` in time; the message holds its last log lines."""


def tail(path: Path, lines: int = 20) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _spawn(host_value: str, root: str, log_path: Path) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "dockyard.cli.main", "daemon", "--root", root]
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [*argv, "--host", host_value],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            close_fds=True,
        )


def start_daemon(host_value: str, host: Host, root: str, timeout: float = START_TIMEOUT) -> None:
    """Spawn `dockyard daemon --root ROOT --host HOST` detached, then wait for `/_ping`.

    Only for a Unix socket: a TCP host is somebody else's daemon to start.
    """
    if not host.is_unix:
        raise AutostartFailed(f"not starting a daemon for non-unix host {host_value}")
    root_path = Path(root)
    log_path = root_path / "daemon.log"
    try:
        root_path.mkdir(parents=True, exist_ok=True)
        proc = _spawn(host_value, root, log_path)
    except OSError as exc:
        raise AutostartFailed(f"cannot start the daemon: {exc}") from exc
    probe = Client(host)
    deadline = time.monotonic() + timeout
    delay = 0.02
    while time.monotonic() < deadline:
        try:
            probe.ping()
            return
        except (DaemonUnreachable, OSError):
            pass
        except Exception:  # a daemon that answers at all is up
            return
        if proc.poll() is not None:
            break
        time.sleep(delay)
        delay = min(delay * 2, 0.25)
    lines = tail(log_path)
    code = proc.poll()
    why = f"exited with status {code}" if code is not None else f"did not answer in {timeout:g}s"
    msg = f"the dockyard daemon for {host_value} {why}; last lines of {log_path}:\n{lines}"
    raise AutostartFailed(msg.rstrip())
