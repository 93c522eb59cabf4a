"""Every builder test must leave the daemon's build area clean: no step or view mounts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.daemons import mounts_under


@pytest.fixture(autouse=True)
def _no_leftover_mounts(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    # (a fresh daemon is gone by now, and its cleanup unmounts everything anyway)
    if "clients" in request.fixturenames:
        clients = request.getfixturevalue("clients")
        assert mounts_under(clients.daemon.root / "builds") == []
