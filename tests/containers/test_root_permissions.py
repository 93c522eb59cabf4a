"""Other users reach nothing under the storage root (issue 9 §1; the class of CVE-2021-41091).

An unprivileged uid (65534, through `setpriv`, so the host's user database is not touched)
tries what an attacker on a shared machine would: list the root, read the metadata database
and its WAL (every container's environment), a container's log and its runc bundle, walk
into a container's merged rootfs and a layer, read a volume, and execute a setuid-root
binary straight out of a layer. Each must be refused. A root left wide open by an older
dockyard is tightened at the next start.
"""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Clients, write_context
from tests.containers.helpers import docker_ok, wait_for

pytestmark = pytest.mark.root

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]


def _as_nobody(*argv: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*NOBODY, *argv], capture_output=True, timeout=30)
    out, err = (x.decode(errors="replace") for x in (proc.stdout, proc.stderr))
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _targets(clients: Clients) -> tuple[dict[str, list[str]], str]:
    """Build an image with a setuid-root binary, run a container with a secret in its
    environment, a log line and a volume; the attempts an attacker would make."""
    ctx = write_context(
        clients.daemon.base / "ctx",
        "FROM busybox\nCOPY euid /suid/euid\nRUN chmod 4755 /suid/euid\n",
    )
    # A host binary that prints its effective uid (busybox drops a setuid bit by itself):
    # run from the layer on the host, as root's it would print 0.
    (ctx / "euid.c").write_text(
        '#include <stdio.h>\n#include <unistd.h>\nint main(void){printf("%d\\n", geteuid());}\n'
    )
    subprocess.run(["gcc", "-o", str(ctx / "euid"), str(ctx / "euid.c")], check=True)
    clients.ok("build", "-q", "-t", "suid:1", str(ctx))
    cid = docker_ok(
        clients,
        "run",
        "-d",
        "--network",
        "none",
        "-e",
        "MYSECRET=hunter2",
        "-v",
        "privvol:/data",
        "suid:1",
        "sh",
        "-c",
        "echo hunter2 > /data/f; echo logged-line; sleep 1000",
    ).strip()
    root = clients.daemon.root
    wait_for(lambda: b"logged-line" in (root / "containers" / cid / "container.log").read_bytes())
    # COPY's layer has the file, RUN's layer the setuid copy of it
    layers = [p for p in root.glob("overlay/*/fs/suid/euid") if p.stat().st_mode & stat.S_ISUID]
    assert layers, "the setuid binary's layer was not found"
    suid = layers[0]
    assert suid.stat().st_uid == 0
    volume = next(root.glob("volumes/privvol/_data/f"))
    attempts = {
        "list the root": ["ls", str(root)],
        "read metadata.db": ["cat", str(root / "metadata.db")],
        "read the metadata WAL": ["cat", str(root / "metadata.db-wal")],
        "read the container's log": ["cat", str(root / "containers" / cid / "container.log")],
        "read the bundle": ["cat", str(root / "containers" / cid / "bundle" / "config.json")],
        "enter the merged rootfs": ["ls", str(root / "containers" / cid / "rootfs" / "etc")],
        "enter a layer": ["ls", str(suid.parent)],
        # Through a shell: setpriv keeps its permitted capabilities up to its own execve, so
        # `setpriv … -- PATH` looks PATH up with them (measured: it runs a binary in a 0700
        # directory); the unprivileged shell's exec is what an attacker gets.
        "run a layer's setuid binary": ["sh", "-c", 'exec "$0"', str(suid)],
        "read a volume": ["cat", str(volume)],
    }
    for path in (root / "metadata.db", root / "metadata.db-wal"):
        assert path.exists(), path
    return attempts, cid


def _assert_refused(attempts: dict[str, list[str]]) -> None:
    allowed = []
    for what, argv in attempts.items():
        proc = _as_nobody(*argv)
        if proc.returncode == 0 or "Permission denied" not in proc.stderr:
            allowed.append(f"{what}: rc={proc.returncode} {proc.stdout[:200]!r} {proc.stderr!r}")
    assert not allowed, "\n".join(allowed)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def _assert_modes(root: Path, cid: str) -> None:
    st = root.stat()
    assert (_mode(root), st.st_uid, st.st_gid) == (0o710, 0, 0)
    for name in ("metadata.db", "metadata.db-wal", "metadata.db-shm"):
        if (root / name).exists():
            assert _mode(root / name) == 0o600, name
    for d in (root / "containers", root / "overlay", root / "volumes", root / "content"):
        assert _mode(d) == 0o700, d
    cdir = root / "containers" / cid
    assert _mode(cdir) == 0o700
    assert _mode(cdir / "container.log") == 0o640
    assert _mode(cdir / "bundle" / "config.json") == 0o600
    for layer in (root / "overlay").iterdir():
        assert _mode(layer) == 0o700, layer
    for volume in (root / "volumes").iterdir():
        if volume.is_dir():
            assert _mode(volume) == 0o700, volume


@contextlib.contextmanager
def _traversable(root: Path) -> Iterator[None]:
    dirs = [root, *(p for p in root.iterdir() if p.is_dir() and not p.is_symlink())]
    modes = {d: _mode(d) for d in dirs}
    try:
        for d in dirs:
            os.chmod(d, 0o711)
        yield
    finally:
        for d, mode in modes.items():
            os.chmod(d, mode)


def _open_base(clients: Clients) -> None:
    # The test daemon's base directory is 0700 (tests/conftest.short_tmp): opened so that
    # what refuses the attacker is the root's own mode, as on a real /var/lib/dockyard.
    os.chmod(clients.daemon.base, 0o755)


def test_other_users_reach_nothing_under_the_root(fresh_clients: Clients) -> None:
    _open_base(fresh_clients)
    attempts, cid = _targets(fresh_clients)
    try:
        _assert_refused(attempts)
        _assert_modes(fresh_clients.daemon.root, cid)
        # Each path is refused on its own, not only by the root's mode: with the root and
        # its top-level directories opened for traversal (0711), overlay/N, containers/ID,
        # volumes/NAME and the database's files still refuse every attempt.
        with _traversable(fresh_clients.daemon.root):
            _assert_refused(attempts)
        # The socket: 0660, root's (no `dockyard` group on the test machines), not others'
        sock = fresh_clients.daemon.socket.lstat()
        assert stat.S_IMODE(sock.st_mode) == 0o660 and sock.st_uid == 0
        connect = f"import socket; socket.socket(1).connect({str(fresh_clients.daemon.socket)!r})"
        proc = _as_nobody("python3", "-c", connect)
        assert "Permission denied" in proc.stderr, proc.stderr
    finally:
        fresh_clients.docker("rm", "-f", cid)


def test_a_wide_open_root_is_tightened_at_start(fresh_clients: Clients) -> None:
    _open_base(fresh_clients)
    attempts, cid = _targets(fresh_clients)
    daemon = fresh_clients.daemon
    root = daemon.root
    try:
        daemon.stop()
        # What a root made by an older dockyard looks like: everything 0755/0644.
        subprocess.run(
            ["find", str(root), "-xdev", "-maxdepth", "4", "-exec", "chmod", "go+rX", "{}", "+"],
            check=True,
        )
        assert _mode(root) == 0o755
        assert _mode(root / "metadata.db") == 0o644
        daemon.start()
        _assert_modes(root, cid)
        _assert_refused(attempts)
    finally:
        fresh_clients.docker("rm", "-f", cid)
