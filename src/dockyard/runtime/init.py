"""`--init`: the static `dockyard-init` binary bind-mounted at /sbin/docker-init.

The source ships as package data (runtime/data/dockyard-init.c); images have no Python and
may have no libc, so it is a static C program, built by runtime/native.py (at set-up next to
the interpreter, or on first use into the daemon's root) unless `DOCKYARD_INIT` names one.
"""

from __future__ import annotations

import os
from pathlib import Path

from dockyard.errors import NotSupported
from dockyard.runtime import native

INIT_PATH_IN_CONTAINER = "/sbin/docker-init"


def init_binary(cache_dir: Path) -> Path:
    override = os.environ.get("DOCKYARD_INIT", "")
    if override and os.access(override, os.X_OK):
        return Path(override)
    try:
        return native.find_or_build(native.INIT, cache_dir)
    except native.NativeBuildError as e:
        raise NotSupported(f"--init: {e}") from None
