"""`cp` against a container that races it (issue 9 §2; the class of CVE-2018-15664).

A container swaps its directory /wdir for a symlink to a host directory's path (absolute,
so a daemon that resolves it on the host lands in the host's directory) as fast as it can,
while the test hammers one endpoint for a bounded time: PUT, GET and HEAD of
/containers/{id}/archive, export, and our CLI's `cp` both ways. The swapper counts its
completed swaps; a run in which it completed none proves nothing and fails. Afterwards the
host directory must be untouched, no answer may have carried the host's secret, and the
daemon must never have answered 500 or logged a traceback.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import secrets
import socket
import subprocess
import sys
import tarfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import Clients
from tests.containers.helpers import docker_ok

pytestmark = pytest.mark.root

RACE_SECONDS = float(os.environ.get("DOCKYARD_RACE_SECONDS", "8"))
WORKERS = int(os.environ.get("DOCKYARD_RACE_WORKERS", "2"))
HOST_SECRET_SIZE = 4321

# A swap counts once the symlink is in place; the counter is written then renamed, so a
# reader never sees half a number. A daemon that recreates /wdir meanwhile is undone.
SWAPPER = """
mkdir -p /wdir && echo container > /wdir/secret
i=0
while :; do
  mv /wdir /wdir.real || {{ rm -rf /wdir.real; mkdir -p /wdir; echo container > /wdir/secret; continue; }}
  ln -s {canary} /wdir && i=$((i+1))
  rm -rf /wdir
  mv /wdir.real /wdir
  echo $i > /swaps.tmp; mv /swaps.tmp /swaps
