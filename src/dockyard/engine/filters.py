"""Docker's `label` filter, shared by every list endpoint (containers, images, networks,
volumes): each `key` must be present and each `key=value` equal; all of them must hold
(moby api/types/filters Args.MatchKVList)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def labels_match(labels: Mapping[str, str] | None, wanted: Iterable[str]) -> bool:
    have = labels or {}
    for item in wanted:
        key, sep, value = item.partition("=")
        if key not in have or (sep and have[key] != value):
            return False
    return True
