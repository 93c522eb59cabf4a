"""Image references, normalised as Docker normalises them (distribution/reference).

`alpine` means `docker.io/library/alpine:latest`; `host:port/ns/name:tag` and `name@sha256:…`
are kept as given. Tags are stored in metadata under the full normalised name and shown in the
familiar short form, as Docker does (`docker images` prints `alpine`, not `docker.io/library/alpine`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dockyard.errors import InvalidArgument

DEFAULT_DOMAIN = "docker.io"
LEGACY_DOMAIN = "index.docker.io"
OFFICIAL_NAMESPACE = "library"
DEFAULT_TAG = "latest"

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_PATH_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_DOMAIN_RE = re.compile(
    r"^(?:localhost|(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
    r"|\[[a-fA-F0-9:]+\])(?::[0-9]+)?$"
)
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$")
_ID_RE = re.compile(r"^(?:sha256:)?[a-f0-9]{64}$")


@dataclass(frozen=True)
class Reference:
    """A normalised image reference; `tag` is None only when a digest pins the image."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def repository(self) -> str:
        return f"{self.domain}/{self.path}"

    @property
    def familiar_repository(self) -> str:
        if self.domain == DEFAULT_DOMAIN:
            prefix = f"{OFFICIAL_NAMESPACE}/"
            return self.path[len(prefix) :] if self.path.startswith(prefix) else self.path
        return self.repository

    def __str__(self) -> str:
        s = self.repository
        if self.tag:
            s += f":{self.tag}"
        if self.digest:
            s += f"@{self.digest}"
        return s

    def familiar(self) -> str:
        s = self.familiar_repository
        if self.tag:
            s += f":{self.tag}"
        if self.digest:
            s += f"@{self.digest}"
        return s


def parse_reference(text: str, *, default_tag: bool = True) -> Reference:
    """Parse and normalise `text`; InvalidArgument names what is wrong with it."""
    if not text:
        raise InvalidArgument(
            "invalid reference format: repository name must have at least one component"
        )
    name, digest = text, None
    if "@" in name:
        name, digest = name.split("@", 1)
        if not _DIGEST_RE.match(digest):
            raise InvalidArgument(f"invalid reference format: bad digest in {text!r}")
    tag = None
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
        if not _TAG_RE.match(tag):
            raise InvalidArgument(f"invalid reference format: bad tag in {text!r}")
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        domain, path = first, rest
        if not _DOMAIN_RE.match(domain):
            raise InvalidArgument(f"invalid reference format: bad registry host in {text!r}")
    else:
        domain, path = DEFAULT_DOMAIN, name
    if domain == LEGACY_DOMAIN:
        domain = DEFAULT_DOMAIN
    if any(c.isupper() for c in path):
        raise InvalidArgument(
            f"invalid reference format: repository name ({path}) must be lowercase"
        )
    if not _PATH_RE.match(path):
        raise InvalidArgument(f"invalid reference format: {text!r}")
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = f"{OFFICIAL_NAMESPACE}/{path}"
    if tag is None and digest is None and default_tag:
        tag = DEFAULT_TAG
    return Reference(domain, path, tag, digest)


def looks_like_image_id(text: str) -> bool:
    """A full image ID (with or without `sha256:`); short prefixes are matched by the store."""
    return bool(_ID_RE.match(text))