done
"""


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=60)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(self._path)


@dataclass
class Race:
    clients: Clients
    cid: str
    canary: Path
    host_secret: bytes
    statuses: Counter[int] = field(default_factory=Counter)
    leaks: list[str] = field(default_factory=list)
    tries: int = 0

    def request(
        self, method: str, path: str, body: bytes | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        conn = _UnixConnection(str(self.clients.daemon.socket))
        try:
            headers = {"Content-Type": "application/x-tar"} if body is not None else {}
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, dict(resp.getheaders()), data
        except (http.client.HTTPException, ConnectionError) as e:
            # A response cut short or garbled: status 0, reported as a failure.
            return 0, {}, repr(e).encode()
        finally:
            conn.close()

    def swaps(self) -> int:
        out = docker_ok(self.clients, "exec", self.cid, "cat", "/swaps").strip()
        return int(out or 0)

    def run(self, attempt: Callable[[], None]) -> int:
        """Run `attempt` from several threads for RACE_SECONDS; the swaps completed meanwhile."""
        before = self.swaps()
        deadline = time.monotonic() + RACE_SECONDS
        lock = threading.Lock()
        errors: list[BaseException] = []

        def worker() -> None:
            while time.monotonic() < deadline:
                try:
                    attempt()
                except BaseException as e:  # reported below, with the others
                    errors.append(e)
                    return
                with lock:
                    self.tries += 1

        threads = [threading.Thread(target=worker) for _ in range(WORKERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        return self.swaps() - before

    def saw(self, status: int, body: bytes, what: str) -> None:
        self.statuses[status] += 1
        if status >= 500 or status == 0:
            self.leaks.append(f"{what}: {status} {body[:300]!r}")
        if self.host_secret in body:
            self.leaks.append(f"{what}: the host's secret came back")


@pytest.fixture
def race(fresh_clients: Clients) -> Iterator[Race]:
    canary = Path(f"/tmp/dyrace-{secrets.token_hex(4)}")
    canary.mkdir()
    host_secret = secrets.token_hex(HOST_SECRET_SIZE // 2).encode()[:HOST_SECRET_SIZE]
    (canary / "secret").write_bytes(host_secret)
    cid = docker_ok(
        fresh_clients,
        "run",
        "-d",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        SWAPPER.format(canary=canary),
    ).strip()
    try:
        deadline = time.monotonic() + 15
        while fresh_clients.docker("exec", cid, "cat", "/swaps").returncode != 0:
            assert time.monotonic() < deadline, "the swapper never started"
            time.sleep(0.1)
        yield Race(fresh_clients, cid, canary, host_secret)
    finally:
        fresh_clients.docker("rm", "-f", cid)
        untouched = sorted(os.listdir(canary)) == ["secret"]
        intact = (canary / "secret").read_bytes() == host_secret
        subprocess.run(["rm", "-rf", str(canary)], check=False)
    assert untouched and intact, "the host's directory was written through the container"


def _finish(race: Race, swaps: int, endpoint: str) -> None:
    print(
        f"\n{endpoint}: {race.tries} tries, {swaps} swaps, statuses {dict(race.statuses)}, "
        f"host writes {len(os.listdir(race.canary)) - 1}",
        file=sys.stderr,
    )
    assert swaps > 0, f"{endpoint}: the swapper completed no swap during the copies"
    assert race.tries > 0
    assert not race.leaks, "\n".join(race.leaks[:10])
    log = race.clients.daemon.log.read_text(errors="replace")
    assert "Traceback" not in log, log[-3000:]


def _tar(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_put_archive_never_writes_the_host(race: Race) -> None:
    body = _tar("pwned", b"written by the race\n")

    def attempt() -> None:
        status, _, data = race.request(
            "PUT", f"/containers/{race.cid}/archive?path=/wdir&noOverwriteDirNonDir=true", body
        )
        race.saw(status, data, "PUT")

    swaps = race.run(attempt)
    _finish(race, swaps, "PUT /archive")
    assert race.statuses[200] > 0, "no copy ever succeeded: the race was not exercised"


def test_get_archive_never_reads_the_host(race: Race) -> None:
    def attempt() -> None:
        status, _, data = race.request("GET", f"/containers/{race.cid}/archive?path=/wdir/secret")
        race.saw(status, data, "GET")

    swaps = race.run(attempt)
    _finish(race, swaps, "GET /archive")
    assert race.statuses[200] > 0


def test_head_archive_never_stats_the_host(race: Race) -> None:
    def attempt() -> None:
        status, headers, data = race.request(
            "HEAD", f"/containers/{race.cid}/archive?path=/wdir/secret"
        )
        race.saw(status, data, "HEAD")
        stat_header = headers.get("X-Docker-Container-Path-Stat")
        if stat_header:
            info = json.loads(base64.b64decode(stat_header))
            if info["size"] == HOST_SECRET_SIZE:
                race.leaks.append(f"HEAD: stat of the host's file {info}")

    swaps = race.run(attempt)
    _finish(race, swaps, "HEAD /archive")
    assert race.statuses[200] > 0


def test_export_never_reads_the_host(race: Race) -> None:
    def attempt() -> None:
        status, _, data = race.request("GET", f"/containers/{race.cid}/export")
        race.saw(status, data, "export")
        if status == 200:
            names = tarfile.open(fileobj=io.BytesIO(data)).getnames()
            assert "bin/sh" in names or "bin/busybox" in names, names[:20]

    swaps = race.run(attempt)
    _finish(race, swaps, "GET /export")
    assert race.statuses[200] > 0


def test_cli_cp_both_ways_never_touches_the_host(race: Race, tmp_path: Path) -> None:
    src = tmp_path / "pwned"
    src.write_bytes(b"written by the race\n")
    outcomes: Counter[str] = Counter()

    def attempt() -> None:
        for args in (
            ["cp", str(src), f"{race.cid}:/wdir/"],
            ["cp", f"{race.cid}:/wdir/secret", "-"],
        ):
            proc = subprocess.run(
                [sys.executable, "-m", "dockyard.cli.main", *args],
                env=race.clients.daemon.env(),
                cwd=tmp_path,
                capture_output=True,
                timeout=60,
            )
            outcomes[f"{args[0]} {'in' if args[1] == str(src) else 'out'} {proc.returncode}"] += 1
            if race.host_secret in proc.stdout:
                race.leaks.append("cp out: the host's secret came back")
            if b"Traceback" in proc.stderr or b"500" in proc.stderr:
                race.leaks.append(f"cp: {proc.stderr[-300:]!r}")

    swaps = race.run(attempt)
    print(f"\ncp outcomes {dict(outcomes)}", file=sys.stderr)
    _finish(race, swaps, "dockyard cp")
    assert outcomes["cp in 0"] > 0 and outcomes["cp out 0"] > 0, outcomes


def _blobs_with(root: Path, needle: bytes) -> list[str]:
    found = []
    for blob in (root / "content" / "blobs").rglob("*"):
        if blob.is_file() and needle in blob.read_bytes():
            found.append(blob.name)
    return found


def test_commit_without_pause_never_reads_the_host(race: Race) -> None:
    """An exporter: commit walks the running container's upper dir (pause=false lets the
    container race it); no host file may end up in a layer."""
    images: list[str] = []

    def attempt() -> None:
        status, _, data = race.request(
            "POST", f"/commit?container={race.cid}&pause=false&repo=racecommit", b""
        )
        race.saw(status, data, "commit")
        if status == 201:
            images.append(json.loads(data)["Id"])

    swaps = race.run(attempt)
    _finish(race, swaps, "POST /commit?pause=false")
    assert race.statuses[201] > 0
    leaked = _blobs_with(race.clients.daemon.root, race.host_secret)
    assert not leaked, f"the host's secret is in layer blobs {leaked}"


def test_diff_never_lists_the_host(race: Race) -> None:
    (race.canary / "secret").rename(race.canary / "host-only-name")
    try:

        def attempt() -> None:
            status, _, data = race.request("GET", f"/containers/{race.cid}/changes")
            race.saw(status, data, "changes")
            if b"host-only-name" in data:
                race.leaks.append("changes: listed the host's directory")

        swaps = race.run(attempt)
    finally:
        (race.canary / "host-only-name").rename(race.canary / "secret")
    _finish(race, swaps, "GET /changes")
    assert race.statuses[200] > 0
