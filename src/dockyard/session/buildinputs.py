"""What a build takes from its client's session: Dockerfile, context, secrets, agents, credentials.

In BuildKit's order (dockerfile frontend, moby/buildkit frontend/dockerfile/builder): the
Dockerfile from the `dockerfile` directory (with `<Dockerfile>.dockerignore` beside it),
the `.dockerignore` of the `context` directory unless the Dockerfile has its own, then the
context itself, filtered on the client by those patterns so ignored files never travel.
Secrets are fetched once, for the ids the Dockerfile's `RUN --mount=type=secret` name;
agents are forwarded for its `type=ssh` ids; registry credentials are asked for the
registries its `FROM` lines name. All of it is gone when the build ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dockyard.builder.digests import DigestIndex
from dockyard.builder.mounts import parse_mount
from dockyard.errors import BuildFailure, DockyardError, InvalidArgument
from dockyard.frontend.dockerignore import parse_dockerignore
from dockyard.frontend.parser import parse_dockerfile
from dockyard.registry.auth import Credentials
from dockyard.session import filesync, methods, sshforward
from dockyard.session.contexts import ContextStore, KeptContext
from dockyard.session.h2grpc import NOT_FOUND, GrpcError
from dockyard.session.progress import Trace, human_size

if TYPE_CHECKING:
    from dockyard.session.manager import Session

CONTEXT = "context"
DOCKERFILE = "dockerfile"


@dataclass
class SessionInputs:
    dockerfile_name: str
    dockerfile_text: str
    context_dir: Path
    secrets: dict[str, bytes] = field(default_factory=dict, repr=False)
    ssh: dict[str, str] = field(default_factory=dict)
    credentials: dict[str, Credentials] = field(default_factory=dict, repr=False)
    ignore_patterns: list[str] = field(default_factory=list)
    synced: filesync.SyncResult | None = None
    digests: DigestIndex | None = None  # of the kept context, re-hashed only where changed


def mount_ids(text: str, name: str) -> tuple[list[str], list[str]]:
    """The secret and ssh ids the Dockerfile's RUN mounts name literally."""
    secrets: list[str] = []
    agents: list[str] = []
    try:
        df = parse_dockerfile(text, filename=name)
    except DockyardError:
        return [], []  # the build reports the syntax error with its line
    for ins in df.instructions:
        if ins.keyword != "run":
            continue
        for key, value in ins.flags:
            if key != "mount" or not value or "$" in value:
                continue
            try:
                spec = parse_mount(value, "/")
            except DockyardError:
                continue
            if spec.type == "secret" and spec.id not in secrets:
                secrets.append(spec.id)
            elif spec.type == "ssh" and spec.id not in agents:
                agents.append(spec.id)
    return secrets, agents


def _registries(text: str, name: str) -> list[str]:
    from dockyard.image.reference import parse_reference

    try:
        df = parse_dockerfile(text, filename=name)
    except DockyardError:
        return []
    stages: set[str] = set()
    out: list[str] = []
    for ins in df.instructions:
        if ins.keyword != "from" or not ins.args:
            continue
        base = ins.args[0]
        if len(ins.args) >= 3 and ins.args[1].lower() == "as":
            stages.add(ins.args[2].lower())
        if "$" in base or base.lower() in stages or base == "scratch":
            continue
        try:
            domain = parse_reference(base).domain
        except DockyardError:
            continue
        if domain not in out:
            out.append(domain)
    return out


async def fetch_secret(session: Session, ident: str) -> bytes | None:
    from dockyard.session.proto import session_pb2

    req = session_pb2.GetSecretRequest(ID=ident).SerializeToString()
    try:
        raw = await session.conn.unary(methods.SECRETS_GET, req, timeout=30)
    except GrpcError as exc:
        if exc.code == NOT_FOUND:
            return None
        raise BuildFailure(f"secret {ident}: {exc.message}") from None
    data: bytes = session_pb2.GetSecretResponse.FromString(raw).data
    return data


async def _credentials(session: Session, domain: str) -> Credentials | None:
    from dockyard.session.proto import session_pb2

    # BuildKit asks with the registry's host; Docker Hub's is registry-1.docker.io, which
    # the client's auth provider maps to its `https://index.docker.io/v1/` entry.
    host = "registry-1.docker.io" if domain == "docker.io" else domain
    req = session_pb2.CredentialsRequest(Host=host).SerializeToString()
    try:
        raw = await session.conn.unary(methods.AUTH_CREDENTIALS, req, timeout=30)
    except GrpcError:
        return None
    resp = session_pb2.CredentialsResponse.FromString(raw)
    if not resp.Username and not resp.Secret:
        return None
    if resp.Username:
        cfg = {"username": resp.Username, "password": resp.Secret}
    else:
        cfg = {"identitytoken": resp.Secret}
    return Credentials.from_json({**cfg, "serveraddress": domain})


