"""Physical floors: the same work done by the plainest tools, printed beside the rows.

- runc run: `runc run` of a bundle prepared once (the busybox tree, `runc spec` with
  `true`), the container's start, exit and deletion without any engine;
- tar | sha256sum: reading and hashing the big build context once;
- curl | tar -xz: fetching the pull row's layers from the local registry and extracting them;
- HTTP upload: the same compressed blobs sent to the registry by curl (POST, then PUT).
"""

from __future__ import annotations

import http.client
import json
import shlex
import shutil
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from tests.registry.support import RegImage
from tests.support.rootfs import busybox_rootfs_tar

from bench.rows import Bench
from bench.sampling import sh


def _bundle(base: Path) -> Path:
    bundle = base / "floor-bundle"
    (bundle / "rootfs").mkdir(parents=True, exist_ok=True)
    with tarfile.open(busybox_rootfs_tar()) as tar:
        tar.extractall(bundle / "rootfs", filter="tar")
    sh(["runc", "spec", "--bundle", str(bundle)])
    spec = json.loads((bundle / "config.json").read_text())
    spec["process"]["terminal"] = False
    spec["process"]["args"] = ["true"]
    (bundle / "config.json").write_text(json.dumps(spec))
    return bundle


def _timed_shell(script: str) -> float:
    t0 = time.perf_counter()
    sh(["sh", "-c", script])
    return time.perf_counter() - t0


def floors(bench: Bench, image: RegImage, blobs: Path) -> dict[str, Callable[[int], float]]:
    """Each floor as a function of the run number returning seconds."""
    bundle = _bundle(bench.base)
    state = bench.base / "floor-runc"
    dest = bench.base / "floor-extract"
    repo = bench.pull_ref.split("/", 1)[1].rsplit(":", 1)[0]

    def runc_run(i: int) -> float:
        t0 = time.perf_counter()
        sh(["runc", "--root", str(state), "run", "--bundle", str(bundle), f"floor-{i}"])
        return time.perf_counter() - t0

    def tar_sha(i: int) -> float:
        return _timed_shell(
            f"tar -C {shlex.quote(str(bench.contexts.f_master))} -cf - . | sha256sum"
        )

    def curl_tar(i: int) -> float:
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir()
        url = f"{bench.pull_registry.url}/v2/{repo}/blobs"
        script = " && ".join(
            f"curl -sf {url}/{digest} | tar -xz -C {shlex.quote(str(dest))}"
            for digest, _ in image.blobs
        )
        took = _timed_shell(script)
        shutil.rmtree(dest, ignore_errors=True)
        return took

    def upload(i: int) -> float:
        bench.wipe_push_registry()
        host = bench.push_registry.host
        t0 = time.perf_counter()
        for digest, _ in image.blobs:
            conn = http.client.HTTPConnection(host)
            conn.request("POST", "/v2/floor/blobs/uploads/")
            resp = conn.getresponse()
            resp.read()
            location = resp.getheader("Location", "")
            conn.close()
            parts = urlsplit(location)
            target = f"http://{host}{parts.path}?{parts.query}&digest={digest}"
            sh(
                [
                    "curl",
                    "-sf",
                    "-X",
                    "PUT",
                    "-H",
                    "Content-Type: application/octet-stream",
                    "--data-binary",
                    f"@{blobs / digest.removeprefix('sha256:')}",
                    target,
                ]
            )
        return time.perf_counter() - t0

    return {
        "runc run": runc_run,
        "tar | sha256sum": tar_sha,
        "curl | tar -xz": curl_tar,
        "HTTP upload": upload,
    }


def write_blobs(image: RegImage, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for digest, data in image.blobs:
        (folder / digest.removeprefix("sha256:")).write_bytes(data)
    return folder


def floor_rows() -> list[str]:
    return ["runc run", "tar | sha256sum", "curl | tar -xz", "HTTP upload"]
