"""The Engine: the one object that owns dockyard's storage and runs every operation.

The daemon holds exactly one; the API layer translates HTTP into calls on it, and the same
object is the in-process Python API. Storage under `root`:
  content/      blobs by digest (configs, layer tars)
  metadata.db   SQLite: images, tags, layers, containers, build cache, snapshots
  overlay/      snapshot directories (layers and containers' writable tops), init layer
  containers/   per-container state: bundle, rootfs mount point, /etc files, log, exit code
  builds/       per-step state of running builds; tmp/ for uploaded build contexts
  buildcache/   RUN --mount=type=cache directories (never part of a layer)
  networks/     network definitions and IPAM state; volumes/ named and anonymous volumes
  bin/          dockyard-init, compiled on first use of --init
  runc/         runc's own state
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import platform
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from dockyard.content.store import ContentStore
from dockyard.content.trash import Trash
from dockyard.engine import fsck, gc
from dockyard.engine.containers import ContainerManager
from dockyard.engine.dns import DnsResponders
from dockyard.engine.events import EventBus
from dockyard.engine.mounts import make_private, release_private
from dockyard.engine.network import NetworkManager
from dockyard.engine.strays import remove_stray_runtimes
from dockyard.engine.volumes import VolumeStore
from dockyard.errors import InvalidArgument, NotFound
from dockyard.image.config import HistoryEntry, build_image_config, now_rfc3339
from dockyard.metadata.store import MetadataStore
from dockyard.registry.config import RegistryConfig
from dockyard.rootperms import make_root, secure_root
from dockyard.runtime.cgroupwarm import AttachWarmer
from dockyard.runtime.processes import RuncProcesses
from dockyard.runtime.runc import Runc
from dockyard.snapshot.overlay import OverlaySnapshotter
from dockyard.store.images import ImageStore, familiar
from dockyard.store.layers import LayerStore
from dockyard.version import __version__

_log = logging.getLogger("dockyard.engine")

if TYPE_CHECKING:
    from dockyard.builder.builder import Builder, BuildOptions, Emit
    from dockyard.builder.context import BuildContext
    from dockyard.builder.mounts import CacheMounts
    from dockyard.builder.progress import Progress
    from dockyard.engine.distribution import Distribution
    from dockyard.engine.grpc_build import GrpcBuilds
    from dockyard.engine.session_build import SessionBuilds

API_VERSION = "1.44"
MIN_API_VERSION = "1.24"


class Engine:
    def __init__(
        self,
        root: Path,
        *,
        runtime: str = "runc",
        registry_config: RegistryConfig | None = None,
    ) -> None:
        self.root = root.absolute()
        make_root(self.root)
        self._root_bound = make_private(self.root)
        self.runtime = runtime
        self.meta = MetadataStore(self.root / "metadata.db")
        # Operations of a dead daemon hold nothing any more (metadata/leases.py).
        self.meta.clear_leases()
        # Every blob is held by the current lease before it becomes visible.
        # Deletions go through a trash per store, on the stores' filesystem (content/trash.py).
        trash = self.root / "trash"
        self.content = ContentStore(
            self.root / "content",
            before_commit=self.meta.hold_blob,
            trash=Trash(trash / "content"),
        )
        self.snapshots = OverlaySnapshotter(self.root / "overlay", trash=Trash(trash / "overlay"))
        # the kept build contexts' (session/contexts.py), made here so that what a crash left
        # in it goes at start, not at the first session build
        self.contexts_trash = Trash(trash / "contexts")
        self.layers = LayerStore(self.content, self.meta, self.snapshots)
        self.images = ImageStore(self.content, self.meta)
        self.runc = Runc(runtime, state_root=self.root / "runc")
        # Every state change is published here (engine/events.py); GET /events reads it.
        self.events = EventBus()
        self._registry_config = registry_config or RegistryConfig()
        self._distribution: Distribution | None = None
        # Networks, volumes and DNS are the engine's; the container manager uses them.
        self.networks = NetworkManager(self.root / "networks", self.root, self.events)
        self.volumes = VolumeStore(
            self.root / "volumes",
            self._volume_users,
            self.events,
            trash=Trash(trash / "volumes"),
        )
        self.dns = DnsResponders(self._dns_lookup)
        # one for container starts, execs and RUN steps: one thread keeps the kernel's
        # cgroup-attach window open for all of them (runtime/cgroupwarm.py)
        self.attach_warmer = AttachWarmer()
        self.containers = ContainerManager(
            self.root / "containers",
            self.meta,
            self.images,
            self.layers,
            self.snapshots,
            RuncProcesses(self.runc, self.attach_warmer),
            networks=self.networks,
            volumes=self.volumes,
            dns=self.dns,
            events=self.events,
        )
        self.builds_dir = self.root / "builds"
        self._build_caches: CacheMounts | None = None
        self._builder: Builder | None = None
        from dockyard.engine.disk_usage import DiskUsage

        self.disk_usage = DiskUsage(self)
        self.tmp_dir = self.root / "tmp"
        shutil.rmtree(self.tmp_dir, ignore_errors=True)
        self.tmp_dir.mkdir()
        self.builds_dir.mkdir(exist_ok=True)
        self.started = time.time()
        self._session_builds: SessionBuilds | None = None
        self._grpc_builds: GrpcBuilds | None = None
        # What the stores made, and what an older dockyard left 0755/0644: tightened at
        # start, before anything is served (rootperms.py)
        secure_root(self.root)
        # the kept build contexts' cap (session/contexts.py); None: its default
        self.context_cache_cap: int | None = None

    @property
    def distribution(self) -> Distribution:
        """Pull and push (engine/distribution.py), made at the first use: with the registry's
        manifest code, 0.2 MiB of RSS an idle daemon need not hold."""
        if self._distribution is None:
            from dockyard.engine.distribution import Distribution

            self._distribution = Distribution(
                self.content,
                self.meta,
                self.layers,
                self.images,
                self._registry_config,
                self.events,
            )
        return self._distribution

    def _volume_users(self, name: str) -> list[str]:
        return self.containers.volume_users(name)

    def _dns_lookup(self, net_id: str, name: str, asker: str) -> str | None:
        return self.containers.dns_lookup(net_id, name, asker)

    @property
    def build_caches(self) -> CacheMounts:
        """`RUN --mount=type=cache` directories (builder/mounts.py)."""
        if self._build_caches is None:
            from dockyard.builder.mounts import CacheMounts

            # outside builds/, which is emptied at start-up: cache mounts persist (the build
            # cache that /system/df lists and /build/prune clears, engine/build_cache.py)
            self._build_caches = CacheMounts(self.root / "buildcache", self.builds_dir)
        return self._build_caches

    @property
    def builder(self) -> Builder:
        """The image builder, made on the first build: the builder and the Dockerfile
        frontend are 2.8 MiB of modules an idle daemon does not carry (issue 17, row h)."""
        if self._builder is None:
            from dockyard.builder.builder import Builder
            from dockyard.builder.cachelog import CacheLog, StoredCache
            from dockyard.builder.rootfs import OverlayRootfs
            from dockyard.builder.runner import StepRunner
            from dockyard.engine.build_networks import BuildNetworks

            self._builder = Builder(
                self.images,
                OverlayRootfs(self.layers, self.snapshots, self.builds_dir),
                StepRunner(
                    self.runc,
                    self.root / "steps",
                    BuildNetworks(self.containers),
                    self.attach_warmer,
                ),
                self.builds_dir,
                cache=StoredCache(self.meta),
                log=CacheLog(self.meta),
                caches=self.build_caches,
                pull=self.distribution.ensure_image,
                containers=self.containers,
            )
        return self._builder

    @property
    def session_builds_loaded(self) -> bool:
        return self._session_builds is not None

    @property
    def session_builds(self) -> SessionBuilds:
        """BuildKit's sessions and the builds through them; the gRPC and protobuf modules
        load only when the first session arrives, so an idle daemon does not carry them."""
        if self._session_builds is None:
            from dockyard.engine.session_build import SessionBuilds

            self._session_builds = SessionBuilds(self)
        return self._session_builds

    def lease(self) -> AbstractContextManager[str]:
        """`with engine.lease():` — what the block makes or uses is kept from garbage
        collection until it ends (metadata/leases.py). Build, pull, push, load, import and
        commit take one themselves; an in-process caller may hold one across several calls."""
        return self.meta.lease()

    async def start(self, *, resumed: bool = False) -> None:
        """Daemon start, once the event loop runs: rejoin the containers an earlier daemon
        left running, record the exits that happened meanwhile, apply restart policies
        (not when `resumed`: the daemon re-executed itself while idle, api/idle_reexec.py); then
        remove what a dead daemon's operations left: its build steps' runc containers
        (engine/strays.py), then its mounts, partial blobs, temp directories, active
        snapshots and whatever an interrupted collection had not removed yet (engine/fsck.py)."""
        await self.containers.recover(resumed=resumed)
        await remove_stray_runtimes(self.runc, [c.id for c in self.containers.all()])
        await asyncio.to_thread(fsck.sweep, self._fsck_store())

    def held_in_memory(self) -> str | None:
        """What only this process holds and a re-exec of the daemon would lose (containers
        that run, exec instances, BuildKit sessions, uploads and builds, buildx's jobs), or
        None when everything the engine knows is on disk (api/idle_reexec.py)."""
        held = self.containers.held_in_memory()
        if held is None and self._session_builds is not None:
            held = self._session_builds.held_in_memory()
        if held is None and self._grpc_builds is not None:
            held = self._grpc_builds.held_in_memory()
        return held

    @property
    def grpc_builds(self) -> GrpcBuilds:
        """BuildKit's control API on `/grpc` (buildx), loaded on the first connection."""
        if self._grpc_builds is None:
            from dockyard.engine.grpc_build import GrpcBuilds

            self._grpc_builds = GrpcBuilds(self)
        return self._grpc_builds

    def _fsck_store(self) -> fsck.Store:
        return fsck.Store(
            self.root,
            self.content,
            self.meta,
            self.snapshots,
            self.containers.all,
            self.started,
        )

    async def system_check(self, *, repair: bool) -> fsck.Report:
        """`dockyard system check [--repair]` (engine/fsck.py), in a worker thread."""
        return await asyncio.to_thread(fsck.check, self._fsck_store(), repair=repair)

    async def close(self, *, resuming: bool = False) -> None:
        """Daemon stop; `resuming`: for a re-exec in place, which starts the engine again
        with `start(resumed=True)` (api/idle_reexec.py): the networks stay as they are."""
        await self.containers.shutdown(keep_networks=resuming)
        # What is still in the trash is deleted at the next start.
        await asyncio.to_thread(self.content.trash.close)
        await asyncio.to_thread(self.snapshots.trash.close)
        await asyncio.to_thread(self.containers.volumes.trash.close)
        await asyncio.to_thread(self.containers.trash.close)
        await asyncio.to_thread(self.contexts_trash.close)
        self.meta.close()
        release_private(self.root, self._root_bound)

    # builds ------------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def build_context(
        self, context_tar: BinaryIO, dockerfile: str
    ) -> AsyncIterator[BuildContext]:
        """The extracted context with its Dockerfile found. dockerd reads the context
        before it answers, so a body that is not a tar, or has no Dockerfile, is an error
        status rather than a failed build stream."""
        from dockyard.builder.context import BuildContext, extract_context

        ctx_dir = Path(tempfile.mkdtemp(prefix="ctx-", dir=self.tmp_dir))
        try:
            await asyncio.to_thread(extract_context, context_tar, ctx_dir)
            ctx = BuildContext.open(ctx_dir, dockerfile, shares_files=True)
            ctx.read_dockerfile(dockerfile)
            yield ctx
        finally:
            await asyncio.shield(asyncio.to_thread(shutil.rmtree, ctx_dir, True))

    @contextlib.asynccontextmanager
    async def git_context(
        self, url: str, dockerfile: str, *, legacy: bool, keep_git_dir: bool = False
    ) -> AsyncIterator[BuildContext]:
        """A remote build context from a git repository (`/build?remote=URL`, BuildKit's
        `context` attribute), checked out as the builder that asked does it: moby 20.10's
        clone (`legacy`: ref `master` by default, `.git` kept, whole-second mtimes as its
        tar of the clone gives) or BuildKit's git source (HEAD by default, no `.git`)."""
        from dockyard.builder import gitsource
        from dockyard.builder.context import BuildContext

        ref = gitsource.context_ref(url)
        if ref is None:
            raise InvalidArgument(f"{url} is not a git repository URL")
        scratch = Path(tempfile.mkdtemp(prefix="git-", dir=self.tmp_dir))
        try:
            env = gitsource.GitEnv(scratch / "home")
            env.home.mkdir()
            if legacy:
                top = await asyncio.to_thread(
                    gitsource.checkout_legacy_context, ref, scratch / "ctx", env
                )
            else:
                top = await asyncio.to_thread(
                    gitsource.checkout_buildkit_context, ref, scratch / "ctx", env, keep_git_dir
                )
            ctx = BuildContext.open(top, dockerfile, second_mtimes=legacy)
            ctx.read_dockerfile(dockerfile)
            yield ctx
        finally:
            await asyncio.shield(asyncio.to_thread(shutil.rmtree, scratch, True))

    async def build(
        self,
        context_tar: BinaryIO,
        opts: BuildOptions,
        emit: Emit | None = None,
        *,
        progress: Progress | None = None,
    ) -> str:
        """Build from a context tar; progress to `progress`, else as the legacy stream."""
        async with self.build_context(context_tar, opts.dockerfile) as ctx:
            return await self.build_from(ctx, opts, emit, progress=progress)

    async def build_from(
        self,
        ctx: BuildContext,
        opts: BuildOptions,
        emit: Emit | None = None,
        *,
        progress: Progress | None = None,
    ) -> str:
        """Build from a context `build_context` opened."""
        started = time.monotonic()
        what = f"build of {opts.dockerfile}" + (f" as {', '.join(opts.tags)}" if opts.tags else "")
        _log.info("%s started", what)
        try:
            with self.lease():
                image_id = await self.builder.build(ctx, opts, emit, progress=progress)
        except asyncio.CancelledError:
            _log.info("%s cancelled after %.1fs", what, time.monotonic() - started)
            raise
        except Exception as exc:
            _log.info("%s failed after %.1fs: %s", what, time.monotonic() - started, exc)
            raise
        _log.info("%s finished in %.1fs: %s", what, time.monotonic() - started, image_id)
        return image_id

    # images ------------------------------------------------------------------------------
    async def import_image(
        self,
        stream: BinaryIO,
        *,
        repo: str = "",
        tag: str = "",
        message: str = "",
        changes: list[str] | None = None,
        source: str = "-",
    ) -> str:
        """`docker import`: one layer from a root filesystem tarball, a config made only of
        the `changes` (Dockerfile instructions, as `docker commit --change` takes them)."""
        from dockyard.engine.container_fs import apply_change

        container_config: dict[str, Any] = {}
        for line in changes or []:
            if line.strip():
                apply_change(container_config, line, "import")
        with self.lease():
            return await self._import(stream, repo, tag, message, source, container_config)

    async def _import(
        self,
        stream: BinaryIO,
        repo: str,
        tag: str,
        message: str,
        source: str,
        container_config: dict[str, Any],
    ) -> str:
        layer = await asyncio.to_thread(self.layers.apply, stream, [])
        created = now_rfc3339()
        comment = message or f"Imported from {source}"
        raw = build_image_config(
            container_config=container_config,
            diff_ids=[layer.diff_id],
            history=[HistoryEntry(created, "", comment=comment).to_json()],
            created=created,
            comment=comment,  # dockerd: the image's Comment is the message too
        )
        tags = []
        if repo:
            tags.append(f"{repo}:{tag}" if tag else repo)
        image_id = self.images.put(raw, tags=tags)
        self.image_event(image_id, image_id, "import")
        return image_id

    def image_event(self, image_id: str, name: str, action: str) -> None:
        """An image event as dockerd's LogImageEvent words it: the image's labels and the
        reference the action concerns as `name`."""
        attrs: dict[str, str] = {}
        with contextlib.suppress(NotFound):
            labels = self.images.config(image_id).container_config.get("Labels") or {}
            attrs.update({str(k): str(v) for k, v in labels.items()})
        attrs["name"] = name
        self.events.publish("image", action, image_id, attrs)

    def tag_image(self, source: str, target: str) -> None:
        image_id = self.images.resolve(source)
        self.images.tag(image_id, target)
        self.image_event(image_id, familiar(self.images.normalize_tag(target)), "tag")

    async def delete_image(self, name: str, *, force: bool, prune: bool) -> list[dict[str, str]]:
        """`rmi`: Docker's conflict rules, then the layers nothing references any more (what
        a live lease holds stays). Collection runs in a worker thread and deletes through the
        trash, so a multi-GiB image never stalls the event loop."""
        image_id = self.images.resolve(name)
        report = self.images.delete(
            name, force=force, prune=prune, users=self.containers.users_of_image
        )
        self.deleted_events(image_id, report)
        deleted = [entry["Deleted"] for entry in report if "Deleted" in entry]

        def sweep() -> list[str]:
            for image_id in deleted:
                gc.delete_unreferenced_config(self.meta, self.content, image_id)
            return gc.collect(self.meta, self.content, self.snapshots)

        report.extend({"Deleted": chain} for chain in await asyncio.to_thread(sweep))
        return report

    def deleted_events(self, image_id: str, report: list[dict[str, str]]) -> None:
        """dockerd's events for an image deletion: `untag` per removed reference, `delete` per
        removed image (both name the image by its ID). `report` is the image store's, before
        garbage collection adds the released layers to it."""
        for entry in report:
            if "Untagged" in entry:
                self.events.publish("image", "untag", image_id, {"name": image_id})
            elif "Deleted" in entry:
                deleted = entry["Deleted"]
                self.events.publish("image", "delete", deleted, {"name": deleted})

    async def collect_garbage(self) -> list[str]:
        """Drop layers and blobs nothing references (engine/gc.py); their chain IDs."""
        return await asyncio.to_thread(gc.collect, self.meta, self.content, self.snapshots)

    async def commit(self, container: str, **kw: Any) -> str:
        """`docker commit` (engine/container_fs.py), under a lease like every layer writer."""
        from dockyard.engine.container_fs import commit as commit_container

        rec = self.containers.resolve(container)
        with self.lease():
            return await commit_container(self.containers, rec, **kw)

    def history(self, name: str) -> list[dict[str, Any]]:
        image = self.images.get(name)
        from dockyard.store.images import created_unix

        out = []
        layer_sizes = []
        for chain_id in _chain_ids(image.config.diff_ids):
            rec = self.meta.get_layer(chain_id)
            layer_sizes.append(rec.size if rec else 0)
        sizes = iter(layer_sizes)
        for h in image.config.history:
            size = 0 if h.get("empty_layer") else next(sizes, 0)
            out.append(
                {
                    "Id": "<missing>",
                    "Created": created_unix(h.get("created", "")),
                    "CreatedBy": h.get("created_by", ""),
                    "Tags": None,
                    "Size": size,
                    "Comment": h.get("comment", ""),
                }
            )
        out.reverse()
        if out:
            out[0]["Id"] = image.id
            out[0]["Tags"] = [t for t in self.images.summary(image.id)["RepoTags"]] or None
        return out

    # system ------------------------------------------------------------------------------
    def version(self) -> dict[str, Any]:
        uname = platform.uname()
        return {
            "Platform": {"Name": "dockyard"},
            "Components": [
                {
                    "Name": "Engine",
                    "Version": __version__,
                    "Details": {
                        "ApiVersion": API_VERSION,
                        "MinAPIVersion": MIN_API_VERSION,
                        "Os": "linux",
                        "Arch": _go_arch(),
                        "KernelVersion": uname.release,
                    },
                },
                {"Name": "runc", "Version": self.runtime, "Details": {}},
            ],
            "Version": __version__,
            "ApiVersion": API_VERSION,
            "MinAPIVersion": MIN_API_VERSION,
            "GitCommit": "",
            "GoVersion": f"python{platform.python_version()}",
            "Os": "linux",
            "Arch": _go_arch(),
            "KernelVersion": uname.release,
            "BuildTime": "",
        }

    def info(self) -> dict[str, Any]:
        records = self.containers.all()
        running = sum(1 for r in records if r.state.alive)
        return {
            "ID": "dockyard",
            "Containers": len(records),
            "ContainersRunning": running,
            "ContainersPaused": 0,
            "ContainersStopped": len(records) - running,
            "Images": len(self.meta.image_ids()),
            "Driver": "overlay2",
            # overlay2's facts, true of our snapshots too: the upper dir is the layer's diff
            # (redirect_dir/metacopy off), whiteouts and opaque dirs use trusted.* xattrs.
            "DriverStatus": [
                ["Backing Filesystem", "extfs"],
                ["Supports d_type", "true"],
                ["Native Overlay Diff", "true"],
                ["userxattr", "false"],
            ],
            "DockerRootDir": str(self.root),
            "OperatingSystem": platform.freedesktop_os_release().get("PRETTY_NAME", "Linux")
            if hasattr(platform, "freedesktop_os_release")
            else "Linux",
            "OSType": "linux",
            "Architecture": platform.machine(),
            "KernelVersion": platform.release(),
            "NCPU": os.cpu_count() or 1,
            "MemTotal": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
            "Name": platform.node(),
            "ServerVersion": __version__,
            "DefaultRuntime": self.runtime,
            "Runtimes": {self.runtime: {"path": self.runtime}},
            **_component_versions(self.runc.commit()),
            "CgroupDriver": "cgroupfs",
            "CgroupVersion": "2" if Path("/sys/fs/cgroup/cgroup.controllers").exists() else "1",
            "LoggingDriver": "json-file",
            "SecurityOptions": ["name=seccomp,profile=builtin"],
            "Plugins": {
                "Volume": ["local"],
                "Network": ["bridge", "host", "null"],
                "Log": ["json-file"],
            },
            "RegistryConfig": self._registry_config.info(),  # registry/config.py
            "Swarm": {"LocalNodeState": "inactive"},
            "Labels": [],
            "ExperimentalBuild": False,
            "Debug": False,
            "Warnings": [],
        }


def _component_versions(runc_commit: str) -> dict[str, Any]:
    """dockerd's InitBinary and *Commit fields, told as they are here: our own init and
    per-container monitor (no containerd: the monitor runs runc itself), named by the source
    hash their binaries carry (runtime/native.py), and runc's own commit."""
    from dockyard.runtime import native

    def commit(value: str) -> dict[str, str]:
        return {"ID": value, "Expected": value}

    init_hash = native.INIT.file_name().rpartition("-")[2]
    monitor = native.MONITOR.file_name()
    return {
        "InitBinary": native.INIT.name,
        "ContainerdCommit": commit(f"none ({monitor})"),
        "RuncCommit": commit(runc_commit),
        "InitCommit": commit(init_hash),
    }


def _go_arch() -> str:
    from dockyard.image.config import go_arch

    return go_arch()


def _chain_ids(diff_ids: list[str]) -> list[str]:
    from dockyard.image.config import chain_ids

    return chain_ids(diff_ids)
