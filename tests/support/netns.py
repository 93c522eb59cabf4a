"""Run code in a network namespace of its own, so tests of bridges, veths and iptables rules
leave the host's networking alone.

The namespace belongs to one thread (unshare(CLONE_NEWNET) acts on the caller only): what the
code runs there, its threads and the processes it starts (`ip`, `iptables`) see that
namespace, and it goes when the thread ends, bridges and rules with it.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
CLONE_NEWNET = 0x40000000


def in_private_netns(fn: Callable[[], T]) -> T:
    """`fn()` on a thread in a new network namespace (its loopback up)."""

    def enter() -> None:
        if ctypes.CDLL(None, use_errno=True).unshare(CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET)")
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)

    return _on_thread(enter, fn)


def inside(netns: str | os.PathLike[str], fn: Callable[[], T]) -> T:
    """`fn()` on a thread that joined the namespace at `netns`."""

    def enter() -> None:
        fd = os.open(netns, os.O_RDONLY)
        try:
            if ctypes.CDLL(None, use_errno=True).setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns {netns}")
        finally:
            os.close(fd)

    return _on_thread(enter, fn)


def _on_thread(enter: Callable[[], None], fn: Callable[[], T]) -> T:
    out: list[T] = []
    err: list[BaseException] = []

    def body() -> None:
        try:
            enter()
            out.append(fn())
        except BaseException as e:  # re-raised in the test's thread
            err.append(e)

    t = threading.Thread(target=body)
    t.start()
    t.join()
    if err:
        raise err[0]
    return out[0]


def ip_json(netns: str | os.PathLike[str], *args: str) -> list[dict[str, object]]:
    """`ip -j ARGS` inside the namespace at `netns` (a bind-mounted file)."""
    import json

    proc = subprocess.run(
        ["nsenter", f"--net={netns}", "ip", "-j", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    result: list[dict[str, object]] = json.loads(proc.stdout or "[]")
    return result
