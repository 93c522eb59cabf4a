"""HEALTHCHECK: the probe runs as an exec on schedule; the verdict lives in State.Health.

Docker's rules (moby daemon/health.go): the first probe runs one interval after start;
status is "starting" until the first success (failures inside the start period do not
count), "healthy" after a success, "unhealthy" after `Retries` consecutive failures; a
probe that exceeds the timeout fails with exit code -1; the log keeps the last 5 results.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from dockyard.engine.container_state import Health, HealthResult
from dockyard.image.config import now_rfc3339

if TYPE_CHECKING:
    from dockyard.engine.containers import ContainerManager

DEFAULT_INTERVAL = 30.0
DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 3


def _seconds(ns: int, default: float) -> float:
    return float(ns) / 1e9 if ns else default


def probe_command(test: list[str]) -> list[str] | None:
    if not test or test[0] == "NONE":
        return None
    if test[0] == "CMD":
        return list(test[1:])
    if test[0] == "CMD-SHELL":
        return ["/bin/sh", "-c", " ".join(test[1:])]
    return list(test)  # Docker treats a bare list as CMD


async def run_healthchecks(mgr: ContainerManager, cid: str) -> None:
    rec = mgr.get(cid)
    if rec is None or rec.config.healthcheck is None:
        return
    hc = rec.config.healthcheck
    cmd = probe_command(list(hc.test))
    if cmd is None:
        return
    interval = _seconds(hc.interval, DEFAULT_INTERVAL)
    timeout = _seconds(hc.timeout, DEFAULT_TIMEOUT)
    start_period = _seconds(hc.start_period, 0.0)
    retries = hc.retries or DEFAULT_RETRIES
    started = time.monotonic()
    health = Health("starting")
    mgr.set_health(cid, health)
    while True:
        await asyncio.sleep(interval)
        rec = mgr.get(cid)
        if rec is None or not rec.state.alive:
            return
        if rec.state.paused:
            continue
        begin = now_rfc3339()
        code, output = await mgr.execs.run_captured(cid, cmd, timeout)
        result = HealthResult(begin, now_rfc3339(), code, output)
        counts = time.monotonic() - started >= start_period
        health = health.probed(result, retries=retries, counts=counts)
        mgr.set_health(cid, health)
