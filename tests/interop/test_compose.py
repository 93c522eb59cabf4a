"""Compose v1 (Debian's docker-compose 1.29) and Compose v2 (2.26, trixie's CLI plugin run by
docker CLI 28; scripts/trixie-clients.sh) on a three-service project, against dockyard and the
reference dockerd 20.10: a built app with a published port, a named volume and a healthcheck
that depends on a second service reached by name, and a worker scaled to 2, through up -d
--build, ps, logs, exec, run --rm (Compose v1 links one-off containers), up -d --force-recreate
(v1 reads image inspect's ContainerConfig), restart, stop, start and down -v (v2 lists by label).
Each step's exit code and what it leaves (running services, containers, output) must be
dockerd's.

Every service's process is PID 1 without a SIGTERM handler, so each stop ends in the SIGKILL
after the grace period: `stop_grace_period: 1s` (sent as `?t=1` by both Composes) keeps that
path and saves the default 10 s per stop wave (force-recreate, restart, stop and down stop
app, then db: about 70 s a side).

Compose v2 builds with the legacy /build when DOCKER_BUILDKIT=0 (docker/cli BuildKitEnabled)
and otherwise through buildx's docker driver (/session and /grpc): both are played. The app
builds with `network: none`: the reference runs with --bridge=none, and BuildKit's RUN on
dockerd needs the bridge network ("network bridge not found").
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import write_context
from tests.interop.conftest import DOCKER_CLIS, Side
from tests.interop.test_cli_scenario import sc_ours, sc_theirs  # noqa: F401 (fixtures)
from tests.registry.support import free_port
from tests.support.concurrent import at_once
from tests.support.trixie import trixie_tools

pytestmark = [pytest.mark.root, pytest.mark.dockerd]

COMPOSE_FILE = """\
{version}services:
  app:
    build:
      context: ./app
      network: none
    image: cmp-app
    ports:
      - "127.0.0.1:{port}:80"
    volumes:
      - data:/data
    depends_on:
      - db
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "-", "http://localhost/"]
      interval: 1s
      timeout: 2s
      retries: 10
    stop_grace_period: 1s
  db:
    image: busybox
    command: ["sh", "-c", "mkdir -p /srv && echo db-page > /srv/index.html && echo db-up && httpd -f -p 80 -h /srv"]
    stop_grace_period: 1s
  worker:
    image: busybox
    command: ["sleep", "300"]
    stop_grace_period: 1s
volumes:
  data:
