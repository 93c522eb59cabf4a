"""The daemon's socket (issue 9 §3): only a stale socket is replaced; mode, owner, no root.

Unprivileged runs use `setpriv --reuid=65534 --regid=65534 --clear-groups`, so the host's
user database is never touched; the `dockyard` group is given to a daemon in a mount
namespace of its own with a private /etc/group bound over the host's.
"""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.daemons import wait_for_socket

pytestmark = pytest.mark.root

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def _daemon(sock: Path, root: Path, *, prefix: list[str] | None = None) -> list[str]:
    return [
        *(prefix or []),
        sys.executable,
        "-m",
        "dockyard.api.daemon",
        "--root",
        str(root),
        "--host",
        f"unix://{sock}",
    ]


def _cli(
    sock: Path, root: Path, *args: str, user: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": "/nonexistent",
        "DOCKYARD_HOST": f"unix://{sock}",
        "DOCKYARD_ROOT": str(root),
        "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
    }
    argv = [*(user or []), sys.executable, "-m", "dockyard.cli.main", *args]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)


def _refused(sock: Path, root: Path) -> str:
    proc = subprocess.run(_daemon(sock, root), capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.stderr


def test_a_regular_file_named_as_the_socket_is_kept(base: Path) -> None:
    notes = base / "notes.txt"
    notes.write_text("my notes\n")
    err = _refused(notes, base / "root")
    assert "is not a socket" in err and str(notes) in err
    assert notes.read_text() == "my notes\n"
    # The CLI's autostart meets the same refusal and shows it; the file survives.
    proc = _cli(notes, base / "root", "ps")
    assert proc.returncode != 0
    assert "is not a socket" in proc.stderr, proc.stderr
    assert notes.read_text() == "my notes\n"


def test_a_symlink_and_a_directory_are_kept(base: Path) -> None:
    target = base / "target.txt"
    target.write_text("keep\n")
    link = base / "link.sock"
    link.symlink_to(target)
    assert "is not a socket" in _refused(link, base / "root")
    assert link.is_symlink() and target.read_text() == "keep\n"
    folder = base / "dir.sock"
    folder.mkdir()
    (folder / "f").write_text("x")
    assert "is not a socket" in _refused(folder, base / "root")
    assert (folder / "f").read_text() == "x"


def test_a_live_socket_is_kept_and_a_stale_one_replaced(base: Path) -> None:
    sock = base / "d.sock"
    other = socket.socket(socket.AF_UNIX)
    other.bind(str(sock))
    other.listen(1)
    try:
        assert "another daemon is listening" in _refused(sock, base / "root")
        assert stat.S_ISSOCK(sock.lstat().st_mode)
    finally:
        other.close()
    # Closed without unlinking: the file is a socket nobody answers on.
    os.chmod(sock, 0o700)
    log = base / "daemon.log"
    with open(log, "wb") as logf:
        proc = subprocess.Popen(_daemon(sock, base / "root"), stdout=logf, stderr=subprocess.STDOUT)
    try:
        wait_for_socket(sock, proc, log)
        st = sock.lstat()
        assert stat.S_IMODE(st.st_mode) == 0o660
        assert (st.st_uid, st.st_gid) == (0, 0)  # no `dockyard` group on this host
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()
    assert not sock.exists()
    assert not (base / "root" / "daemon.pid").exists()


def test_the_socket_belongs_to_the_dockyard_group_when_it_exists(base: Path) -> None:
    group = base / "group"
    group.write_text(Path("/etc/group").read_text() + "dockyard:x:4242:\n")
    sock = base / "d.sock"
    log = base / "daemon.log"
    script = f'mount --bind {group} /etc/group && exec "$@"'
    argv = ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh"]
    with open(log, "wb") as logf:
        proc = subprocess.Popen(
            _daemon(sock, base / "root", prefix=argv), stdout=logf, stderr=subprocess.STDOUT
        )
    try:
        wait_for_socket(sock, proc, log)
        st = sock.lstat()
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 4242, 0o660)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()


def test_unprivileged_autostart_says_permission_denied_and_leaves_nothing(base: Path) -> None:
    base.chmod(0o777)  # the unprivileged user could create files here: it must not
    sock, root = base / "d.sock", base / "root"
    proc = _cli(sock, root, "ps", user=NOBODY)
    assert proc.returncode == 1, proc.stderr
    assert "permission denied" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert sorted(os.listdir(base)) == []
    # And the daemon itself, started by hand without root.
    run = subprocess.run(
        _daemon(sock, root, prefix=NOBODY), capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 1
    assert "needs to be started with root privileges" in run.stderr
    assert "Traceback" not in run.stderr
    assert sorted(os.listdir(base)) == []


def test_a_socket_refusing_the_user_says_permission_denied(base: Path) -> None:
    sock = base / "d.sock"
    base.chmod(0o755)
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(sock))
    listener.listen(1)
    os.chmod(sock, 0o660)
    try:
        proc = _cli(sock, base / "root", "ps", user=NOBODY)
    finally:
        listener.close()
    assert proc.returncode == 1
    assert proc.stderr == (
        f"permission denied while trying to connect to the dockyard daemon socket at "
        f"unix://{sock}: dial unix {sock}: connect: permission denied\n"
    )
    assert not (base / "root").exists()
