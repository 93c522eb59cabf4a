"""The daemon's side of issue 17's `ps -a` and `inspect` rows: GET /containers/json?all=1
and GET /containers/NAME/json with N containers, and GET /_ping (the server's own cost for a
small request), timed over the Unix socket with a fresh connection per request as a CLI
makes, against a dockyard daemon and the reference dockerd 20.10 (where it is installed).

Both daemons run on temporary paths: dockerd in a network namespace of its own (`unshare
-n`), so its bridge and rules touch nothing of the host's; each gets busybox imported and N
containers made with `create` (the bench's `bench-lK` names, command `true`). Requests
alternate between the daemons so that load on the machine falls on both alike; the table
gives the median (min-max) in ms and dockyard / dockerd.
Usage: sudo .venv/bin/python bench/bench_list.py [--containers 500] [--runs 30]
Not a test: prints a table.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import short_tmp
from tests.support.daemons import DockyardDaemon, ReferenceDockerd, unmount_all_under
from tests.support.rootfs import busybox_rootfs_tar


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost")
        self.unix_path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX)
        s.connect(self.unix_path)
        self.sock = s


def request(sock: str, method: str, url: str, body: object = None) -> tuple[int, bytes]:
    conn = _UnixConnection(sock)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, url, json.dumps(body) if body is not None else None, headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def populate(sock: str, n: int) -> None:
    for k in range(n):
        status, data = request(
            sock,
            "POST",
            f"/v1.41/containers/create?name=bench-l{k}",
            {"Image": "bench-base:latest", "Cmd": ["true"]},
        )
        if status != 201:
            raise RuntimeError(f"create failed: {status} {data[:200]!r}")


def timed(sock: str, url: str) -> float:
    t0 = time.perf_counter()
    status, data = request(sock, "GET", url)
    took = time.perf_counter() - t0
    if status != 200:
        raise RuntimeError(f"GET {url}: {status} {data[:200]!r}")
    return took


def start_dockerd(base: Path) -> subprocess.Popen[bytes]:
    base.mkdir(parents=True, exist_ok=True)
    sock = base / "docker.sock"
    log = open(base / "dockerd.log", "ab")
    proc = subprocess.Popen(
        [
            "unshare",
            "-n",
            "sh",
            "-c",
            'ip link set lo up && exec dockerd --host "unix://$0/docker.sock" '
            '--data-root "$0/data" --exec-root "$0/exec" --pidfile "$0/pid"',
            str(base),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    log.close()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"dockerd exited with {proc.returncode}")
        try:
            if request(str(sock), "GET", "/_ping")[0] == 200:
                return proc
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("dockerd did not answer")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--containers", type=int, default=500)
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    busybox = busybox_rootfs_tar()
    daemons: dict[str, str] = {}
    ours = DockyardDaemon(short_tmp("dyl-")).start()
    dockerd_base: Path | None = None
    dockerd: subprocess.Popen[bytes] | None = None
    try:
        subprocess.run(
            [sys.executable, "-m", "dockyard.cli.main", "import", str(busybox), "bench-base"],
            env=ours.env(),
            check=True,
            capture_output=True,
        )
        daemons["dockyard"] = str(ours.socket)
        if ReferenceDockerd.available() and shutil.which("docker"):
            dockerd_base = short_tmp("dyd-")
            dockerd = start_dockerd(dockerd_base)
            sock = str(dockerd_base / "docker.sock")
            env = dict(os.environ, DOCKER_HOST=f"unix://{sock}", DOCKER_CONFIG=str(dockerd_base))
            subprocess.run(
                ["docker", "import", str(busybox), "bench-base:latest"],
                env=env,
                check=True,
                capture_output=True,
            )
            daemons["dockerd 20.10"] = sock
        for sock in daemons.values():
            populate(sock, args.containers)
        urls = {
            f"list all ({args.containers})": "/v1.41/containers/json?all=1",
            "inspect one": f"/v1.41/containers/bench-l{args.containers // 2}/json",
            "list running (none)": "/v1.41/containers/json",
            "_ping": "/_ping",
        }
        samples: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.runs):
            for what, url in urls.items():
                for name, sock in daemons.items():
                    samples.setdefault((what, name), []).append(timed(sock, url))
        print(f"{'request':24} " + " ".join(f"{n + ' ms':>24}" for n in daemons) + "  ratio")
        for what in urls:
            cells, medians = [], []
            for name in daemons:
                ts = [t * 1000 for t in samples[(what, name)]]
                medians.append(statistics.median(ts))
                cells.append(f"{medians[-1]:.2f} ({min(ts):.2f}-{max(ts):.2f})")
            ratio = f"{medians[0] / medians[1]:.2f}" if len(medians) > 1 else ""
            print(f"{what:24} " + " ".join(f"{c:>24}" for c in cells) + f"  {ratio}")
    finally:
        ours.cleanup()
        if dockerd is not None and dockerd_base is not None:
            dockerd.terminate()
            try:
                dockerd.wait(30)
            except subprocess.TimeoutExpired:
                dockerd.kill()
                dockerd.wait()
            unmount_all_under(dockerd_base)
            shutil.rmtree(dockerd_base, ignore_errors=True)


if __name__ == "__main__":
    main()
