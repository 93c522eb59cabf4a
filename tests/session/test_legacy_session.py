"""`dockyard build` over a session: the legacy builder's output, BuildKit's transfer.

Our CLI serves its context by file sync on `POST /session` and the legacy `/build` names it
(`remote=client-session`); the daemon syncs into its kept copy of the directory, so a
rebuild sends only what changed, and it never reads the client's directory by path: a
daemon in a mount namespace of its own, where that directory is hidden, builds the same.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import IS_ROOT, short_tmp
from tests.support.daemons import DockyardDaemon, hidden_from_daemon
from tests.support.rootfs import busybox_rootfs_tar

pytestmark = [pytest.mark.root]

DOCKER_2010 = "/usr/bin/docker"


def _cli(d: DockyardDaemon, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dockyard.cli.main", *args],
        env={**d.env(), **env},
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=300,
    )


def _ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def _sent(d: DockyardDaemon) -> tuple[int, int]:
    """(files, bytes) that travelled for the daemon's last session-served context."""
    lines = re.findall(
        r"build context of session \S+: \d+ entries, (\d+) files \((\d+) bytes\)", d.log.read_text()
    )
    assert lines, d.log.read_text()[-2000:]
    return int(lines[-1][0]), int(lines[-1][1])


def _tree(root: Path, files: int, size: int) -> None:
    for i in range(files):
        d = root / f"d{i // 100:02}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:04}").write_bytes(os.urandom(size))


@pytest.fixture()
def hidden() -> Iterator[tuple[DockyardDaemon, Path]]:
    """A daemon whose mount namespace hides `client/` (where the contexts live) under an
    empty tmpfs, and whose kept contexts are capped at 30 MiB (one context of the test)."""
    if not IS_ROOT:
        pytest.skip("needs root")
    base = short_tmp("dyl-")
    client = base / "client"
    client.mkdir()
    wrapper = hidden_from_daemon(client)
    d = DockyardDaemon(base / "d", ["--context-cache-size", "30m"], wrapper=wrapper).start()
    try:
        _ok(_cli(d, "import", str(busybox_rootfs_tar()), "busybox:latest"))
        yield d, client
    finally:
        d.cleanup()
        import shutil

        shutil.rmtree(base, ignore_errors=True)


def test_hidden_client_dir_one_change_travels_and_cap_holds(
    hidden: tuple[DockyardDaemon, Path],
) -> None:
    d, client = hidden
    ctx = client / "ctx"
    _tree(ctx, 5000, 64)
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY . /ctx/\nRUN cat /ctx/d17/f1717 | wc -c\n")
    (ctx / ".dockerignore").write_text("d49\n")
    # the daemon cannot see the directory: not by its path, not through /proc/PID/root
    pid = d.proc.pid if d.proc is not None else 0
    assert not (Path(f"/proc/{pid}/root") / str(ctx).lstrip("/")).exists()

    first = _ok(_cli(d, "build", "-t", "hid", str(ctx)))
    assert "Successfully tagged hid:latest" in first
    assert _sent(d) == (
        4902,
        4900 * 64 + len("FROM busybox\nCOPY . /ctx/\nRUN cat /ctx/d17/f1717 | wc -c\n") + 4,
    )
    listing = _ok(
        _cli(d, "run", "--rm", "hid", "sh", "-c", "ls /ctx | wc -l; ls /ctx/d49 2>&1; true")
    )
    assert listing.startswith("50\n") and "No such file" in listing  # .dockerignore applied

    second = _ok(_cli(d, "build", "-t", "hid", str(ctx)))
    assert _sent(d) == (0, 0)  # nothing changed, nothing travels
    # docker's line all the same: the size of the tar the legacy client would send (its
    # "\r\r\n" reads as two newlines in text mode)
    assert re.search(r"Sending build context to Docker daemon\s+\S+B\n\n", second)
    assert second.count("Using cache") == 2

    (ctx / "d17" / "f1717").write_bytes(b"x" * 100)
    third = _ok(_cli(d, "build", "-t", "hid", str(ctx)))
    assert _sent(d) == (1, 100)  # that file only
    assert third.count("Using cache") == 0 and "\n100\n" in third

    # kept copies: 5,000 entries take ~20 MiB of blocks; a second directory's copy does
    # not fit beside the first under the 30 MiB cap, so the older one is evicted
    contexts = d.root / "contexts"
    assert len(list(contexts.iterdir())) == 1
    other = client / "other"
    subprocess.run(["cp", "-a", str(ctx), str(other)], check=True)
    _ok(_cli(d, "build", "-t", "hid2", str(other)))
    assert len(list(contexts.iterdir())) == 1
    du = subprocess.run(["du", "-sb", str(contexts)], capture_output=True, text=True, check=True)
    assert int(du.stdout.split()[0]) <= 30 << 20
    # and the first directory now travels whole again
    _ok(_cli(d, "build", "-t", "hid", str(ctx)))
    assert _sent(d)[0] == 4902


