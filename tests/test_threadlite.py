"""threadlite.py: the little of `threading` the CLI's threads need, on `_thread`."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from dockyard import threadlite as threads

# the raising target's traceback, printed by _thread, surfaces in whichever test runs next
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


def test_thread_runs_target_and_join_waits_for_it() -> None:
    out: list[int] = []
    gate = threads.Event()

    def work(n: int) -> None:
        gate.wait()
        out.append(n)

    t = threads.Thread(target=work, args=(7,))
    assert not t.is_alive()  # not started yet
    t.join(0.01)  # joining an unstarted thread returns at once
    t.start()
    t.join(0.05)
    assert t.is_alive() and out == []  # a timed join returns while the target still runs
    gate.set()
    t.join()
    assert out == [7] and not t.is_alive()


def test_thread_ends_even_when_target_raises() -> None:
    def boom() -> None:
        raise RuntimeError("x")

    t = threads.Thread(target=boom)
    t.start()
    t.join(5)
    assert not t.is_alive()


def test_event_wait_times_out_and_set_is_idempotent() -> None:
    e = threads.Event()
    start = time.monotonic()
    assert e.wait(0.05) is False
    assert time.monotonic() - start >= 0.04
    assert not e.is_set()
    e.set()
    e.set()  # a second set (the waiter's `finally`) must not release twice
    assert e.is_set() and e.wait() and e.wait(0)


def _pausing_in(codes: set[Any], pause: float) -> Callable[..., Any]:
    """A trace function that sleeps before every line of the functions of `codes`: threads
    that enter them at once run them in step, line by line, so a check-then-act window
    between two lines is hit every time instead of once in a great many runs."""

    def local(frame: Any, event: str, arg: Any) -> Callable[..., Any]:
        if event == "line":
            time.sleep(pause)
        return local

    def tracer(frame: Any, event: str, arg: Any) -> Callable[..., Any] | None:
        return local if frame.f_code in codes else None

    return tracer


def test_event_set_from_many_threads_at_once_releases_once() -> None:
    """Two setters at once (a thread's end racing a caller's set) must not both release the
    lock: the second release raises RuntimeError in the setter, or in a waiter whose own
    release then finds the lock free."""
    e = threads.Event()
    start = threading.Event()
    errors: list[BaseException] = []
    woken: list[bool] = []

    def setter() -> None:
        start.wait()
        try:
            e.set()
        except BaseException as exc:  # collected: the test fails on any
            errors.append(exc)

    def waiter() -> None:
        try:
            woken.append(e.wait(10))
        except BaseException as exc:
            errors.append(exc)

    threading.settrace(_pausing_in({threads.Event.set.__code__, threads.Event.wait.__code__}, 0.05))
    try:
        workers = [threading.Thread(target=setter) for _ in range(4)]
        workers += [threading.Thread(target=waiter) for _ in range(2)]
        for t in workers:
            t.start()
    finally:
        threading.settrace(None)  # for threads started later; the six keep theirs
    start.set()
    for t in workers:
        t.join(10)
    assert errors == [] and woken == [True, True] and e.is_set()
    assert e.wait(0)
