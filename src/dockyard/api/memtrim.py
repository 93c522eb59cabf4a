"""Giving the memory a request freed back to the kernel (issue 17, row h).

glibc's malloc keeps what Python frees in its arenas: the heap shrinks on its own only from
its top (M_TRIM_THRESHOLD), so pages freed below a live object, and whatever the worker
threads of `asyncio.to_thread` freed in their arenas, stay in the daemon's RSS after a build,
a pull or an export is over. `malloc_trim(0)` hands every free page of every arena back
(madvise, since glibc 2.8 also inside the heap), and costs well under a millisecond on the
daemon's heap (measured: 0.03-0.5 ms on 60 MiB), so the daemon calls it once the API has
been quiet for a moment after a request, and once after start-up.

Measured with bench/run.py --tiny (RSS of an idle daemon / after the workloads): 51.4 / 63.8
MiB before, see the commit for after. Other libcs (musl) have no malloc_trim: then nothing
is done.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import sys
from collections.abc import Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from dockyard.api.helpers import Handler


def _libc_function(name: str) -> Callable[[int], int] | None:
    # the symbols the process already has (libc's among them): no ldconfig run
    fn: Callable[[int], int] | None = getattr(ctypes.CDLL(None), name, None)
    return fn


# glibc's mallopt parameter (malloc.h M_ARENA_MAX)
_M_ARENA_MAX = -8


def limit_arenas(count: int = 2) -> None:
    """At most `count` malloc arenas for the whole process (glibc; else nothing). Call it
    before the first thread starts: glibc fixes the limit when it makes its first extra arena.

    By default glibc gives threads up to 8 arenas per core, and each `to_thread` worker
    that once did a build step, a pull or a commit keeps a few MiB of live and fragmented
    heap in an arena of its own: bench/run.py (full sizes, one run) measured the daemon at
    81.1 MiB after the workloads with the default, 70.1 MiB with two arenas (MALLOC_ARENA_MAX=2,
    the setting this reproduces). Most of the daemon's allocations happen under the GIL, so
    threads seldom meet on an arena's lock."""
    fn: Callable[[int, int], int] | None = getattr(ctypes.CDLL(None), "mallopt", None)
    if fn is not None:
        fn(_M_ARENA_MAX, count)


def trim() -> None:
    """Return the free pages of every malloc arena to the kernel (glibc; else nothing)."""
    fn = _libc_function("malloc_trim")
    if fn is not None:
        fn(0)


# heap growth (pymalloc blocks) since the last collection that makes a quiet moment collect
_COLLECT_AFTER_BLOCKS = 50_000


class QuietTrimmer:
    """Calls `trim` once no request has ended for `delay` seconds (one pending call at a
    time; each request that ends moves it later). Before it, a full garbage collection if
    the heap grew by `collect_after` blocks since the last: a build leaves reference cycles
    behind (the session's h2 connections, a sync's stat listing of the kept tree, 5,000
    entries), which wait for the next automatic full collection, in the middle of the next
    build, where they add to its peak heap (and pymalloc keeps an arena once a live object
    sits in it). Measured, fresh daemon, N x (a new copy of a 5,000-file context, built twice,
    rmi, prune), RSS after each, two alternating pairs: 64.5/73.7/77.6/81.3/84.6 MiB without,
    63.7/68.5/75.5/77.4/80.6 with; 65.9/73.0/76.5/80.4 without, 65.0/71.9/74.6/79.3 with. A
    full collection of a heap that size costs ~30 ms of CPU, so a quiet moment after small
    requests does not collect."""

    def __init__(
        self,
        delay: float = 0.5,
        trim: Callable[[int], int] | None = None,
        collect: Callable[[], int] = gc.collect,
        collect_after: int = _COLLECT_AFTER_BLOCKS,
    ) -> None:
        self.delay = delay
        self._pending: asyncio.TimerHandle | None = None
        # glibc's malloc_trim unless a test passes its own (None where the libc has none)
        self._trim = trim or _libc_function("malloc_trim")
        self._collect = collect
        self._collect_after = collect_after
        self._blocks = sys.getallocatedblocks()

    def poke(self) -> None:
        if self._trim is None:
            return
        if self._pending is not None:
            self._pending.cancel()
        self._pending = asyncio.get_running_loop().call_later(self.delay, self._fire)

    def _fire(self) -> None:
        self._pending = None
        if sys.getallocatedblocks() - self._blocks >= self._collect_after:
            self._collect()
            self._blocks = sys.getallocatedblocks()
        if self._trim is not None:
            self._trim(0)

    async def cleanup(self, _app: web.Application) -> None:
        """aiohttp's on_cleanup: no call after the API stopped."""
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None


def middleware(trimmer: QuietTrimmer) -> Middleware:
    """The API middleware that pokes `trimmer` after each request."""

    @web.middleware
    async def trim_when_quiet(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        finally:
            trimmer.poke()

    return trim_when_quiet
