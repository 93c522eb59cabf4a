"""`dockyard.Dockyard`: the engine in this process, with blocking typed calls.

The daemon serves the Engine API from an `Engine`; this class drives the same `Engine` (its
builder, distribution, container manager and archives) without HTTP, for scripts and tests.
The engine needs a running event loop (container monitors, health checks, DNS responders), so
it lives on a loop in a thread of its own and each call waits for its coroutine there.

One writer per root: a daemon and an in-process engine on the same root would both own the
metadata database, the containers' monitors and the network state. Both take the root's
`daemon.lock` (api/daemon.py takes the same file), so opening a root a daemon serves raises
`RootBusy`, naming the root and saying how to reach that daemon instead.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import threading
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from dockyard.errors import Conflict, DockyardError, InvalidArgument
from dockyard.local.calls import create_body, push_target, run_container, split_import_reference
from dockyard.local.models import (
    BuildResult,
    BuildStep,
    Container,
    Image,
    PushResult,
    RunResult,
)

if TYPE_CHECKING:
    from dockyard.engine.engine import Engine
    from dockyard.local.remote import RemoteDockyard

T = TypeVar("T")
DEFAULT_ROOT = Path("/var/lib/dockyard")
DEFAULT_HOST = "unix:///run/dockyard/dockyard.sock"


class RootBusy(Conflict):
    """Another process (a dockyard daemon, or another in-process engine) holds the root."""


def _hold_root(root: Path) -> int:
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = root / "daemon.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise RootBusy(
            f"{root} is in use by another dockyard engine (a daemon holds {path}): one writer "
            "per root. Talk to that daemon through its socket (Dockyard.connect('unix://…'), "
            "or Dockyard.open(root), which does so when a daemon holds the root), or give "
            "Dockyard(root=...) a root of its own"
        ) from None
    # a daemon that died without cleaning up named its socket here (Dockyard.open)
    (root / "daemon.host").unlink(missing_ok=True)
    return fd


class Dockyard:
    """The engine on `root`, in this process. Use as a context manager, or call `close()`.

    Errors are dockyard.errors' (NotFound, Conflict, InvalidArgument, BuildFailure, …), with
    the messages the daemon would send. Containers are named or referred to by ID or name.
    `Dockyard.connect(host)` gives the same calls through a daemon's socket, and
    `Dockyard.open(root)` whichever of the two the root allows.
    """

    mode = "in-process"  # RemoteDockyard's is "daemon"

    @staticmethod
    def connect(host: str = DEFAULT_HOST) -> RemoteDockyard:
        """The daemon at `host` (`unix:///path`), with this class's calls and results."""
        from dockyard.local.remote import RemoteDockyard

        return RemoteDockyard(host)

    @classmethod
    def open(
        cls, root: str | os.PathLike[str] = DEFAULT_ROOT, *, runtime: str = "runc"
    ) -> Dockyard | RemoteDockyard:
        """The engine on `root` in this process, or, when a daemon holds the root, that
        daemon through the socket it serves (it writes it to `<root>/daemon.host`). `mode`
        says which ("in-process" or "daemon"); RootBusy when the holder serves no socket."""
        try:
            return cls(root, runtime=runtime)
        except RootBusy as busy:
            try:
                host = (Path(root) / "daemon.host").read_text().strip()
            except OSError:
                host = ""
            if not host:
                raise busy from None
            return cls.connect(host)

    def __init__(self, root: str | os.PathLike[str] = DEFAULT_ROOT, *, runtime: str = "runc"):
        self.root = Path(root).absolute()
        self._lock_fd = _hold_root(self.root)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="dockyard-engine")
        self._thread.daemon = True
        self._thread.start()
        try:
            self._engine: Engine = self._call(self._open(runtime))
        except BaseException:
            self._stop_loop()
            os.close(self._lock_fd)
            raise

    async def _open(self, runtime: str) -> Engine:
        from dockyard.engine.engine import Engine

        engine = await asyncio.to_thread(Engine, self.root, runtime=runtime)
        start = getattr(engine, "start", None)
        if start is not None:  # rejoin what an earlier engine on this root left running
            await start()
        return engine

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
        self._loop.close()

    def close(self) -> None:
        """Stop the engine: running containers keep running (as when the daemon stops) and
        the next engine on this root rejoins them."""
        if self._lock_fd < 0:
            return
        try:
            self._call(self._engine.close())
        finally:
            self._stop_loop()
            os.close(self._lock_fd)
            self._lock_fd = -1

    def __enter__(self) -> Dockyard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def engine(self) -> Engine:
        """The engine itself, for what this class does not cover (its calls are async and
        run on this object's loop: see `call`)."""
        return self._engine

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run one of the engine's coroutines on the engine's loop and return its result."""
        return self._call(coro)

    # images --------------------------------------------------------------------------
    def build(
        self,
        path: str | os.PathLike[str],
        *,
        tag: str | Sequence[str] = (),
        dockerfile: str = "Dockerfile",
        build_args: dict[str, str] | None = None,
        labels: dict[str, str] | None = None,
        target: str = "",
        no_cache: bool = False,
        network: str = "default",
    ) -> BuildResult:
        """Build the context directory `path` with Docker's legacy builder semantics, as
        `docker build` against the daemon would (.dockerignore applied). Returns the image
        and each step's result: cache hit or not, the image it made, the layer it added."""
        from dockyard.builder.context import BuildContext
        from dockyard.builder.state import BuildOptions
        from dockyard.frontend.dockerignore import IgnoreMatcher, parse_dockerignore

        root = Path(path).absolute()
        if not root.is_dir():
            raise InvalidArgument(f"build context {root} is not a directory")
        if network not in ("default", "host", "none"):
            raise InvalidArgument(f"build network {network!r}: default, host or none")
        tags = [tag] if isinstance(tag, str) else list(tag)
        opts = BuildOptions(
            dockerfile=dockerfile,
            tags=tags,
            no_cache=no_cache,
            build_args=dict(build_args or {}),
            labels=dict(labels or {}),
            target=target,
            network=network,
        )
        ctx = BuildContext.open(root, dockerfile)
        ignore = root / ".dockerignore"
        if ignore.is_file():  # the client's job on the wire (the CLI applies it): ours here
            patterns = parse_dockerignore(ignore.read_text(errors="replace"))
            ctx = BuildContext(root, IgnoreMatcher(patterns), ctx.dropped)
        ctx.read_dockerfile(dockerfile)
        recorder = _StepRecorder()
        image_id = self._call(self._engine.build_from(ctx, opts, None, progress=recorder))
        return BuildResult(image_id, tags, self._steps(recorder), self._layers(image_id))

    def _layers(self, image_id: str) -> list[str]:
        return self._engine.images.config(image_id).diff_ids

    def _steps(self, rec: _StepRecorder) -> list[BuildStep]:
        out: list[BuildStep] = []
        before: dict[int, int] = {}  # stage -> layers so far
        for s in rec.steps:
            layers = self._layers(s.image_id) if s.image_id else []
            had = before.get(s.stage, len(layers) if s.is_from else 0)
            added = layers[-1] if len(layers) > had and not s.is_from else None
            before[s.stage] = len(layers)
            out.append(
                BuildStep(s.number, s.text, s.line, s.cached, s.image_id, added, bytes(s.output))
            )
        return out

    def image(self, name: str) -> Image:
        """An image by name, ID or digest (NotFound if none)."""
        images = self._engine.images
        image_id = images.resolve(name)
        doc = images.inspect(image_id)
        return Image(
            image_id,
            list(doc.get("RepoTags") or []),
            list(doc.get("RepoDigests") or []),
            images.config(image_id).diff_ids,
            dict(doc.get("Config") or {}),
        )

    def images(self) -> list[Image]:
        """What `docker images` lists (engine/image_list.py, as GET /images/json)."""
        from dockyard.engine.image_list import list_images

        return [self.image(str(s["Id"])) for s in list_images(self._engine, {})]

    def tag(self, source: str, target: str) -> None:
        self._engine.images.tag(source, target)

    def remove_image(self, name: str, *, force: bool = False) -> list[dict[str, str]]:
        """`docker rmi`: what was untagged and deleted, in Docker's words."""
        return self._call(_maybe_async(self._engine.delete_image, name, force=force, prune=True))

    def pull(
        self, reference: str, *, username: str = "", password: str = "", platform: str = ""
    ) -> Image:
        """Pull `reference` (a tag or digest; `latest` when it names neither)."""
        from dockyard.registry.auth import Credentials

        creds = Credentials(username=username, password=password)
        dist = self._engine.distribution
        result = self._call(dist.pull(reference, "", platform, creds, _ignore))
        return self.image(result.image_id)

    def push(self, reference: str, *, username: str = "", password: str = "") -> PushResult:
        """Push the local image `reference` (its tag, `latest` when none) to its registry."""
        from dockyard.registry.auth import Credentials

        name, tag = push_target(reference)
        creds = Credentials(username=username, password=password)
        seen: list[dict[str, Any]] = []
        self._engine.distribution.check_pushable(name, tag)
        self._call(self._engine.distribution.push(name, tag, creds, seen.append))
        errors = [m for m in seen if m.get("error")]
        if errors:
            raise DockyardError(str(errors[0]["error"]))
        digest = next((m["aux"]["Digest"] for m in seen if "Digest" in m.get("aux", {})), "")
        return PushResult(f"{name}:{tag}", digest)

    def import_image(self, path: str | os.PathLike[str], reference: str = "") -> Image:
        """`docker import path reference`: a root filesystem tarball as a one-layer image."""
        repo, tag = split_import_reference(reference)
        with open(path, "rb") as f:
            image_id = self._call(
                self._engine.import_image(f, repo=repo, tag=tag, source=str(path))
            )
        return self.image(image_id)

    def save(self, names: Sequence[str], path: str | os.PathLike[str]) -> None:
        """`docker save -o path names…`: a docker-archive tar any Docker can load."""
        from dockyard.engine.archives import save_to_file

        with open(path, "wb") as out:
            self._call(asyncio.to_thread(save_to_file, self._engine, list(names), out))

    def load(self, path: str | os.PathLike[str]) -> list[str]:
        """`docker load -i path`: the IDs of the images loaded."""
        from dockyard.engine.archives import load

        with open(path, "rb") as f:
            return self._call(load(self._engine, f, _ignore))

    # containers ------------------------------------------------------------------------
    def create(
        self,
        image: str,
        command: Sequence[str] | None = None,
        *,
        name: str | None = None,
        env: dict[str, str] | None = None,
        workdir: str = "",
        user: str = "",
        network: str = "bridge",
        volumes: dict[str, str] | None = None,
        labels: dict[str, str] | None = None,
    ) -> Container:
        """`docker create`: `volumes` maps a volume name or host path to a container path."""
        body = create_body(image, command, env, workdir, user, network, volumes, labels)
        cid, _warnings = self._engine.containers.create(body, name)
        return self.container(cid)

    def container(self, name_or_id: str) -> Container:
        doc = self._engine.containers.inspect(name_or_id)
        return Container(doc["Id"], doc["Name"].lstrip("/"), doc["Config"]["Image"])

    def start(self, container: Container | str) -> None:
        self._call(self._engine.containers.start(_id(container)))

    def wait(self, container: Container | str) -> int:
        """Wait until the container is not running; its exit code."""
        waiting = self._engine.containers.begin_wait(_id(container), "not-running")
        return int(self._call(waiting)["StatusCode"])

    def stop(self, container: Container | str, *, timeout: int | None = None) -> None:
        self._call(self._engine.containers.stop(_id(container), timeout))

    def remove(self, container: Container | str, *, force: bool = False) -> None:
        self._call(self._engine.containers.remove(_id(container), force=force))

    def logs(self, container: Container | str) -> tuple[bytes, bytes]:
        """What the container wrote so far: (stdout, stderr)."""

        async def read() -> tuple[bytes, bytes]:
            out, err = bytearray(), bytearray()
            async for stream, data in self._engine.containers.logs(
                _id(container), stdout=True, stderr=True, tail="all", timestamps=False
            ):
                (err if stream == 2 else out).extend(data)
            return bytes(out), bytes(err)

        return self._call(read())

    def run(
        self,
        image: str,
        command: Sequence[str] | None = None,
        *,
        remove: bool = True,
        **create: Any,
    ) -> RunResult:
        """`docker run` (attached, not interactive): create, start, wait, read the logs and,
        with `remove`, remove the container. Returns the exit code and the output."""
        return run_container(self, image, command, remove, create)


