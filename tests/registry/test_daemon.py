"""Registries through the daemon: the docker CLI pulling and pushing via our socket, daemon
flags and daemon.json, a mirror serving `library/alpine` for `FROM alpine`, and interop with
the reference dockerd (what each pushes, the other pulls and runs)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Clients, short_tmp, write_context
from tests.registry.support import RegImage, Registry, make_image
from tests.support.daemons import DockyardDaemon, ReferenceDockerd
from tests.support.rootfs import busybox_rootfs_tar

pytestmark = pytest.mark.root


def _busybox_image() -> RegImage:
    return make_image([busybox_rootfs_tar().read_bytes()], cmd=["/bin/sh"])


@pytest.fixture
def daemon_with(request: pytest.FixtureRequest) -> Iterator[list[DockyardDaemon]]:
    started: list[DockyardDaemon] = []
    try:
        yield started
    finally:
        for d in started:
            d.cleanup()


def _start(started: list[DockyardDaemon], *args: str) -> Clients:
    d = DockyardDaemon(short_tmp("dyt-"), extra_args=list(args)).start()
    started.append(d)
    return Clients(d)


def _ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, f"{proc.args}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_docker_cli_pull_run_push_via_dockyard(
    registry: Registry, daemon_with: list[DockyardDaemon]
) -> None:
    c = _start(daemon_with)
    img = _busybox_image()
    digest = registry.put_image("bb", "latest", img)
    name = f"{registry.host}/bb"
    out = _ok(c.docker("pull", name))
    assert "latest: Pulling from bb" in out and "Pull complete" in out
    assert f"Digest: {digest}" in out
    assert f"Status: Downloaded newer image for {name}:latest" in out
    assert f"Status: Image is up to date for {name}:latest" in _ok(c.docker("pull", name))
    assert _ok(c.docker("image", "inspect", "-f", "{{json .RepoDigests}}", name)).strip() == (
        json.dumps([f"{name}@{digest}"])
    )
    assert _ok(c.docker("run", "--rm", "--network=none", name, "echo", "pulled")) == "pulled\n"
    by_digest = c.docker("run", "--rm", "--network=none", f"{name}@{digest}", "echo", "pinned")
    assert by_digest.stdout == "pinned\n", by_digest.stderr
    _ok(c.docker("tag", name, f"{registry.host}/copy:v9"))
    out = _ok(c.docker("push", f"{registry.host}/copy:v9"))
    assert f"The push refers to repository [{registry.host}/copy]" in out
    assert "Mounted from bb" in out and f"v9: digest: {digest} size:" in out
    proc = c.docker("pull", f"{registry.host}/missing")
    assert proc.returncode == 1 and "Error response from daemon: manifest for" in proc.stderr


def test_daemon_config_file_mirror_and_from_alpine(
    registry: Registry, daemon_with: list[DockyardDaemon], tmp_path: Path
) -> None:
    img = _busybox_image()
    registry.put_image("library/alpine", "latest", img)
    cfg = tmp_path / "daemon.json"
    cfg.write_text(json.dumps({"registry-mirrors": [registry.url], "max-concurrent-downloads": 2}))
    c = _start(daemon_with, "--config-file", str(cfg))
    ctx = write_context(tmp_path / "ctx", "FROM alpine\nRUN echo built > /proof && cat /proof\n")
    out = _ok(c.docker("build", "-t", "from-alpine", str(ctx)))
    assert "Pulling from library/alpine" in out and "built" in out
    assert _ok(c.docker("run", "--rm", "--network=none", "from-alpine", "cat", "/proof")) == (
        "built\n"
    )
    assert _ok(c.docker("image", "inspect", "-f", "{{.Id}}", "alpine")).strip() == img.image_id
    # A newer alpine in the registry: a plain build keeps the local one, --pull fetches it.
    newer = make_image([busybox_rootfs_tar().read_bytes()], cmd=["/bin/sh", "-c", "echo v2"])
    registry.put_image("library/alpine", "latest", newer)
    out = _ok(c.docker("build", "-t", "from-alpine", str(ctx)))
    assert "Pulling from" not in out
    out = _ok(c.docker("build", "--pull", "-t", "from-alpine", str(ctx)))
    assert "Status: Downloaded newer image for alpine:latest" in out
    assert _ok(c.docker("image", "inspect", "-f", "{{.Id}}", "alpine")).strip() == newer.image_id


def test_daemon_flags_show_in_info(registry: Registry, daemon_with: list[DockyardDaemon]) -> None:
    c = _start(
        daemon_with,
        "--registry-mirror",
        registry.url,
        "--insecure-registry",
        "10.9.0.0/16",
        "--insecure-registry",
        "myreg.example:5000",
        "--max-concurrent-downloads",
        "1",
    )
    info = json.loads(_ok(c.docker("info", "--format", "{{json .RegistryConfig}}")))
    assert info["Mirrors"] == [registry.url + "/"]
    assert "10.9.0.0/16" in info["InsecureRegistryCIDRs"]
    assert info["IndexConfigs"]["myreg.example:5000"]["Secure"] is False
    # One download at a time: the second layer waits.
    img = make_image([busybox_rootfs_tar().read_bytes(), b"\0" * 1024])
    registry.put_image("library/two", "latest", img)
    out = _ok(c.docker("pull", "two"))
    assert "Waiting" in out and "Status: Downloaded newer image for two:latest" in out


def test_daemon_flag_conflict_and_flags(registry: Registry, tmp_path: Path) -> None:
    cfg = tmp_path / "daemon.json"
    cfg.write_text(json.dumps({"registry-mirrors": [registry.url]}))
    base = short_tmp("dyt-")
    d = DockyardDaemon(
        base, extra_args=["--config-file", str(cfg), "--registry-mirror", registry.url]
    )
    try:
        with pytest.raises(RuntimeError, match="both as a flag and in the configuration file"):
            d.start()
    finally:
        d.cleanup()


@pytest.fixture
def dockerd() -> Iterator[ReferenceDockerd]:
    if not ReferenceDockerd.available():
        pytest.skip("reference dockerd (Debian docker.io) is not installed")
    d = ReferenceDockerd(short_tmp("dkd-")).start()
    try:
        yield d
    finally:
        d.cleanup()


def _docker(d: ReferenceDockerd, *args: str) -> str:
    proc = subprocess.run(
        ["docker", *args], env=d.env(), capture_output=True, text=True, timeout=120
    )
    return _ok(proc)


@pytest.mark.dockerd
def test_interop_with_reference_dockerd(
    registry: Registry,
    daemon_with: list[DockyardDaemon],
    dockerd: ReferenceDockerd,
    tmp_path: Path,
) -> None:
    c = _start(daemon_with)
    # docker → registry → dockyard
    _docker(dockerd, "import", str(busybox_rootfs_tar()), "bbref:latest")
    ref_name = f"{registry.host}/from-docker:v1"
    _docker(dockerd, "tag", "bbref:latest", ref_name)
    out = _docker(dockerd, "push", ref_name)
    assert "v1: digest:" in out
    _ok(c.dockyard("pull", ref_name))
    assert _ok(c.docker("run", "--rm", "--network=none", ref_name, "echo", "docker-made")) == (
        "docker-made\n"
    )
    # dockyard builds → registry → docker
    ctx = write_context(
        tmp_path / "ctx", f'FROM {ref_name}\nRUN echo by-dockyard > /who\nCMD ["cat", "/who"]\n'
    )
    ours = f"{registry.host}/from-dockyard:v2"
    _ok(c.docker("build", "-t", ours, str(ctx)))
    out = _ok(c.dockyard("push", ours))
    assert "v2: digest:" in out
    _docker(dockerd, "pull", ours)
    assert _docker(dockerd, "run", "--rm", "--network=none", ours) == "by-dockyard\n"


@pytest.mark.parametrize("auth", ["htpasswd", "token"])
def test_docker_login_and_authenticated_pull_via_dockyard(
    auth: str,
    make_registry,
    daemon_with: list[DockyardDaemon],  # type: ignore[no-untyped-def]
) -> None:
    reg: Registry = make_registry(auth=auth, users={"alice": "s3cret"})
    reg.put_image("private/bb", "latest", _busybox_image(), user="alice")
    c = _start(daemon_with)
    name = f"{reg.host}/private/bb"
    denied = c.docker("pull", name)
    assert denied.returncode != 0
    bad = c.docker("login", "-u", "alice", "--password-stdin", reg.host, input=b"wrong\n")
    assert bad.returncode != 0 and "unauthorized" in bad.stderr.lower()
    out = _ok(c.docker("login", "-u", "alice", "--password-stdin", reg.host, input=b"s3cret\n"))
    assert "Login Succeeded" in out
    # The docker CLI now sends X-Registry-Auth from its config.json; `run` pulls after a 404.
    run = c.docker("run", "--rm", "--network=none", name, "echo", "authed")
    assert run.returncode == 0, run.stderr
    assert "Unable to find image" in run.stderr and run.stdout == "authed\n"
    _ok(c.docker("rmi", name))
    # A build pulls a private base with the credentials the CLI sends in X-Registry-Config
    ctx = c.daemon.base / "private-ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {name}\nRUN echo built-on-private\n")
    build = c.docker("build", "-t", "from-private", str(ctx))
    assert build.returncode == 0, build.stderr
    assert "built-on-private" in build.stdout
    _ok(c.docker("logout", reg.host))
    _ok(c.docker("rmi", "from-private", name))
    assert c.docker("pull", name).returncode != 0
