"""Engine adapters: one way to start, drive and stop each engine the benchmark compares.

Every engine runs on private paths under the benchmark's temporary directory and inside the
benchmark's own network namespace (bench/run.py enters one before anything starts), so none
touches the host's storage, bridges or firewall:
- dockyard: its daemon (tests/support/daemons.DockyardDaemon) driven by our CLI;
- Docker: Debian's dockerd 20.10 (tests/support/daemons.ReferenceDockerd, with its bridge
  and iptables inside the namespace) driven by Debian's docker 20.10 CLI, once with the
  legacy builder (DOCKER_BUILDKIT=0) and once with BuildKit (DOCKER_BUILDKIT=1), one daemon;
- Podman and Buildah: daemonless, each with its own storage root and runroot (overlay
  driver), cgroupfs, a file events log and CNI configuration of their own (no systemd).
Each adapter turns the benchmark's words (build, run, pull, push, …) into its CLI's argv.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.daemons import DockyardDaemon, ReferenceDockerd, unmount_all_under
from tests.support.rootfs import busybox_rootfs_tar

from bench.memory import owned_processes
from bench.sampling import sh

BASE_IMAGE = "bench-base:latest"
DOCKER_2010 = "/usr/bin/docker"
DOCKYARD_CLI = str(Path(sys.executable).with_name("dockyard"))

# Capabilities: which rows an engine takes part in.
BUILD, RUN, REGISTRY, DAEMON = "build", "run", "registry", "daemon"


@dataclass
class Engine:
    """One column of the table."""

    name: str
    cli: list[str]
    env: dict[str, str]
    can: frozenset[str]
    # the engine's private directory: its processes name it (bench/memory.owned_processes)
    home: Path
    # words for a registry on plain HTTP (Podman and Buildah need --tls-verify=false)
    registry_flags: list[str] = field(default_factory=list)

    def argv(self, *words: str) -> list[str]:
        return [*self.cli, *words]

    def do(self, *words: str) -> str:
        return sh(self.argv(*words), self.env)

    def build_argv(self, ctx: Path, tag: str, no_cache: bool = False) -> list[str]:
        return self.argv("build", "-q", "-t", tag, *(["--no-cache"] if no_cache else []), str(ctx))

    def pull_argv(self, ref: str) -> list[str]:
        return self.argv("pull", "-q", *self.registry_flags, ref)

    def push_argv(self, ref: str) -> list[str]:
        return self.argv("push", *self.registry_flags, ref)

    def import_base(self) -> None:
        """The busybox tree as BASE_IMAGE (every build row starts FROM it)."""
        self.do("import", str(busybox_rootfs_tar()), BASE_IMAGE)

    def remove_image(self, ref: str) -> None:
        subprocess.run(self.argv("rmi", "-f", ref), env=self.env, capture_output=True)

    def forget_build_cache(self) -> None:
        """Drop what a cold build left behind (dangling layers), outside the timed part."""

    def daemon_pids(self) -> list[int]:
        return []

    def owned_pids(self) -> list[int]:
        """The daemon and every per-container process (monitor, shim, port proxy)."""
        return owned_processes(self.daemon_pids(), str(self.home))

    def stop(self) -> None:
        pass


@dataclass
class DockyardEngine(Engine):
    daemon: DockyardDaemon | None = None

    def daemon_pids(self) -> list[int]:
        assert self.daemon is not None and self.daemon.proc is not None
        return [self.daemon.proc.pid]

    def forget_build_cache(self) -> None:
        subprocess.run(self.argv("image", "prune", "-f"), env=self.env, capture_output=True)

    def stop(self) -> None:
        if self.daemon is not None:
            self.daemon.cleanup()


@dataclass
class DockerEngine(Engine):
    dockerd: ReferenceDockerd | None = None
    owns_daemon: bool = True

    def daemon_pids(self) -> list[int]:
        assert self.dockerd is not None and self.dockerd.proc is not None
        return [self.dockerd.proc.pid]

    def forget_build_cache(self) -> None:
        subprocess.run(self.argv("image", "prune", "-f"), env=self.env, capture_output=True)
        if self.env.get("DOCKER_BUILDKIT") == "1":
            subprocess.run(self.argv("builder", "prune", "-af"), env=self.env, capture_output=True)

    def stop(self) -> None:
        if self.owns_daemon and self.dockerd is not None:
            # containers first: a stopped dockerd leaves its shims' mounts behind
            ids = sh(self.argv("ps", "-aq"), self.env).split()
            if ids:
                subprocess.run(self.argv("rm", "-f", *ids), env=self.env, capture_output=True)
            self.dockerd.cleanup()


def _containers_confs(home: Path) -> dict[str, str]:
    """Private configuration for Podman and Buildah (containers-storage.conf(5),
    containers.conf(5), containers-registries.conf(5)): storage under `home`, no systemd, no
    registry search for short names (FROM bench-base resolves to the local image)."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "storage.conf").write_text(
        f'[storage]\ndriver = "overlay"\nrunroot = "{home}/run"\ngraphroot = "{home}/root"\n'
    )
    # This machine's root lacks CAP_SYS_RESOURCE: runc cannot set RLIMIT_NOFILE/NPROC to
    # Podman's defaults (1048576) nor to the current hard limits, so both are set below them
    (home / "containers.conf").write_text(
        "[containers]\n"
        'default_ulimits = ["nofile=10000:10000", "nproc=10000:10000"]\n'
        "[engine]\n"
        'cgroup_manager = "cgroupfs"\n'
        'events_logger = "file"\n'
        f'events_logfile_path = "{home}/events.log"\n'
        f'tmp_dir = "{home}/tmp"\n'
        "[network]\n"
        'network_backend = "cni"\n'
        f'network_config_dir = "{home}/cni"\n'
    )
    (home / "registries.conf").write_text(
        'unqualified-search-registries = []\nshort-name-mode = "permissive"\n'
    )
    return dict(
        os.environ,
        CONTAINERS_STORAGE_CONF=str(home / "storage.conf"),
        CONTAINERS_CONF=str(home / "containers.conf"),
        CONTAINERS_REGISTRIES_CONF=str(home / "registries.conf"),
    )


