"""The container records in memory: what the metadata store holds, parsed once.

Lifecycle: loaded from the metadata store when the ContainerManager is made (one parse per
row); then the manager — the records' one writer (docs/ARCHITECTURE.md) — hands each record
here right after it stored it (`put`, from `create`, `keep` and `write`) and drops it right
after it deleted the row (`drop`), so this table is what the database holds and nothing
else writes either. Reads never touch SQLite: `ps -a` of 500 containers read and parsed
500 rows, and an inspect resolved its name by parsing them all (issue 17).

Readers get copies (`Container.copy()`): what a caller changes on a record it read stays its
own, as when every read parsed the row anew. `view()` hands out the records themselves, for
the renderers of `ps` and inspect (container_views.py), which only read them.

Writes come from worker threads too (network connect, health probes): the table has a lock
of its own, held only for the few dictionary operations of a put, a drop or an ordering.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from dockyard.engine.container_record import Container
from dockyard.errors import InvalidArgument, NotFound
from dockyard.metadata.store import ContainerRow


class ContainerRecords:
    def __init__(self, rows: Iterable[ContainerRow]) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[str, Container] = {}
        self._by_name: dict[str, str] = {}
        self._newest_first: list[str] | None = None  # IDs; None after a create or a remove
        for row in rows:
            self._store(Container.from_row(row))

    # the writer's side -------------------------------------------------------------------
    def put(self, rec: Container) -> None:
        """`rec` was just stored: it is the record from now on (a copy is kept, so the
        writer's object stays the writer's)."""
        with self._lock:
            self._store(rec.copy())

    def drop(self, cid: str) -> None:
        """The row was just deleted."""
        with self._lock:
            old = self._by_id.pop(cid, None)
            if old is not None:
                if self._by_name.get(old.name) == cid:
                    del self._by_name[old.name]
                self._newest_first = None

    def _store(self, rec: Container) -> None:
        old = self._by_id.get(rec.id)
        if old is None or old.created != rec.created:
            self._newest_first = None
        if old is not None and old.name != rec.name and self._by_name.get(old.name) == rec.id:
            del self._by_name[old.name]
        self._by_id[rec.id] = rec
        self._by_name[rec.name] = rec.id

    # readers -----------------------------------------------------------------------------
    def get(self, cid: str) -> Container | None:
        rec = self._by_id.get(cid)
        return rec.copy() if rec is not None else None

    def view(self) -> list[Container]:
        """Every record, newest first (the metadata store's `ORDER BY created DESC`), not
        copied: for readers that change nothing."""
        with self._lock:
            if self._newest_first is None:
                ordered = sorted(self._by_id.values(), key=lambda r: r.created, reverse=True)
                self._newest_first = [r.id for r in ordered]
            by_id = self._by_id
            return [by_id[cid] for cid in self._newest_first]

    def all(self) -> list[Container]:
        return [rec.copy() for rec in self.view()]

    def find(self, name_or_id: str) -> Container:
        """A container by full ID, name (with or without its `/`) or unique ID prefix, as
        dockerd's GetContainer looks it up: two dictionary lookups, then a scan of the IDs
        only for a prefix."""
        name = name_or_id.lstrip("/")
        rec = self._by_id.get(name)
        if rec is None:
            cid = self._by_name.get(name)
            rec = self._by_id.get(cid) if cid is not None else None
        if rec is None and name:
            matches = [cid for cid in list(self._by_id) if cid.startswith(name)]
            if len(matches) > 1:
                raise InvalidArgument(f"multiple IDs found with provided prefix: {name_or_id}")
            if matches:
                rec = self._by_id.get(matches[0])
        if rec is None:
            raise NotFound(f"No such container: {name_or_id}")
        return rec.copy()
