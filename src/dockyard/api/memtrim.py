"""Giving the memory a request freed back to the kernel (issue 17, row h).

glibc's malloc keeps what Python frees in its arenas: the heap shrinks on its own only from
its top (M_TRIM_THRESHOLD), so pages freed below a live object, and whatever the worker
threads of `asyncio.to_thread` freed in their arenas, stay in the daemon's RSS after a build,
a pull or an export is over; with PYTHONMALLOC=malloc (api/optimized.py) Python's small
objects are among them, where pymalloc's arenas would have pinned them. `malloc_trim(0)`
hands every free page of every arena back
(madvise, since glibc 2.8 also inside the heap), and costs well under a millisecond on the
daemon's heap (measured: 0.03-0.5 ms on 60 MiB), so the daemon calls it once the API has
been quiet for a moment after a request, and once after start-up. "Quiet" means also that
no build, pull, push, save or load is in flight: a call while a build streams (its session's
and its gRPC calls end and start around it) took ~35 ms on the loop, measured during a cold
200 MiB build, which is when the heap is largest and every loop stall delays the sync. Other
long requests (`events`, `logs -f`, attach) may last for days and hold no big heap, so they
do not hold the trim off.

Measured with bench/run.py --tiny (RSS of an idle daemon / after the workloads): 51.4 / 63.8
MiB before, see the commit for after. Other libcs (musl) have no malloc_trim: then nothing
is done.
"""

from __future__ import annotations

import asyncio
import ctypes
from collections.abc import Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from dockyard.api.helpers import Handler, is_heavy


def _libc_function(name: str) -> Callable[[int], int] | None:
    # the symbols the process already has (libc's among them): no ldconfig run
    fn: Callable[[int], int] | None = getattr(ctypes.CDLL(None), name, None)
    return fn


# glibc's mallopt parameter (malloc.h M_ARENA_MAX)
_M_ARENA_MAX = -8


def limit_arenas(count: int = 1) -> None:
    """At most `count` malloc arenas for the whole process (glibc; else nothing). Call it
    before the first thread starts: glibc fixes the limit when it makes its first extra arena.
    By default glibc gives threads up to 8 arenas per core, and each `to_thread` worker
    that once did a build step, a pull or a commit keeps a few MiB of live and fragmented
    heap in an arena of its own: bench/run.py (full sizes, one run) measured the daemon at
    81.1 MiB after the workloads with the default, 70.1 MiB with two arenas. One arena, the
    main one, is what the daemon asks for: with two, a fresh daemon after an import read
    38.8-39.3 MiB, and 40.7 and 40.9 in 2 of 40 starts (the second arena holding 2.4 MiB
    instead of 0.7; the bench's h idle row, target 40, read 40.7 once); with one, 38.7-38.9
    in 15 of 15, no second arena at all. The daemon's allocations happen under the GIL but
    for C code that releases it (zlib's inflate, hashlib, zstandard), which mostly works in
    buffers it has, so the one arena's lock is seldom contended."""
    fn: Callable[[int, int], int] | None = getattr(ctypes.CDLL(None), "mallopt", None)
    if fn is not None:
        fn(_M_ARENA_MAX, count)


def trim() -> None:
    """Return the free pages of every malloc arena to the kernel (glibc; else nothing)."""
    fn = _libc_function("malloc_trim")
    if fn is not None:
        fn(0)


class QuietTrimmer:
    """Calls `trim` `delay` seconds after a request ends, unless another ends meanwhile (one
    pending call at a time) or a heavy one (`started(heavy=True)`: a build, a transfer of
    images) is in flight: that calls it off, and the last heavy one to end sets it again.

    A full garbage collection before the trim, once the heap had grown by 50,000 blocks
    (e86c0be: a build leaves reference cycles behind), was taken out: a fresh daemon, 4 x (a
    new copy of a 5,000-file context, built twice, rmi, prune), RSS after each, two
    alternating pairs: 63.3/65.9/67.4/69.9 and 62.6/67.2/69.7/70.2 MiB with it,
    60.2/63.8/65.3/69.4 and 63.4/66.0/68.1/70.0 without; and ~30 ms of CPU per collection."""

    def __init__(self, delay: float = 0.5, trim: Callable[[int], int] | None = None) -> None:
        self.delay = delay
        self._pending: asyncio.TimerHandle | None = None
        # glibc's malloc_trim unless a test passes its own (None where the libc has none)
        self._trim = trim or _libc_function("malloc_trim")
        self._in_flight = 0

    def started(self, heavy: bool) -> None:
        """A request began; a heavy one holds the trim off while it runs."""
        if not heavy:
            return
        self._in_flight += 1
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None

    def ended(self, heavy: bool) -> None:
        """A request ended: the trim comes `delay` later, once no heavy one is in flight."""
        if heavy:
            self._in_flight -= 1
        if self._trim is None or self._in_flight > 0:
            return
        if self._pending is not None:
            self._pending.cancel()
        self._pending = asyncio.get_running_loop().call_later(self.delay, self._fire)

    def _fire(self) -> None:
        self._pending = None
        if self._trim is not None:
            self._trim(0)

    async def cleanup(self, _app: web.Application) -> None:
        """aiohttp's on_cleanup: no call after the API stopped."""
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None


def middleware(trimmer: QuietTrimmer) -> Middleware:
    """The API middleware that tells `trimmer` when each request starts and ends. Heavy are
    the requests of the routes added with `heavy=True` (api/helpers.Router): what moves the
    most through the heap, builds (the legacy endpoint, a BuildKit session and buildx's
    gRPC), pulls and imports, pushes, saves and loads."""

    @web.middleware
    async def trim_when_quiet(request: web.Request, handler: Handler) -> web.StreamResponse:
        heavy = is_heavy(request)
        trimmer.started(heavy)
        try:
            return await handler(request)
        finally:
            trimmer.ended(heavy)

    return trim_when_quiet
