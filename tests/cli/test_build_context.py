"""Context packing: .dockerignore as docker/cli applies it, Dockerfile injection."""

from __future__ import annotations

import fnmatch
import io
import os
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from dockyard.cli import build_context as bc


def _parse(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            out.append(line.lstrip("/"))
    return out


def _factory(patterns: list[str]) -> Callable[[str], bool]:
    """A stand-in for the frontend's matcher: last match wins, parents count (docker's rule)."""

    def matches(rel: str) -> bool:
        parts = rel.split("/")
        result = False
        for pat in patterns:
            neg = pat.startswith("!")
            p = pat[1:] if neg else pat
            hit = any(fnmatch.fnmatchcase("/".join(parts[: i + 1]), p) for i in range(len(parts)))
            if hit:
                result = not neg
        return result

    return matches


IGNORE = (_parse, _factory)


def _members(chunks: list[bytes]) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tf:
        return {m.name: m for m in tf.getmembers()}


def _read(chunks: list[bytes], name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tf:
        f = tf.extractfile(name)
        assert f is not None
        return f.read()


@pytest.fixture
def ctxdir(tmp_path: Path) -> Path:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "keep.txt").write_text("k")
    (tmp_path / "secret.key").write_text("s")
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "out.o").write_text("o")
    (tmp_path / "build" / "keep.me").write_text("m")
    (tmp_path / "node_modules").mkdir()
    (tmp_path / "node_modules" / "x.js").write_text("x")
    os.link(tmp_path / "keep.txt", tmp_path / "hard.txt")
    os.symlink("keep.txt", tmp_path / "link")
    return tmp_path


def test_plain_context_is_sorted_root_owned(ctxdir: Path) -> None:
    prepared, stream = bc.pack(str(ctxdir), ignore=IGNORE)
    chunks = list(stream)
    members = _members(chunks)
    assert prepared.dockerfile == "Dockerfile"
    assert list(members) == sorted(members)
    assert all(m.uid == 0 and m.gid == 0 and m.uname == "" for m in members.values())
    assert members["link"].issym() and members["link"].linkname == "keep.txt"
    # The first path walked to an inode carries the data; later ones link to it.
    assert members["hard.txt"].isreg() and members["keep.txt"].islnk()
    assert members["keep.txt"].linkname == "hard.txt"
    assert _read(chunks, "build/out.o") == b"o"


def test_dockerignore_with_exception_and_build_files_kept(ctxdir: Path) -> None:
    (ctxdir / ".dockerignore").write_text(
        "# c\n*.key\nbuild\n!build/keep.me\nnode_modules\nDockerfile\n.dockerignore\n"
    )
    _, stream = bc.pack(str(ctxdir), ignore=IGNORE)
    names = set(_members(list(stream)))
    assert "secret.key" not in names
    assert "node_modules" not in names and "node_modules/x.js" not in names
    assert "build/out.o" not in names and "build" not in names
    assert "build/keep.me" in names  # the exception reaches into an excluded dir
    assert {"Dockerfile", ".dockerignore"} <= names  # TrimBuildFilesFromExcludes


def test_dockerfile_outside_context_is_injected(
    ctxdir: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    other = tmp_path_factory.mktemp("other") / "My.Dockerfile"
    other.write_text("FROM busybox\n")
    prepared, stream = bc.pack(str(ctxdir), dockerfile=str(other), ignore=IGNORE)
    chunks = list(stream)
    assert prepared.dockerfile.startswith(".dockerfile.") and len(prepared.dockerfile) == 32
    assert _read(chunks, prepared.dockerfile) == b"FROM busybox\n"
    ignore = _read(chunks, ".dockerignore").decode()
    assert ignore == f".dockerignore\n{prepared.dockerfile}\n"


def test_injected_name_is_appended_to_existing_dockerignore(ctxdir: Path) -> None:
    (ctxdir / ".dockerignore").write_text("*.key")
    prepared, stream = bc.pack(str(ctxdir), dockerfile_bytes=b"FROM x\n", ignore=IGNORE)
    chunks = list(stream)
    assert _read(chunks, ".dockerignore").decode() == f"*.key\n{prepared.dockerfile}\n"
    assert list(_members(chunks)).count(".dockerignore") == 1


def test_dockerfile_in_subdir_and_lowercase_fallback(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "Dockerfile.dev").write_text("FROM x\n")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        prepared, _ = bc.pack(".", dockerfile="sub/Dockerfile.dev", ignore=IGNORE)
    finally:
        os.chdir(cwd)
    assert prepared.dockerfile == "sub/Dockerfile.dev"
    lower = tmp_path / "lower"
    lower.mkdir()
    (lower / "dockerfile").write_text("FROM x\n")
    assert bc.pack(str(lower), ignore=IGNORE)[0].dockerfile == "dockerfile"


def test_missing_dockerfile_and_bad_context(tmp_path: Path) -> None:
    with pytest.raises(bc.ContextError, match="Cannot locate Dockerfile"):
        bc.pack(str(tmp_path), ignore=IGNORE)
    with pytest.raises(bc.ContextError, match="must be a directory"):
        bc.pack(str(tmp_path / "nope"), ignore=IGNORE)


def test_large_file_streams_in_chunks(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM x\n")
    (tmp_path / "big").write_bytes(os.urandom(1 << 20))
    for i in range(50):
        (tmp_path / f"f{i}").write_bytes(b"x" * 4096)
    _, stream = bc.pack(str(tmp_path), ignore=IGNORE)
    chunks = list(stream)
    assert len(chunks) > 2
    assert _read(chunks, "big") == (tmp_path / "big").read_bytes()


def test_stdin_archive_detection() -> None:
    tar = bc.single_dockerfile_tar(b"FROM x\n")
    assert bc.is_archive(tar[:1024])
    assert bc.is_archive(b"\x1f\x8b\x08")
    assert not bc.is_archive(b"FROM busybox\nRUN true\n")


def test_with_the_frontend_matcher(ctxdir: Path) -> None:
    pytest.importorskip("dockyard.frontend.dockerignore")
    (ctxdir / ".dockerignore").write_text("*.key\nbuild\n!build/keep.me\n")
    _, stream = bc.pack(str(ctxdir))
    names = set(_members(list(stream)))
    assert "secret.key" not in names and "build/out.o" not in names
    assert "build/keep.me" in names and "Dockerfile" in names
