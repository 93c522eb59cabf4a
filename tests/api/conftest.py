"""Fixtures for Engine API tests: a local registry (as tests/registry has)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import short_tmp
from tests.registry.support import Registry


@pytest.fixture
def registry() -> Iterator[Registry]:
    r = Registry(short_tmp("dyreg-")).start()
    try:
        yield r
    finally:
        r.cleanup()
