"""`docker images`: the image summaries, with Docker's filters (daemon/images/images.go).

The Engine API's `GET /images/json` and the Python API's `images()` both list through
`list_images`, so both show the same images (an untagged image a build made on the way, with
children, only with `all`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from dockyard.engine.filters import labels_match
from dockyard.errors import InvalidArgument
from dockyard.image.reference import parse_reference

if TYPE_CHECKING:
    from dockyard.engine.engine import Engine

_IMAGE_FILTERS = ("reference", "dangling", "label", "before", "since")


def _check_filters(filters: dict[str, list[str]]) -> None:
    for key in filters:
        if key not in _IMAGE_FILTERS:
            raise InvalidArgument(f"invalid filter '{key}'")


def _go_path_match(pattern: str, name: str) -> bool:
    """Go's path.Match, which `reference.FamiliarMatch` uses: `*` and `?` stop at `/`."""
    rx = ""
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            rx += "[^/]*"
        elif c == "?":
            rx += "[^/]"
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                return False
            body = pattern[i + 1 : end]
            rx += "[" + ("^" + body[1:] if body.startswith("^") else body) + "]"
            i = end
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            rx += re.escape(pattern[i])
        else:
            rx += re.escape(c)
        i += 1
    return re.fullmatch(rx, name) is not None


def _reference_matches(pattern: str, tag: str) -> bool:
    ref = parse_reference(tag)
    return _go_path_match(pattern, ref.familiar()) or _go_path_match(
        pattern, ref.familiar_repository
    )


def _bool_filter(values: list[str], key: str) -> bool:
    if len(values) != 1 or values[0].lower() not in ("true", "1", "false", "0"):
        raise InvalidArgument(f"invalid filter '{key}={','.join(values)}'")
    return values[0].lower() in ("true", "1")


def list_images(
    engine: Engine, filters: dict[str, list[str]], *, show_all: bool = False
) -> list[dict[str, Any]]:
    """The summaries `GET /images/json` answers with (`show_all`: intermediate images too)."""
    _check_filters(filters)
    dangling = _bool_filter(filters["dangling"], "dangling") if "dangling" in filters else None
    bounds = {
        k: engine.images.summary(engine.images.resolve(filters[k][0]))["Created"]
        for k in ("before", "since")
        if filters.get(k)
    }
    out = []
    for image_id in engine.meta.image_ids():
        summary = engine.images.summary(image_id)
        tags: list[str] = summary["RepoTags"]
        if "before" in bounds and summary["Created"] >= bounds["before"]:
            continue
        if "since" in bounds and summary["Created"] <= bounds["since"]:
            continue
        if filters.get("label") and not labels_match(summary.get("Labels"), filters["label"]):
            continue
        if filters.get("reference"):
            tags = [t for t in tags if any(_reference_matches(p, t) for p in filters["reference"])]
            if not tags:
                continue
            summary["RepoTags"] = tags
        if dangling is True and tags:
            continue
        if dangling is False and not tags:
            continue
        if not tags and not show_all and engine.meta.image_children(image_id):
            continue  # an intermediate image of a build: only `images -a` shows it
        out.append(summary)
    return out
