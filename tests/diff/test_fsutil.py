from __future__ import annotations

import os
from pathlib import Path

import pytest

from dockyard.diff.fsutil import SymlinkLoop, mkdir_in_root, resolve_in_root


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    (r / "etc").mkdir(parents=True)
    (r / "usr/lib").mkdir(parents=True)
    os.symlink("/", r / "abs_root")
    os.symlink("/etc", r / "abs_etc")
    os.symlink("../../../../../..", r / "usr/lib/up")
    os.symlink("lib", r / "usr/rel")
    os.symlink("/nowhere/deep", r / "dangling")
    os.symlink("loop2", r / "loop1")
    os.symlink("loop1", r / "loop2")
    return r


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("", ""),
        ("/", ""),
        ("etc/passwd", "etc/passwd"),
        ("/etc/../etc/./passwd", "etc/passwd"),
        ("../../../etc/passwd", "etc/passwd"),
        ("abs_root/etc/passwd", "etc/passwd"),
        ("abs_etc/passwd", "etc/passwd"),
        ("usr/lib/up/etc", "etc"),
        ("usr/rel/x", "usr/lib/x"),
        ("dangling/file", "nowhere/deep/file"),
        ("missing/../etc", "etc"),
    ],
)
def test_resolution_stays_inside_root(root: Path, path: str, expected: str) -> None:
    got = resolve_in_root(root, path)
    assert got == (root / expected if expected else root)


def test_symlink_loop_is_refused(root: Path) -> None:
    with pytest.raises(SymlinkLoop):
        resolve_in_root(root, "loop1/x")


def test_mkdir_in_root_creates_through_symlinks_inside_root(root: Path, tmp_path: Path) -> None:
    made = mkdir_in_root(root, "abs_root/tmp/a/b")
    assert made == root / "tmp/a/b" and made.is_dir()
    assert mkdir_in_root(root, "dangling") == root / "nowhere/deep"
    assert (root / "nowhere/deep").is_dir()
    assert not Path("/nowhere").exists()
    (root / "file").write_text("x")
    with pytest.raises(OSError):
        mkdir_in_root(root, "file")