@dataclass
class PodmanEngine(Engine):
    def stop(self) -> None:
        subprocess.run(self.argv("rm", "-af", "-t", "0"), env=self.env, capture_output=True)
        _reset_storage(self)


@dataclass
class BuildahEngine(Engine):
    def build_argv(self, ctx: Path, tag: str, no_cache: bool = False) -> list[str]:
        # --layers: Buildah caches steps only when asked (Podman's build defaults to it)
        return self.argv(
            "bud", "-q", "--layers", "-t", tag, *(["--no-cache"] if no_cache else []), str(ctx)
        )

    def pull_argv(self, ref: str) -> list[str]:
        return self.argv("pull", "-q", *self.registry_flags, ref)

    def push_argv(self, ref: str) -> list[str]:
        return self.argv("push", "-q", *self.registry_flags, ref, f"docker://{ref}")

    def import_base(self) -> None:
        # Buildah has no `import`; Podman writes the same containers-storage (Buildah's env)
        sh(["podman", "import", str(busybox_rootfs_tar()), BASE_IMAGE], self.env)

    def stop(self) -> None:
        subprocess.run(self.argv("rm", "-a"), env=self.env, capture_output=True)
        _reset_storage(self)


def _reset_storage(engine: Engine) -> None:
    subprocess.run(engine.argv("system", "reset", "-f"), env=engine.env, capture_output=True)
    unmount_all_under(engine.home)
    shutil.rmtree(engine.home, ignore_errors=True)


def start_dockyard(home: Path) -> DockyardEngine:
    daemon = DockyardDaemon(home).start()
    engine = DockyardEngine(
        "dockyard", [DOCKYARD_CLI], daemon.env(), frozenset({BUILD, RUN, REGISTRY, DAEMON}), home
    )
    engine.daemon = daemon
    return engine


