"""Images move both ways between dockyard and Docker without loss.

dockyard save → reference `docker load` → `docker run`, and reference `docker save` →
`dockyard load` → `dockyard run`: the image ID (so the config bytes) is the same on both sides,
and a listing of every file (path, mode, owner, link count, type, link target, content hash)
taken inside a container of the image is identical.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import Clients, write_context
from tests.interop.conftest import Side

pytestmark = [pytest.mark.root, pytest.mark.dockerd]

DOCKERFILE = """\
FROM busybox
RUN mkdir -p /data/sub /data/opq && echo hello > /data/f && chmod 0751 /data/sub \\
 && chmod 4755 /data/f && chown 1:2 /data/f && ln -s f /data/link && ln /data/f /data/hard \\
 && rm /etc/group && touch /data/opq/a && mkfifo /data/fifo
RUN rm -rf /data/opq && mkdir /data/opq && touch /data/opq/b && echo more >> /data/f \\
 && chown -h 1:1 /data/link
COPY --chown=1:2 added.txt /data/added.txt
ENV A=1 B="two words"
LABEL org.example.x=y
WORKDIR /data
USER 1:2
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat /data/f; id -u"]
"""

# Every path outside the runtime's mounts, with what defines it (mtimes of files and links; a
# directory's mtime can come from the runtime's init layer, so it is left out).
LISTING = r"""
find / \( -path /proc -o -path /sys -o -path /dev \) -prune -o -print | sort |
grep -v -x -e /etc/hosts -e /etc/hostname -e /etc/resolv.conf -e /etc/mtab -e /.dockerenv |
while read -r f; do
  s=$(stat -c '%a %u %g %h %F' "$f")
  if [ -L "$f" ]; then echo "$f $s $(stat -c %Y "$f") -> $(readlink "$f")"
  elif [ -f "$f" ]; then echo "$f $s $(stat -c %Y "$f") $(md5sum < "$f" | cut -c1-32)"
  else echo "$f $s"; fi
done
"""


def listing(side: Side, image: str) -> str:
    out = side.ok(
        "28",
        "run",
        "--rm",
        "--network=none",
        "--user",
        "0",
        "--entrypoint",
        "sh",
        image,
        "-c",
        LISTING,
    )
    assert "/data/link 777 1 1 1 symbolic link " in out and out.count(" -> f\n") == 1
    assert "/data/opq/b " in out and "/data/opq/a" not in out
    return out


def image_facts(side: Side, image: str) -> tuple[str, str, str, str]:
    inspect = json.loads(side.ok("28", "image", "inspect", image))[0]
    history = side.ok(
        "28", "history", "--no-trunc", "--format", "{{.CreatedBy}}|{{.Comment}}", image
    )
    run = side.ok("28", "run", "--rm", "--network=none", image)
    return inspect["Id"], json.dumps(inspect["Config"], sort_keys=True), history, run


@pytest.fixture(scope="module")
def context(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_context(tmp_path_factory.mktemp("ctx"), DOCKERFILE, {"added.txt": "added\n"})


def test_dockyard_save_then_docker_load(
    clients: Clients, ours: Side, theirs: Side, context: Path, tmp_path: Path
) -> None:
    clients.ok("build", "-q", "-t", "interop-rt-a:1", str(context))
    archive = tmp_path / "a.tar"
    clients.ok("save", "-o", str(archive), "interop-rt-a:1")
    assert "Loaded image: interop-rt-a:1" in theirs.ok("20.10", "load", "-i", str(archive))
    facts = image_facts(ours, "interop-rt-a:1")
    assert image_facts(theirs, "interop-rt-a:1") == facts
    assert facts[3] == "hello\nmore\n1\n"
    assert listing(theirs, "interop-rt-a:1") == listing(ours, "interop-rt-a:1")
    # The newer CLI reads our archive too (its daemon is the same 20.10 here).
    theirs.ok("28", "rmi", "interop-rt-a:1")
    assert "Loaded image: interop-rt-a:1" in theirs.ok("28", "load", "-i", str(archive))


def test_docker_save_then_dockyard_load(
    clients: Clients, ours: Side, theirs: Side, context: Path, tmp_path: Path
) -> None:
    theirs.ok("20.10", "build", "-q", "-t", "interop-rt-b:1", str(context))
    archive = tmp_path / "b.tar"
    theirs.ok("20.10", "save", "-o", str(archive), "interop-rt-b:1")
    out = clients.ok("load", "-i", str(archive))
    assert "Loaded image: interop-rt-b:1" in out
    run = clients.ok("run", "--rm", "--network=none", "interop-rt-b:1")
    assert run == "hello\nmore\n1\n"
    assert image_facts(ours, "interop-rt-b:1") == image_facts(theirs, "interop-rt-b:1")
    assert listing(ours, "interop-rt-b:1") == listing(theirs, "interop-rt-b:1")


def test_docker_load_through_our_socket_of_docker_archive(
    ours: Side, theirs: Side, context: Path, tmp_path: Path
) -> None:
    """`docker save` on Docker, `docker load` (both CLIs) on dockyard, gzip-compressed too."""
    import gzip
    import shutil

    theirs.ok("20.10", "build", "-q", "-t", "interop-rt-c:1", str(context))
    archive = tmp_path / "c.tar"
    theirs.ok("20.10", "save", "-o", str(archive), "interop-rt-c:1")
    gz = tmp_path / "c.tar.gz"
    with open(archive, "rb") as src, gzip.open(gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    for cli, path in (("28", archive), ("20.10", gz)):
        proc = ours.docker(cli, "load", "-i", str(path))
        assert (proc.returncode, proc.stdout) == (0, "Loaded image: interop-rt-c:1\n"), proc.stderr
        assert ours.ok(cli, "run", "--rm", "--network=none", "interop-rt-c:1") == "hello\nmore\n1\n"
        ours.ok(cli, "rmi", "interop-rt-c:1")