def test_rebuild_sends_only_the_change_and_legacy_output(tmp_path: Path) -> None:
    if not IS_ROOT:
        pytest.skip("needs root")
    d = DockyardDaemon(short_tmp("dyl-")).start()
    try:
        _ok(_cli(d, "import", str(busybox_rootfs_tar()), "busybox:latest"))
        ctx = tmp_path / "ctx"
        _tree(ctx, 300, 1000)
        (ctx / "Dockerfile").write_text("FROM busybox\nCOPY . /ctx/\n")
        out = _ok(_cli(d, "build", "-t", "inc", str(ctx)))
        assert re.search(r"Step 2/2 : COPY \. /ctx/\n ---> [0-9a-f]{12}\n", out), out
        assert _ok(_cli(d, "build", "-t", "inc", str(ctx))).count("Using cache") == 1
        (ctx / "d01" / "f0150").write_bytes(b"y" * 1000)
        out = _ok(_cli(d, "build", "-t", "inc", str(ctx)))
        assert _sent(d) == (1, 1000) and "Using cache" not in out
        # the legacy builder's files: whole-second mtimes, as the legacy tar gives them
        mtimes = _ok(_cli(d, "run", "--rm", "inc", "stat", "-c", "%y", "/ctx/d01/f0150"))
        assert ".000000000" in mtimes, mtimes
        # the 20.10 client with BuildKit uses the same kept-context path
        if os.access(DOCKER_2010, os.X_OK):
            env = {**d.env(), "DOCKER_BUILDKIT": "1", "BUILDKIT_PROGRESS": "plain"}
            for _ in range(2):
                proc = subprocess.run(
                    [DOCKER_2010, "build", "-t", "inc-bk", str(ctx)],
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=300,
                )
                assert proc.returncode == 0, proc.stderr
            # the second build's sync: bytes, not the 300 kB of the first
            sizes = re.findall(r"transferring context: ([0-9.]+[kMG]?B)", proc.stderr)
            assert sizes and sizes[-1].endswith("B") and sizes[-1][-2].isdigit(), proc.stderr
    finally:
        d.cleanup()


def test_remote_daemon_over_tcp_builds_with_secrets(hidden: tuple[DockyardDaemon, Path]) -> None:
    """The session rides a TCP connection as well: nothing assumes a Unix socket or a
    shared filesystem (the daemon is the namespaced one; its client dir is hidden)."""
    d, client = hidden
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tcp = DockyardDaemon(
        d.base.parent / "tcp",
        ["--host", f"tcp://127.0.0.1:{port}", "--context-cache-size", "30m"],
        wrapper=d.wrapper,
    ).start()
    try:
        _ok(_cli(tcp, "import", str(busybox_rootfs_tar()), "busybox:latest"))
        remote = {
            "DOCKYARD_HOST": f"tcp://127.0.0.1:{port}",
            "DOCKER_HOST": f"tcp://127.0.0.1:{port}",
        }
        ctx = client / "remote"
        _tree(ctx, 200, 100)
        (ctx / "Dockerfile").write_text(
            "FROM busybox\nCOPY . /ctx/\n"
            "RUN --mount=type=secret,id=tok cat /run/secrets/tok > /tok.txt\n"
        )
        (client / "tok").write_text("s3cret")
        args = ("build", "--secret", f"id=tok,src={client / 'tok'}", "-t", "rem", str(ctx))
        _ok(_cli(tcp, *args, **remote))
        assert _sent(tcp) == (201, 200 * 100 + len((ctx / "Dockerfile").read_text()))
        again = _ok(_cli(tcp, *args, **remote))
        assert _sent(tcp) == (0, 0) and again.count("Using cache") == 2
        out = _ok(_cli(tcp, "run", "--rm", "rem", "cat", "/tok.txt", **remote))
        assert out == "s3cret"
    finally:
        tcp.cleanup()
