"""`Sending build context to Docker daemon  N` shows the size docker CLI 28 shows for the same
context (issue 19 item 6): Go's tar has no 10 KiB record padding."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import Clients, write_context

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(shutil.which("docker") is None, reason="docker CLI 28 not on PATH"),
]

_LINE = re.compile(r"Sending build context to Docker daemon\s+(\S+)")


@pytest.mark.parametrize(
    "files",
    [
        {},
        {"a.txt": "a\n", "sub/b.txt": "b" * 700, "sub/deeper/c.bin": b"\0" * 5000},
        {".dockerignore": "ignored*\n", "ignored.txt": "x" * 9000, "kept.txt": "k\n"},
    ],
    ids=["one-file", "nested", "dockerignore"],
)
def test_context_size_line_matches_docker(
    clients: Clients, tmp_path: Path, files: dict[str, str | bytes]
) -> None:
    ctx = write_context(tmp_path / "ctx", "FROM busybox\n", files)
    ours = clients.dockyard("build", str(ctx))
    docker = clients.docker("build", str(ctx))
    assert ours.returncode == docker.returncode == 0, (ours.stderr, docker.stderr)
    mine, theirs = _LINE.search(ours.stdout), _LINE.search(docker.stdout + docker.stderr)
    assert mine and theirs, (ours.stdout, docker.stdout, docker.stderr)
    assert mine.group(1) == theirs.group(1)
    if not files:
        assert mine.group(1) == "2.048kB"