"""


@dataclass(frozen=True)
class Flavour:
    """One Compose: how it is started and how it names containers."""

    program: tuple[str, ...]
    sep: str  # v1 names containers cmp_app_1, v2 cmp-app-1
    env: tuple[tuple[str, str], ...] = ()
    version_line: str = ""  # v1 needs the file format version; v2 warns that it is obsolete
    ps_format: bool = False  # v2's ps takes a Go template

    def name(self, service: str, n: int = 1) -> str:
        return f"cmp{self.sep}{service}{self.sep}{n}"


V1 = Flavour(("docker-compose",), "_", version_line='version: "3.7"\n')


def _v2(tmp: Path, buildkit: bool) -> Flavour:
    tools = trixie_tools()
    if tools is None or not os.path.exists(DOCKER_CLIS["28"]):
        pytest.skip("Compose v2 needs docker CLI 28 and scripts/trixie-clients.sh's plugins")
    config = tools.docker_config(tmp / "docker-config")
    env = (("DOCKER_CONFIG", str(config)), ("DOCKER_BUILDKIT", "1" if buildkit else "0"))
    return Flavour((DOCKER_CLIS["28"], "compose"), "-", env, ps_format=True)


def _project(base: Path, port: int, flavour: Flavour) -> Path:
    write_context(
        base / "app",
        "FROM busybox\nRUN mkdir -p /www && echo app-page > /www/index.html\n"
        'CMD ["httpd", "-f", "-p", "80", "-h", "/www"]\n',
    )
    (base / "docker-compose.yml").write_text(
        COMPOSE_FILE.format(port=port, version=flavour.version_line)
    )
    return base


class Compose:
    def __init__(self, side: Side, project: Path, flavour: Flavour) -> None:
        self.side = side
        self.project = project
        self.flavour = flavour

    def __call__(self, *args: str) -> tuple[int, str]:
        env = {**self.side.env, **dict(self.flavour.env), "COMPOSE_PROJECT_NAME": "cmp"}
        proc = subprocess.run(
            [*self.flavour.program, *args],
            cwd=self.project,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            stdin=subprocess.DEVNULL,
        )
        return proc.returncode, proc.stdout + proc.stderr

    def running(self) -> list[str]:
        rc, out = self("ps", "--services", "--filter", "status=running")
        assert rc == 0, out
        return sorted(out.split())

    def containers(self) -> list[str]:
        rc, out = self("ps", "-q")
        assert rc == 0, out
        names = self.side.docker("28", "ps", "-a", "--format", "{{.Names}}").stdout.split()
        return sorted(n for n in names if n.startswith(f"cmp{self.flavour.sep}"))


def _healthy(c: Compose) -> str:
    for _ in range(60):
        out = c.side.docker(
            "28", "inspect", "-f", "{{.State.Health.Status}}", c.flavour.name("app")
        )
        if out.stdout.strip() == "healthy":
            return "healthy"
        time.sleep(0.5)
    return out.stdout.strip()


def _play(c: Compose, first_up: threading.Lock) -> list[tuple[str, object]]:
    seen: list[tuple[str, object]] = []

    def step(name: str, value: object) -> None:
        seen.append((name, value))

    # the first up creates the project's network, a bridge on the host for either daemon:
    # one side at a time picks its subnet, so the two never take the same free range
    with first_up:
        rc, out = c("up", "-d", "--build")
    step("up -d --build", (rc, c.running(), c.containers()))
    step("healthcheck", _healthy(c))
    if c.flavour.ps_format:
        step(
            "ps --format",
            c("ps", "--format", "{{.Name}} {{.Image}} {{.Service}} {{.State}} {{.Health}}"),
        )
    step("exec", c("exec", "-T", "app", "wget", "-q", "-O", "-", "http://db/"))
    step("run --rm", c("run", "--rm", "-T", "worker", "wget", "-q", "-O", "-", "http://db/"))
    step("after run --rm", c.containers())
    rc, out = c("logs", "--no-color", "db")
    step("logs", (rc, "db-up" in out))
    rc, out = c("up", "-d", "--force-recreate")
    step("up -d --force-recreate", (rc, c.running(), c.containers()))
    step("restart", (c("restart")[0], c.running()))
    step("stop", (c("stop")[0], c.running()))
    step("start", (c("start")[0], c.running()))
    rc, out = c("up", "-d", "--scale", "worker=2")
    step("scale worker=2", (rc, c.running(), c.containers()))
    step("published port", c("port", "app", "80"))
    rc, out = c("down", "-v")
    volumes = c.side.docker("28", "volume", "ls", "-q").stdout.split()
    networks = c.side.docker("28", "network", "ls", "--format", "{{.Name}}").stdout.split()
    step("down -v", (rc, c.containers(), "cmp_data" in volumes, "cmp_default" in networks))
    return seen


def _differential(ours: Side, theirs: Side, tmp: Path, flavour: Flavour) -> None:
    results = {}
    ports = {ours.name: free_port()}
    while (port := free_port()) == ports[ours.name]:
        pass
    ports[theirs.name] = port
    first_up = threading.Lock()

    def play(side: Side) -> list[tuple[str, object]]:
        mine = flavour
        if "DOCKER_CONFIG" in dict(flavour.env):
            # a client config (buildx's state) of each side's own, as two users would have
            config = Path(dict(flavour.env)["DOCKER_CONFIG"])
            tools = trixie_tools()
            assert tools is not None
            own = tools.docker_config(config.with_name(f"{config.name}-{side.name}"))
            env = {**dict(flavour.env), "DOCKER_CONFIG": str(own)}
            mine = dataclasses.replace(flavour, env=tuple(env.items()))
        c = Compose(side, _project(tmp / side.name, ports[side.name], mine), mine)
        side.docker("28", "rmi", "-f", "cmp-app")  # up -d --build must build, not reuse
        try:
            return _play(c, first_up)
        finally:
            c("down", "-v")

    # the two daemons play the project at once (each step's waits, e.g. the 1 s stop grace
    # and the healthcheck's interval, overlap instead of adding up: ~70 s a side)
    played = at_once({side.name: lambda side=side: play(side) for side in (ours, theirs)})
    for side in (ours, theirs):
        port, seen = ports[side.name], played[side.name]
        # the reference does the whole project: a step failing on both sides proves nothing
        assert dict(seen)["up -d --build"][0] == 0 or side.name == "dockyard", seen  # type: ignore[index]
        # the published port differs by side: compare it without its number
        results[side.name] = [
            (name, value[0] if name == "published port" else value)  # type: ignore[index]
            for name, value in seen
        ]
        assert ("published port", (0, f"127.0.0.1:{port}\n")) in seen, seen
    for (name, mine), (_, docker) in zip(results["dockyard"], results["dockerd"], strict=True):
        assert mine == docker, f"{name}: dockyard {mine!r}, dockerd {docker!r}"


def test_compose_v1_project(sc_ours: Side, sc_theirs: Side, tmp_path: Path) -> None:  # noqa: F811
    if shutil.which("docker-compose") is None:
        pytest.skip("Debian's docker-compose (Compose v1) is not installed")
    _differential(sc_ours, sc_theirs, tmp_path, V1)


def test_compose_v2_project(sc_ours: Side, sc_theirs: Side, tmp_path: Path) -> None:  # noqa: F811
    _differential(sc_ours, sc_theirs, tmp_path, _v2(tmp_path, buildkit=False))


def test_compose_v2_project_buildkit(
    sc_ours: Side,  # noqa: F811
    sc_theirs: Side,  # noqa: F811
    tmp_path: Path,
) -> None:
    _differential(sc_ours, sc_theirs, tmp_path, _v2(tmp_path, buildkit=True))
