"""Manifests and indexes: Docker image manifest v2 schema 2, OCI image manifest, Docker
manifest lists and OCI indexes, with platform selection as containerd's platforms matcher does
for the common cases (os/architecture, then variant; arm64's variant defaults to v8)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from dockyard.errors import InvalidArgument, NotFound, NotSupported
from dockyard.image.config import go_arch

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
SCHEMA1 = (
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
)

MANIFEST_TYPES = (DOCKER_MANIFEST, OCI_MANIFEST)
INDEX_TYPES = (DOCKER_LIST, OCI_INDEX)
ACCEPT = ", ".join((DOCKER_MANIFEST, DOCKER_LIST, OCI_MANIFEST, OCI_INDEX))
LAYER_TYPES = (
    DOCKER_LAYER_GZIP,
    DOCKER_FOREIGN_LAYER,
    OCI_LAYER,
    OCI_LAYER_GZIP,
    OCI_LAYER_ZSTD,
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
)


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: dict[str, Any] | None = None
    urls: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, doc: Any) -> Descriptor:
        if not isinstance(doc, dict) or not isinstance(doc.get("digest"), str):
            raise InvalidArgument("malformed manifest: a descriptor lacks its digest")
        return cls(
            str(doc.get("mediaType", "")),
            doc["digest"],
            int(doc.get("size", -1)),
            doc.get("platform") if isinstance(doc.get("platform"), dict) else None,
            tuple(doc.get("urls") or ()),
        )

    def to_json(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "size": self.size, "digest": self.digest}


@dataclass(frozen=True)
class Manifest:
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]


@dataclass(frozen=True)
class Index:
    media_type: str
    manifests: tuple[Descriptor, ...]


def sniff_media_type(raw: bytes, header: str) -> str:
    """The media type a registry declared, or the document's own `mediaType` when the header is
    missing or generic (some registries answer application/json)."""
    header = header.split(";", 1)[0].strip()
    if header in MANIFEST_TYPES + INDEX_TYPES + SCHEMA1:
        return header
    try:
        doc = json.loads(raw)
    except ValueError:
        raise InvalidArgument("registry returned a manifest that is not JSON") from None
    if isinstance(doc, dict):
        mt = doc.get("mediaType")
        if isinstance(mt, str) and mt:
            return mt
        if "manifests" in doc:
            return OCI_INDEX
        if "layers" in doc and "config" in doc:
            return OCI_MANIFEST
        if doc.get("schemaVersion") == 1:
            return SCHEMA1[0]
    return header


def parse(raw: bytes, media_type: str) -> Manifest | Index:
    if media_type in SCHEMA1:
        raise NotSupported(
            "this image uses the deprecated Docker image manifest v2 schema 1, which dockyard "
            "does not pull; push it again with a current docker to convert it"
        )
    try:
        doc = json.loads(raw)
    except ValueError:
        raise InvalidArgument("registry returned a manifest that is not JSON") from None
    if not isinstance(doc, dict):
        raise InvalidArgument("malformed manifest: not a JSON object")
    if media_type in INDEX_TYPES:
        return Index(media_type, tuple(Descriptor.from_json(d) for d in doc.get("manifests") or []))
    if media_type in MANIFEST_TYPES:
        layers = tuple(Descriptor.from_json(d) for d in doc.get("layers") or [])
        for layer in layers:
            if layer.media_type and layer.media_type not in LAYER_TYPES:
                raise NotSupported(f"unsupported layer media type {layer.media_type}")
        return Manifest(media_type, Descriptor.from_json(doc.get("config")), layers)
    raise NotSupported(f"unsupported manifest media type {media_type!r}")


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    @classmethod
    def parse(cls, text: str) -> Platform:
        parts = [p for p in text.strip().lower().split("/")]
        if not text.strip():
            return host_platform()
        if len(parts) == 1:
            # "amd64" alone means linux/amd64 to Docker; "linux" alone means the host's arch.
            return cls("linux", go_arch()) if parts[0] == "linux" else cls("linux", parts[0])
        if len(parts) > 3 or not all(parts):
            raise InvalidArgument(f"invalid platform {text!r}: expected os/arch[/variant]")
        return _normalise(cls(parts[0], parts[1], parts[2] if len(parts) == 3 else ""))

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)

    def matches(self, desc: dict[str, Any]) -> bool:
        other = _normalise(
            Platform(
                str(desc.get("os", "")),
                str(desc.get("architecture", "")),
                str(desc.get("variant", "")),
            )
        )
        if (other.os, other.architecture) != (self.os, self.architecture):
            return False
        return not self.variant or not other.variant or self.variant == other.variant


def _normalise(p: Platform) -> Platform:
    arch = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm"}.get(
        p.architecture, p.architecture
    )
    variant = p.variant
    if arch == "arm64" and variant == "v8":
        variant = ""
    return Platform(p.os, arch, variant)


def host_platform() -> Platform:
    return Platform("linux", go_arch())


def select(index: Index, want: Platform) -> Descriptor:
    for desc in index.manifests:
        if desc.platform is not None and want.matches(desc.platform):
            # Attestation manifests (BuildKit's "unknown/unknown") never match a real platform.
            return desc
    raise NotFound(f"no matching manifest for {want} in the manifest list entries")


def docker_manifest(config: Descriptor, layers: list[Descriptor]) -> bytes:
    """A schema 2 manifest, laid out as Docker's distribution marshals it (3-space indent)."""
    oci = any(layer.media_type.startswith("application/vnd.oci.") for layer in layers)
    if oci:
        doc: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "size": config.size, "digest": config.digest},
            "layers": [layer.to_json() for layer in layers],
        }
    else:
        doc = {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": config.to_json(),
            "layers": [layer.to_json() for layer in layers],
        }
    return json.dumps(doc, indent=3).encode()
