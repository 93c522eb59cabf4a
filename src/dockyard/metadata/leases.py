"""Leases: what an operation in flight holds against garbage collection (containerd's model).

An operation that writes content before anything references it (a build, pull, load, import,
commit or push) runs inside `MetadataStore.lease()`. While the lease lives, every resource the
stores make or use on its behalf is recorded under it (`lease_resources`): a layer row as it is
written, a snapshot as it is allocated, a blob digest *before* the blob is committed, an image
whose layers a build stands on. Garbage collection keeps whatever a live lease holds. When the
operation ends the lease and its records go in one transaction; what it made is then kept only
if an image or container references it, and the next collection takes the rest.

The current lease travels with the execution context, as containerd's travels in a Go
`context.Context` (`leases.WithLease`): asyncio tasks and `asyncio.to_thread` copy the context,
so a build's concurrent stages and worker threads hold under their build's lease without each
store call taking a lease argument. Nested `lease()` blocks join the outer lease.

Leases live in the database, so a daemon that dies mid-operation leaves its lease behind; the
next start drops every lease (their holders are gone) before it collects garbage.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from enum import StrEnum


class Kind(StrEnum):
    IMAGE = "image"  # an image ID: its config blob and every layer of its chain
    LAYER = "layer"  # a chain ID: the layer row, its snapshot and its tar blob
    CONTENT = "content"  # a blob digest (possibly not committed yet)
    SNAPSHOT = "snapshot"  # a snapshot number (active or committed)


# The lease of the operation running in this context, if any (see the module doc).
current_lease: ContextVar[str | None] = ContextVar("dockyard_lease", default=None)


@dataclass(frozen=True)
class Held:
    """Everything the live leases hold, by kind."""

    images: frozenset[str] = field(default_factory=frozenset)
    layers: frozenset[str] = field(default_factory=frozenset)
    content: frozenset[str] = field(default_factory=frozenset)
    snapshots: frozenset[int] = field(default_factory=frozenset)
