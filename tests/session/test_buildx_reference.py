"""Differential tests through buildx: docker CLI 28 + buildx 0.13 (docker driver, `/grpc`) against
dockyard and against dockerd 26.1 (Debian trixie's, BuildKit 0.13) give the same image for the
same Dockerfile: files (type, mode, owner, size, content, link target), config without times and
IDs, layer count and history. The Dockerfiles are tests/builder/test_buildkit_reference.py's
corpus; both images are read back with `docker save` and compared as that test compares them.

Also here: one cache store for every path — a buildx build after a 20.10-with-BuildKit build of
the same Dockerfile and context is all cache hits.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.builder.imagediff import load_saved
from tests.builder.test_buildkit_reference import (
    CASES,
    Reference,
    _assert_same,
    _context,
    assert_fails_alike,
    build_fails,
)
from tests.conftest import IS_ROOT, short_tmp, write_context
from tests.support.concurrent import at_once
from tests.support.daemons import DockyardDaemon, ReferenceDockerd
from tests.support.rootfs import busybox_rootfs_tar
from tests.support.trixie import trixie_tools

pytestmark = [pytest.mark.root, pytest.mark.dockerd]

CLI = "/usr/local/bin/docker"  # docker CLI 28: hands `docker build` to buildx
OLD_CLI = "/usr/bin/docker"  # Debian's 20.10 client: save, and the 20.10-with-BuildKit path


def _buildx_env(base: dict[str, str], config: Path) -> dict[str, str]:
    env = dict(base)
    env.pop("DOCKER_BUILDKIT", None)
    env["DOCKER_CONFIG"] = str(config)
    return env


@pytest.fixture(scope="module")
def sides() -> Iterator[dict[str, dict[str, str]]]:
    tools = trixie_tools()
    if (
        not IS_ROOT
        or tools is None
        or not os.access(CLI, os.X_OK)
        or not os.access(OLD_CLI, os.X_OK)
    ):
        pytest.skip("needs root, docker CLI 28, Debian's 20.10 client and trixie's dockerd/buildx")
    ours = DockyardDaemon(short_tmp("dyxr-")).start()
    ref: ReferenceDockerd | None = None
    try:
        ref = ReferenceDockerd(short_tmp("bxr26-"), binary=str(tools.dockerd)).start()
        envs = {}
        for name, env in (("ours", ours.env()), ("26.1", ref.env())):
            cfg = tools.docker_config(Path(short_tmp(f"bxcfg-{name[:2]}-")))
            proc = subprocess.run(
                [OLD_CLI, "import", str(busybox_rootfs_tar()), "busybox:latest"],
                env={**env, "DOCKER_BUILDKIT": "0"},
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert proc.returncode == 0, proc.stderr
            envs[name] = _buildx_env(env, cfg)
        version = subprocess.run(
            [CLI, "version", "--format", "{{.Server.Version}}"],
            env=envs["26.1"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        assert version.startswith("26.1"), version
        yield envs
    finally:
        if ref is not None:
            ref.cleanup()
        ours.cleanup()


def _build(env: dict[str, str], ctx: Path, tag: str, extra: tuple[str, ...]) -> bytes:
    proc = subprocess.run(
        [CLI, "build", "--network", "host", "--progress=plain", "-t", tag, *extra, "."],
        env=env,
        cwd=ctx,
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=300,
    )
    err = proc.stderr.decode(errors="replace")
    assert proc.returncode == 0, err[-3000:]
    assert "using docker driver" in err, err[:500]
    saved = subprocess.run([OLD_CLI, "save", tag], env=env, capture_output=True, timeout=120)
    assert saved.returncode == 0, saved.stderr.decode()
    return saved.stdout


@pytest.mark.parametrize("name", sorted(CASES))
def test_buildx_images_match_dockerd_26(
    sides: dict[str, dict[str, str]], tmp_path: Path, name: str
) -> None:
    case = CASES[name]
    ctx = _context(tmp_path, name, case)
    tag = f"bxdiff-{name}"
    if case.fails_with:
        argv = [CLI, "build", "--network", "host", "--progress=plain", "-t", tag, *case.args, "."]
        outputs = at_once(
            {who: lambda env=env: build_fails(argv, env, ctx) for who, env in sides.items()}
        )
        assert_fails_alike(case, outputs)
        return
    # two daemons, two storages: the builds are independent (tests/support/concurrent.py)
    saved = at_once(
        {who: lambda env=env: _build(env, ctx, tag, case.args) for who, env in sides.items()}
    )
    ours, theirs = load_saved(saved["ours"]), load_saved(saved["26.1"])
    ref = Reference("26.1", ReferenceDockerd(tmp_path), "26.1")
    _assert_same(ref, theirs, ours)


def test_buildx_after_a_20_10_buildkit_build_is_all_cached(
    sides: dict[str, dict[str, str]], tmp_path: Path
) -> None:
    ctx = write_context(
        tmp_path / "c",
        "FROM busybox\nARG X=1\nWORKDIR /w\nCOPY f /w/f\nRUN cat f > g\nENV E=1\nRUN echo $X > x\n",
        {"f": "f\n"},
    )
    old = {**sides["ours"], "DOCKER_BUILDKIT": "1", "BUILDKIT_PROGRESS": "plain"}
    first = subprocess.run(
        [OLD_CLI, "build", "-t", "bx-one-cache", "."],
        env=old,
        cwd=ctx,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=300,
    )
    assert first.returncode == 0, first.stderr
    assert "CACHED" not in first.stderr
    proc = subprocess.run(
        [CLI, "build", "--progress=plain", "-t", "bx-one-cache", "."],
        env=sides["ours"],
        cwd=ctx,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    steps = [
        ln
        for ln in proc.stderr.splitlines()
        if ln.startswith("#") and "] " in ln and "[internal]" not in ln and "FROM" not in ln
    ]
    assert len(steps) == 4, proc.stderr  # WORKDIR, COPY, RUN, RUN
    assert proc.stderr.count("CACHED") == 4, proc.stderr
