"""HEALTHCHECK: the probe runs as an exec on schedule; the verdict lives in State.Health.

Docker's rules (moby daemon/health.go): the first probe runs one interval after start;
status is "starting" until the first success (failures inside the start period do not
count), "healthy" after a success, "unhealthy" after `Retries` consecutive failures; a
probe that exceeds the timeout fails with exit code -1; the log keeps the last 5 results.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from dockyard.image.config import now_rfc3339

if TYPE_CHECKING:
    from dockyard.engine.containers import ContainerManager

DEFAULT_INTERVAL = 30.0
DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 3
MAX_LOG = 5


def _seconds(ns: Any, default: float) -> float:
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
    rec = mgr.meta.get_container(cid)
    if rec is None or mgr.execs is None:
        return
    hc = rec.config["Config"].get("Healthcheck") or {}
    cmd = probe_command(list(hc.get("Test") or []))
    if cmd is None:
        return
    interval = _seconds(hc.get("Interval"), DEFAULT_INTERVAL)
    timeout = _seconds(hc.get("Timeout"), DEFAULT_TIMEOUT)
    start_period = _seconds(hc.get("StartPeriod"), 0.0)
    retries = int(hc.get("Retries") or DEFAULT_RETRIES)
    started = time.monotonic()
    health: dict[str, Any] = {"Status": "starting", "FailingStreak": 0, "Log": []}
    _store(mgr, cid, health)
    while True:
        await asyncio.sleep(interval)
        rec = mgr.meta.get_container(cid)
        if rec is None or not rec.state.get("Running"):
            return
        if rec.state.get("Paused"):
            continue
        begin = now_rfc3339()
        code, output = await mgr.execs.run_captured(cid, cmd, timeout)
        health["Log"] = [
            *health["Log"],
            {"Start": begin, "End": now_rfc3339(), "ExitCode": code, "Output": output},
        ][-MAX_LOG:]
        if code == 0:
            health["Status"] = "healthy"
            health["FailingStreak"] = 0
        elif time.monotonic() - started >= start_period or health["Status"] != "starting":
            health["FailingStreak"] += 1
            if health["FailingStreak"] >= retries:
                health["Status"] = "unhealthy"
        _store(mgr, cid, health)


def _store(mgr: ContainerManager, cid: str, health: dict[str, Any]) -> None:
    rec = mgr.meta.get_container(cid)
    if rec is None or not rec.state.get("Running"):
        return
    state = dict(rec.state)
    state["Health"] = {**health, "Log": list(health["Log"])}
    mgr.meta.update_container_state(cid, state)
