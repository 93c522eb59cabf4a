"""What a killed daemon's builds leave running: their RUN steps' runc containers.

A step runs through `runc run` in the foreground, as a child of the daemon; kill -9 of the
daemon does not kill it (`RUN sleep 90` ran on after a restart, `runc list` showing it with its
bundle gone). At start every runc container that no container record names is such a step
(exec processes are not runc containers of their own): it is killed and deleted, as
containerd deletes at start the tasks it has no record of.
"""

from __future__ import annotations

import contextlib
import logging
import signal
from collections.abc import Iterable

from dockyard.errors import DockyardError
from dockyard.runtime.runc import Runc

log = logging.getLogger("dockyard.containers")


async def remove_stray_runtimes(runc: Runc, known: Iterable[str]) -> list[str]:
    """Kill and delete the runc containers not in `known`; returns their IDs."""
    keep = set(known)
    try:
        listed = await runc.list()
    except (DockyardError, OSError, ValueError) as e:
        log.warning("listing runc containers at start: %s", e)
        return []
    removed = []
    for entry in listed:
        cid = str(entry.get("id", ""))
        if not cid or cid in keep:
            continue
        with contextlib.suppress(DockyardError, OSError):
            await runc.kill(cid, signal.SIGKILL, all=True)
        try:
            await runc.delete(cid, force=True)
        except (DockyardError, OSError) as e:
            log.warning("deleting the stray runc container %s: %s", cid[:12], e)
            continue
        log.info("removed the stray runc container %s (a build step of a previous run)", cid[:12])
        removed.append(cid)
    return removed
