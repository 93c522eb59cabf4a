"""The scratch directory these daemon tests start their daemons in."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import short_tmp
from tests.support.daemons import unmount_all_under


@pytest.fixture
def base() -> Iterator[Path]:
    """A short path (socket paths must fit sun_path), unmounted and removed afterwards."""
    path = short_tmp("dyi-")
    try:
        yield path
    finally:
        unmount_all_under(path)
        subprocess.run(["rm", "-rf", str(path)], check=False)
