"""BuildKit's Dockerfile frontend options (a Solve's FrontendAttrs / FrontendOpt) as BuildOptions.

The keys are those of BuildKit's dockerfile frontend (frontend/dockerui/config.go) as buildx
0.13 sends them (build/build.go toSolveOpt): `filename`, `target`, `build-arg:NAME`,
`label:NAME`, `no-cache`, `platform`, `add-hosts`, `force-network-mode`, `image-resolve-mode`,
`cache-imports`/`cache-from`. Every other key that would change the result is refused by name;
keys that only say how a client talks (`frontend.caps`) pass.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from dockyard.builder.builder import BuildOptions
from dockyard.builder.gitsource import context_ref
from dockyard.engine.hostconfig import parse_extra_hosts
from dockyard.errors import InvalidArgument, NotSupported
from dockyard.image.config import go_arch
from dockyard.session.upload import is_session_url

# Keys refused by name when set: what they are, for the message.
_UNSUPPORTED = {
    "shm-size": "--shm-size for builds",
    "ulimit": "--ulimit for builds",
    "cgroup-parent": "--cgroup-parent for builds",
    "multi-platform": "multi-platform builds",
    "hostname": "the build hostname (BUILDKIT_SANDBOX_HOSTNAME)",
    "contextsubdir": "a context sub-directory of a remote context",
    "requestid": "frontend subrequests (--call/--print: outline, targets, lint)",
}
# Keys that only tell the frontend how the client talks to it.
_PASS = frozenset({"frontend.caps", "source", "cmdline"})
# The git facts buildx adds for a context inside a work tree (build/git.go: vcs:source,
# vcs:revision, vcs:localdir:NAME): they feed BuildKit's provenance attestation only, which
# the docker driver never asks for here (buildx refuses --provenance itself).
_VCS = "vcs:"


@dataclass(frozen=True)
class FrontendRequest:
    opts: BuildOptions
    # `docker build - < ctx.tar`: the context the client uploads through its session
    context_upload: str = ""
    # `docker build https://host/repo.git#ref:dir`: a git repository as the context
    context_git: str = ""


@dataclass(frozen=True)
class CacheImport:
    type: str
    attrs: dict[str, str]


def _parse_imports(raw: str, key: str) -> list[CacheImport]:
    try:
        value = json.loads(raw)
    except ValueError:
        raise InvalidArgument(f"invalid {key}: not JSON") from None
    if not isinstance(value, list):
        raise InvalidArgument(f"invalid {key}: not a JSON list")
    out = []
    for v in value:
        if not isinstance(v, dict) or not isinstance(v.get("Type", v.get("type", "")), str):
            raise InvalidArgument(f"invalid {key} entry {v!r}")
        attrs = v.get("Attrs", v.get("attrs")) or {}
        out.append(
            CacheImport(
                str(v.get("Type", v.get("type", ""))), {str(k): str(x) for k, x in attrs.items()}
            )
        )
    return out


def cache_sources(imports: list[CacheImport]) -> list[str]:
    """`--cache-from`: an image reference whose image, when present in our store, serves as a
    cache source (as the legacy builder's cachefrom). Other backends are refused by name."""
    refs = []
    for imp in imports:
        if imp.type == "registry" and imp.attrs.get("ref"):
            refs.append(imp.attrs["ref"])
        else:
            raise NotSupported(
                f"cache import type={imp.type or '?'} is not supported by dockyard: "
                "only --cache-from type=registry,ref=IMAGE (an image in dockyard's store)"
            )
    return refs


def _platform(value: str) -> None:
    ours = f"linux/{go_arch()}"
    platforms = [p.strip() for p in value.split(",") if p.strip()]
    for p in platforms:
        if p not in (ours, "linux", "local"):
            raise NotSupported(
                f"build platform {p} is not supported: dockyard builds for {ours} only"
            )


def frontend_request(attrs: Mapping[str, str], *, entitlements: list[str]) -> FrontendRequest:
    opts = BuildOptions(dockerfile=attrs.get("filename") or "Dockerfile")
    upload = ""
    git = ""
    build_args: dict[str, str] = {}
    labels: dict[str, str] = {}
    imports: list[CacheImport] = []
    for key, value in attrs.items():
        if key.startswith("build-arg:"):
            build_args[key.removeprefix("build-arg:")] = value
        elif key.startswith("label:"):
            labels[key.removeprefix("label:")] = value
        elif key.startswith("context:"):
            raise NotSupported(
                f"named build context {key.removeprefix('context:')} (--build-context) "
                "is not supported by dockyard yet"
            )
        elif key.startswith("attest:"):
            raise NotSupported(f"build attestations ({key}) are not supported by dockyard")
        elif key in ("filename", "target", "platform", "add-hosts", "force-network-mode"):
            continue
        elif key == "no-cache":
            if value:
                raise NotSupported(
                    "--no-cache-filter is not supported by dockyard yet: use --no-cache"
                )
            opts.no_cache = True
        elif key == "image-resolve-mode":
            if value not in ("", "default", "local", "pull"):
                raise InvalidArgument(f"invalid image-resolve-mode {value!r}")
            opts.pull = value == "pull"
        elif key in ("cache-imports", "cache-from"):
            if value:
                imports.extend(_parse_imports(value, key))
        elif key == "dockerfilekey":
            # buildx names the local source that holds the Dockerfile (`-f -` puts it in a
            # temporary `dockerfile` directory); only that default source exists here
            if value not in ("", "dockerfile"):
                raise NotSupported(
                    f"the Dockerfile from the named source {value} is not supported by dockyard"
                )
        elif key == "context":
            if is_session_url(value):
                upload = value
            elif context_ref(value) is not None:
                git = value
            elif value not in ("", "context", "local://context"):
                raise NotSupported(
                    f"build context {value} is not supported by dockyard: only a local "
                    "directory served by the client's session"
                )
        elif key in _UNSUPPORTED:
            if value:
                raise NotSupported(f"{_UNSUPPORTED[key]} is not supported by dockyard yet")
        elif key in _PASS or key.startswith(_VCS):
            continue
        else:
            raise NotSupported(f"build option {key}={value} is not supported by dockyard")
    if "BUILDKIT_SYNTAX" in build_args:
        raise NotSupported(
            f"frontend image {build_args['BUILDKIT_SYNTAX']} (BUILDKIT_SYNTAX) is not "
            "supported: dockyard builds with its built-in Dockerfile frontend"
        )
    opts.build_args = build_args
    opts.labels = labels
    opts.target = attrs.get("target", "")
    if attrs.get("platform"):
        _platform(attrs["platform"])
    network = attrs.get("force-network-mode", "")
    if network not in ("", "default", "sandbox", "host", "none"):
        raise NotSupported(f"build network mode {network} is not supported by dockyard")
    opts.network = network if network in ("host", "none") else "default"
    hosts = [h for h in attrs.get("add-hosts", "").split(",") if h]
    opts.extra_hosts = list(parse_extra_hosts(hosts))
    opts.cache_from = cache_sources(imports)
    opts.allow_insecure = "security.insecure" in entitlements
    return FrontendRequest(opts, upload, git)
