"""Explaining the build cache: what each step's key was made of, and why a step missed.

Every step records its inputs (parent image, instruction text, build args it could see,
digests of the files it read) under a stable identity: the build (Dockerfile name and tags)
plus the step's position. On the next build of the same Dockerfile a miss is explained by
comparing the new inputs with the recorded ones. The table lives in the daemon's metadata
database but belongs to the builder alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from dockyard.metadata.store import MetadataStore

_SCHEMA = """
CREATE TABLE IF NOT EXISTS builder_cachelog (
    build TEXT NOT NULL,
    step TEXT NOT NULL,
    inputs TEXT NOT NULL,
    PRIMARY KEY (build, step)
)
"""


@dataclass(frozen=True)
class StepInputs:
    parent: str
    instruction: str
    args: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "parent": self.parent,
            "instruction": self.instruction,
            "args": self.args,
            "files": self.files,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> StepInputs:
        return cls(
            str(doc.get("parent", "")),
            str(doc.get("instruction", "")),
            dict(doc.get("args") or {}),
            dict(doc.get("files") or {}),
        )


def _short(digest: str) -> str:
    return digest.removeprefix("sha256:")[:12] if digest else "(none)"


def explain_miss(old: StepInputs | None, new: StepInputs, no_cache: bool) -> list[str]:
    """Human-readable reasons for a cache miss, most specific first."""
    if no_cache:
        return ["--no-cache was given"]
    if old is None:
        return ["no earlier build of this step is recorded"]
    reasons: list[str] = []
    if old.parent != new.parent:
        reasons.append(f"parent image changed: {_short(old.parent)} -> {_short(new.parent)}")
    arg_changes = []
    for k in sorted(old.args.keys() | new.args.keys()):
        a, b = old.args.get(k), new.args.get(k)
        if a != b:
            arg_changes.append(f"build arg {k} changed: {a!r} -> {b!r}")
    if old.instruction != new.instruction:
        if arg_changes:
            reasons.extend(arg_changes)
        reasons.append(f"instruction changed: {old.instruction!r} -> {new.instruction!r}")
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


class CacheLog:
    def __init__(self, meta: MetadataStore) -> None:
        self.meta = meta
        with meta.transaction() as db:
            db.execute(_SCHEMA)

    def get(self, build: str, step: str) -> StepInputs | None:
        with self.meta.transaction() as db:
            row = db.execute(
                "SELECT inputs FROM builder_cachelog WHERE build = ? AND step = ?", (build, step)
            ).fetchone()
        if row is None:
            return None
        return StepInputs.from_json(json.loads(row[0]))

    def put(self, build: str, step: str, inputs: StepInputs) -> None:
        with self.meta.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO builder_cachelog VALUES (?, ?, ?)",
                (build, step, json.dumps(inputs.to_json(), sort_keys=True)),
            )
