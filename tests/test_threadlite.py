"""threadlite.py: the little of `threading` the CLI's threads need, on `_thread`."""

from __future__ import annotations

import time

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
