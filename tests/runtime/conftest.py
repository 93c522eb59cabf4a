"""Fixtures for runtime tests: a busybox rootfs, a runc with a private state root, bundles."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dockyard.runtime.runc import Runc
from dockyard.runtime.spec import ContainerConfig, build_spec, write_bundle
from tests.support.rootfs import busybox_rootfs_tar

BundleFactory = Callable[..., tuple[str, Path]]


def _root_ready() -> bool:
    return os.geteuid() == 0 and shutil.which("runc") is not None


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Shared by a module's tests: containers only read it (runc adds its mount points)."""
    if not _root_ready():
        pytest.skip("needs root and runc")
    root = tmp_path_factory.mktemp("rootfs")
    subprocess.run(["tar", "-xf", str(busybox_rootfs_tar()), "-C", str(root)], check=True)
    return root


@pytest.fixture
def runc(tmp_path: Path) -> Iterator[Runc]:
    if not _root_ready():
        pytest.skip("needs root and runc")
    state = tmp_path / "runc-state"
    yield Runc("runc", state)
    # Leave no container behind, even when the test failed half-way.
    if state.exists():
        for entry in state.iterdir():
            if entry.is_dir():
                subprocess.run(
                    ["runc", "--root", str(state), "delete", "--force", entry.name],
                    capture_output=True,
                )


@pytest.fixture
def make_bundle(tmp_path: Path, rootfs: Path) -> BundleFactory:
    """make_bundle(*args, **config) → (unique container id, bundle dir)."""

    def make(*args: str, **kwargs: object) -> tuple[str, Path]:
        cid = f"dy-test-{uuid.uuid4().hex[:12]}"
        bundle = tmp_path / f"bundle-{cid}"
        env = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",)
        cfg = ContainerConfig(rootfs=rootfs, args=args, env=env, **kwargs)  # type: ignore[arg-type]
        write_bundle(bundle, build_spec(cfg))
        return cid, bundle

    return make
