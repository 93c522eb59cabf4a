"""runtime/cgroupwarm.py: the write that starts the kernel's cgroup-attach grace period early."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from dockyard.runtime.cgroupwarm import AttachWarmer, procs_candidates

HYBRID = """9:name=systemd:/
4:memory:/process_api/21e6
1:cpu,cpuacct:/a/b
0::/
"""


def test_candidates_follow_the_usual_mount_places() -> None:
    assert procs_candidates(HYBRID, "/R") == [
        "/R/systemd/cgroup.procs",
        "/R/memory/process_api/21e6/cgroup.procs",
        "/R/cpu,cpuacct/a/b/cgroup.procs",
        "/R/unified/cgroup.procs",
        "/R/cgroup.procs",
    ]
    assert procs_candidates("0::/user.slice/x.service\n", "/R") == [
        "/R/unified/user.slice/x.service/cgroup.procs",
        "/R/user.slice/x.service/cgroup.procs",
    ]
    # a cgroup namespace's view from outside ("/../x") or garbage names nothing
    assert procs_candidates("3:pids:../x\nnonsense\n", "/R") == []


def test_a_file_it_may_not_write_is_left_alone_for_good(tmp_path: Path) -> None:
    warmer = AttachWarmer(str(tmp_path / "absent" / "cgroup.procs"))
    assert warmer.warm() is False
    assert warmer.warm() is False  # remembered: no second attempt
    warmer.kick()  # nor does the background one raise


def _own_cgroups() -> str:
    return Path("/proc/self/cgroup").read_text()


@pytest.mark.skipif(os.geteuid() != 0, reason="writes a cgroup.procs file (root)")
def test_the_write_moves_nothing_and_makes_the_next_attach_quick() -> None:
    before = _own_cgroups()
    warmer = AttachWarmer()
    if not warmer.warm():
        pytest.skip("no writable cgroup.procs of our own here")
    assert _own_cgroups() == before  # a move to where we are
    # Right after one writer, the next needs no grace period: ~0.1 ms, where one after an
    # idle moment waits ~7 ms here. Generous bound for a loaded machine; best of five.
    procs = warmer._procs
    assert procs
    best = min(_timed_write(procs) for _ in range(5))
    assert best < 0.005


def _timed_write(procs: str) -> float:
    fd = os.open(procs, os.O_WRONLY)
    try:
        t0 = time.perf_counter()
        os.write(fd, b"%d" % os.getpid())
        return time.perf_counter() - t0
    finally:
        os.close(fd)


class _Counting(AttachWarmer):
    def __init__(self) -> None:
        super().__init__("unused", hold=0.03, interval=0.002)
        self.writes = 0

    def warm(self) -> bool:
        self.writes += 1
        return True


def _settle(warmer: _Counting, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while warmer._running and time.monotonic() < deadline:
        time.sleep(0.005)
    assert not warmer._running


def test_the_window_is_kept_open_until_a_moment_after_the_last_kick() -> None:
    # One write per kick let a runc that came 25 ms later wait a whole grace period (31 ms):
    # the writes go on, a few ms apart, until `hold` after the last kick
    warmer = _Counting()
    warmer.kick()
    warmer.kick()  # the one thread keeps going; no second one
    time.sleep(0.015)
    warmer.kick()  # extends it
    t0 = time.monotonic()
    _settle(warmer)
    assert time.monotonic() - t0 >= 0.02
    assert warmer.writes >= 5
    done = warmer.writes
    time.sleep(0.02)
    assert warmer.writes == done  # and then it stops
    warmer.kick()  # a later kick starts it again
    _settle(warmer)
    assert warmer.writes > done


def test_our_cgroup_is_looked_up_afresh_for_each_burst(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A daemon moved to another cgroup between two starts must not be moved back: the path
    # of the first burst is not kept for the next
    from dockyard.runtime import cgroupwarm

    first, second = tmp_path / "a.procs", tmp_path / "b.procs"
    first.write_text("")
    second.write_text("")
    where = [str(first)]
    monkeypatch.setattr(cgroupwarm, "_own_procs", lambda: where[0])
    warmer = AttachWarmer(hold=0.01, interval=0.002)
    warmer.kick()
    deadline = time.monotonic() + 5
    while warmer._running and time.monotonic() < deadline:
        time.sleep(0.005)
    assert first.read_text() == str(os.getpid()) and not second.read_text()
    where[0] = str(second)
    first.write_text("")
    warmer.kick()
    deadline = time.monotonic() + 5
    while warmer._running and time.monotonic() < deadline:
        time.sleep(0.005)
    assert second.read_text() == str(os.getpid())
    assert not first.read_text()
