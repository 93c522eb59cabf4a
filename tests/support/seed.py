"""The founding example (examples/redis-image: `apt-get install redis-server` from Debian's
mirror on the cached bookworm base) built, run and rebuilt through one client.

tests/session/test_buildx.py (docker CLI 28 + buildx) and tests/session/test_client.py
(Debian's 20.10 client with DOCKER_BUILDKIT=1) both check it; each passes its own client's
functions, so the steps and what they assert are written once.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "redis-image"
BOOKWORM = (
    Path(os.environ.get("DOCKYARD_TEST_CACHE", "/var/cache/dockyard")) / "bookworm-minbase.tar"
)


def require_seed_base() -> None:
    """Skip where the example cannot run; in CI a missing base is a failure, since
    scripts/test.sh makes it."""
    if not BOOKWORM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{BOOKWORM} is missing: scripts/test.sh makes it")
        pytest.skip("needs the cached bookworm base (scripts/bookworm-base.sh)")
    if subprocess.run(["getent", "hosts", "deb.debian.org"], capture_output=True).returncode:
        pytest.skip("Debian's mirror does not resolve here")


def check_seed_example(
    tag: str,
    build: Callable[[str, Path], str],
    docker: Callable[..., str],
    attempt: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    """`build(tag, context)` returns the client's progress output (and fails the test on a
    failed build); `docker(*args)` runs a command that must succeed; `attempt(*args)` one that
    may fail (the ping while redis starts)."""
    require_seed_base()
    docker("import", str(BOOKWORM), "debian:bookworm")
    out = build(tag, EXAMPLE)
    assert "[2/2] RUN apt-get update && apt-get install -y redis-server" in out, out
    server = f"{tag}-server"
    docker("run", "-d", "--name", server, tag)
    try:
        deadline = time.monotonic() + 30
        while True:
            proc = attempt("exec", server, "redis-cli", "ping")
            if proc.stdout == "PONG\n" or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert proc.stdout == "PONG\n", proc.stderr
    finally:
        docker("rm", "-f", server)
    again = build(tag, EXAMPLE)
    assert again.count("CACHED") == 1, again
