"""Row g of issue 17: pull of ~100 MiB in 5 layers from a local registry, dockyard against
the reference dockerd (Debian docker.io 20.10), engines alternating run by run.

The image: the bookworm minbase rootfs (tests' cache) as the base layer and four layers of
generated files, half incompressible and half text, gzip-compressed once and cached under
/var/cache/dockyard/bench-pull (the generation takes a while; the pulls do not). The registry
is the CNCF distribution server on 127.0.0.1 (tests/registry/support.py), pushed to with
plain HTTP calls. Before each timed pull the image is removed (`rmi` + `image prune`), so every
run downloads, decompresses and extracts all five layers. The floor beside it: `curl | tar -xz`
of the five blobs one after the other into a scratch directory.

Usage: .venv/bin/python bench/bench_pull.py [--runs N] [--no-docker] [--mib M]
Not a test: prints medians (seconds) with min/max, and the load average.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import short_tmp
from tests.registry.support import RegImage, Registry, make_image
from tests.support.daemons import DockyardDaemon, ReferenceDockerd
from tests.support.rootfs import CACHE_DIR

BASE_TAR = CACHE_DIR / "bookworm-minbase.tar"
REPO = "bench/pull"


def _gen_layer(i: int, mib: int) -> bytes:
    """A layer of `mib` MiB of files: half random bytes (incompressible, as binaries and
    compressed assets are), half text (as sources and docs are)."""
    rng = random.Random(i)
    words = [
        bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9)))
        for _ in range(2000)
    ]
    out = Path(short_tmp("pullgen-")) / "layer.tar"
    out.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        n = 0
        budget = mib << 20
        while budget > 0:
            size = min(budget, rng.choice((4 << 10, 32 << 10, 256 << 10, 1 << 20)))
            if n % 2:
                data = rng.randbytes(size)
            else:
                data = b" ".join(rng.choice(words) for _ in range(size // 5))[:size]
            info = tarfile.TarInfo(f"opt/layer{i}/d{n % 17}/f{n}")
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 1700000000
            tar.addfile(info, io.BytesIO(data))
            budget -= size
            n += 1
    data = out.read_bytes()
    shutil.rmtree(out.parent, ignore_errors=True)
    return data


def image(mib: int) -> RegImage:
    """The benchmark image, made once per size and kept in the test cache."""
    cache = CACHE_DIR / f"bench-pull-{mib}"
    meta = cache / "image.json"
    if meta.exists():
        doc = json.loads(meta.read_text())
        blobs = [(d, (cache / d.removeprefix("sha256:")).read_bytes()) for d in doc["blobs"]]
        return RegImage(
            (cache / "config").read_bytes(),
            blobs,
            doc["diff_ids"],
            (cache / "manifest").read_bytes(),
            doc["manifest_type"],
            "amd64",
        )
    layers = [BASE_TAR.read_bytes()] + [_gen_layer(i, mib) for i in range(1, 5)]
    img = make_image(layers)
    cache.mkdir(parents=True, exist_ok=True)
    for digest, data in img.blobs:
        (cache / digest.removeprefix("sha256:")).write_bytes(data)
    (cache / "config").write_bytes(img.config)
    (cache / "manifest").write_bytes(img.manifest)
    meta.write_text(
        json.dumps(
            {
                "blobs": [d for d, _ in img.blobs],
                "diff_ids": img.diff_ids,
                "manifest_type": img.manifest_type,
            }
        )
    )
    return img


def run(argv: list[str], env: dict[str, str]) -> None:
    proc = subprocess.run(argv, env=env, capture_output=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{proc.stderr.decode()}")


def floor(reg: Registry, img: RegImage, scratch: Path) -> float:
    """`curl | tar -xz` of every layer blob, one after the other."""
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    t0 = time.perf_counter()
    for digest, _ in img.blobs:
        subprocess.run(
            f"curl -s {reg.url}/v2/{REPO}/blobs/{digest} | tar -xz -C {scratch}",
            shell=True,
            check=True,
        )
    took = time.perf_counter() - t0
    shutil.rmtree(scratch, ignore_errors=True)
    return took


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--mib", type=int, default=20, help="uncompressed MiB of each generated layer")
    p.add_argument("--no-docker", action="store_true")
    args = p.parse_args()
    img = image(args.mib)
    total = sum(len(b) for _, b in img.blobs)
    print(f"image: {len(img.blobs)} layers, {total / (1 << 20):.1f} MiB compressed")
    print(f"load average at start: {os.getloadavg()}")
    base = short_tmp("benchpull-")
    reg = Registry(base / "reg").start()
    dy = DockyardDaemon(base / "dy").start()
    engines: list[tuple[str, list[str], dict[str, str]]] = [
        ("dockyard", [str(Path(sys.executable).parent / "dockyard")], dy.env())
    ]
    ref: ReferenceDockerd | None = None
    try:
        reg.put_image(REPO, "latest", img)
        name = f"{reg.host}/{REPO}:latest"
        if not args.no_docker and ReferenceDockerd.available():
            ref = ReferenceDockerd(base / "ref").start()
            engines.append(("dockerd 20.10", ["docker"], ref.env()))
        samples: dict[str, list[float]] = {e[0]: [] for e in engines}
        samples["floor: curl | tar -xz"] = []
        for _ in range(args.runs):
            for label, client, env in engines:
                run([*client, "rmi", "-f", name], env) if _has(client, env, name) else None
                run([*client, "image", "prune", "-f"], env)
                t0 = time.perf_counter()
                run([*client, "pull", "-q", name], env)
                samples[label].append(time.perf_counter() - t0)
            samples["floor: curl | tar -xz"].append(floor(reg, img, base / "floor"))
        print(f"load average at end: {os.getloadavg()}")
        print(f"{'engine':28s} {'median':>8s} {'min':>8s} {'max':>8s}")
        for label, xs in samples.items():
            print(f"{label:28s} {statistics.median(xs):8.3f} {min(xs):8.3f} {max(xs):8.3f}")
        if "dockerd 20.10" in samples:
            ratio = statistics.median(samples["dockyard"]) / statistics.median(
                samples["dockerd 20.10"]
            )
            print(f"dockyard / dockerd: {ratio:.2f} (target <= 0.8)")
    finally:
        if ref is not None:
            ref.cleanup()
        dy.cleanup()
        reg.cleanup()
        shutil.rmtree(base, ignore_errors=True)


def _has(client: list[str], env: dict[str, str], name: str) -> bool:
    return (
        subprocess.run([*client, "image", "inspect", name], env=env, capture_output=True).returncode
        == 0
    )


if __name__ == "__main__":
    main()
