"""An Engine on a temporary root, in this process (its in-process Python API), for root tests."""

from __future__ import annotations

import io
import shutil
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import IS_ROOT, short_tmp
from tests.support.daemons import unmount_all_under

if TYPE_CHECKING:
    from dockyard.engine.engine import Engine


@pytest.fixture
def engine_root() -> Iterator[Path]:
    if not IS_ROOT:
        pytest.skip("needs root (overlay snapshots, private mounts)")
    base = short_tmp("dyeng-")
    try:
        yield base / "root"
    finally:
        unmount_all_under(base)
        shutil.rmtree(base, ignore_errors=True)


def tar_of(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def context_tar(dockerfile: str, files: dict[str, bytes]) -> io.BytesIO:
    return io.BytesIO(tar_of({"Dockerfile": dockerfile.encode(), **files}))


def hold_after_first_commit(engine: Engine) -> tuple[threading.Event, threading.Event]:
    """Hold a build between two steps: its first layer committed, the image not recorded yet.
    Returns (committed: set when it is held, go: set it to let the build go on)."""
    committed = threading.Event()
    go = threading.Event()
    real_record = engine.layers.record_active  # the last part of every step's commit

    def record_then_wait(stored: Any, parents: list[str]) -> Any:
        record = real_record(stored, parents)
        if not committed.is_set():
            committed.set()
            assert go.wait(60)
        return record

    engine.layers.record_active = record_then_wait  # type: ignore[method-assign]
    return committed, go
