"""`--cache-to type=inline` / `BUILDKIT_INLINE_CACHE=1` for a built image: the image again
with the step cache key of each history entry in its config (builder/inlinecache.py), a child
of the built one, which is what the exporter then names."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dockyard.builder.inlinecache import keys_of_chain, with_keys

if TYPE_CHECKING:
    from dockyard.engine.engine import Engine

TRUE = frozenset({"1", "t", "T", "true", "TRUE", "True"})  # Go's strconv.ParseBool


def asks_inline(build_args: dict[str, str]) -> bool:
    """BUILDKIT_INLINE_CACHE as a build arg asks for the inline cache (BuildKit's
    control.translateLegacySolveRequest)."""
    return build_args.get("BUILDKIT_INLINE_CACHE", "") in TRUE


def with_inline_cache(engine: Engine, image_id: str) -> str:
    keys_by_image = {image: key for key, image in engine.meta.cache_entries()}
    history_len = len(engine.images.config(image_id).history)
    chain: list[tuple[int, int, str | None]] = []
    current: str | None = image_id
    seen: set[str] = set()
    while current and current not in seen:
        seen.add(current)
        parent = engine.meta.image_parent(current)
        length = len(engine.images.config(current).history)
        parent_length = len(engine.images.config(parent).history) if parent else 0
        chain.append((length, parent_length, keys_by_image.get(current)))
        current = parent
    raw = with_keys(engine.content.read_bytes(image_id), keys_of_chain(history_len, chain))
    with engine.lease():  # the new config blob, until its image row references it
        return engine.images.put(raw, parent=image_id)
