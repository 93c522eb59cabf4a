"""Registry credentials on the client side, kept as the docker CLI keeps them.

`~/.docker/config.json` (or `$DOCKER_CONFIG/config.json`): `auths` maps a server to
`{"auth": base64("user:pass")}` (or `{"identitytoken": …}`); `credsStore` names a helper for
every registry and `credHelpers` one per registry; a helper is the program
`docker-credential-<name>` speaking JSON on stdin/stdout (`get`, `store`, `erase`), and a
registry it serves keeps an empty `auths` entry. Docker Hub's key is
`https://index.docker.io/v1/`. Credentials travel to the daemon as X-Registry-Auth:
base64url of `{"username", "password", "serveraddress"}` (or `identitytoken`).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path

TYPE_CHECKING = False  # typing costs start-up time; mypy honours this name

if TYPE_CHECKING:
    from typing import Any

INDEX_SERVER = "https://index.docker.io/v1/"
_HUB_HOSTS = ("docker.io", "index.docker.io", "registry-1.docker.io")


class CredentialsError(Exception):
    """A credential helper failed or the config file cannot be used."""


def config_path() -> Path:
    base = os.environ.get("DOCKER_CONFIG") or str(Path.home() / ".docker")
    return Path(base) / "config.json"


def load_config() -> dict[str, Any]:
    path = config_path()
    try:
        doc = json.loads(path.read_text() or "{}")
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise CredentialsError(f"loading config file {path}: {exc}") from None
    return doc if isinstance(doc, dict) else {}


def save_config(doc: dict[str, Any]) -> None:
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f, indent="\t")
    os.replace(tmp, path)


def hostname(server: str) -> str:
    """docker/cli's ConvertToHostname: the host part of a server address."""
    s = server.strip()
    if "://" in s:
        s = s.split("://", 1)[1]
    return s.split("/", 1)[0]


def server_key(server_or_domain: str) -> str:
    """The key the docker CLI files a registry's credentials under."""
    host = hostname(server_or_domain) if server_or_domain else ""
    return INDEX_SERVER if host in ("", *_HUB_HOSTS) else host


def registry_of_image(name: str) -> str:
    """The registry domain an image name lives on (Docker's normalisation rule)."""
    first, sep, rest = name.partition("/")
    if sep and rest and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def _helper_for(doc: dict[str, Any], key: str) -> str | None:
    helpers = doc.get("credHelpers") or {}
    if isinstance(helpers, dict):
        for k, v in helpers.items():
            if server_key(k) == key and isinstance(v, str) and v:
                return v
    store = doc.get("credsStore")
    return store if isinstance(store, str) and store else None


def _run_helper(name: str, action: str, data: str) -> str:
    prog = f"docker-credential-{name}"
    try:
        proc = subprocess.run(
            [prog, action], input=data, capture_output=True, text=True, timeout=60
        )
    except FileNotFoundError:
        raise CredentialsError(
            f'error getting credentials - exec: "{prog}": executable file not found in $PATH'
        ) from None
    if proc.returncode != 0:
        out = (proc.stdout or proc.stderr).strip()
        if action == "get" and "credentials not found" in out.lower():
            return ""
        raise CredentialsError(f"error {action} credentials - {prog}: {out}")
    return proc.stdout


def get_credentials(server: str) -> dict[str, str]:
    """AuthConfig for a registry (empty when none is stored), helpers first, as docker does."""
    doc = load_config()
    key = server_key(server)
    helper = _helper_for(doc, key)
    if helper:
        out = _run_helper(helper, "get", key)
        if not out.strip():
            return {}
        try:
            got = json.loads(out)
        except ValueError:
            raise CredentialsError(f"credential helper {helper} answered invalid JSON") from None
        user, secret = str(got.get("Username", "")), str(got.get("Secret", ""))
        if user == "<token>":
            return {"identitytoken": secret, "serveraddress": key}
        return {"username": user, "password": secret, "serveraddress": key}
    auths = doc.get("auths") or {}
    entry: Any = None
    if isinstance(auths, dict):
        entry = auths.get(key)
        if entry is None:
            for k, v in auths.items():
                if server_key(k) == key:
                    entry = v
                    break
    if not isinstance(entry, dict):
        return {}
    out_doc: dict[str, str] = {"serveraddress": key}
    if entry.get("auth"):
        try:
            user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            raise CredentialsError(f"invalid auth entry for {key} in {config_path()}") from None
        out_doc.update(username=user, password=password)
    if entry.get("identitytoken"):
        out_doc["identitytoken"] = str(entry["identitytoken"])
    return out_doc if len(out_doc) > 1 else {}


def store_credentials(server: str, username: str, password: str, identity_token: str = "") -> str:
    """Save as `docker login` does; returns where (the config file or the helper's name)."""
    doc = load_config()
    key = server_key(server)
    helper = _helper_for(doc, key)
    auths = doc.setdefault("auths", {})
    if helper:
        secret_user = "<token>" if identity_token else username
        payload = {"ServerURL": key, "Username": secret_user, "Secret": identity_token or password}
        _run_helper(helper, "store", json.dumps(payload))
        auths[key] = {}
        save_config(doc)
        return helper
    entry: dict[str, str] = {"auth": base64.b64encode(f"{username}:{password}".encode()).decode()}
    if identity_token:
        entry = {
            "auth": base64.b64encode(f"{username}:".encode()).decode(),
            "identitytoken": identity_token,
        }
    auths[key] = entry
    save_config(doc)
    return str(config_path())


def erase_credentials(server: str) -> bool:
    """`docker logout`: forget a registry's credentials; False when none were stored."""
    doc = load_config()
    key = server_key(server)
    auths = doc.get("auths") or {}
    found = False
    helper = _helper_for(doc, key)
    if helper:
        try:
            _run_helper(helper, "erase", key)
            found = True
        except CredentialsError:
            pass
    if isinstance(auths, dict):
        for k in [k for k in auths if server_key(k) == key]:
            del auths[k]
            found = True
    if found:
        save_config(doc)
    return found


def registry_auth_header(server: str) -> str:
    """X-Registry-Auth for a registry: base64url JSON, `{}` when anonymous."""
    creds = get_credentials(server)
    return base64.urlsafe_b64encode(json.dumps(creds).encode()).decode()
