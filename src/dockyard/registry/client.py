"""A distribution-spec client for one registry endpoint (docs: distribution "HTTP API V2",
OCI distribution-spec): ping and the authentication challenge, Bearer tokens per scope,
Basic auth, manifests, blob downloads that verify and resume, and blob uploads.

Lifecycle: `async with RegistryClient(endpoint, creds) as c:` → `await c.ping()` (chooses
HTTPS, or plain HTTP for an insecure registry that does not speak TLS, and learns the challenge)
→ any number of requests, each naming the scopes it needs → close. Tokens are cached per scope
set for the client's life. Nothing here touches dockyard's stores except `fetch_blob`, which
writes into the content store and commits only what hashes to the announced digest.

HTTP goes through aiohttp's client, which the daemon loads anyway (`aiohttp.web` imports it):
a second HTTP stack (httpx with httpcore, h11 and anyio) cost 1.5 MiB of RSS in a daemon
that had pulled once (issue 17, row h).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import http
import json
import logging
import re
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, BinaryIO
from urllib.parse import quote

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL

from dockyard.content.store import BlobInfo, BlobWriter, ContentStore
from dockyard.errors import (
    DigestMismatch,
    DockyardError,
    InvalidArgument,
    NotFound,
    RegistryUnavailable,
)
from dockyard.registry.auth import (
    Challenge,
    Credentials,
    Denied,
    Unauthorized,
    basic_header,
    parse_challenges,
)
from dockyard.registry.config import Endpoint
from dockyard.registry.manifest import ACCEPT, sniff_media_type

log = logging.getLogger("dockyard.registry")
Progress = Callable[[int], None]
USER_AGENT = "docker/20.10.24 go/go1.19 dockyard"
_WRITE_BATCH = 1 << 20
RETRIES = 5
# what the client's transport can raise for a request that got no (whole) answer
_HTTP_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, ssl.SSLError)


def pull_scope(repo: str) -> str:
    return f"repository:{repo}:pull"


def push_scope(repo: str) -> str:
    return f"repository:{repo}:pull,push"


@dataclass(frozen=True)
class Reply:
    """A registry's answer, its body read."""

    status: int
    headers: CIMultiDictProxy[str]
    url: URL
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class RegistryClient:
    def __init__(
        self,
        endpoint: Endpoint,
        creds: Credentials | None = None,
        *,
        timeout: float = 60.0,
        retry_delay: float = 0.5,
    ) -> None:
        self.endpoint = endpoint
        self.base = endpoint.url
        self.creds = creds or Credentials()
        self.retry_delay = retry_delay
        self._timeout = timeout
        self._http: aiohttp.ClientSession | None = None  # made on the event loop, when first used
        self._challenge: Challenge | None = None
        self._tokens: dict[tuple[str, ...], str] = {}
        self._pinged = False
        self._ping_lock = asyncio.Lock()

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None:
            verify = self.endpoint.verify
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=verify),
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=10.0, sock_read=self._timeout
                ),
                headers={"User-Agent": USER_AGENT},
                trust_env=False,
            )
        return self._http

    async def _get(self, url: str, headers: dict[str, str] | None = None) -> Reply:
        async with self._session().get(url, headers=headers) as resp:
            return Reply(resp.status, resp.headers, resp.url, await resp.read())

    @property
    def host(self) -> str:
        return self.base.split("://", 1)[1]

    # ping and auth -------------------------------------------------------------------------
    async def ping(self) -> None:
        """GET /v2/: picks the scheme and records the challenge. A registry that answers at
        all (200 or 401) is usable; anything else is not a registry. Concurrent first
        requests (parallel layer uploads) share one ping."""
        async with self._ping_lock:
            if not self._pinged:
                await self._ping()

    async def _ping(self) -> None:
        try:
            resp = await self._get(f"{self.base}/v2/")
        except (aiohttp.ClientConnectionError, ssl.SSLError) as exc:
            if not (self.endpoint.fallback_http and self.base.startswith("https://")):
                raise RegistryUnavailable(f'Get "{self.base}/v2/": {_describe(exc)}') from None
            # Insecure registry (configured, or on loopback): plain HTTP when TLS fails, as
            # Docker's registry service falls back for insecure registries.
            self.base = "http://" + self.host
            try:
                resp = await self._get(f"{self.base}/v2/")
            except _HTTP_ERRORS as exc2:
                raise RegistryUnavailable(f'Get "{self.base}/v2/": {_describe(exc2)}') from None
        except _HTTP_ERRORS as exc:
            raise RegistryUnavailable(f'Get "{self.base}/v2/": {_describe(exc)}') from None
        if resp.status == 401:
            self._challenge = _pick(parse_challenges(resp.headers.get("www-authenticate", "")))
        elif resp.status >= 400:
            raise RegistryUnavailable(
                f'Get "{self.base}/v2/": registry answered {resp.status} (not a registry?)'
            )
        self._pinged = True

    async def login(self) -> None:
        """Check the credentials as `docker login` does: authenticate without a scope."""
        if not self._pinged:
            await self.ping()
        if self._challenge is None:
            return
        if self.creds.empty:
            raise Unauthorized("unauthorized: authentication required")
        header = await self._authorization(())
        try:
            resp = await self._get(f"{self.base}/v2/", headers={"Authorization": header or ""})
        except _HTTP_ERRORS as exc:
            raise RegistryUnavailable(f'Get "{self.base}/v2/": {_describe(exc)}') from None
        if resp.status != 200:
            # dockerd's loginV2 wording for a registry that refuses the credentials
            # (registry/auth.go): the status line, not the body.
            raise Unauthorized(
                f"login attempt to {self.base}/v2/ failed with status: {resp.status} "
                f"{_reason(resp.status)}"
            )

    async def _authorization(self, scopes: tuple[str, ...]) -> str | None:
        ch = self._challenge
        if ch is None:
            return None
        if ch.scheme == "basic":
            return basic_header(self.creds) if self.creds.username else None
        if ch.scheme != "bearer":
            raise Unauthorized(f"unsupported authentication scheme {ch.scheme!r} from {self.host}")
        if self.creds.registry_token:
            return f"Bearer {self.creds.registry_token}"
        key = tuple(sorted(scopes))
        if key not in self._tokens:
            self._tokens[key] = await self._fetch_token(ch, key)
        return f"Bearer {self._tokens[key]}"

    async def _fetch_token(self, ch: Challenge, scopes: tuple[str, ...]) -> str:
        realm = ch.params.get("realm")
        if not realm:
            raise Unauthorized(f"registry {self.host} sent a Bearer challenge without a realm")
        service = ch.params.get("service", "")
        try:
            if self.creds.identity_token:
                form = {
                    "grant_type": "refresh_token",
                    "refresh_token": self.creds.identity_token,
                    "service": service,
                    "client_id": "docker",
                    "scope": " ".join(scopes),
                }
                async with self._session().post(realm, data=form) as r:
                    resp = Reply(r.status, r.headers, r.url, await r.read())
            else:
                params: list[tuple[str, str]] = [("service", service)] if service else []
                params += [("scope", s) for s in scopes]
                if self.creds.username:
                    params.append(("account", self.creds.username))
                headers = {"Authorization": basic_header(self.creds)} if self.creds.username else {}
                url = URL(realm).extend_query(params)
                async with self._session().get(url, headers=headers) as r:
                    resp = Reply(r.status, r.headers, r.url, await r.read())
        except _HTTP_ERRORS as exc:
            raise RegistryUnavailable(f"token server {realm}: {_describe(exc)}") from None
        if resp.status in (401, 403):
            raise Unauthorized(
                f'Get "{realm}": unauthorized: incorrect username or password'
                if self.creds.username
                else f'Get "{realm}": unauthorized'
            )
        if resp.status >= 400:
            raise RegistryUnavailable(f"token server {realm} answered {resp.status}")
        try:
            doc = resp.json()
        except ValueError:
            raise RegistryUnavailable(f"token server {realm} did not answer JSON") from None
        token = doc.get("token") or doc.get("access_token")
        if not isinstance(token, str) or not token:
            raise RegistryUnavailable(f"token server {realm} answered without a token")
        return token

    # requests ------------------------------------------------------------------------------
    async def request(
        self,
        method: str,
        url: str,
        scopes: tuple[str, ...],
        *,
        headers: dict[str, str] | None = None,
        content: bytes | Callable[[], AsyncIterator[bytes]] | None = None,
        params: dict[str, str] | None = None,
    ) -> Reply:
        """Send with authorization; on 401 learn the (new) challenge and retry once.
        `content` may be a factory of async byte iterators so a retry can resend it."""
        async with self._send(method, url, scopes, headers, content, params, True) as resp:
            try:
                return Reply(resp.status, resp.headers, resp.url, await resp.read())
            except _HTTP_ERRORS as exc:
                raise RegistryUnavailable(f"{method} {url}: {_describe(exc)}") from None

    @contextlib.asynccontextmanager
    async def _send(
        self,
        method: str,
        url: str,
        scopes: tuple[str, ...],
        headers: dict[str, str] | None = None,
        content: bytes | Callable[[], AsyncIterator[bytes]] | None = None,
        params: dict[str, str] | None = None,
        decode: bool = False,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """`request` with the body left to read: a blob's raw, as the registry sent it
        (`decode`: a Content-Encoding undone, as for documents)."""
        if not self._pinged:
            await self.ping()
        if not url.startswith(("http://", "https://")):
            url = self.base + url
        for attempt in range(2):
            hdrs = dict(headers or {})
            auth = await self._authorization(scopes)
            if auth:
                hdrs["Authorization"] = auth
            body: Any = content() if callable(content) else content
            # Location URLs are sent as the registry wrote them (their query is its state)
            target = URL(url, encoded=True)
            try:
                resp = await self._session().request(
                    method,
                    target,
                    headers=hdrs,
                    data=body,
                    params=params,
                    auto_decompress=decode,
                )
            except _HTTP_ERRORS as exc:
                raise RegistryUnavailable(f"{method} {url}: {_describe(exc)}") from None
            new = None
            if resp.status == 401 and attempt == 0:
                new = _pick(parse_challenges(resp.headers.get("www-authenticate", "")))
            if new is None:
                try:
                    yield resp
                finally:
                    resp.release()
                return
            resp.release()
            self._challenge = new
            self._tokens.pop(tuple(sorted(scopes)), None)
        raise AssertionError("unreachable")

    # manifests -----------------------------------------------------------------------------
    async def get_manifest(self, repo: str, reference: str) -> tuple[bytes, str, str]:
        """(raw bytes, media type, digest) of a manifest by tag or digest."""
        resp = await self.request(
            "GET",
            f"/v2/{repo}/manifests/{reference}",
            (pull_scope(repo),),
            headers={"Accept": ACCEPT},
        )
        if resp.status != 200:
            raise _error(resp, f"manifest for {self.host}/{repo}:{reference}", repo)
        raw = resp.body
        digest = "sha256:" + hashlib.sha256(raw).hexdigest()
        if reference.startswith("sha256:") and digest != reference:
            raise DigestMismatch(f"manifest verification failed for digest {reference}")
        return raw, sniff_media_type(raw, resp.headers.get("content-type", "")), digest

    async def put_manifest(self, repo: str, reference: str, raw: bytes, media_type: str) -> str:
        resp = await self.request(
            "PUT",
            f"/v2/{repo}/manifests/{reference}",
            (push_scope(repo),),
            headers={"Content-Type": media_type},
            content=raw,
        )
        if resp.status not in (200, 201, 202):
            raise _error(resp, f"manifest {repo}:{reference}", repo)
        return resp.headers.get("docker-content-digest") or (
            "sha256:" + hashlib.sha256(raw).hexdigest()
        )

    async def list_tags(self, repo: str) -> list[str]:
        """GET /v2/<name>/tags/list, following `Link` pages (distribution spec)."""
        tags: list[str] = []
        url: str | None = f"/v2/{repo}/tags/list?n=1000"
        while url:
            resp = await self.request("GET", url, (pull_scope(repo),))
            if resp.status != 200:
                raise _error(resp, f"tags of {repo}", repo)
            doc = resp.json()
            tags += [t for t in (doc.get("tags") or []) if isinstance(t, str)]
            nxt = _next_link(resp.headers.get("link", ""))
            url = str(resp.url.join(URL(nxt, encoded=True))) if nxt else None
        return sorted(tags)

    # blobs ---------------------------------------------------------------------------------
    async def get_blob_bytes(self, repo: str, digest: str, limit: int = 64 << 20) -> bytes:
        """A small blob (a config) in memory, verified."""
        try:
            async with self._send("GET", f"/v2/{repo}/blobs/{digest}", (pull_scope(repo),)) as resp:
                if resp.status != 200:
                    raise _error(await _read(resp), f"blob {digest}", repo)
                data = bytearray()
                async for chunk in resp.content.iter_any():
                    data += chunk
                    if len(data) > limit:
                        raise InvalidArgument(f"blob {digest} is larger than {limit} bytes")
        except _HTTP_ERRORS as exc:
            raise RegistryUnavailable(f"GET blob {digest}: {_describe(exc)}") from None
        got = "sha256:" + hashlib.sha256(data).hexdigest()
        if got != digest:
            raise DigestMismatch(f"blob {digest} verification failed: content has digest {got}")
        return bytes(data)

    async def fetch_blob(
        self,
        repo: str,
        digest: str,
        size: int,
        content: ContentStore,
        progress: Progress | None = None,
        on_retry: Callable[[int, float], None] | None = None,
        on_verify: Callable[[], None] | None = None,
    ) -> BlobInfo:
        """Download a blob into the content store. A broken transfer is retried (up to RETRIES
        times) and resumed with a Range request from the bytes already written; the blob is
        committed only if it hashes to `digest` (DigestMismatch otherwise, nothing stored)."""
        writer = content.writer()
        try:
            attempt = 0
            while True:
                try:
                    done = await self._download_into(repo, digest, writer, progress)
                except _RestartDownload:
                    writer.abort()
                    writer = content.writer()
                    done = False
                except RegistryUnavailable:
                    done = False
                    if attempt >= RETRIES:
                        raise
                if done and (size < 0 or writer.size >= size):
                    break
                if attempt >= RETRIES:
                    raise RegistryUnavailable(
                        f"download of {digest} broke off after {writer.size} of {size} bytes"
                    )
                attempt += 1
                delay = self.retry_delay * attempt
                if on_retry:
                    on_retry(attempt, delay)
                log.info("blob %s broke off at %d bytes; resuming", digest, writer.size)
                await asyncio.sleep(delay)
            if on_verify:
                on_verify()
            try:
                return await asyncio.to_thread(writer.commit, digest)
            except DigestMismatch:
                raise DigestMismatch(
                    f"filesystem layer verification failed for digest {digest}: the registry "
                    "sent content with another digest; nothing was stored"
                ) from None
        finally:
            writer.abort()

    async def _download_into(
        self, repo: str, digest: str, writer: BlobWriter, progress: Progress | None
    ) -> bool:
        """One attempt; False when the body ended early (the caller resumes)."""
        headers = {"Range": f"bytes={writer.size}-"} if writer.size else {}
        async with self._send(
            "GET", f"/v2/{repo}/blobs/{digest}", (pull_scope(repo),), headers=headers
        ) as resp:
            if resp.status == 200 and writer.size:
                # The server ignored the range: start over rather than append twice.
                raise _RestartDownload()
            if resp.status not in (200, 206):
                raise _error(await _read(resp), f"blob {digest}", repo)
            batch: list[bytes] = []
            pending = 0
            try:
                async for chunk in resp.content.iter_any():
                    batch.append(chunk)
                    pending += len(chunk)
                    if pending >= _WRITE_BATCH:
                        await asyncio.to_thread(writer.write, b"".join(batch))
                        batch, pending = [], 0
                        if progress:
                            progress(writer.size)
            except _HTTP_ERRORS:
                if batch:
                    await asyncio.to_thread(writer.write, b"".join(batch))
                return False
            if batch:
                await asyncio.to_thread(writer.write, b"".join(batch))
            if progress:
                progress(writer.size)
            return True

    async def blob_exists(self, repo: str, digest: str) -> bool:
        resp = await self.request("HEAD", f"/v2/{repo}/blobs/{digest}", (push_scope(repo),))
        if resp.status == 200:
            return True
        if resp.status == 404:
            return False
        raise _error(resp, f"blob {digest}", repo)

    async def mount_blob(self, repo: str, digest: str, source: str) -> str | None:
        """Cross-repository mount; None when mounted, else the upload URL the registry opened
        instead (it may refuse the mount and start an ordinary upload)."""
        resp = await self.request(
            "POST",
            f"/v2/{repo}/blobs/uploads/",
            (push_scope(repo), pull_scope(source)),
            params={"mount": digest, "from": source},
        )
        if resp.status == 201:
            return None
        if resp.status == 202:
            return self._location(resp)
        raise _error(resp, f"blob {digest}", repo)

    async def start_upload(self, repo: str) -> str:
        resp = await self.request("POST", f"/v2/{repo}/blobs/uploads/", (push_scope(repo),))
        if resp.status != 202:
            raise _error(resp, f"upload to {repo}", repo)
        return self._location(resp)

    def _location(self, resp: Reply) -> str:
        loc = resp.headers.get("location")
        if not loc:
            raise RegistryUnavailable("registry opened an upload without a Location")
        return str(resp.url.join(URL(loc, encoded=True)))

    async def upload_blob(
        self,
        repo: str,
        digest: str,
        size: int,
        opener: Callable[[], BinaryIO],
        *,
        location: str | None = None,
        chunk_size: int | None = None,
        progress: Progress | None = None,
    ) -> None:
        """Upload a blob: one monolithic PUT, or PATCH chunks then a closing PUT when
        `chunk_size` is smaller than the blob (distribution spec, "chunked upload")."""
        scopes = (push_scope(repo),)
        loc = location or await self.start_upload(repo)
        if chunk_size is None or size <= chunk_size:
            resp = await self.request(
                "PUT",
                _with_digest(loc, digest),
                scopes,
                headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
                content=lambda: _file_chunks(opener, 0, size, progress),
            )
            if resp.status != 201:
                raise _error(resp, f"blob {digest}", repo)
            return
        offset = 0
        while offset < size:
            n = min(chunk_size, size - offset)
            data = await asyncio.to_thread(_read_range, opener, offset, n)
            resp = await self.request(
                "PATCH",
                loc,
                scopes,
                content=data,
                headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Range": f"{offset}-{offset + n - 1}",
                    "Content-Length": str(n),
                },
            )
            if resp.status != 202:
                raise _error(resp, f"blob {digest}", repo)
            loc = self._location(resp)
            offset += n
            if progress:
                progress(offset)
        resp = await self.request(
            "PUT",
            _with_digest(loc, digest),
            scopes,
            content=b"",
            headers={"Content-Length": "0"},
        )
        if resp.status != 201:
            raise _error(resp, f"blob {digest}", repo)


