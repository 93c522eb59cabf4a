"""The Python API (`import dockyard`): the engine in-process on a root of the test's own.

Build with per-step results (cache hits, the layers steps add), run/create/start/wait/logs,
save/load, push/pull through a registry, and one writer per root (a daemon on the root makes
the in-process engine refuse, by name, and the other way round).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import dockyard
from dockyard.errors import DockyardError, NotFound
from tests.conftest import IS_ROOT, short_tmp, write_context
from tests.support.daemons import DockyardDaemon, kill_containers_of, unmount_all_under
from tests.support.rootfs import busybox_rootfs_tar

pytestmark = pytest.mark.root


@pytest.fixture(scope="module", params=["in-process", "daemon"])
def dy(request: pytest.FixtureRequest) -> Iterator[dockyard.Dockyard]:
    """Every test runs twice: on the engine in this process, and through a daemon that
    holds the root (Dockyard.open finds its socket and talks to it): the same calls, the
    same typed results."""
    if not IS_ROOT:
        pytest.skip("needs root")
    base = short_tmp("pyapi-")
    daemon = DockyardDaemon(base).start() if request.param == "daemon" else None
    engine = dockyard.Dockyard.open(root=base / "root")
    assert engine.mode == request.param
    try:
        engine.import_image(busybox_rootfs_tar(), "busybox:latest")
        yield engine  # type: ignore[misc]  # RemoteDockyard has Dockyard's calls
    finally:
        engine.close()
        if daemon is not None:
            daemon.stop()
        kill_containers_of(base / "root")
        from dockyard.engine.network import remove_daemon_bridges

        remove_daemon_bridges(base / "root")
        unmount_all_under(base)
        subprocess.run(["rm", "-rf", str(base)], check=False)


DOCKERFILE = (
    "FROM busybox\n"
    "ENV GREETING=hello\n"
    "COPY greeting /greeting\n"
    "RUN echo built by $GREETING > /built && echo run-output\n"
    'CMD ["cat", "/greeting", "/built"]\n'
)


def test_import_is_light() -> None:
    out = subprocess.run(
        [
            "python3",
            "-c",
            "import sys, dockyard; assert 'dockyard.local' not in sys.modules; "
            "assert 'dockyard.engine' not in sys.modules; print(dockyard.Dockyard.__name__)",
        ],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(Path(dockyard.__file__).parents[1])},
    )
    assert out.returncode == 0 and out.stdout == "Dockyard\n", out.stderr


def test_build_reports_each_step(dy: dockyard.Dockyard, tmp_path: Path) -> None:
    ctx = write_context(tmp_path, DOCKERFILE, {"greeting": "hi\n", "secret.txt": "no"})
    (tmp_path / ".dockerignore").write_text("secret.txt\n")
    first = dy.build(ctx, tag="pyapi-app:1")
    assert first.tags == ["pyapi-app:1"]
    assert [s.instruction.split()[0] for s in first.steps] == ["FROM", "ENV", "COPY", "RUN", "CMD"]
    assert [s.number for s in first.steps] == [1, 2, 3, 4, 5]
    assert first.cache_hits == 0
    from_, env, copy, run, cmd = first.steps
    # the steps that change the filesystem add a layer each; metadata steps add none
    assert (from_.layer, env.layer, cmd.layer) == (None, None, None)
    assert copy.layer and run.layer and copy.layer != run.layer
    assert first.layers == [*dy.image("busybox").layers, copy.layer, run.layer]
    assert b"run-output" in run.output
    assert first.image_id == cmd.image_id == dy.image("pyapi-app:1").id

    again = dy.build(ctx, tag="pyapi-app:2")
    assert again.image_id == first.image_id
    assert [s.cached for s in again.steps] == [False, True, True, True, True]
    assert again.cache_hits == 4
    assert dy.image("pyapi-app:2").tags == ["pyapi-app:1", "pyapi-app:2"]

    result = dy.run("pyapi-app:1", network="none")
    assert (result.exit_code, result.stdout) == (0, b"hi\nbuilt by hello\n")
    # .dockerignore'd files are not in the context
    ls = dy.run("pyapi-app:1", ["ls", "/"], network="none")
    assert b"secret.txt" not in ls.stdout


def test_build_failure_is_an_error(dy: dockyard.Dockyard, tmp_path: Path) -> None:
    ctx = write_context(tmp_path, "FROM busybox\nRUN echo no; exit 3\n")
    with pytest.raises(DockyardError, match=r"Dockerfile:2: .*returned a non-zero code: 3"):
        dy.build(ctx, tag="pyapi-fail")
    with pytest.raises(NotFound):
        dy.image("pyapi-fail")


def test_create_start_wait_logs(dy: dockyard.Dockyard) -> None:
    c = dy.create(
        "busybox",
        ["sh", "-c", "echo out; echo err >&2; echo $A; exit 7"],
        name="pyapi-c",
        env={"A": "from-env"},
        network="none",
    )
    assert (c.name, c.image) == ("pyapi-c", "busybox")
    dy.start(c)
    assert dy.wait(c) == 7
    assert dy.logs("pyapi-c") == (b"out\nfrom-env\n", b"err\n")
    dy.remove(c)
    with pytest.raises(NotFound):
        dy.container("pyapi-c")


def test_run_keeps_the_container_when_asked(dy: dockyard.Dockyard) -> None:
    r = dy.run("busybox", ["true"], remove=False, name="pyapi-kept", network="none")
    assert dy.container("pyapi-kept").id == r.container.id
    dy.remove(r.container)


def test_save_and_load(dy: dockyard.Dockyard, tmp_path: Path) -> None:
    dy.tag("busybox", "pyapi-saved:1")
    dy.save(["pyapi-saved:1"], tmp_path / "saved.tar")
    before = dy.image("pyapi-saved:1").id
    dy.remove_image("pyapi-saved:1")
    with pytest.raises(NotFound):
        dy.image("pyapi-saved:1")
    assert dy.load(tmp_path / "saved.tar") == [before]
    assert dy.image("pyapi-saved:1").id == before


def test_push_and_pull(dy: dockyard.Dockyard) -> None:
    from tests.registry.support import Registry

    reg = Registry(short_tmp("pyapi-reg-"), auth="htpasswd", users={"u": "pw"}).start()
    try:
        ref = f"{reg.host}/pyapi/bb:1"
        dy.tag("busybox", ref)
        with pytest.raises(DockyardError):
            dy.push(ref, username="u", password="wrong")
        pushed = dy.push(ref, username="u", password="pw")
        assert pushed.digest.startswith("sha256:") and pushed.reference == ref
        dy.remove_image(ref)
        image = dy.pull(ref, username="u", password="pw")
        assert image.id == dy.image("busybox").id
        assert f"{reg.host}/pyapi/bb@{pushed.digest}" in image.digests
    finally:
        reg.cleanup()


def test_one_writer_per_root() -> None:
    base = short_tmp("pyapi-lock-")
    daemon = DockyardDaemon(base).start()
    try:
        with pytest.raises(dockyard.RootBusy, match="in use by another dockyard engine"):
            dockyard.Dockyard(root=daemon.root)
        # Dockyard.connect talks to that daemon; a socket with no daemon is an error by name
        with dockyard.Dockyard.connect(daemon.host) as remote:
            assert remote.mode == "daemon"
            assert remote.images() == []  # a fresh root: nothing imported yet
        with pytest.raises(DockyardError, match="cannot reach the dockyard daemon"):
            dockyard.Dockyard.connect(f"unix://{base}/no-such.sock")
    finally:
        daemon.cleanup()
    engine = dockyard.Dockyard(root=base / "root")
    try:
        # held in-process, the root names no daemon: open() cannot fall back, and says why
        with pytest.raises(dockyard.RootBusy):
            dockyard.Dockyard.open(root=base / "root")
        proc = DockyardDaemon(base)
        with pytest.raises(RuntimeError, match="another daemon holds"):
            proc.start()
    finally:
        proc.stop()
        engine.close()
        unmount_all_under(base)
        subprocess.run(["rm", "-rf", str(base)], check=False)