async def _definition(
    session: Session, name: str, trace: Trace, work: Path
) -> tuple[str, list[str]]:
    """The Dockerfile and the ignore patterns for the context."""
    v = trace.start(f"[internal] load build definition from {name}")
    text_b = await filesync.read_file(session, DOCKERFILE, name, work / "df")
    if text_b is None:
        trace.complete(v, error="failed to read dockerfile")
        raise InvalidArgument(
            "failed to solve with frontend dockerfile.v0: failed to read dockerfile: "
            f"open {name}: no such file or directory"
        )
    trace.status(v, f"transferring dockerfile: {human_size(len(text_b))}", done=True)
    trace.complete(v)
    v = trace.start("[internal] load .dockerignore")
    # BuildKit 0.10+: `<Dockerfile>.dockerignore` beside the Dockerfile wins over the
    # context's .dockerignore.
    ignore_b = await filesync.read_file(session, DOCKERFILE, f"{name}.dockerignore", work / "dfi")
    if ignore_b is None:
        ignore_b = await filesync.read_file(session, CONTEXT, ".dockerignore", work / "di")
    trace.status(v, f"transferring context: {human_size(len(ignore_b or b''))}", done=True)
    trace.complete(v)
    patterns = parse_dockerignore(ignore_b.decode(errors="replace")) if ignore_b else []
    return text_b.decode(errors="replace"), patterns


@contextlib.asynccontextmanager
async def prepare(
    session: Session,
    dockerfile_name: str,
    trace: Trace,
    contexts: ContextStore,
    scratch: Path,
    *,
    context_dir: Path | None = None,
    dockerfile_text: str | None = None,
) -> AsyncIterator[SessionInputs]:
    """Everything a session build needs, held for the `async with` body. `context_dir`
    and `dockerfile_text` are given when they came another way (a tar on stdin)."""
    name = dockerfile_name or "Dockerfile"
    work = Path(tempfile.mkdtemp(prefix="session-", dir=scratch))
    try:
        patterns: list[str] = []
        if dockerfile_text is not None:
            text = dockerfile_text
        else:
            text, patterns = await _definition(session, name, trace, work)
        secret_ids, agent_ids = mount_ids(text, name)
        inputs = SessionInputs(name, text, context_dir or work, ignore_patterns=patterns)
        if session.supports(methods.AUTH_CREDENTIALS):
            for domain in _registries(text, name):
                creds = await _credentials(session, domain)
                if creds is not None:
                    inputs.credentials[domain] = creds
        if secret_ids and session.supports(methods.SECRETS_GET):
            for ident in secret_ids:
                data = await fetch_secret(session, ident)
                if data is not None:
                    inputs.secrets[ident] = data
        async with contextlib.AsyncExitStack() as stack:
            inputs.ssh = await stack.enter_async_context(
                sshforward.agent_sockets(session, agent_ids, scratch)
            )
            if context_dir is None:
                kept = await stack.enter_async_context(
                    contexts.checkout(session.shared_key, CONTEXT)
                )
                v = trace.start("[internal] load build context")
                last = [0]

                def progress(n: int) -> None:
                    # a status every MiB or so: the display redraws on each
                    if n - last[0] >= 1 << 20:
                        last[0] = n
                        trace.status(v, f"transferring context: {human_size(n)}")

                try:
                    inputs.synced = await filesync.receive(
                        session,
                        CONTEXT,
                        kept.tree,
                        kept.staging,
                        exclude=patterns,
                        progress=progress,
                        memo=kept.listing,
                    )
                except DockyardError as exc:
                    trace.complete(v, error=str(exc))
                    raise
                trace.status(
                    v, f"transferring context: {human_size(inputs.synced.bytes)}", done=True
                )
                trace.complete(v)
                inputs.context_dir = kept.tree
                inputs.digests = kept_digests(contexts, kept, inputs.synced)
            yield inputs
    finally:
        await asyncio.shield(asyncio.to_thread(_rmtree, work))


def kept_digests(
    contexts: ContextStore, kept: KeptContext, synced: filesync.SyncResult
) -> DigestIndex:
    """After a sync into a kept copy: its size for eviction, and its digest index with
    the changed paths forgotten (the others are still good) and the digests of the files
    that travelled, hashed as they arrived, learnt."""
    contexts.note_size(kept.key, synced.disk_bytes)
    if synced.changed or synced.requested or synced.dir_modes_changed:
        kept.digests.tree_changed()
    kept.digests.forget(synced.changed)
    for rel, (st, value) in synced.digests.items():
        kept.digests.remember(rel, st, value)
    return kept.digests


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
