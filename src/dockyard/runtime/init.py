"""`--init`: the static `dockyard-init` binary bind-mounted at /sbin/docker-init.

The source ships as package data (runtime/data/dockyard-init.c); images have no Python and
may have no libc, so it is a static C program, compiled once with `gcc -static` into the
daemon's root (or taken from `DOCKYARD_INIT` / next to the interpreter if the set-up script
built it there) and reused.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from importlib import resources
from pathlib import Path

from dockyard.errors import NotSupported

INIT_PATH_IN_CONTAINER = "/sbin/docker-init"


def init_binary(cache_dir: Path) -> Path:
    for candidate in (
        os.environ.get("DOCKYARD_INIT", ""),
        str(Path(sys.executable).parent / "dockyard-init"),
        str(cache_dir / "dockyard-init"),
    ):
        if candidate and os.access(candidate, os.X_OK):
            return Path(candidate)
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        raise NotSupported("--init needs dockyard-init; no C compiler is available to build it")
    cache_dir.mkdir(parents=True, exist_ok=True)
    source = resources.files("dockyard.runtime").joinpath("data/dockyard-init.c").read_text()
    with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
        src = Path(tmp) / "init.c"
        src.write_text(source)
        out = Path(tmp) / "dockyard-init"
        proc = subprocess.run(
            [gcc, "-static", "-O2", "-o", str(out), str(src)], capture_output=True, text=True
        )
        if proc.returncode != 0:
            raise NotSupported(f"--init: building dockyard-init failed: {proc.stderr.strip()}")
        out.replace(cache_dir / "dockyard-init")
    return cache_dir / "dockyard-init"