class _RestartDownload(RegistryUnavailable):
    pass


async def _file_chunks(
    opener: Callable[[], BinaryIO], offset: int, size: int, progress: Progress | None
) -> AsyncIterator[bytes]:
    f = await asyncio.to_thread(opener)
    try:
        await asyncio.to_thread(f.seek, offset)
        sent = 0
        while sent < size:
            data = await asyncio.to_thread(f.read, min(1 << 20, size - sent))
            if not data:
                raise InvalidArgument("blob shrank while it was being uploaded")
            sent += len(data)
            yield data
            if progress:
                progress(sent)
    finally:
        f.close()


def _read_range(opener: Callable[[], BinaryIO], offset: int, n: int) -> bytes:
    with opener() as f:
        f.seek(offset)
        return f.read(n)


def _with_digest(location: str, digest: str) -> str:
    # The upload URL carries the registry's own state in its query (`_state=…`): keep it
    # byte for byte (re-encoding it may change the state the registry signed).
    return location + ("&" if "?" in location else "?") + "digest=" + quote(digest, safe="")


async def _read(resp: aiohttp.ClientResponse) -> Reply:
    return Reply(resp.status, resp.headers, resp.url, await resp.read())


_LINK_NEXT = re.compile(r'<([^>]*)>\s*;[^,]*\brel="?next"?')


def _next_link(header: str) -> str | None:
    """The `next` target of a Link header (RFC 8288), as the tags list pages with it."""
    m = _LINK_NEXT.search(header)
    return m.group(1) if m else None


def _reason(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


def _pick(challenges: list[Challenge]) -> Challenge | None:
    for scheme in ("bearer", "basic"):
        for ch in challenges:
            if ch.scheme == scheme:
                return ch
    return None


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text


def _error(resp: Reply, what: str, repo: str) -> DockyardError:
    """Map a registry error response to our exceptions with the registry's own words."""
    detail = ""
    code = ""
    try:
        doc = resp.json()
        errs = doc.get("errors") if isinstance(doc, dict) else None
        if errs:
            code = str(errs[0].get("code", "")).lower().replace("_", " ")
            detail = f"{code}: {errs[0].get('message', '')}"
    except (ValueError, AttributeError, TypeError):
        pass
    status = resp.status
    if status == 401:
        return Unauthorized(detail or "unauthorized: authentication required")
    if status == 403:
        return Denied(detail or "denied: requested access to the resource is denied")
    if status == 404:
        return NotFound(f"{what} not found: {detail or 'not found'}")
    return RegistryUnavailable(f"{what}: registry answered {status} {detail}".rstrip())
