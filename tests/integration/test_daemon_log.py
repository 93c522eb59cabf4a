"""The daemon log (issue 19 item 5): a line per request with method, path, status and duration;
the cause of errors; container and build start/stop; never a query string, body or secret;
`--log-level` and `-D` as dockerd takes them."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Clients, own_daemon, short_tmp, write_context

pytestmark = pytest.mark.root

SECRET = "s3cr3t-value-never-logged"


def _clients(*extra: str) -> Iterator[Clients]:
    with own_daemon(short_tmp("dyl-"), list(extra)) as c:
        yield c


@pytest.fixture
def info_clients() -> Iterator[Clients]:
    yield from _clients("--log-level", "info")


def _log(c: Clients) -> str:
    return c.daemon.log.read_text(errors="replace")


def _wait_for(c: Clients, pattern: str, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = _log(c)
        if re.search(pattern, text):
            return text
        time.sleep(0.1)
    raise AssertionError(f"{pattern!r} not in the daemon log:\n{_log(c)[-3000:]}")


def test_requests_errors_containers_and_builds_are_logged(
    info_clients: Clients, tmp_path: Path
) -> None:
    c = info_clients
    c.ok("ps")
    assert c.dockyard("inspect", "no-such-thing").returncode == 1
    assert c.dockyard("run", "--name", "logged", "busybox", "sh", "-c", "exit 3").returncode == 3
    assert c.dockyard("cp", "logged:/no/such/file", str(tmp_path / "x")).returncode != 0
    write_context(tmp_path / "ok", "FROM busybox\nARG TOKEN\nRUN true\n")
    c.ok("build", "-t", "logged-img", "--build-arg", f"TOKEN={SECRET}", str(tmp_path / "ok"))
    write_context(tmp_path / "bad", "FROM busybox\nRUN exit 7\n")
    assert c.dockyard("build", str(tmp_path / "bad")).returncode == 7
    c.dockyard("rm", "logged")
    text = _wait_for(c, r"container [0-9a-f]{12} removed")
    assert re.search(r"INFO dockyard\.api: GET /v1\.\d+/containers/json 200 [\d.]+m?s\n", text)
    # a 404 with its cause, the path only
    assert re.search(r"GET /v1\.\d+/containers/no-such-thing/json 404 [\d.]+m?s: No such", text)
    assert re.search(r"container [0-9a-f]{12} started \(logged, pid \d+\)", text)
    assert re.search(r"container [0-9a-f]{12} exited with status 3", text)
    assert re.search(r"GET /v1\.\d+/containers/logged/archive 404 .*: ", text), text[-3000:]
    assert re.search(r"build of Dockerfile as logged-img started", text)
    assert re.search(r"build of Dockerfile as logged-img finished in [\d.]+s: sha256:", text)
    assert re.search(r"build of Dockerfile failed after [\d.]+s: .*non-zero code: 7", text)
    assert re.search(r"POST /v1\.\d+/build 200 ", text)
    assert SECRET not in text, "build args (query strings) must stay out of the log"
    assert "buildargs" not in text and "?" not in "".join(
        line for line in text.splitlines() if "dockyard.api:" in line
    )
    assert "Traceback" not in text


def test_a_cancelled_build_is_logged(info_clients: Clients, tmp_path: Path) -> None:
    c = info_clients
    write_context(tmp_path, "FROM busybox\nRUN sleep 30\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "dockyard.cli.main", "build", str(tmp_path)],
        env=c.daemon.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for(c, r"build of Dockerfile started")
        time.sleep(1)
    finally:
        proc.kill()
        proc.wait()
    _wait_for(c, r"build of Dockerfile cancelled after [\d.]+s")
    _wait_for(c, r"POST /v1\.\d+/build (cancelled after|499)")


def test_log_levels_as_dockerd_takes_them(tmp_path: Path) -> None:
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "dockyard.api.daemon",
            "--log-level",
            "chatty",
            "--root",
            str(tmp_path / "r"),
            "--host",
            f"unix://{tmp_path}/d.sock",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad.returncode == 1 and "unable to parse logging level: chatty" in bad.stderr
    for c in _clients("--log-level", "error"):
        c.ok("ps")
        assert "dockyard.api" not in _log(c) and "listening on" not in _log(c)
    for c in _clients("-D"):
        c.ok("ps")
        text = _wait_for(c, r"DEBUG dockyard\.api: Calling GET /v1\.\d+/containers/json")
        assert "aiohttp" not in text  # its internals stay quiet in our debug log
    config = tmp_path / "daemon.json"
    config.write_text('{"log-level": "warn"}')
    both = subprocess.run(
        [
            sys.executable,
            "-m",
            "dockyard.api.daemon",
            "--config-file",
            str(config),
            "--log-level",
            "info",
            "--root",
            str(tmp_path / "r"),
            "--host",
            f"unix://{tmp_path}/d.sock",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (
        both.returncode == 1
        and "specified both as a flag and in the configuration file: log-level" in both.stderr
    )
