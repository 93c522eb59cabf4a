"""docker CLI contexts, in the docker CLI's own store, so `docker context create` and ours see
the same contexts.

The store (docker/cli cli/context/store): `$DOCKER_CONFIG/contexts/meta/<sha256(name)>/meta.json`
holds `{"Name", "Metadata": {"Description"}, "Endpoints": {"docker": {"Host",
"SkipTLSVerify"}}}`; TLS files live in `contexts/tls/<sha256(name)>/docker/{ca,cert,key}.pem`;
`config.json`'s `currentContext` names the context `docker context use` chose. The `default`
context is not stored: it is DOCKER_HOST (or the default socket).

Which context a command uses (cli/command/cli.go resolveContextName): `--context`, else
`default` when DOCKER_HOST (or our DOCKYARD_HOST) is set, else DOCKER_CONTEXT, else
`currentContext`, else `default`.
"""

from __future__ import annotations

import os
import re

TYPE_CHECKING = False  # typing costs start-up time; mypy honours this name

if TYPE_CHECKING:
    from typing import Any

DEFAULT = "default"
DEFAULT_DESCRIPTION = "Current DOCKER_HOST based configuration"
NAME_RULE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.+-]+$")
TLS_FILES = ("ca.pem", "cert.pem", "key.pem")


class ContextError(Exception):
    """A context that cannot be used, worded as the docker CLI words it."""


def config_dir() -> str:
    return os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")


def _hash(name: str) -> str:
    import hashlib

    return hashlib.sha256(name.encode()).hexdigest()


def meta_dir(name: str) -> str:
    return os.path.join(config_dir(), "contexts", "meta", _hash(name))


def tls_dir(name: str) -> str:
    return os.path.join(config_dir(), "contexts", "tls", _hash(name))


def _config() -> dict[str, Any]:
    import json

    try:
        with open(os.path.join(config_dir(), "config.json")) as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def current_name(flag: str | None) -> str:
    """resolveContextName: the flag, DOCKER_HOST's default, DOCKER_CONTEXT, config.json."""
    if flag:
        return flag
    env = os.environ
    if env.get("DOCKER_HOST") or env.get("DOCKYARD_HOST"):
        return DEFAULT
    if env.get("DOCKER_CONTEXT"):
        return env["DOCKER_CONTEXT"]
    name = _config().get("currentContext")
    return name if isinstance(name, str) and name else DEFAULT


def load(name: str) -> dict[str, Any]:
    """The context's meta.json; ContextError in docker's words when it does not exist."""
    import json

    path = os.path.join(meta_dir(name), "meta.json")
    try:
        with open(path) as f:
            doc = json.load(f)
    except FileNotFoundError:
        raise ContextError(
            f'context "{name}": context not found: open {path}: no such file or directory'
        ) from None
    except (OSError, ValueError) as exc:
        raise ContextError(f'context "{name}": {exc}') from None
    if not isinstance(doc, dict):
        raise ContextError(f'context "{name}": invalid metadata in {path}')
    return doc


def names() -> list[str]:
    """The stored contexts' names, sorted (default not among them)."""
    import json

    base = os.path.join(config_dir(), "contexts", "meta")
    out = []
    try:
        entries = os.listdir(base)
    except OSError:
        return []
    for entry in entries:
        try:
            with open(os.path.join(base, entry, "meta.json")) as f:
                name = json.load(f).get("Name")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(name, str):
            out.append(name)
    return sorted(out)


def endpoint(name: str) -> tuple[str, bool, dict[str, str]]:
    """(host, skip TLS verify, {ca|cert|key: path}) of a stored context's docker endpoint."""
    doc = load(name)
    ep = ((doc.get("Endpoints") or {}).get("docker")) or {}
    files = {}
    for fname in TLS_FILES:
        path = os.path.join(tls_dir(name), "docker", fname)
        if os.path.isfile(path):
            files[fname.removesuffix(".pem")] = path
    return str(ep.get("Host") or ""), bool(ep.get("SkipTLSVerify")), files


def set_current(name: str) -> None:
    """config.json's currentContext (`default` is written as no entry, as docker does)."""
    from dockyard.cli.registry_auth import load_config, save_config

    doc = load_config()
    if name == DEFAULT:
        doc.pop("currentContext", None)
    else:
        doc["currentContext"] = name
    save_config(doc)


def configured_current() -> str:
    name = _config().get("currentContext")
    return name if isinstance(name, str) else ""
