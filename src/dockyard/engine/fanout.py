"""A container's output, fanned out from its monitor to every attached client.

Each client has a bounded backlog: the pump waits for the slowest one, the monitor handle
then stops reading and the monitor stops reading the container, so a client that reads
slowly slows the container (dockerd's broadcaster blocks on a full 1 MiB BytesPipe the same
way) instead of its output piling up in the daemon. After the exit a client that takes
nothing for 2 s is cut off, as moby's handleContainerExit gives its streams 2 s.
"""

from __future__ import annotations

import asyncio
from collections import deque

Chunk = tuple[int, bytes]  # (1 = stdout | 2 = stderr, data)

# Chunks a client may have waiting (the monitor reads 64 KiB at a time: about 1 MiB).
BACKLOG = 16
EXIT_GRACE = 2.0


class Subscriber:
    """One attached client's share of the output."""

    def __init__(self) -> None:
        self._items: deque[Chunk] = deque()
        self._not_empty = asyncio.Event()
        self._not_full = asyncio.Event()
        self._not_full.set()
        self._ended = False  # nothing more comes after what is queued
        self._left = False  # the client went away: nothing is kept for it
        self.taken = 0

    @property
    def full(self) -> bool:
        return len(self._items) >= BACKLOG

    async def put(self, item: Chunk) -> None:
        while self.full and not (self._ended or self._left):
            self._not_full.clear()
            await self._not_full.wait()
        if not (self._ended or self._left):
            self._items.append(item)
            self._not_empty.set()

    def end(self) -> None:
        """No more output: the client gets what is queued, then None."""
        self._ended = True
        self._not_empty.set()
        self._not_full.set()

    def leave(self) -> None:
        self._left = True
        self._items.clear()
        self._not_empty.set()
        self._not_full.set()

    async def get(self) -> Chunk | None:
        while not self._items:
            if self._ended or self._left:
                return None
            self._not_empty.clear()
            await self._not_empty.wait()
        item = self._items.popleft()
        self.taken += 1
        self._not_full.set()
        return item


class Fanout:
    def __init__(self) -> None:
        self.subscribers: list[Subscriber] = []

    def join(self) -> Subscriber:
        s = Subscriber()
        self.subscribers.append(s)
        return s

    def leave(self, s: Subscriber) -> None:
        if s in self.subscribers:
            self.subscribers.remove(s)
        s.leave()

    async def send(self, item: Chunk) -> None:
        for s in list(self.subscribers):
            await s.put(item)

    def end(self) -> None:
        for s in list(self.subscribers):
            s.end()

    async def finish(self, pump: asyncio.Task[None]) -> None:
        """Wait for `pump` (the output after the exit) while the clients take it; cut off a
        client whose backlog is full and who took nothing for EXIT_GRACE seconds."""
        while True:
            taken = {id(s): s.taken for s in self.subscribers}
            done, _ = await asyncio.wait({pump}, timeout=EXIT_GRACE)
            if done:
                await pump
                return
            for s in list(self.subscribers):
                if s.full and s.taken == taken.get(id(s), -1):
                    s.end()
