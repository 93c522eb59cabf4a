"""Docker's JSON progress messages (moby pkg/jsonmessage, pkg/progress) for pulls and pushes.

The docker CLI redraws a line per `id` from `progressDetail` when it writes to a terminal and
prints `progress` (the server-rendered bar) otherwise, so both are sent as Docker sends them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

Emit = Callable[[dict[str, Any]], None]
_UNITS = ("B", "kB", "MB", "GB", "TB", "PB")


def human_size(n: float) -> str:
    """go-units HumanSize: decimal units, 4 significant digits (`2.811MB`, `527B`)."""
    i = 0
    while n >= 1000 and i < len(_UNITS) - 1:
        n /= 1000.0
        i += 1
    return f"{n:.4g}{_UNITS[i]}"


def progress_bar(current: int, total: int) -> str:
    """JSONProgress.String for a wide terminal (the daemon renders at width 200)."""
    if current <= 0 and total <= 0:
        return ""
    if total <= 0:
        return f"{human_size(current):>8}"
    pct = min(int(current / total * 100) // 2, 50)
    bar = "[" + "=" * pct + ">" + " " * (50 - pct) + "] "
    numbers = f"{human_size(current):>8}/{human_size(total)}"
    if current > total:
        numbers = f"{human_size(current):>8}"
    return bar + numbers


def status(ident: str, text: str) -> dict[str, Any]:
    return {"status": text, "progressDetail": {}, "id": ident}


def progress(ident: str, text: str, current: int, total: int) -> dict[str, Any]:
    return {
        "status": text,
        "progressDetail": {"current": current, "total": total},
        "progress": progress_bar(current, total),
        "id": ident,
    }


class Throttle:
    """At most one progress message per interval (Docker's progress reader rate-limits too);
    the final value always goes out."""

    def __init__(self, interval: float = 0.1) -> None:
        self.interval = interval
        self._last = 0.0

    def ready(self, final: bool = False) -> bool:
        now = time.monotonic()
        if final or now - self._last >= self.interval:
            self._last = now
            return True
        return False
