"""Time write_layer_tar on 20,000 small files (80 MiB) against GNU tar and Python's tarfile.

Prints timings only; it asserts nothing. Usage: .venv/bin/python bench/bench_layer_tar.py
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from dockyard.diff.differ import write_layer_tar

FILES = 20_000
FILE_SIZE = 4096
DIRS = 200


class HashSink:
    def __init__(self) -> None:
        self.hash = hashlib.sha256()

    def write(self, data: bytes, /) -> int:
        self.hash.update(data)
        return len(data)


def make_tree(root: Path) -> None:
    payload = os.urandom(FILE_SIZE)
    for d in range(DIRS):
        sub = root / f"dir{d:03d}"
        sub.mkdir()
        for f in range(FILES // DIRS):
            (sub / f"file{f:04d}").write_bytes(payload)


def timed(label: str, fn: object) -> None:
    t0 = time.perf_counter()
    result = fn()  # type: ignore[operator]
    print(f"{label:<34} {time.perf_counter() - t0:6.2f} s  {result}")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-layer-") as tmp:
        root = Path(tmp) / "upper"
        root.mkdir()
        make_tree(root)
        print(f"{FILES} files of {FILE_SIZE} bytes in {DIRS} dirs")

        def ours() -> str:
            sink = HashSink()
            write_layer_tar(root, sink)
            return sink.hash.hexdigest()[:16]

        def gnu() -> str:
            cmd = f"tar -C {root} --numeric-owner -cf - . | sha256sum"
            return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout[:16]

        def python_tarfile() -> str:
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
                tf.add(root, arcname=".")
            return hashlib.sha256(buf.getvalue()).hexdigest()[:16]

        timed("dockyard write_layer_tar | sha256", ours)
        timed("GNU tar -cf - | sha256sum", gnu)
        if "--tarfile" in sys.argv:
            timed("python tarfile | sha256", python_tarfile)


if __name__ == "__main__":
    main()
