"""`docker build` through buildx 0.13's docker driver against dockyard (`/grpc` + `/session`).

docker CLI 28 with trixie's buildx plugin in a DOCKER_CONFIG of the test's own and no
DOCKER_BUILDKIT: the CLI hands `docker build` to buildx, which picks its docker driver because
`POST /grpc` upgrades to h2c, and builds through BuildKit's control API and gateway.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import IS_ROOT, short_tmp, write_context
from tests.support.daemons import DockyardDaemon
from tests.support.rootfs import busybox_rootfs_tar
from tests.support.trixie import trixie_tools

pytestmark = [pytest.mark.root]

CLI = "/usr/local/bin/docker"  # docker CLI 28


@pytest.fixture(scope="module")
def daemon() -> Iterator[DockyardDaemon]:
    tools = trixie_tools()
    if not IS_ROOT or not os.access(CLI, os.X_OK) or tools is None:
        pytest.skip("needs root, docker CLI 28 and scripts/trixie-clients.sh's buildx")
    d = DockyardDaemon(short_tmp("dyx-")).start()
    tools.docker_config(d.base / "docker-config")
    try:
        docker(d, "import", str(busybox_rootfs_tar()), "busybox:latest")
        yield d
    finally:
        d.cleanup()


def env_of(d: DockyardDaemon, **extra: str) -> dict[str, str]:
    env = d.env()
    env.pop("DOCKER_BUILDKIT", None)  # the CLI's own choice: buildx
    env.update(extra)
    return env


def run(
    d: DockyardDaemon,
    *args: str,
    cwd: Path | None = None,
    input: bytes | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [CLI, *args],
        env=env or env_of(d),
        cwd=cwd,
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        capture_output=True,
        timeout=300,
    )
    return subprocess.CompletedProcess(
        proc.args,
        proc.returncode,
        proc.stdout.decode(errors="replace"),
        proc.stderr.decode(errors="replace"),
    )


def docker(d: DockyardDaemon, *args: str, cwd: Path | None = None) -> str:
    proc = run(d, *args, cwd=cwd)
    assert proc.returncode == 0, f"docker {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def build(d: DockyardDaemon, *args: str, cwd: Path) -> str:
    return docker(d, "build", "--progress=plain", *args, cwd=cwd)


def test_buildx_ls_shows_the_docker_driver(daemon: DockyardDaemon) -> None:
    out = docker(daemon, "buildx", "ls")
    line = next(ln for ln in out.splitlines() if "\\_ default" in ln)
    assert "running" in line and "linux/amd64" in line, out
    assert "docker" in out.splitlines()[1], out
    inspect = docker(daemon, "buildx", "inspect")
    assert "Driver:        docker" in inspect or "Driver: docker" in inspect.replace("  ", " ")


def test_build_run_and_cached_rebuild(daemon: DockyardDaemon, tmp_path: Path) -> None:
    ctx = write_context(
        tmp_path / "c",
        'FROM busybox\nCOPY hello.txt /hello.txt\nRUN cat /hello.txt > /copy\nCMD ["cat", "/copy"]\n',
        {"hello.txt": "hello through buildx\n"},
    )
    out = build(daemon, "-t", "bx-basic", ".", cwd=ctx)
    assert 'building with "default" instance using docker driver' in out
    assert "[1/3] FROM docker.io/library/busybox:latest" in out
    assert "[3/3] RUN cat /hello.txt > /copy" in out
    assert "naming to docker.io/library/bx-basic:latest done" in out
    assert docker(daemon, "run", "--rm", "bx-basic") == "hello through buildx\n"
    again = build(daemon, "-t", "bx-basic", ".", cwd=ctx)
    assert again.count("CACHED") == 2, again
    nocache = build(daemon, "--no-cache", "-t", "bx-basic", ".", cwd=ctx)
    assert "CACHED" not in nocache, nocache


def test_multistage_flags(daemon: DockyardDaemon, tmp_path: Path) -> None:
    ctx = write_context(
        tmp_path / "c",
        "FROM busybox AS build\nARG MSG=none\nWORKDIR /src\nCOPY . .\n"
        'RUN echo "$MSG" > /msg && (grep myhost /etc/hosts || true) > /hosts\n'
        "FROM busybox AS other\nRUN exit 1\n"
        "FROM busybox AS final\nCOPY --from=build /msg /hosts /\nCMD cat /msg\n",
        {"keep.txt": "k"},
    )
    df = tmp_path / "elsewhere" / "Build.df"
    df.parent.mkdir()
    df.write_text((ctx / "Dockerfile").read_text())
    build(
        daemon,
        "-f",
        str(df),
        "--target",
        "final",
        "--build-arg",
        "MSG=hi",
        "--label",
        "team=dock",
        "--add-host",
        "myhost:10.9.8.7",
        "-t",
        "bx-ms",
        ".",
        cwd=ctx,
    )
    assert docker(daemon, "run", "--rm", "bx-ms") == "hi\n"
    hosts = docker(daemon, "run", "--rm", "bx-ms", "cat", "/hosts")
    assert "10.9.8.7" in hosts and "myhost" in hosts
    labels = json.loads(
        docker(daemon, "image", "inspect", "-f", "{{json .Config.Labels}}", "bx-ms")
    )
    assert labels == {"team": "dock"}


def test_failing_step_fails_the_build(daemon: DockyardDaemon, tmp_path: Path) -> None:
    ctx = write_context(tmp_path / "c", "FROM busybox\nRUN echo out && exit 3\n")
    proc = run(daemon, "build", "--progress=plain", "-t", "bx-fail", ".", cwd=ctx)
    assert proc.returncode != 0
    assert "exit code: 3" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_unsupported_requests_are_named(daemon: DockyardDaemon, tmp_path: Path) -> None:
    ctx = write_context(tmp_path / "c", "FROM busybox\n")
    proc = run(daemon, "build", "--build-context", "x=docker-image://busybox", ".", cwd=ctx)
    assert proc.returncode != 0
    assert "named build context x" in proc.stderr and "not supported" in proc.stderr
    proc = run(daemon, "build", "--platform", "linux/s390x", ".", cwd=ctx)
    assert proc.returncode != 0 and "linux/s390x is not supported" in proc.stderr


def test_legacy_build_still_works(daemon: DockyardDaemon, tmp_path: Path) -> None:
    ctx = write_context(tmp_path / "c", "FROM busybox\nRUN echo legacy > /l\n")
    proc = run(
        daemon, "build", "-t", "bx-legacy", ".", cwd=ctx, env=env_of(daemon, DOCKER_BUILDKIT="0")
    )
    assert proc.returncode == 0, proc.stderr
    assert "Step 2/2 : RUN echo legacy > /l" in proc.stdout
