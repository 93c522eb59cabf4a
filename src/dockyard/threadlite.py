"""The little of `threading` the CLI's threads need, on `_thread`: an event and a joinable thread.

The CLI's run (its wait, pumps and signal proxy), its session server (session/h2lite.py: a
connection's end) and its context sender (session/fssend.py: a listing made ahead) each
need a one-shot "done" that another thread can wait on with a timeout. `threading` imports
functools, collections, itertools, operator, reprlib and types: 3.4 ms of every `dockyard
run` here (the minimum of 30 `python -S` starts: 5.5 ms for the run path's stdlib with it,
2.2 ms with `_thread`; issue 17 row d), 8 ms with what a build's session loads. This module
imports only `_thread`, so it sits at the package's bottom (beside errors.py) where the CLI
and the session layer may both use it. Every thread here is a daemon thread, as the ones it
replaced were: the interpreter does not wait for them at exit.
"""

from __future__ import annotations

import _thread

TYPE_CHECKING = False  # typing itself costs ~1.5 ms of start-up; mypy honours this name

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


class Event:
    """threading.Event's set/is_set/wait, on one lock held while the event is clear.

    `set` may be called from any number of threads at once: the clear-to-set change is made
    under a second lock, so the held lock is released exactly once. Without it two setters
    could both see the event clear and both release; the second release fails in the setter
    ("release unlocked lock") or, when a waiter took the lock in between, frees the lock the
    waiter holds so that the waiter's own release fails. Catching that RuntimeError in
    `set` alone would leave the waiter's failure (tests/test_threadlite.py).
    """

    def __init__(self) -> None:
        self._lock = _thread.allocate_lock()
        self._lock.acquire()
        self._setting = _thread.allocate_lock()
        self._set = False

    def set(self) -> None:
        if self._set:
            return
        with self._setting:
            if not self._set:
                self._set = True
                self._lock.release()

    def is_set(self) -> bool:
        return self._set

    def wait(self, timeout: float = -1) -> bool:
        """True once set; False when `timeout` seconds passed first (-1: no timeout)."""
        if self._set:
            return True
        if self._lock.acquire(timeout=timeout):
            self._lock.release()
            return True
        return False


class Thread:
    """A daemon thread running target(*args): start, is_alive, join(timeout)."""

    def __init__(self, target: Callable[..., Any], args: tuple[Any, ...] = ()) -> None:
        self._target = target
        self._args = args
        self._started = False
        self._done = Event()

    def start(self) -> None:
        self._started = True
        _thread.start_new_thread(self._bootstrap, ())

    def _bootstrap(self) -> None:
        try:
            self._target(*self._args)
        finally:
            self._done.set()

    def is_alive(self) -> bool:
        return self._started and not self._done.is_set()

    def join(self, timeout: float = -1) -> None:
        if self._started:
            self._done.wait(timeout)
