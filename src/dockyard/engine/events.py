"""The engine's event bus: every state change publishes one event; `GET /events` reads them.

Lifecycle: a component calls `publish(type, action, actor_id, attributes)` right after the
change it reports is recorded (a container's `die` after its exit code is stored, a `destroy`
after its row is gone), so a client that reacts to an event finds the state it announces.
Subscribers get the buffered past that falls inside `since`/`until`, then live events until
`until` passes or they unsubscribe. As dockerd (daemon/events/events.go), the bus keeps the
last 256 events in memory only: a daemon restart starts with an empty history. The daemon's
re-exec of itself once idle (api/idle_reexec.py) is not a restart to its clients: it carries
the buffer over (`history`, `restore`), so `events --since` answers the same across it.

The wire shape is Docker's events.Message: `Type`, `Action`, `Actor{ID, Attributes}`,
`scope`, `time`, `timeNano`, plus the deprecated `status`/`id`/`from` that container events
(and `status`/`id` that image events) still carry because older clients read them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from dockyard.errors import InvalidArgument

BUFFER = 256  # dockerd's eventsLimit
FILTERS = frozenset(
    [
        "config",
        "container",
        "daemon",
        "event",
        "image",
        "label",
        "network",
        "node",
        "plugin",
        "scope",
        "secret",
        "service",
        "type",
        "volume",
    ]
)


@dataclass(frozen=True)
class Event:
    type: str
    action: str
    actor_id: str
    attributes: dict[str, str]
    time_nano: int
    scope: str = "local"

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {}
        if self.type == "container":
            doc.update(status=self.action, id=self.actor_id, **_from(self.attributes))
        elif self.type == "image":
            doc.update(status=self.action, id=self.actor_id)
        doc.update(
            Type=self.type,
            Action=self.action,
            Actor={"ID": self.actor_id, "Attributes": dict(self.attributes)},
            scope=self.scope,
            time=self.time_nano // 1_000_000_000,
            timeNano=self.time_nano,
        )
        return doc


def _from(attributes: dict[str, str]) -> dict[str, str]:
    return {"from": attributes["image"]} if "image" in attributes else {}


@dataclass(frozen=True)
class EventFilter:
    """Docker's event filters (daemon/events/filter.go): values of one key are OR'ed, keys
    are AND'ed. `container`, `network`, `volume`, `daemon`, … match the actor's ID or `name`
    attribute by prefix, whatever the event's type (so `container=x` drops network events);
    `image` matches exactly, with or without the tag."""

    values: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: dict[str, list[str]]) -> EventFilter:
        for key in raw:
            if key not in FILTERS:
                raise InvalidArgument(f"invalid filter '{key}'")
        return cls({k: tuple(v) for k, v in raw.items() if v})

    def _exact(self, key: str, *sources: str) -> bool:
        want = self.values.get(key)
        return not want or any(w == s for w in want for s in sources)

    def _fuzzy(self, key: str, *sources: str) -> bool:
        want = self.values.get(key)
        return not want or any(s.startswith(w) for w in want for s in sources if s)

    def matches(self, ev: Event) -> bool:
        name = ev.attributes.get("name", "")
        event_ok = (
            self._fuzzy("event", ev.action)
            # dockerd #25798: these actions carry ": command" after the name
            if set(self.values.get("event", ())) & {"health_status", "exec_create", "exec_start"}
            else self._exact("event", ev.action)
        )
        image = ev.attributes.get("name" if ev.type == "image" else "image", "")
        return (
            event_ok
            and self._exact("type", ev.type)
            and self._exact("scope", ev.scope)
            and all(
                self._fuzzy(key, ev.actor_id, name)
                for key in ("container", "daemon", "network", "node", "plugin", "volume")
            )
            and all(self._fuzzy(key, ev.actor_id, name) for key in ("service", "secret", "config"))
            and self._exact("image", ev.actor_id, image, _strip_tag(ev.actor_id), _strip_tag(image))
            and self._labels(ev)
        )

    def _labels(self, ev: Event) -> bool:
        for label in self.values.get("label", ()):
            key, sep, value = label.partition("=")
            if key not in ev.attributes or (sep and ev.attributes[key] != value):
                return False
        return True


def _strip_tag(image: str) -> str:
    """`alpine:3.10` → `alpine`; a registry port or a digest is not a tag."""
    if "@" in image:
        return image.split("@", 1)[0]
    head, sep, tail = image.rpartition(":")
    return head if sep and "/" not in tail else image


class EventBus:
    def __init__(self) -> None:
        self._past: deque[Event] = deque(maxlen=BUFFER)
        self._lock = threading.Lock()
        self._subscribers: dict[asyncio.Queue[Event], asyncio.AbstractEventLoop] = {}

    def history(self) -> list[Event]:
        """The buffered past, oldest first."""
        with self._lock:
            return list(self._past)

    def restore(self, events: list[Event]) -> None:
        """Put `events` (an earlier process's `history`) before what is buffered."""
        with self._lock:
            kept = list(self._past)
            self._past.clear()
            self._past.extend([*events, *kept])

    def publish(
        self, type_: str, action: str, actor_id: str, attributes: dict[str, str] | None = None
    ) -> Event:
        """Record one event. Callable from the event loop or from a worker thread (network
        and image operations run in threads): subscribers' queues are fed on their loop."""
        with self._lock:
            ev = Event(type_, action, actor_id, dict(attributes or {}), time.time_ns())
            self._past.append(ev)
            subscribers = list(self._subscribers.items())
        try:
            here: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        for queue, loop in subscribers:
            if loop is here:
                queue.put_nowait(ev)
            else:
                loop.call_soon_threadsafe(queue.put_nowait, ev)
        return ev

    async def subscribe(
        self, since: float | None, until: float | None, filters: EventFilter
    ) -> AsyncIterator[Event]:
        """Buffered events from `since` on, then live ones, until `until` (Unix seconds).
        With neither, only live events, as dockerd streams them; `until` alone ends the
        stream at that time (a time in the past: at once, after the buffered matches)."""
        queue: asyncio.Queue[Event] = asyncio.Queue()
        with self._lock:
            self._subscribers[queue] = asyncio.get_running_loop()
            past = list(self._past)
        until_ns = int(until * 1e9) if until else None
        try:
            if since is not None or until is not None:
                since_ns = int(since * 1e9) if since else 0
                for ev in past:
                    late = until_ns is not None and ev.time_nano > until_ns
                    if ev.time_nano >= since_ns and not late and filters.matches(ev):
                        yield ev
            # Events published after the copy of the buffer wait in the queue: none is lost
            # and none is sent twice (both were taken under one lock).
            while True:
                timeout = None
                if until_ns is not None:
                    timeout = (until_ns - time.time_ns()) / 1e9
                    if timeout <= 0:
                        return
                try:
                    ev = await asyncio.wait_for(queue.get(), timeout)
                except TimeoutError:
                    return
                if until_ns is not None and ev.time_nano > until_ns:
                    return
                if filters.matches(ev):
                    yield ev
        finally:
            with self._lock:
                self._subscribers.pop(queue, None)


def dump_history(events: list[Event]) -> bytes:
    """`events` as JSON, for `load_history` in the process that comes after this one."""
    import json

    return json.dumps([dataclasses.asdict(ev) for ev in events]).encode()


def load_history(data: bytes) -> list[Event]:
    """What `dump_history` wrote; a file that is not that reads as no history."""
    import json

    try:
        rows = json.loads(data)
        return [Event(**row) for row in rows]
    except (ValueError, TypeError):
        return []
