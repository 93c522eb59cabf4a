"""What the in-process `Dockyard` and `RemoteDockyard` both send: one spelling of each call's
arguments as the Engine API takes them (a create body, a push's name and tag, an import's
repository and tag), so both ask the engine for the same thing."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from dockyard.errors import DockyardError
from dockyard.local.models import Container, RunResult


class Lifecycle(Protocol):
    """The container calls `run` is made of (Dockyard's and RemoteDockyard's)."""

    @property
    def create(self) -> Callable[..., Container]:  # (image, command, **its options)
        ...

    def start(self, container: Container | str) -> None: ...

    def wait(self, container: Container | str) -> int: ...

    def logs(self, container: Container | str) -> tuple[bytes, bytes]: ...

    def remove(self, container: Container | str, *, force: bool = False) -> None: ...


def run_container(
    api: Lifecycle, image: str, command: Sequence[str] | None, remove: bool, create: Any
) -> RunResult:
    """`docker run` (attached, not interactive): create, start, wait, read the logs and,
    with `remove`, remove the container."""
    c = api.create(image, command, **create)
    try:
        api.start(c)
        code = api.wait(c)
        out, err = api.logs(c)
    finally:
        if remove:
            with contextlib.suppress(DockyardError):
                api.remove(c, force=True)
    return RunResult(c, code, out, err)


def create_body(
    image: str,
    command: Sequence[str] | None,
    env: dict[str, str] | None,
    workdir: str,
    user: str,
    network: str,
    volumes: dict[str, str] | None,
    labels: dict[str, str] | None,
) -> dict[str, Any]:
    """`POST /containers/create`'s body; `volumes` maps a volume name or host path to a
    container path (HostConfig.Binds)."""
    body: dict[str, Any] = {"Image": image, "Labels": dict(labels or {})}
    if command is not None:
        body["Cmd"] = list(command)
    if env:
        body["Env"] = [f"{k}={v}" for k, v in env.items()]
    if workdir:
        body["WorkingDir"] = workdir
    if user:
        body["User"] = user
    body["HostConfig"] = {
        "NetworkMode": network,
        "Binds": [f"{src}:{dst}" for src, dst in (volumes or {}).items()],
    }
    return body


def push_target(reference: str) -> tuple[str, str]:
    """(name, tag) of `docker push REFERENCE` (`latest` when it names no tag), the name as the
    docker CLI sends it (familiar for Docker Hub)."""
    from dockyard.image.reference import parse_reference

    ref = parse_reference(reference)
    name = ref.repository if ref.domain != "docker.io" else ref.familiar_repository
    return name, ref.tag or "latest"


def split_import_reference(reference: str) -> tuple[str, str]:
    """(repo, tag) of `docker import FILE REFERENCE` ("" for what it leaves out)."""
    if ":" in reference.rsplit("/", 1)[-1]:
        repo, _, tag = reference.rpartition(":")
        return repo, tag
    return reference, ""
