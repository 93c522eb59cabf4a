"""An idle daemon stays lean (issue 17, row h): the engine and the API app, as a daemon makes
them, load no builder, Dockerfile frontend, registry client (httpx) or tar archive module
until a request needs one; and the API gives freed memory back once it is quiet."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from dockyard.api import memtrim

# what the first build, pull/push or save/load loads (2.8, 1.4 and 0.3 MiB of modules)
LAZY = (
    "dockyard.builder.builder",
    "dockyard.frontend.parser",
    "dockyard.registry.client",
    "httpx",
    "tarfile",
)

_PROBE = """
import asyncio, sys
from pathlib import Path
from dockyard.api.server import create_app
from dockyard.engine.engine import Engine

async def main():
    engine = await asyncio.to_thread(Engine, Path(sys.argv[1]))
    try:
        create_app(engine)
        await engine.start()
        print(" ".join(m for m in sys.argv[2:] if m in sys.modules))
    finally:
        await engine.close()

asyncio.run(main())
"""


@pytest.mark.root
def test_an_idle_daemon_loads_no_builder_registry_or_archive_code(engine_root: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(engine_root), *LAZY],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == []


def test_the_trimmer_trims_once_requests_stop() -> None:
    calls: list[int] = []

    def trim(pad: int) -> int:
        calls.append(pad)
        return 1

    async def main() -> None:
        trimmer = memtrim.QuietTrimmer(delay=0.05, trim=trim)
        for _ in range(5):  # a burst of requests: one trim, after the last
            trimmer.poke()
            await asyncio.sleep(0.01)
        assert calls == []
        await asyncio.sleep(0.1)
        assert calls == [0]

    asyncio.run(main())
