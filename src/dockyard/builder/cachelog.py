"""The build cache's inputs: what each step's key is made of, and why a step missed.

`StepInputs` holds everything a step's cache key is made of, and `key()` hashes exactly
those fields, so `explain_miss` can name any input that changed: the parent image, the
instruction as expanded, the history text it writes, the options that change its result
(flags, mounts, the effective network, security), the digests of the files it reads, the
config its image carries (as Docker probes its cache with the step's run config), the author
and the builder's semantics. Build args are recorded beside
them only to explain an instruction that changed: they reach the key through the expanded
instruction (and for RUN the `|N K=V` history text), never on their own, as in Docker.

Every step's inputs are recorded under a stable identity (the build's Dockerfile name and
tags plus the step's position), so the next build of the same Dockerfile can compare. The
record sits in the daemon's metadata database (`builder_cachelog`, whose schema
metadata/schema.py owns) behind `CacheLog`'s two methods; no other module reads it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from dockyard.metadata.store import MetadataStore

KEY_VERSION = 3  # bump when what `key()` hashes changes; older records explain nothing


def _files_digest(files: Mapping[str, str]) -> str:
    """One digest of a step's file digests: a COPY of a 5,000-file context spelled them
    all into the key's JSON (30 ms a build); this is one sha256 over the sorted pairs."""
    h = hashlib.sha256()
    for path in sorted(files):
        h.update(f"{path}\0{files[path]}\n".encode())
    return h.hexdigest()