def _id(container: Container | str) -> str:
    return container.id if isinstance(container, Container) else container


def _ignore(msg: dict[str, Any]) -> None:
    del msg


async def _maybe_async(fn: Any, *args: Any, **kw: Any) -> Any:
    """The engine's call, whether it is a coroutine function (after arch-engine) or not."""
    result = fn(*args, **kw)
    if asyncio.iscoroutine(result):
        return await result
    return result


class _Step:
    def __init__(self, number: int, text: str, line: int, stage: int) -> None:
        self.number, self.text, self.line, self.stage = number, text, line, stage
        self.cached = False
        self.image_id = ""
        self.output = bytearray()

    @property
    def is_from(self) -> bool:
        return self.text.split(None, 1)[0].upper() == "FROM" if self.text.strip() else False


class _StepRecorder:
    """The builder's Progress, kept as records instead of a stream."""

    def __init__(self) -> None:
        self.steps: list[_Step] = []
        self._by_key: dict[tuple[int, int], _Step] = {}

    def _of(self, step: Any) -> _Step:
        key = (step.stage, step.number)
        if key not in self._by_key:
            s = _Step(step.number, step.text, step.line, step.stage)
            self._by_key[key] = s
            self.steps.append(s)
        return self._by_key[key]

    def planned(self, stages: Sequence[int], total: int) -> None:
        del stages, total

    def warning(self, text: str) -> None:
        del text

    def step_started(self, step: Any) -> None:
        self._of(step)

    def cache_checked(self, step: Any, check: Any) -> None:
        del step, check

    def step_cached(self, step: Any, image_id: str) -> None:
        s = self._of(step)
        s.cached, s.image_id = True, image_id

    def step_running(self, step: Any, container_id: str) -> None:
        del step, container_id

    def step_log(self, step: Any, data: bytes, stderr: bool = False) -> None:
        del stderr  # a RUN's output is kept as it came, both streams together
        self._of(step).output.extend(data)

    def container_removed(self, step: Any, container_id: str) -> None:
        del step, container_id

    def step_done(self, step: Any, image_id: str) -> None:
        self._of(step).image_id = image_id

    def step_error(self, step: Any, message: str) -> None:
        del step, message  # raised to the caller as the build's error

    def triggers(self, step: Any, count: int) -> None:
        del step, count

    def pull_status(self, step: Any, message: dict[str, Any]) -> None:
        del step, message

    def stage_finished(self, stage: int) -> None:
        del stage

    def stages_ended(self) -> None:
        pass

    def finished(self, image_id: str, tags: Sequence[str], unused_args: Sequence[str]) -> None:
        del image_id, tags, unused_args
