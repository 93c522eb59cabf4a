"""Starting the kernel's wait for a cgroup attach early, while runc is still starting.

Every container start (and every exec) has runc write the new process's pid into the
container's `cgroup.procs`. The kernel serialises such moves with one global per-CPU rwsem
(`cgroup_threadgroup_rwsem`, kernel/cgroup/cgroup.c), and its writer first waits for an RCU
grace period unless a writer came within about one grace period before (rcu_sync,
kernel/rcu/sync.c). Measured here (6.18, cgroup v1): a write after 0.2 s idle took 7.4 ms
median (up to 18), the same write repeated at once 0.09 ms, 5 and 20 ms later 0.1-0.15 ms,
50 ms later 7.4 ms again. In `runc run` that wait sat between its init's start and the
bootstrap data it waits for: 10-12 ms of a ~40 ms runc, in series with everything else on
`run --rm` (issue 17 row d).

So the daemon makes such writes itself as a start begins: it writes its own pid into the
cgroup it is already in (a move to where it is: nothing changes), in a thread of its own.
The first write waits the grace period while the monitor and runc start; the thread then
writes again every few milliseconds (~0.1 ms each, the window still open) until a moment
after the last kick, so that runc's own write, 10-30 ms later depending on the load, finds
the window open however long runc took to get there. One write per kick was not enough: a
run that came 25 ms after it under load still waited 31 ms. Nothing depends on it: where
the file is not writable (a read-only /sys, a cgroup we may not write), nothing is done.
"""

from __future__ import annotations

import os
import threading
import time

_ROOT = "/sys/fs/cgroup"


def procs_candidates(proc_self_cgroup: str, root: str = _ROOT) -> list[str]:
    """The `cgroup.procs` files of the cgroups the lines of /proc/self/cgroup name, in the
    usual mount places (v1: `ROOT/<controllers>`, named hierarchies by their name; v2:
    `ROOT/unified` on a hybrid host, else `ROOT`)."""
    out: list[str] = []
    for line in proc_self_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3 or not parts[2].startswith("/"):
            continue
        _, controllers, path = parts
        rel = path.lstrip("/")
        if controllers:
            out.append(os.path.join(root, controllers.removeprefix("name="), rel, "cgroup.procs"))
        else:
            out.append(os.path.join(root, "unified", rel, "cgroup.procs"))
            out.append(os.path.join(root, rel, "cgroup.procs"))
    return out


class AttachWarmer:
    """`kick()`: keep the window open from now until `hold` seconds after the last kick,
    with a write every `interval` seconds in a thread of its own (see the module's doc)."""

    def __init__(
        self, procs: str | None = None, *, hold: float = 0.06, interval: float = 0.005
    ) -> None:
        # A test's fixed path; else our cgroup is looked up at each burst's start, not kept:
        # a daemon moved to another cgroup meanwhile (an admin, a service manager) must not
        # be moved back by a stale path.
        self._fixed = procs
        self._procs: str | None = procs
        self._unwritable = False  # a fixed path that failed: never again
        self.hold = hold
        self.interval = interval
        self._lock = threading.Lock()
        self._until = 0.0
        self._running = False

    def kick(self) -> None:
        with self._lock:
            if self._unwritable:
                return  # nothing we may write here
            self._until = time.monotonic() + self.hold
            if self._running:
                return
            self._running = True
        threading.Thread(target=self._keep_open, name="cgroup-warm", daemon=True).start()

    def warm(self) -> bool:
        """One write (blocking); False where there is nothing we may write."""
        if self._procs is None:
            self._procs = _own_procs() or ""
        if not self._procs:
            return False
        try:
            fd = os.open(self._procs, os.O_WRONLY | os.O_CLOEXEC)
        except OSError:
            self._procs = ""
            if self._fixed is not None:
                self._unwritable = True
            return False
        try:
            os.write(fd, b"%d" % os.getpid())
            return True
        except OSError:
            return False
        finally:
            os.close(fd)

    def _keep_open(self) -> None:
        self._procs = self._fixed  # our own cgroup: found afresh for each burst
        while True:
            ok = False  # also when warm() raises: the loop ends and `_running` is cleared
            try:
                ok = self.warm()
            finally:
                with self._lock:
                    # decided under the lock: a kick meanwhile either extends this loop or
                    # finds it gone and starts another
                    stop = not ok or time.monotonic() >= self._until
                    if stop:
                        self._running = False
            if stop:
                return
            time.sleep(self.interval)


def _own_procs() -> str | None:
    try:
        with open("/proc/self/cgroup") as f:
            text = f.read()
    except OSError:
        return None
    for path in procs_candidates(text):
        if os.access(path, os.W_OK):
            return path
    return None
