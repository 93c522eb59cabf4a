"""Fixtures for registry tests: docker-registry instances and an in-process Engine."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.conftest import IS_ROOT, short_tmp
from tests.registry.support import Registry
from tests.support.daemons import unmount_all_under

T = TypeVar("T")


@pytest.fixture
def registry() -> Iterator[Registry]:
    r = Registry(short_tmp("dyreg-")).start()
    try:
        yield r
    finally:
        r.cleanup()


@pytest.fixture
def make_registry() -> Iterator[Callable[..., Registry]]:
    made: list[Registry] = []

    def make(**kw: Any) -> Registry:
        r = Registry(short_tmp("dyreg-"), **kw).start()
        made.append(r)
        return r

    try:
        yield make
    finally:
        for r in made:
            r.cleanup()


class EngineRunner:
    """An Engine on a temporary root, driven from synchronous tests with `run(coro)`."""

    def __init__(self, base: Path) -> None:
        from dockyard.engine.engine import Engine

        self.base = base
        self.engine = Engine(base / "root")
        self.messages: list[dict[str, Any]] = []

    def emit(self, m: dict[str, Any]) -> None:
        self.messages.append(m)

    def run(self, make: Callable[[], Awaitable[T]]) -> T:
        async def main() -> T:
            return await make()

        return asyncio.run(main())

    def statuses(self) -> list[str]:
        return [str(m.get("status", "")) for m in self.messages]

    def close(self) -> None:
        asyncio.run(self.engine.close())
        unmount_all_under(self.base)
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture
def engine_runner() -> Iterator[EngineRunner]:
    if not IS_ROOT:
        pytest.skip("needs root (overlay snapshots, private mounts)")
    r = EngineRunner(short_tmp("dyeng-"))
    try:
        yield r
    finally:
        r.close()
