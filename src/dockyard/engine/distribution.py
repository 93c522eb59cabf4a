"""Distribution: pulls and pushes between registries and dockyard's stores.

Glue between the registry client (`dockyard.registry`), the content store, LayerStore and
ImageStore, owned by the Engine (`engine.distribution`). Progress leaves only through `emit`,
in Docker's JSON message shapes (moby distribution/pull_v2.go, push_v2.go).

Pull: manifest (an index narrows to the requested platform) → config blob (verified, kept in
memory until the end) → each layer whose chain is not present is downloaded into the content
store (parallel, `max-concurrent-downloads`, verified before commit, resumed with Range after a
break) → extracted in order with `LayerStore.apply` (its diff ID checked against the config) →
the image is recorded and tagged, and the manifest digest remembered for RepoDigests.
Concurrent pulls share each blob's download and each layer's extraction (engine/inflight.py).
A pull runs under a lease (metadata/leases.py) that holds its layers and blobs from before the
first download, so a concurrent `rmi` cannot collect them before the image is recorded. A
failed or cancelled pull gives back what it made that no image and no other lease holds
(partial downloads, complete compressed blobs, unpacked layers; engine/gc.py's `give_back`),
so a full disk gets its space back; a write error (ENOSPC: "no space left on device") is
reported in the stream.

Push: each layer's compressed blob is made lazily (gzip, parallel members) and kept beside the
uncompressed one; blobs the registry has are skipped (HEAD), blobs it has in another repository
are mounted, others uploaded (monolithic, or chunked above `upload_chunk_size`); then the config
and the manifest (PUT by tag), with Docker's final `aux` message.

What it learns (repo digests, compressed copies, where blobs live) is recorded through
`meta.distribution` (metadata/distribution.py), whose tables metadata/schema.py owns.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import json
import logging
import os
import zlib
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

from dockyard.content.store import ContentStore
from dockyard.engine import gc
from dockyard.engine.events import EventBus
from dockyard.engine.inflight import SharedWork
from dockyard.errors import (
    DigestMismatch,
    DockyardError,
    InvalidArgument,
    NotFound,
    RegistryUnavailable,
)
from dockyard.image.config import ImageConfig, chain_ids
from dockyard.image.reference import DEFAULT_DOMAIN, Reference, parse_reference
from dockyard.metadata.distribution import CompressedBlob
from dockyard.metadata.leases import Kind
from dockyard.metadata.store import MetadataStore
from dockyard.registry import progress as msg
from dockyard.registry.auth import Credentials, Denied, Unauthorized
from dockyard.registry.config import Endpoint, RegistryConfig
from dockyard.registry.manifest import (
    DOCKER_LAYER_GZIP,
    OCI_LAYER_GZIP,
    Descriptor,
    Index,
    Manifest,
    Platform,
    docker_manifest,
    host_platform,
    parse,
    select,
)
from dockyard.store.images import ImageStore
from dockyard.store.layers import LayerStore, Unpacked

if TYPE_CHECKING:
    from dockyard.registry.client import RegistryClient

log = logging.getLogger("dockyard.distribution")
Emit = Callable[[dict[str, Any]], None]
PullHook = Callable[[str, Emit], Awaitable[str]]

_GZIP_TYPES = (DOCKER_LAYER_GZIP, OCI_LAYER_GZIP)
# Layers of one pull unpacked at the same time. Each goes to its own snapshot, so order does
# not matter until they are recorded; unpacking is mostly waiting on the file system (file
# creation, writes), which overlaps well beyond the number of cores.
_UNPACK_PARALLEL = 4


class PullDenied(NotFound):
    """The registry refused the pull (no credentials, wrong ones, or no such repository)."""


@dataclass(frozen=True)
class PullResult:
    image_id: str
    digest: str
    reference: Reference


class Distribution:
    def __init__(
        self,
        content: ContentStore,
        meta: MetadataStore,
        layers: LayerStore,
        images: ImageStore,
        config: RegistryConfig | None = None,
        events: EventBus | None = None,
    ) -> None:
        self.content = content
        self.meta = meta
        self.layers = layers
        self.images = images
        self.events = events or EventBus()
        self.config = config or RegistryConfig()
        self.upload_chunk_size: int | None = None
        self.retry_delay = 0.5  # seconds, times the attempt number (tests shorten it)
        self.shared = SharedWork()

    def _record(
        self,
        repository: str,
        manifest_digest: str,
        image_id: str,
        blobs: list[tuple[str, Descriptor]],
        domain: str,
        path: str,
    ) -> None:
        self.meta.distribution.record(
            repository,
            manifest_digest,
            image_id,
            [CompressedBlob(d, desc.digest, desc.size, desc.media_type) for d, desc in blobs],
            domain,
            path,
        )

    def _compressed(self, diff_id: str) -> Descriptor | None:
        for blob in self.meta.distribution.compressed(diff_id):
            if blob.media_type in _GZIP_TYPES and self.content.exists(blob.digest):
                return Descriptor(DOCKER_LAYER_GZIP, blob.digest, blob.size)
        return None

    # pull ---------------------------------------------------------------------------------
    async def ensure_image(
        self,
        name: str,
        emit: Emit,
        *,
        always: bool = False,
        auth: dict[str, Credentials] | None = None,
    ) -> str:
        """The image ID for `name`, pulling it first when it is not in the store (the
        builder's hook for `FROM`); `always` pulls even when it is present (`build --pull`:
        the registry decides whether a newer image exists, and unchanged layers are skipped).
        `auth`: the build client's logins by server address (X-Registry-Config); the entry of
        `name`'s registry is used."""
        image_id = self.images.try_resolve(name)
        if image_id is not None and not always:
            return image_id
        domain = parse_reference(name).domain
        creds = next(
            (c for server, c in (auth or {}).items() if registry_domain(server) == domain),
            Credentials(),
        )
        result = await self.pull(name, "", "", creds, emit)
        return result.image_id

    def _client(self, endpoint: Endpoint, creds: Credentials) -> RegistryClient:
        # the client loads with the first registry call, not in an idle daemon (issue 17, row h)
        from dockyard.registry.client import RegistryClient

        return RegistryClient(endpoint, creds, retry_delay=self.retry_delay)

    async def pull(
        self,
        name: str,
        tag: str,
        platform: str,
        creds: Credentials,
        emit: Emit,
        *,
        all_tags: bool = False,
    ) -> PullResult:
        """`POST /images/create?fromImage=name&tag=tag`; `tag` may be a digest. With
        `all_tags` (the API's empty `tag`, `docker pull -a`), every tag of the repository."""
        with self.meta.lease():
            return await self._pull(name, tag, platform, creds, emit, all_tags)

    async def _pull(
        self,
        name: str,
        tag: str,
        platform: str,
        creds: Credentials,
        emit: Emit,
        all_tags: bool,
    ) -> PullResult:
        ref = _combine(name, tag)
        want = Platform.parse(platform) if platform else host_platform()
        endpoints = await asyncio.to_thread(self.config.endpoints, ref.domain)
        errors: list[str] = []
        for ep in endpoints:
            try:
                async with self._client(ep, creds) as client:
                    if not all_tags:
                        return await self._pull_from(client, ref, want, emit)
                    result: PullResult | None = None
                    for t in await client.list_tags(ref.path):
                        tagged = Reference(ref.domain, ref.path, t)
                        result = await self._pull_from(client, tagged, want, emit)
                    if result is None:
                        raise NotFound(f"repository {ref.familiar_repository} has no tags")
                    return result
            except (Unauthorized, Denied) as exc:
                if ep.mirror:
                    errors.append(f"{ep.url}: {exc}")
                    continue
                # moby answers a refused pull as "not found" (distribution/errors.go): a 401
                # would make the docker CLI prompt for a login in the middle of `pull`.
                raise PullDenied(
                    f"pull access denied for {ref.familiar_repository}, repository does not "
                    f"exist or may require 'docker login': {exc}"
                ) from None
            except (RegistryUnavailable, NotFound) as exc:
                if not ep.mirror:
                    raise
                # A mirror that fails or lacks the image is skipped, as dockerd does.
                log.info("mirror %s: %s; trying the next endpoint", ep.url, exc)
                errors.append(f"{ep.url}: {exc}")
        raise RegistryUnavailable("; ".join(errors) or f"no endpoint for {ref.domain}")

    async def inspect(self, name: str, creds: Credentials) -> dict[str, Any]:
        """`GET /distribution/{name}/json`: the registry's descriptor of `name` and the
        platforms it offers (a list's entries, or a single manifest's config), as dockerd's
        distribution router answers; nothing is pulled."""
        ref = _combine(name, "")
        endpoints = await asyncio.to_thread(self.config.endpoints, ref.domain)
        errors: list[str] = []
        for ep in endpoints:
            try:
                async with self._client(ep, creds) as client:
                    reference = ref.digest or ref.tag or "latest"
                    raw, media_type, digest = await client.get_manifest(ref.path, reference)
                    doc = parse(raw, media_type)
                    descriptor = {"mediaType": media_type, "digest": digest, "size": len(raw)}
                    if isinstance(doc, Index):
                        platforms = [_platform(d.platform or {}) for d in doc.manifests]
                    else:
                        cfg = json.loads(await client.get_blob_bytes(ref.path, doc.config.digest))
                        platforms = [_platform(cfg if isinstance(cfg, dict) else {})]
                    return {"Descriptor": descriptor, "Platforms": platforms}
            except (Unauthorized, Denied, RegistryUnavailable, NotFound) as exc:
                if not ep.mirror:
                    if isinstance(exc, Unauthorized | Denied):
                        raise PullDenied(
                            f"pull access denied for {ref.familiar_repository}, repository does "
                            f"not exist or may require 'docker login': {exc}"
                        ) from None
                    raise
                errors.append(f"{ep.url}: {exc}")
        raise RegistryUnavailable("; ".join(errors) or f"no endpoint for {ref.domain}")

    async def _pull_from(
        self, client: RegistryClient, ref: Reference, want: Platform, emit: Emit
    ) -> PullResult:
        repo = ref.path
        reference = ref.digest or ref.tag or "latest"
        raw, media_type, manifest_digest = await client.get_manifest(repo, reference)
        # After the manifest, as moby does: a missing image fails before any output, so the
        # API can still answer with an error status.
        emit({"status": f"Pulling from {repo}", "id": reference})
        doc = parse(raw, media_type)
        if isinstance(doc, Index):
            chosen = select(doc, want)
            raw, media_type, _ = await client.get_manifest(repo, chosen.digest)
            doc = parse(raw, media_type)
            if not isinstance(doc, Manifest):
                raise InvalidArgument(f"manifest list {manifest_digest} nests another list")
        assert isinstance(doc, Manifest)
        cfg_raw = await client.get_blob_bytes(repo, doc.config.digest)
        cfg = ImageConfig.from_bytes(cfg_raw)
        diff_ids = cfg.diff_ids
        if len(diff_ids) != len(doc.layers):
            raise InvalidArgument(
                f"image config has {len(diff_ids)} diff IDs but the manifest lists "
                f"{len(doc.layers)} layers"
            )
        chains = chain_ids(diff_ids)
        image_id = "sha256:" + hashlib.sha256(cfg_raw).hexdigest()
        tag_name = str(ref) if ref.tag and not ref.digest else None
        previous = self.meta.resolve_tag(tag_name) if tag_name else None

        present = [self.meta.get_layer(c) is not None for c in chains]
        for layer, have in zip(doc.layers, present, strict=True):
            ident = _short(layer.digest)
            emit(msg.status(ident, "Already exists" if have else "Pulling fs layer"))

        sem = asyncio.Semaphore(self.config.max_concurrent_downloads)
        loop = asyncio.get_running_loop()
        # What this pull made, to give back if it fails. What it relies on is held by its
        # lease from here on, so that neither a collection nor a concurrent pull's give-back
        # takes it away.
        made_blobs: list[str] = []
        made_layers: list[str] = []
        self.meta.hold(Kind.LAYER, chains)
        self.meta.hold(Kind.CONTENT, [layer.digest for layer in doc.layers])

        unpack_slots = asyncio.Semaphore(_UNPACK_PARALLEL)
        tasks: list[asyncio.Task[None] | None] = []

        async def download(layer: Descriptor) -> None:
            async def fetch() -> None:
                await self._fetch(client, repo, layer, sem, emit)
                made_blobs.append(layer.digest)

            await self.shared.once(
                "blob:" + layer.digest, fetch, lambda: self.content.exists(layer.digest)
            )
            emit(msg.status(_short(layer.digest), "Download complete"))

        async def pull_layer(i: int) -> None:
            """Download layer i, unpack it while the other layers download and unpack, then
            record it once the layer below is recorded (a layer's parent is always there)."""
            layer = doc.layers[i]
            await download(layer)
            below = next((t for t in reversed(tasks[:i]) if t is not None), None)

            async def apply() -> None:
                async with unpack_slots:
                    unpacked = await self._unpack(layer, emit, loop)
                try:
                    if unpacked.diff_id != diff_ids[i]:
                        raise DigestMismatch(
                            f"layer {layer.digest} unpacks to diff ID {unpacked.diff_id}, but "
                            f"the image config says {diff_ids[i]}"
                        )
                    if below is not None:
                        await below
                except BaseException:
                    await asyncio.shield(asyncio.to_thread(self.layers.discard, unpacked))
                    raise
                try:
                    await asyncio.to_thread(self.layers.record, unpacked, diff_ids[:i])
                except OSError as exc:
                    raise _disk_error(exc, "failed to register layer") from exc
                made_layers.append(chains[i])

            await self.shared.once(
                "layer:" + chains[i], apply, lambda: self.meta.get_layer(chains[i]) is not None
            )
            emit(msg.status(_short(layer.digest), "Pull complete"))

        for i, have in enumerate(present):
            tasks.append(None if have else asyncio.create_task(pull_layer(i)))
        try:
            for task in tasks:
                if task is not None:
                    await task
            try:
                await asyncio.to_thread(
                    self.images.put, cfg_raw, tags=[tag_name] if tag_name else []
                )
            except OSError as exc:
                raise _disk_error(exc, "failed to store the image config") from exc
            self._record(
                ref.repository,
                manifest_digest,
                image_id,
                list(zip(diff_ids, doc.layers, strict=True)),
                ref.domain,
                repo,
            )
        except BaseException:
            for t in tasks:
                if t is not None and not t.done():
                    t.cancel()
            await asyncio.gather(*(t for t in tasks if t is not None), return_exceptions=True)
            await self._give_back(made_blobs, made_layers)
            raise
        emit({"status": f"Digest: {manifest_digest}"})
        shown = ref.familiar()
        if previous == image_id:
            emit({"status": f"Status: Image is up to date for {shown}"})
        else:
            emit({"status": f"Status: Downloaded newer image for {shown}"})
        self.events.publish("image", "pull", shown, {"name": shown})
        return PullResult(image_id, manifest_digest, ref)

    async def _fetch(
        self,
        client: RegistryClient,
        repo: str,
        layer: Descriptor,
        sem: asyncio.Semaphore,
        emit: Emit,
    ) -> None:
        ident = _short(layer.digest)
        if sem.locked():
            emit(msg.status(ident, "Waiting"))
        async with sem:
            throttle = msg.Throttle()

            def on_progress(n: int) -> None:
                if throttle.ready(n >= layer.size):
                    emit(msg.progress(ident, "Downloading", n, layer.size))

            def on_retry(attempt: int, delay: float) -> None:
                secs = max(1, round(delay))
                emit(msg.status(ident, f"Retrying in {secs} second{'s' if secs > 1 else ''}"))

            try:
                await client.fetch_blob(
                    repo,
                    layer.digest,
                    layer.size,
                    self.content,
                    on_progress,
                    on_retry,
                    lambda: emit(msg.status(ident, "Verifying Checksum")),
                )
            except OSError as exc:
                raise _disk_error(exc, f"failed to download layer {layer.digest}") from exc

    async def _unpack(
        self, layer: Descriptor, emit: Emit, loop: asyncio.AbstractEventLoop
    ) -> Unpacked:
        """Extract a downloaded layer blob into a snapshot of its own (LayerStore.unpack)."""
        ident = _short(layer.digest)
        throttle = msg.Throttle()
        total = layer.size

        def report(n: int) -> None:
            if throttle.ready(n >= total):
                loop.call_soon_threadsafe(emit, msg.progress(ident, "Extracting", n, total))

        def work() -> Unpacked:
            with self.content.open(layer.digest) as f:
                return self.layers.unpack(_CountingReader(f, report))  # type: ignore[arg-type]

        job = asyncio.ensure_future(asyncio.to_thread(work))
        try:
            return await asyncio.shield(job)
        except asyncio.CancelledError:
            # A thread cannot be stopped: let it finish, then give its snapshot back, so a
            # cancelled pull leaves no unnamed snapshot behind.
            with contextlib.suppress(BaseException):
                await asyncio.to_thread(self.layers.discard, await job)
            raise
        except OSError as exc:
            raise _disk_error(exc, "failed to register layer") from exc

    async def _give_back(self, blobs: list[str], chains: list[str]) -> None:
        """A failed pull removes what it made and nothing else holds: the compressed blobs
        it downloaded and the layers it unpacked that no image references and no other lease
        holds (engine/gc.py), and waits until their space is free, so a full disk has it
        back before the client hears of the failure."""

        def give_back() -> None:
            gc.give_back(self.meta, self.content, self.layers.snapshots, chains, blobs)
            self.content.trash.wait_empty(60)
            self.layers.snapshots.trash.wait_empty(60)

        await asyncio.shield(asyncio.to_thread(give_back))

    # push ---------------------------------------------------------------------------------
    def check_pushable(self, name: str, tag: str) -> tuple[Reference, list[tuple[str, str]]]:
        """The repository and its (tag, image ID) pairs to push; NotFound as Docker words it."""
        ref = parse_reference(name, default_tag=False)
        if ref.digest:
            raise InvalidArgument(f"cannot push a digest reference: {name}")
        if tag:
            tags = [tag]
        elif ref.tag:
            tags = [ref.tag]
        else:
            tags = self.meta.tags_in_repository(ref.repository)
        resolved = []
        for t in tags:
            image_id = self.meta.resolve_tag(f"{ref.repository}:{t}")
            if image_id is None:
                raise NotFound(f"tag does not exist: {ref.familiar_repository}:{t}")
            resolved.append((t, image_id))
        if not resolved:
            raise NotFound(
                f"An image does not exist locally with the tag: {ref.familiar_repository}"
            )
        return ref, resolved

    async def push(self, name: str, tag: str, creds: Credentials, emit: Emit) -> None:
        """`POST /images/{name}/push?tag=`; no tag pushes every tag of the repository."""
        ref, resolved = self.check_pushable(name, tag)
        emit({"status": f"The push refers to repository [{ref.repository}]"})
        endpoint = (await asyncio.to_thread(self.config.endpoints, ref.domain))[-1]
        with self.meta.lease():
            self.meta.hold(Kind.IMAGE, [image_id for _, image_id in resolved])
            async with self._client(endpoint, creds) as client:
                for t, image_id in resolved:
                    await self._push_tag(client, ref, t, image_id, emit)
                    shown = Reference(ref.domain, ref.path, t).familiar()
                    self.events.publish("image", "push", shown, {"name": shown})

    async def _push_tag(
        self, client: RegistryClient, ref: Reference, tag: str, image_id: str, emit: Emit
    ) -> None:
        repo = ref.path
        cfg_raw = self.content.read_bytes(image_id)
        cfg = ImageConfig.from_bytes(cfg_raw)
        diff_ids = cfg.diff_ids
        seen: set[str] = set()
        for d in diff_ids:
            if d not in seen:
                emit(msg.status(_short(d), "Preparing"))
                seen.add(d)
        sem = asyncio.Semaphore(self.config.max_concurrent_uploads)
        pushed: dict[str, asyncio.Task[Descriptor]] = {}

        async def push_layer(diff_id: str) -> Descriptor:
            ident = _short(diff_id)
            if sem.locked():
                emit(msg.status(ident, "Waiting"))
            async with sem:
                desc = self._compressed(diff_id)
                if desc is None:
                    desc = await asyncio.to_thread(self._compress, diff_id)
                if await client.blob_exists(repo, desc.digest):
                    emit(msg.status(ident, "Layer already exists"))
                    return desc
                location = None
                for source in self.meta.distribution.sources(desc.digest, ref.domain):
                    if source == repo:
                        continue
                    location = await client.mount_blob(repo, desc.digest, source)
                    if location is None:
                        emit(msg.status(ident, f"Mounted from {source}"))
                        return desc
                    break
                throttle = msg.Throttle()
                size = desc.size

                def on_progress(n: int) -> None:
                    if throttle.ready(n >= size):
                        emit(msg.progress(ident, "Pushing", n, size))

                digest = desc.digest
                await client.upload_blob(
                    repo,
                    digest,
                    size,
                    lambda: self.content.open(digest),
                    location=location,
                    chunk_size=self.upload_chunk_size,
                    progress=on_progress,
                )
                emit(msg.status(ident, "Pushed"))
                return desc

        for d in diff_ids:
            if d not in pushed:
                pushed[d] = asyncio.create_task(push_layer(d))
        try:
            layers = [await pushed[d] for d in diff_ids]
        except BaseException:
            for t in pushed.values():
                t.cancel()
            await asyncio.gather(*pushed.values(), return_exceptions=True)
            raise
        config_desc = Descriptor(
            "application/vnd.docker.container.image.v1+json", image_id, len(cfg_raw)
        )
        if not await client.blob_exists(repo, image_id):
            await client.upload_blob(
                repo, image_id, len(cfg_raw), lambda: self.content.open(image_id)
            )
        manifest = docker_manifest(config_desc, layers)
        media_type = str(json.loads(manifest)["mediaType"])
        digest = await client.put_manifest(repo, tag, manifest, media_type)
        self._record(
            ref.repository,
            digest,
            image_id,
            list(zip(diff_ids, layers, strict=True)),
            ref.domain,
            repo,
        )
        emit({"status": f"{tag}: digest: {digest} size: {len(manifest)}"})
        emit({"progressDetail": {}, "aux": {"Tag": tag, "Digest": digest, "Size": len(manifest)}})

    def _compress(self, diff_id: str) -> Descriptor:
        """gzip a layer tar once and keep it; independent members compressed in parallel
        (readers, Go's gzip included, read concatenated members as one stream)."""
        with self.content.open(diff_id) as src, self.content.writer() as w:
            gzip_parallel(src, w)
            info = w.commit()  # held by the push's lease (the content store's before_commit)
        desc = Descriptor(DOCKER_LAYER_GZIP, info.digest, info.size)
        self.meta.distribution.add_compressed(
            CompressedBlob(diff_id, desc.digest, desc.size, desc.media_type)
        )
        return desc

    # login --------------------------------------------------------------------------------
    async def login(self, creds: Credentials) -> dict[str, str]:
        """`POST /auth`: check credentials against the registry as `docker login` does."""
        domain = registry_domain(creds.server)
        endpoint = (await asyncio.to_thread(self.config.endpoints, domain))[-1]
        async with self._client(endpoint, creds) as client:
            await client.login()
        return {"Status": "Login Succeeded", "IdentityToken": ""}


