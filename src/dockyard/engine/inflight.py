"""Work that concurrent operations share: one download per blob, one extraction per layer.

Two pulls of images with a common base layer must fetch and unpack it once (moby's transfer
manager does the same): the first asks for the key and does the work, the others wait for
it and then find the result in the store. If the one doing it fails or is cancelled (its
client went away), a waiter takes the work over instead of failing with it.

What running operations rely on is held by their leases (metadata/leases.py), so a failed
pull gives back only what no other operation holds (engine/gc.py `give_back`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


class _OwnerFailed(Exception):
    """The operation doing the work did not finish it; a waiter tries itself."""


class SharedWork:
    def __init__(self) -> None:
        self._running: dict[str, asyncio.Future[None]] = {}

    async def once(
        self, key: str, work: Callable[[], Awaitable[None]], done: Callable[[], bool]
    ) -> bool:
        """Run `work` for `key` unless `done()` already, or another task runs it (then wait
        for that one). True when this call did the work."""
        while True:
            if done():
                return False
            running = self._running.get(key)
            if running is None:
                break
            try:
                await asyncio.shield(running)
            except _OwnerFailed:
                continue
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._running[key] = future
        try:
            await work()
        except BaseException:
            future.set_exception(_OwnerFailed())
            future.exception()  # retrieved: nobody may be waiting
            raise
        else:
            future.set_result(None)
        finally:
            del self._running[key]
        return True
