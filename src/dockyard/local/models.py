"""What the in-process API returns: small typed records, no Docker JSON to pick apart."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class BuildStep:
    """One step of a build as it ran."""

    number: int  # 1-based, as the legacy `Step N/M`
    instruction: str  # the Dockerfile line as written
    line: int  # its line in the Dockerfile
    cached: bool  # the build cache gave the step's image (no RUN, no COPY happened)
    image_id: str  # the image the step made (FROM: the base)
    layer: str | None  # the diff ID of the layer the step added, or None (metadata only)
    output: bytes = b""  # what a RUN printed (stdout and stderr as they came)


@dataclass(frozen=True)
class BuildResult:
    image_id: str
    tags: list[str]
    steps: list[BuildStep]
    layers: list[str]  # the image's diff IDs, bottom first

    @property
    def cache_hits(self) -> int:
        return sum(1 for s in self.steps if s.cached)


@dataclass(frozen=True)
class Image:
    id: str
    tags: list[str]
    digests: list[str]  # repo@sha256:… names from a pull or push
    layers: list[str]
    config: dict[str, object] = field(repr=False)  # the image config's "config" (Cmd, Env, …)


@dataclass(frozen=True)
class Container:
    id: str
    name: str
    image: str


@dataclass(frozen=True)
class RunResult:
    """A container run to its end: its exit code and output."""

    container: Container
    exit_code: int
    stdout: bytes
    stderr: bytes


@dataclass(frozen=True)
class PushResult:
    reference: str
    digest: str  # the manifest's digest in the registry