def registry_domain(server: str) -> str:
    """The registry host of a login server address (`https://index.docker.io/v1/` → docker.io)."""
    host = server.strip()
    if "://" in host:
        host = host.split("://", 1)[1]
    host = host.split("/", 1)[0]
    if host in ("", "index.docker.io", "registry-1.docker.io", "docker.io"):
        return DEFAULT_DOMAIN
    return host


def _combine(name: str, tag: str) -> Reference:
    if not name:
        raise InvalidArgument(
            "invalid reference format: repository name must have at least one component"
        )
    if tag:
        sep = "@" if tag.startswith("sha256:") else ":"
        base = parse_reference(name, default_tag=False)
        if base.tag or base.digest:
            return base
        return parse_reference(f"{name}{sep}{tag}")
    return parse_reference(name)


def _disk_error(exc: OSError, what: str) -> DockyardError:
    """A failed write as an error the progress stream reports (not a broken response);
    ENOSPC and EDQUOT in Docker's words."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DockyardError(f"{what}: no space left on device")
    return DockyardError(f"{what}: {exc.strerror or exc}")


def _platform(doc: dict[str, Any]) -> dict[str, Any]:
    """An OCI platform object (omitempty fields left out) from a config or a descriptor."""
    out: dict[str, Any] = {
        "architecture": str(doc.get("architecture", "")),
        "os": str(doc.get("os", "")),
    }
    for key in ("os.version", "os.features", "variant", "features"):
        if doc.get(key):
            out[key] = doc[key]
    return out


def _short(digest: str) -> str:
    return digest.removeprefix("sha256:")[:12]


class _CountingReader:
    def __init__(self, f: BinaryIO, report: Callable[[int], None]) -> None:
        self._f = f
        self._n = 0
        self._report = report

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        self._n += len(data)
        self._report(self._n)
        return data

    def readable(self) -> bool:
        return True


_MEMBER = 4 << 20


def _gzip_member(data: bytes) -> bytes:
    # wbits 31: a gzip wrapper with mtime 0, so the same layer always compresses to the same
    # digest (a re-push after a re-compression finds the blob already in the registry).
    c = zlib.compressobj(6, zlib.DEFLATED, 31)
    return c.compress(data) + c.flush()


def gzip_parallel(src: BinaryIO, sink: Any) -> None:
    workers = max(1, os.cpu_count() or 1)
    wrote = False
    with ThreadPoolExecutor(workers) as pool:
        pending: deque[Any] = deque()
        while data := src.read(_MEMBER):
            pending.append(pool.submit(_gzip_member, data))
            if len(pending) > workers * 2:
                sink.write(pending.popleft().result())
                wrote = True
        while pending:
            sink.write(pending.popleft().result())
            wrote = True
    if not wrote:
        sink.write(_gzip_member(b""))


__all__ = [
    "Distribution",
    "PullHook",
    "PullResult",
    "gzip_parallel",
    "registry_domain",
]
