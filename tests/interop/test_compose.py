"""Compose v1 (Debian's docker-compose 1.29) on a three-service project, against dockyard and
the reference dockerd 20.10: a built app with a published port, a named volume and a
healthcheck that depends on a second service reached by name, and a worker scaled to 2,
through up -d --build, ps, logs, exec, run --rm (Compose links one-off containers), up -d
--force-recreate (reads image inspect's ContainerConfig), restart, stop, start and down -v.
Each step's exit code and what it leaves (running services, output) must be dockerd's.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import write_context
from tests.interop.conftest import Side
from tests.interop.test_cli_scenario import sc_ours, sc_theirs  # noqa: F401 (fixtures)
from tests.registry.support import free_port

pytestmark = [pytest.mark.root, pytest.mark.dockerd]

COMPOSE_FILE = """\
version: "3.7"
services:
  app:
    build: ./app
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
  db:
    image: busybox
    command: ["sh", "-c", "mkdir -p /srv && echo db-page > /srv/index.html && echo db-up && httpd -f -p 80 -h /srv"]
  worker:
    image: busybox
    command: ["sleep", "300"]
volumes:
  data:
"""


def _project(base: Path, port: int) -> Path:
    write_context(
        base / "app",
        "FROM busybox\nRUN mkdir -p /www && echo app-page > /www/index.html\n"
        'CMD ["httpd", "-f", "-p", "80", "-h", "/www"]\n',
    )
    (base / "docker-compose.yml").write_text(COMPOSE_FILE.format(port=port))
    return base


class Compose:
    def __init__(self, side: Side, project: Path) -> None:
        self.side = side
        self.project = project

    def __call__(self, *args: str) -> tuple[int, str]:
        env = {**self.side.env, "COMPOSE_PROJECT_NAME": "cmp"}
        proc = subprocess.run(
            ["docker-compose", *args],
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
        return sorted(n for n in names if n.startswith("cmp_"))


def _healthy(c: Compose) -> str:
    for _ in range(60):
        out = c.side.docker("28", "inspect", "-f", "{{.State.Health.Status}}", "cmp_app_1")
        if out.stdout.strip() == "healthy":
            return "healthy"
        time.sleep(0.5)
    return out.stdout.strip()


def _play(c: Compose) -> list[tuple[str, object]]:
    seen: list[tuple[str, object]] = []

    def step(name: str, value: object) -> None:
        seen.append((name, value))

    rc, out = c("up", "-d", "--build")
    step("up -d --build", (rc, c.running(), c.containers()))
    step("healthcheck", _healthy(c))
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


def test_compose_v1_project(sc_ours: Side, sc_theirs: Side, tmp_path: Path) -> None:  # noqa: F811
    if shutil.which("docker-compose") is None:
        pytest.skip("Debian's docker-compose (Compose v1) is not installed")
    results = {}
    for side in (sc_ours, sc_theirs):
        port = free_port()
        c = Compose(side, _project(tmp_path / side.name, port))
        try:
            seen = _play(c)
        finally:
            c("down", "-v")
        # the published port differs by side: compare it without its number
        results[side.name] = [
            (name, value[0] if name == "published port" else value)  # type: ignore[index]
            for name, value in seen
        ]
        assert ("published port", (0, f"127.0.0.1:{port}\n")) in seen, seen
    for (name, mine), (_, docker) in zip(results["dockyard"], results["dockerd"], strict=True):
        assert mine == docker, f"{name}: dockyard {mine!r}, dockerd {docker!r}"
