"""Registry credentials and the authentication challenge of the distribution spec.

Credentials reach the daemon as Docker sends them: the `X-Registry-Auth` header (base64url of
a JSON AuthConfig: username, password, serveraddress, identitytoken, registrytoken) on pull and
push, or a JSON body on `POST /auth`. A registry answers an unauthenticated request with 401 and
`WWW-Authenticate: Basic realm=…` or `Bearer realm=…,service=…,scope=…`
(docs: distribution "Token Authentication Specification").
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from typing import Any

from dockyard.errors import DockyardError, InvalidArgument


class Unauthorized(DockyardError):
    """The registry refused our credentials (or asked for some we do not have)."""

    status = 401


class Denied(DockyardError):
    """The registry knows us but forbids the operation (403, or a token without the scope)."""

    status = 403


@dataclass(frozen=True)
class Credentials:
    username: str = ""
    password: str = ""
    identity_token: str = ""  # an OAuth refresh token (Docker's IdentityToken)
    registry_token: str = ""  # a bearer token given as is
    server: str = ""

    @property
    def empty(self) -> bool:
        return not (self.username or self.password or self.identity_token or self.registry_token)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Credentials:
        def get(*names: str) -> str:
            for n in names:
                for key in (n, n.lower()):
                    value = doc.get(key)
                    if isinstance(value, str) and value:
                        return value
            return ""

        username, password = get("username"), get("password")
        auth = get("auth")
        if auth and not username:
            try:
                username, _, password = base64.b64decode(auth).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise InvalidArgument("invalid auth field in registry credentials") from None
        return cls(
            username=username,
            password=password,
            identity_token=get("identitytoken", "IdentityToken"),
            registry_token=get("registrytoken", "RegistryToken"),
            server=get("serveraddress", "ServerAddress"),
        )


def decode_registry_auth(header: str | None) -> Credentials:
    """Docker's X-Registry-Auth: base64url JSON, padding optional (old clients send std base64)."""
    if not header:
        return Credentials()
    padded = header + "=" * (-len(header) % 4)
    try:
        raw = base64.urlsafe_b64decode(padded)
    except (binascii.Error, ValueError):
        try:
            raw = base64.b64decode(padded)
        except (binascii.Error, ValueError):
            raise InvalidArgument("invalid X-Registry-Auth header: not base64") from None
    try:
        doc = json.loads(raw or b"{}")
    except ValueError:
        raise InvalidArgument("invalid X-Registry-Auth header: not JSON") from None
    if not isinstance(doc, dict):
        # The docker CLI sends "{}" or "null" for anonymous pulls.
        return Credentials()
    return Credentials.from_json(doc)


@dataclass(frozen=True)
class Challenge:
    scheme: str  # "basic" or "bearer", lower case
    params: dict[str, str] = field(default_factory=dict)


_PARAM = re.compile(r'\s*([A-Za-z0-9_\-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?')


def parse_challenges(header: str) -> list[Challenge]:
    """Parse a WWW-Authenticate value into challenges (RFC 7235 auth-params, quoted or not)."""
    out: list[Challenge] = []
    rest = header.strip()
    while rest:
        m = re.match(r"([A-Za-z][A-Za-z0-9_\-]*)\s*", rest)
        if not m:
            break
        scheme = m.group(1).lower()
        rest = rest[m.end() :]
        params: dict[str, str] = {}
        while True:
            pm = _PARAM.match(rest)
            if not pm:
                break
            value = pm.group(2) if pm.group(2) is not None else (pm.group(3) or "")
            params[pm.group(1).lower()] = re.sub(r"\\(.)", r"\1", value)
            rest = rest[pm.end() :]
        out.append(Challenge(scheme, params))
        rest = rest.lstrip(", ")
    return out


def basic_header(creds: Credentials) -> str:
    raw = f"{creds.username}:{creds.password}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def decode_registry_config(header: str | None) -> dict[str, Credentials]:
    """Docker's X-Registry-Config (sent with `POST /build`): base64url JSON mapping each
    server address the client has credentials for to an AuthConfig."""
    if not header:
        return {}
    padded = header + "=" * (-len(header) % 4)
    try:
        doc = json.loads(base64.urlsafe_b64decode(padded) or b"{}")
    except (binascii.Error, ValueError):
        raise InvalidArgument("invalid X-Registry-Config header") from None
    if not isinstance(doc, dict):
        return {}
    return {
        str(server): Credentials.from_json({**cfg, "serveraddress": str(server)})
        for server, cfg in doc.items()
        if isinstance(cfg, dict)
    }