def start_docker(home: Path, netns: str) -> tuple[DockerEngine, DockerEngine]:
    """Docker legacy and Docker BuildKit: one dockerd 20.10, two builders."""
    dockerd = ReferenceDockerd(home, netns=netns).start()
    env = dockerd.env()
    legacy = DockerEngine(
        "Docker legacy",
        [DOCKER_2010],
        dict(env, DOCKER_BUILDKIT="0"),
        frozenset({BUILD, RUN, REGISTRY, DAEMON}),
        home,
    )
    legacy.dockerd = dockerd
    buildkit = DockerEngine(
        "BuildKit",
        [DOCKER_2010],
        dict(env, DOCKER_BUILDKIT="1", BUILDKIT_PROGRESS="plain"),
        frozenset({BUILD}),
        home,
    )
    buildkit.dockerd = dockerd
    buildkit.owns_daemon = False
    return legacy, buildkit


def start_podman(home: Path) -> PodmanEngine:
    env = _containers_confs(home)
    return PodmanEngine(
        "Podman",
        ["podman"],
        env,
        frozenset({BUILD, RUN, REGISTRY}),
        home,
        registry_flags=["--tls-verify=false"],
    )


def start_buildah(home: Path) -> BuildahEngine:
    env = _containers_confs(home)
    return BuildahEngine(
        "Buildah",
        ["buildah"],
        env,
        frozenset({BUILD, REGISTRY}),
        home,
        registry_flags=["--tls-verify=false"],
    )


ENGINE_ORDER = ["Docker legacy", "BuildKit", "Podman", "Buildah", "dockyard"]
ENGINE_KEYS = {
    "docker": "Docker legacy",
    "buildkit": "BuildKit",
    "podman": "Podman",
    "buildah": "Buildah",
    "dockyard": "dockyard",
}


def available(key: str) -> bool:
    return {
        "dockyard": True,
        "docker": shutil.which("dockerd") is not None and os.access(DOCKER_2010, os.X_OK),
        "buildkit": shutil.which("dockerd") is not None and os.access(DOCKER_2010, os.X_OK),
        "podman": shutil.which("podman") is not None,
        "buildah": shutil.which("buildah") is not None,
    }[key]


def start_engines(base: Path, keys: list[str], netns: str) -> list[Engine]:
    """Start the chosen engines (keys of ENGINE_KEYS), each with the busybox base imported."""
    engines: list[Engine] = []
    try:
        if "docker" in keys or "buildkit" in keys:
            legacy, buildkit = start_docker(base / "docker", netns)
            if "docker" in keys:
                engines.append(legacy)
            else:  # BuildKit alone owns the daemon
                buildkit.owns_daemon = True
            if "buildkit" in keys:
                engines.append(buildkit)
        if "podman" in keys:
            engines.append(start_podman(base / "podman"))
        if "buildah" in keys:
            engines.append(start_buildah(base / "buildah"))
        if "dockyard" in keys:
            engines.append(start_dockyard(base / "dockyard"))
        homes: set[Path] = set()
        for e in engines:
            if e.home not in homes:  # Docker legacy and BuildKit share one daemon
                homes.add(e.home)
                e.import_base()
        time.sleep(0.5)
    except BaseException:
        for e in engines:
            e.stop()
        raise
    return sorted(engines, key=lambda e: ENGINE_ORDER.index(e.name))


def versions() -> dict[str, str]:
    """Each tool's version line (for RESULTS.md)."""

    def first(argv: list[str]) -> str:
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        except OSError:
            return "not installed"
        return (out.stdout or out.stderr).strip().splitlines()[0] if out.returncode == 0 else "?"

    return {
        "dockyard": first([DOCKYARD_CLI, "--version"]),
        "dockerd": first(["dockerd", "--version"]),
        "docker CLI": first([DOCKER_2010, "--version"]),
        "podman": first(["podman", "--version"]),
        "buildah": first(["buildah", "--version"]),
        "runc": first(["runc", "--version"]),
        "python": sys.version.split()[0],
    }
