"""Registry settings as dockerd takes them, and the endpoints they give for a registry host.

Keys follow dockerd's daemon.json (`registry-mirrors`, `insecure-registries`,
`max-concurrent-downloads`, `max-concurrent-uploads`). Endpoint rules follow moby's
`registry/service_v2.go`:
- docker.io is served by each mirror in turn, then by `https://registry-1.docker.io`;
- a registry is insecure when configured so (a `host:port` or a CIDR) or when its address is on
  loopback (Docker's default `127.0.0.0/8`): it is tried over HTTPS without verification first,
  then over plain HTTP; any other registry is HTTPS only, verified;
- a CA bundle for a host (`<certs-dir>/<host:port>/ca.crt`, Docker's `certs.d` layout) makes
  that host HTTPS only, verified against that bundle alone, insecure or not.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockyard.errors import InvalidArgument
from dockyard.image.reference import DEFAULT_DOMAIN

DOCKER_HUB_ENDPOINT = "https://registry-1.docker.io"
DEFAULT_CERTS_DIR = Path("/etc/docker/certs.d")
_LOOPBACK = ipaddress.ip_network("127.0.0.0/8")


@dataclass(frozen=True)
class Endpoint:
    """One base URL to reach a registry; `verify` is an SSL context, or False to skip checks."""

    url: str  # scheme://host[:port], no trailing slash
    verify: ssl.SSLContext | bool
    mirror: bool = False
    fallback_http: bool = False  # an insecure registry: plain HTTP if HTTPS does not answer

    @property
    def host(self) -> str:
        return self.url.split("://", 1)[1]


@dataclass(frozen=True)
class RegistryConfig:
    mirrors: tuple[str, ...] = ()
    insecure: tuple[str, ...] = ()
    max_concurrent_downloads: int = 3
    max_concurrent_uploads: int = 5
    certs_dir: Path = DEFAULT_CERTS_DIR
    _system_ctx: list[ssl.SSLContext] = field(default_factory=list, compare=False, repr=False)

    @classmethod
    def from_daemon_json(
        cls, doc: dict[str, Any], base: RegistryConfig | None = None
    ) -> RegistryConfig:
        """Merge dockerd's daemon.json keys over `base` (flags given on the command line win,
        as dockerd refuses a setting given both ways; we keep both lists instead)."""
        base = base or cls()
        mirrors = list(base.mirrors) + _str_list(doc, "registry-mirrors")
        insecure = list(base.insecure) + _str_list(doc, "insecure-registries")
        downloads = int(doc.get("max-concurrent-downloads", base.max_concurrent_downloads))
        uploads = int(doc.get("max-concurrent-uploads", base.max_concurrent_uploads))
        certs = Path(str(doc.get("registry-certs-dir", base.certs_dir)))
        return cls(tuple(mirrors), tuple(insecure), downloads, uploads, certs).validated()

    @classmethod
    def from_file(cls, path: Path, base: RegistryConfig | None = None) -> RegistryConfig:
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise InvalidArgument(f"unable to read daemon configuration {path}: {exc}") from None
        if not isinstance(doc, dict):
            raise InvalidArgument(f"daemon configuration {path} is not a JSON object")
        return cls.from_daemon_json(doc, base)

    def validated(self) -> RegistryConfig:
        for m in self.mirrors:
            if not m.startswith(("http://", "https://")):
                raise InvalidArgument(f"invalid mirror: unsupported scheme in {m!r}")
        for entry in self.insecure:
            if "://" in entry:
                raise InvalidArgument(f"insecure registry {entry} should not contain '://'")
        if self.max_concurrent_downloads < 1 or self.max_concurrent_uploads < 1:
            raise InvalidArgument("max-concurrent-downloads/uploads must be at least 1")
        return self

    def info(self) -> dict[str, Any]:
        """The `RegistryConfig` section of `GET /info`, in dockerd's shape."""
        cidrs = ["127.0.0.0/8"]
        index: dict[str, Any] = {
            DEFAULT_DOMAIN: {
                "Name": DEFAULT_DOMAIN,
                "Mirrors": [m + "/" for m in self.mirror_urls()],
                "Secure": True,
                "Official": True,
            },
        }
        for entry in self.insecure:
            try:
                ipaddress.ip_network(entry, strict=False)
                if entry not in cidrs:
                    cidrs.append(entry)
            except ValueError:
                index[entry] = {"Name": entry, "Mirrors": [], "Secure": False, "Official": False}
        return {
            "AllowNondistributableArtifactsCIDRs": [],
            "AllowNondistributableArtifactsHostnames": [],
            "InsecureRegistryCIDRs": cidrs,
            "IndexConfigs": index,
            "Mirrors": [m + "/" for m in self.mirror_urls()],
        }

    def mirror_urls(self) -> list[str]:
        return [m.rstrip("/") for m in self.mirrors]

    # endpoint resolution ------------------------------------------------------------------
    def is_insecure(self, host: str) -> bool:
        if host in self.insecure:
            return True
        name = _strip_port(host)
        addrs = _resolve(name)
        nets = [_LOOPBACK]
        for entry in self.insecure:
            try:
                nets.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                continue
        return any(a in n for a in addrs for n in nets if a.version == n.version)

    def ca_bundle(self, host: str) -> Path | None:
        ca = self.certs_dir / host / "ca.crt"
        return ca if ca.is_file() else None

    def verify_for(self, host: str) -> tuple[ssl.SSLContext | bool, bool]:
        """(TLS verification, plain-HTTP fallback allowed) for a registry host."""
        ca = self.ca_bundle(host)
        if ca is not None:
            return ssl.create_default_context(cafile=str(ca)), False
        if self.is_insecure(host):
            return False, True
        return self._system(), False

    def _system(self) -> ssl.SSLContext:
        if not self._system_ctx:
            self._system_ctx.append(ssl.create_default_context())
        return self._system_ctx[0]

    def endpoints(self, domain: str) -> list[Endpoint]:
        out: list[Endpoint] = []
        if domain == DEFAULT_DOMAIN:
            for url in self.mirror_urls():
                host = url.split("://", 1)[1]
                verify, _ = self.verify_for(host)
                out.append(Endpoint(url, verify if url.startswith("https") else False, mirror=True))
            # Docker Hub is never insecure, whatever the CIDRs say.
            out.append(Endpoint(DOCKER_HUB_ENDPOINT, self._system()))
            return out
        verify, fallback = self.verify_for(domain)
        out.append(Endpoint(f"https://{domain}", verify, fallback_http=fallback))
        return out


def _str_list(doc: dict[str, Any], key: str) -> list[str]:
    value = doc.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"daemon configuration: {key} must be a list of strings")
    return list(value)


def _strip_port(host: str) -> str:
    if host.startswith("["):
        return host[1 : host.index("]")]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _resolve(name: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(name)]
    except ValueError:
        pass
    if name == "localhost":
        return [ipaddress.ip_address("127.0.0.1")]
    # Docker resolves the name to decide whether it is on an insecure network; a name that does
    # not resolve is simply not insecure.
    try:
        infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return []
    out: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    for info in infos:
        try:
            out.append(ipaddress.ip_address(info[4][0]))
        except ValueError:
            continue
    return out
