"""Run the same step against several daemons at once.

A differential test builds one context on dockyard and on one or two reference dockerds;
each daemon works on its own storage, so the builds are independent and need not wait for
each other (the builder tests spent ~400 s of the suite's time in these serial builds).
Each call's result, or its exception (an assertion inside it), comes back as if it ran alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

K = TypeVar("K")
T = TypeVar("T")


def at_once(calls: Mapping[K, Callable[[], T]]) -> dict[K, T]:
    """Run each call in a thread of its own; their results by key, in the mapping's order.
    The first exception (in the mapping's order) is raised after all calls have ended, so no
    build is left running against a daemon that the test's teardown is about to stop."""
    if len(calls) <= 1:
        return {k: f() for k, f in calls.items()}
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        futures = {k: pool.submit(f) for k, f in calls.items()}
    return {k: fut.result() for k, fut in futures.items()}