@dataclass(frozen=True)
class StepInputs:
    parent: str  # the image the step starts from ("scratch" for none)
    instruction: str  # as expanded, as a user reads it (`COPY f /f`, `RUN |1 A=1 …`)
    args: dict[str, str] = field(default_factory=dict)  # explanation only: not in the key
    files: dict[str, str] = field(default_factory=dict)  # path -> digest of what it reads
    history: str = ""  # the `created_by` text the step's image carries
    options: dict[str, str] = field(default_factory=dict)  # flags, mounts, network, …
    config: dict[str, Any] = field(default_factory=dict)  # the config its image carries
    author: str = ""
    semantics: str = "legacy"

    def key(self) -> str:
        doc = [
            KEY_VERSION,
            self.parent,
            self.instruction,
            self.history,
            sorted(self.options.items()),
            _files_digest(self.files),
            self.config,
            self.author,
            self.semantics,
        ]
        return "sha256:" + hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()

    def link_key(self) -> str:
        """The key of a `COPY --link` step's layer, which does not depend on the parent: the
        files are copied into an empty root (BuildKit's dispatchCopy: a FileOp on
        llb.Scratch() merged onto the stage), so neither the parent image nor the config it
        carries is in it; the rest of the inputs are."""
        doc = [
            KEY_VERSION,
            "link",
            self.instruction,
            self.history,
            sorted(self.options.items()),
            _files_digest(self.files),
            self.semantics,
        ]
        return "sha256:" + hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()

    def to_json(self) -> dict[str, Any]:
        return {
            "v": KEY_VERSION,
            "parent": self.parent,
            "instruction": self.instruction,
            "args": self.args,
            "files": self.files,
            "history": self.history,
            "options": self.options,
            "config": self.config,
            "author": self.author,
            "semantics": self.semantics,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> StepInputs | None:
        """None for a record written under another key version (it cannot be compared)."""
        if doc.get("v") != KEY_VERSION:
            return None
        return cls(
            str(doc.get("parent", "")),
            str(doc.get("instruction", "")),
            dict(doc.get("args") or {}),
            dict(doc.get("files") or {}),
            str(doc.get("history", "")),
            dict(doc.get("options") or {}),
            dict(doc.get("config") or {}),
            str(doc.get("author", "")),
            str(doc.get("semantics", "")),
        )


def _short(digest: str) -> str:
    return digest.removeprefix("sha256:")[:12] if digest else "(none)"


def _changed(what: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    return [
        f"{what}{k} changed: {old.get(k)!r} -> {new.get(k)!r}"
        for k in sorted(old.keys() | new.keys())
        if old.get(k) != new.get(k)
    ]


def _file_reasons(old: StepInputs, new: StepInputs) -> list[str]:
    reasons: list[str] = []
    for path in sorted(old.files.keys() | new.files.keys()):
        a, b = old.files.get(path), new.files.get(path)
        if a == b:
            continue
        if a is None:
            reasons.append(f"file {path} added ({_short(b or '')})")
        elif b is None:
            reasons.append(f"file {path} removed (was {_short(a)})")
        else:
            reasons.append(f"file {path} changed: {_short(a)} -> {_short(b)}")
    return reasons


def explain_miss(old: StepInputs | None, new: StepInputs, no_cache: bool) -> list[str]:
    """Human-readable reasons for a cache miss, most specific first: one for every input of
    the key that differs from the recorded build's."""
    if no_cache:
        return ["--no-cache was given"]
    if old is None:
        return ["no earlier build of this step is recorded"]
    reasons: list[str] = []
    if old.parent != new.parent:
        reasons.append(f"parent image changed: {_short(old.parent)} -> {_short(new.parent)}")
    if old.instruction != new.instruction:
        reasons.extend(_changed("build arg ", old.args, new.args))
        reasons.append(f"instruction changed: {old.instruction!r} -> {new.instruction!r}")
    reasons.extend(_file_reasons(old, new))
    reasons.extend(_changed("", old.options, new.options))
    if old.config != new.config and old.parent == new.parent:
        # (another parent has another config: the parent's reason says it)
        keys = old.config.keys() | new.config.keys()
        moved = sorted(k for k in keys if old.config.get(k) != new.config.get(k))
        reasons.append("image config changed: " + ", ".join(moved))
    if old.author != new.author:
        reasons.append(f"author changed: {old.author!r} -> {new.author!r}")
    if old.semantics != new.semantics:
        reasons.append(f"builder changed: {old.semantics} -> {new.semantics}")
    if not reasons and old.history != new.history:
        # The history text follows from the inputs above; alone it means our rendering moved.
        reasons.append(f"history text changed: {old.history!r} -> {new.history!r}")
    if not reasons:
        reasons.append("inputs unchanged but the cached image is gone (removed or pruned)")
    return reasons


def changed_files(old: StepInputs | None, new: StepInputs) -> dict[str, list[str | None]]:
    """Full old/new digests of the files whose change caused a miss (for the aux message)."""
    if old is None:
        return {}
    return {
        p: [old.files.get(p), new.files.get(p)]
        for p in sorted(old.files.keys() | new.files.keys())
        if old.files.get(p) != new.files.get(p)
    }


class StepLog(Protocol):
    """Where the inputs of each build's steps are kept between builds."""

    def get(self, build: str, step: str) -> StepInputs | None: ...

    def put(self, build: str, step: str, inputs: StepInputs) -> None: ...


class BuildCache(Protocol):
    """Cache key -> the image a step made with those inputs (recorded by `ImageStore.put`)."""

    def lookup(self, key: str) -> str | None: ...

    def lookup_linked(self, link_key: str) -> str | None:
        """An image a `COPY --link` step of that `StepInputs.link_key()` made (on any
        parent): its top layer is the step's."""


class CacheLog:
    def __init__(self, meta: MetadataStore) -> None:
        self.meta = meta

    def get(self, build: str, step: str) -> StepInputs | None:
        doc = self.meta.cachelog_get(build, step)
        return None if doc is None else StepInputs.from_json(doc)

    def put(self, build: str, step: str, inputs: StepInputs) -> None:
        self.meta.cachelog_put(build, step, inputs.to_json())


class StoredCache:
    """The build cache of the metadata store: a key's image, while that image exists."""

    def __init__(self, meta: MetadataStore) -> None:
        self.meta = meta

    def lookup(self, key: str) -> str | None:
        image_id = self.meta.cache_lookup(key)
        if image_id is not None and not self.meta.has_image(image_id):
            return None
        return image_id

    def lookup_linked(self, link_key: str) -> str | None:
        image_id = self.meta.link_lookup(link_key)
        if image_id is not None and not self.meta.has_image(image_id):
            return None
        return image_id
