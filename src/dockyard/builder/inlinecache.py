"""Inline build cache (`--cache-to type=inline`, `BUILDKIT_INLINE_CACHE=1`): the exported
image's config records the step cache key of each of its history entries, so the image, pushed
and pulled elsewhere, serves `--cache-from` there (builder/executor.py) for exactly the steps
whose inputs are the same.

BuildKit writes its cache records under the config key `moby.buildkit.cache.v0` (its LLB
cache keys and layer digests, cache/remotecache/inline); our keys are of our step inputs
(builder/cachelog.StepInputs), so they go under a name of ours and neither builder misreads
the other's: an image BuildKit made with inline cache is no cache source here, as an image
without one is none to BuildKit.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

CONFIG_KEY = "dockyard.cache.v0"


def recorded_keys(doc: Mapping[str, Any]) -> list[str] | None:
    """The keys an image config records, one per history entry ("" for an entry without
    one, such as its base's), or None when it records none or not in our shape."""
    value = doc.get(CONFIG_KEY)
    if not isinstance(value, list) or not all(isinstance(k, str) for k in value):
        return None
    return list(value)


def with_keys(raw_config: bytes, keys: Sequence[str]) -> bytes:
    """The config `raw_config` with `keys` recorded (a new image: the config is its ID)."""
    doc = json.loads(raw_config)
    doc[CONFIG_KEY] = list(keys)
    return json.dumps(doc, separators=(",", ":")).encode()


def keys_of_chain(history_len: int, chain: Sequence[tuple[int, int, str | None]]) -> list[str]:
    """The key of each history entry from an image's chain of step images: for each image,
    (its history length, its parent's history length, the cache key it was stored under).
    An image that added exactly one entry gives that entry its key."""
    keys = [""] * history_len
    for length, parent_length, key in chain:
        if key and length == parent_length + 1 and 0 < length <= history_len:
            keys[length - 1] = keys[length - 1] or key
    return keys
