"""One build at a time runs the step of a given cache key.

Builds of overlapping Dockerfiles at once would otherwise all miss the cache for the steps
they share, run each of them, and keep one layer per run (a RUN's layer differs from run to
run: mtimes, its output): the second build waits for the first one's step instead and then
finds it in the cache, as BuildKit's solver merges equal vertexes. A lock, not shared work:
if the build holding it fails or its client goes away, the next one runs the step itself.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class StepLocks:
    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] = self._users.get(key, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._users[key] -= 1
            if self._users[key] == 0:  # nobody holds or waits: forget it
                del self._users[key], self._locks[key]

    def __len__(self) -> int:
        return len(self._locks)
