"""`dockyard build`: the legacy builder's output, the cache, and errors that name the line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import Clients, write_context

pytestmark = pytest.mark.root

DOCKERFILE = """\
FROM busybox
RUN echo one > /one
ENV GREETING=hello
WORKDIR /app
COPY f.txt .
RUN echo two > /app/two
CMD ["cat", "/app/f.txt"]
"""


def _image_id(out: str) -> str:
    m = re.search(r"Successfully built ([0-9a-f]{12})", out)
    assert m, out
    return m.group(1)


def test_build_output_follows_the_legacy_builder(clients: Clients, tmp_path: Path) -> None:
    ctx = write_context(tmp_path, DOCKERFILE, {"f.txt": "file contents\n"})
    out = clients.ok("build", "--no-cache", "-t", "core-shape", str(ctx))
    assert "Step 1/7 : FROM busybox" in out
    assert "Step 2/7 : RUN echo one > /one" in out
    assert out.count(" ---> Running in ") == 5  # RUN, ENV, WORKDIR, RUN, CMD (not COPY)
    assert out.count("Removing intermediate container ") == 5
    assert "Successfully tagged core-shape:latest" in out
    assert clients.ok("run", "--rm", "core-shape") == "file contents\n"


def test_rebuild_uses_cache_and_gives_the_same_id(clients: Clients, tmp_path: Path) -> None:
    ctx = write_context(tmp_path, DOCKERFILE.replace("one", "cached"), {"f.txt": "x\n"})
    first = clients.ok("build", "-t", "core-cache", str(ctx))
    second = clients.ok("build", "-t", "core-cache", str(ctx))
    assert second.count(" ---> Using cache") == 6  # every step after FROM
    assert " ---> Running in " not in second
    assert _image_id(first) == _image_id(second)


def test_changed_run_line_reruns_it_and_what_follows(clients: Clients, tmp_path: Path) -> None:
    ctx = write_context(tmp_path, DOCKERFILE.replace("one", "edit"), {"f.txt": "x\n"})
    clients.ok("build", "-t", "core-edit", str(ctx))
    (ctx / "Dockerfile").write_text(
        DOCKERFILE.replace("one", "edit").replace("echo two", "echo TWO")
    )
    out = clients.ok("build", "-t", "core-edit", str(ctx))
    steps = out.split("Step ")[1:]
    cached = [s.split(" :")[0] for s in steps if "Using cache" in s]
    rerun = [s.split(" :")[0] for s in steps if "Running in" in s]
    assert cached == ["2/7", "3/7", "4/7", "5/7"]
    assert rerun == ["6/7", "7/7"]


def test_changed_copy_source_invalidates_from_copy_on(clients: Clients, tmp_path: Path) -> None:
    ctx = write_context(tmp_path, DOCKERFILE.replace("one", "copyedit"), {"f.txt": "v1\n"})
    clients.ok("build", "-t", "core-copyedit", str(ctx))
    (ctx / "f.txt").write_text("v2\n")
    out = clients.ok("build", "-t", "core-copyedit", str(ctx))
    assert out.count(" ---> Using cache") == 3  # RUN, ENV, WORKDIR
    assert clients.ok("run", "--rm", "core-copyedit") == "v2\n"


def test_cache_hit_ignores_context_mtimes(clients: Clients, tmp_path: Path) -> None:
    import os

    ctx = write_context(tmp_path, DOCKERFILE.replace("one", "mtime"), {"f.txt": "same\n"})
    clients.ok("build", "-t", "core-mtime", str(ctx))
    os.utime(ctx / "f.txt", (1_000_000, 1_000_000))
    out = clients.ok("build", "-t", "core-mtime", str(ctx))
    assert out.count(" ---> Using cache") == 6


def test_no_cache_reruns_everything(clients: Clients, tmp_path: Path) -> None:
    ctx = write_context(tmp_path, "FROM busybox\nRUN echo nocache\n")
    clients.ok("build", str(ctx))
    out = clients.ok("build", "--no-cache", str(ctx))
    assert "Using cache" not in out
    assert "nocache" in out


def test_quiet_prints_only_the_id_and_several_tags(clients: Clients, tmp_path: Path) -> None:
    ctx = write_context(tmp_path, "FROM busybox\nRUN echo quiet\n")
    out = clients.ok("build", "-q", "-t", "core-q1", "-t", "core-q2:v2", str(ctx))
    assert re.fullmatch(r"sha256:[0-9a-f]{64}\n", out)
    for name in ("core-q1", "core-q2:v2"):
        assert clients.ok("inspect", "-f", "{{.Id}}", name).strip() == out.strip()


def test_dockerfile_flag(clients: Clients, tmp_path: Path) -> None:
    ctx = write_context(tmp_path, 'FROM busybox\nCMD ["echo", "default"]\n')
    (ctx / "other.Dockerfile").write_text('FROM busybox\nCMD ["echo", "other"]\n')
    clients.ok("build", "-f", str(ctx / "other.Dockerfile"), "-t", "core-f", str(ctx))
    assert clients.ok("run", "--rm", "core-f") == "other\n"


def test_metadata_instructions_make_empty_layers(clients: Clients, tmp_path: Path) -> None:
    ctx = write_context(
        tmp_path,
        'FROM busybox\nENV A=1 B="two words"\nLABEL team=core\nEXPOSE 8080 53/udp\n'
        'WORKDIR /w\nENTRYPOINT ["/bin/echo"]\nCMD ["hi"]\nRUN true\n',
    )
    clients.ok("build", "-t", "core-meta", str(ctx))
    import json

    info = json.loads(clients.ok("inspect", "core-meta"))[0]
    cfg = info["Config"]
    assert "A=1" in cfg["Env"] and "B=two words" in cfg["Env"]
    assert cfg["Labels"] == {"team": "core"}
    assert set(cfg["ExposedPorts"]) == {"8080/tcp", "53/udp"}
    assert cfg["WorkingDir"] == "/w"
    assert cfg["Entrypoint"] == ["/bin/echo"] and cfg["Cmd"] == ["hi"]
    history = json.loads(clients.ok("inspect", "-f", "{{json .RootFS.Layers}}", "core-meta"))
    # base and WORKDIR (it made /w); `RUN true` changed nothing, so like Docker 20.10's
    # legacy builder no layer is added for it
    assert len(history) == 2
    assert clients.ok("run", "--rm", "core-meta") == "hi\n"


@pytest.mark.parametrize(
    ("dockerfile", "message"),
    [
        ("FROM busybox\nFOO bar\n", "Dockerfile:2: unknown instruction: FOO"),
        ("RUN true\n", "Dockerfile:1:"),
        ("FROM no-such-image-here\n", "no-such-image-here"),
        ("", "cannot be empty"),
    ],
)
def test_bad_dockerfiles_name_the_line(
    clients: Clients, tmp_path: Path, dockerfile: str, message: str
) -> None:
    ctx = write_context(tmp_path, dockerfile)
    proc = clients.dockyard("build", "-t", "core-bad", str(ctx))
    assert proc.returncode != 0
    assert message in proc.stderr
    assert "Dockerfile:" in proc.stderr


def test_failing_run_shows_output_and_leaves_nothing(
    fresh_clients: Clients, tmp_path: Path
) -> None:
    from tests.support.daemons import mounts_under

    daemon = fresh_clients.daemon
    ctx = write_context(tmp_path, "FROM busybox\nRUN echo partial output; exit 7\n")
    # --force-rm: without it a failed RUN keeps its container, as dockerd's legacy builder
    # (tests/interop/test_build_containers.py); with it nothing may stay
    proc = fresh_clients.dockyard("build", "--force-rm", "-t", "core-fail", str(ctx))
    assert proc.returncode == 7  # the step's status, as docker build exits with it
    assert "partial output" in proc.stdout
    assert (
        "Dockerfile:2: The command '/bin/sh -c echo partial output; exit 7' returned a "
        "non-zero code: 7" in proc.stderr
    )
    assert fresh_clients.dockyard("inspect", "core-fail").returncode != 0
    assert fresh_clients.ok("ps", "-aq") == ""
    assert mounts_under(daemon.root / "builds") == []
    assert mounts_under(daemon.root / "containers") == []
    # Only the base layer's snapshot and the init layers remain on disk.
    snapshots = sorted(p.name for p in (daemon.root / "overlay").iterdir())
    assert snapshots == ["1", "empty", "init", "init-sandbox"]
    import subprocess

    runc = subprocess.run(
        ["runc", "--root", str(daemon.root / "runc"), "list", "-q"], capture_output=True, text=True
    )
    assert runc.stdout.strip() == ""


def test_copy_files_and_directories(clients: Clients, tmp_path: Path) -> None:
    import os

    ctx = write_context(
        tmp_path,
        "FROM busybox\nCOPY dir /dest/\nCOPY one.txt /single\nCOPY *.md /docs/\n",
        {
            "dir/a.txt": "a\n",
            "dir/sub/b.sh": "#!/bin/sh\necho b\n",
            "dir/skipped.log": "no\n",
            "one.txt": "one\n",
            "x.md": "x\n",
            "y.md": "y\n",
            ".dockerignore": "dir/*.log\n",
        },
    )
    os.chmod(ctx / "dir/sub/b.sh", 0o750)
    clients.ok("build", "-t", "core-copy", str(ctx))
    out = clients.ok(
        "run",
        "--rm",
        "core-copy",
        "sh",
        "-c",
        "cd /dest && find . | sort; stat -c '%a %u:%g' sub/b.sh; cat /single; ls /docs",
    )
    assert out.split() == [
        ".",
        "./a.txt",
        "./sub",
        "./sub/b.sh",
        "750",
        "0:0",
        "one",
        "x.md",
        "y.md",
    ]


def test_copy_source_outside_the_context_is_refused(clients: Clients, tmp_path: Path) -> None:
    ctx = write_context(tmp_path / "ctx", "FROM busybox\nCOPY ../secret /s\n")
    (tmp_path / "secret").write_text("no\n")
    proc = clients.dockyard("build", str(ctx))
    assert proc.returncode == 1
    assert "Dockerfile:2:" in proc.stderr
    missing = write_context(tmp_path / "ctx2", "FROM busybox\nCOPY nothere /x\n")
    proc = clients.dockyard("build", str(missing))
    assert proc.returncode == 1 and "Dockerfile:2:" in proc.stderr and "nothere" in proc.stderr
