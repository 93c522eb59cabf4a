"""The image config document (OCI image config / Docker image JSON) as dockyard writes it.

A config we did not create is never re-serialised: its ID is the sha256 of the bytes as stored
(pitfalls.md), so loaded configs travel as bytes and are only parsed for reading. Configs we do
create are written in Docker's shape: top-level keys sorted (Docker marshals a map), the inner
`config` keys in the order of Docker's `container.Config` struct, so `docker inspect` output of a
dockyard image reads like Docker's own.
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

EMPTY_LAYER_DIFF_ID = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"

# Docker's container.Config field order; omitempty fields are dropped when empty, as Go does.
_CONFIG_FIELDS: tuple[tuple[str, Any, bool], ...] = (
    ("Hostname", "", False),
    ("Domainname", "", False),
    ("User", "", False),
    ("AttachStdin", False, False),
    ("AttachStdout", False, False),
    ("AttachStderr", False, False),
    ("ExposedPorts", None, True),
    ("Tty", False, False),
    ("OpenStdin", False, False),
    ("StdinOnce", False, False),
    ("Env", None, False),
    ("Cmd", None, False),
    ("Healthcheck", None, True),
    ("ArgsEscaped", False, True),
    ("Image", "", False),
    ("Volumes", None, False),
    ("WorkingDir", "", False),
    ("Entrypoint", None, False),
    ("OnBuild", None, False),
    ("Labels", None, False),
    ("StopSignal", "", True),
    ("Shell", None, True),
)


def normalize_container_config(cfg: dict[str, Any] | None) -> dict[str, Any]:
    """Docker-ordered copy of an image's `config` section with absent fields at their defaults."""
    cfg = cfg or {}
    out: dict[str, Any] = {}
    for name, default, omitempty in _CONFIG_FIELDS:
        value = cfg.get(name, default)
        if omitempty and not value:
            continue
        out[name] = value
    return out


# The image-spec config as BuildKit writes it (dockerspec.DockerOCIImageConfig: the OCI
# ImageConfig, then Docker's Healthcheck, OnBuild and Shell), every field omitempty.
_OCI_CONFIG_FIELDS = (
    "User",
    "ExposedPorts",
    "Env",
    "Entrypoint",
    "Cmd",
    "Volumes",
    "WorkingDir",
    "Labels",
    "StopSignal",
    "ArgsEscaped",
    "Healthcheck",
    "OnBuild",
    "Shell",
)


def oci_container_config(cfg: dict[str, Any] | None) -> dict[str, Any]:
    """The image-spec copy of a config: only its set fields, none of container.Config's."""
    cfg = cfg or {}
    return {name: cfg[name] for name in _OCI_CONFIG_FIELDS if cfg.get(name)}


def go_arch() -> str:
    """The host architecture in Go's (and OCI's) spelling."""
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}.get(
        machine, machine
    )


def now_rfc3339() -> str:
    """UTC time with nanosecond-style precision, as Go's time.RFC3339Nano prints it."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class HistoryEntry:
    created: str
    created_by: str
    empty_layer: bool = False
    comment: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"created": self.created, "created_by": self.created_by}
        if self.comment:
            out["comment"] = self.comment
        if self.empty_layer:
            out["empty_layer"] = True
        return out


@dataclass(frozen=True)
class ImageConfig:
    """A parsed image config plus the exact bytes it came from (the bytes define the ID)."""

    raw: bytes
    doc: dict[str, Any] = field(hash=False, compare=False)

    @classmethod
    def from_bytes(cls, raw: bytes) -> ImageConfig:
        doc = json.loads(raw)
        if not isinstance(doc, dict):
            raise ValueError("image config is not a JSON object")
        return cls(raw, doc)

    @property
    def container_config(self) -> dict[str, Any]:
        return normalize_container_config(self.doc.get("config"))

    @property
    def diff_ids(self) -> list[str]:
        rootfs = self.doc.get("rootfs") or {}
        return list(rootfs.get("diff_ids") or [])

    @property
    def history(self) -> list[dict[str, Any]]:
        return list(self.doc.get("history") or [])

    @property
    def created(self) -> str:
        return str(self.doc.get("created", ""))


def build_image_config(
    *,
    container_config: dict[str, Any],
    diff_ids: list[str],
    history: list[dict[str, Any]],
    created: str,
    parent: ImageConfig | None = None,
    author: str = "",
    comment: str = "",
    oci: bool = False,
) -> bytes:
    """Serialise a new image config the way Docker's legacy builder does (sorted top level),
    or with `oci` as BuildKit does (the image-spec config, no docker_version).
    `comment` is the image's own Comment (commit -m, import's message), beside history's."""
    doc: dict[str, Any] = {
        "architecture": (parent.doc.get("architecture") if parent else None) or go_arch(),
        "config": (oci_container_config if oci else normalize_container_config)(container_config),
        "created": created,
        "history": history,
        "os": (parent.doc.get("os") if parent else None) or "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    if not oci:
        doc["docker_version"] = "dockyard"
    if author:
        doc["author"] = author
    if comment:
        doc["comment"] = comment
    if parent and parent.doc.get("variant"):
        doc["variant"] = parent.doc["variant"]
    return json.dumps(dict(sorted(doc.items())), separators=(",", ":")).encode()


def chain_ids(diff_ids: list[str]) -> list[str]:
    """ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))."""
    import hashlib

    out: list[str] = []
    for diff_id in diff_ids:
        if not out:
            out.append(diff_id)
        else:
            h = hashlib.sha256(f"{out[-1]} {diff_id}".encode()).hexdigest()
            out.append(f"sha256:{h}")
    return out
