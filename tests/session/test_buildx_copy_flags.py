"""`COPY --link` and symbolic `--chmod` through buildx, against dockerd 26.1.

Symbolic `--chmod` (`u+x`, `go-w,a+X`): 26.1's BuildKit 0.13 accepts it and ignores it (its
frontend parses octal only and drops what fails; measured below), BuildKit since dockerfile
1.14 applies it per copied entry as chmod(1) with umask 0. The reference for what dockyard
gives is therefore 26.1 copying without the flag and running the same chmod in a RUN.

`COPY --link`, against dockerd 26.1 with the containerd image store:

BuildKit makes a --link layer by copying into an empty root and merging it onto the stage
(dispatchCopy: `llb.Merge([stage, llb.Scratch().File(copy)])`). dockerd 26.1 does that only
with the containerd image store (`"features": {"containerd-snapshotter": true}`): on its
classic overlay2 store the worker has no MergeOp, and --link copies as plain COPY (measured:
`COPY --link f /lnk/f` through a symlink `/lnk -> /real` writes `/real/f` there). So the
reference here is a 26.1 with the containerd store, and what is compared is observable:

- each --link layer's entries (name, type, mode, owner, content; not mtimes): the
  destination's parents made fresh in the layer (0755, the --chown owner), a symlink or a
  directory of the parent at the destination replaced rather than followed or merged into;
- the image's files, config, layer count and history, as test_buildx_reference compares;
- after the base changes, the --link step's layer is the same blob (same diff ID) while the
  step after it is made again.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.builder.imagediff import diff_trees, load_saved
from tests.builder.test_buildkit_reference import Reference, _assert_same
from tests.conftest import IS_ROOT, short_tmp, write_context
from tests.session.test_buildx_reference import CLI, OLD_CLI, _buildx_env
from tests.support.daemons import DockyardDaemon, ReferenceDockerd
from tests.support.rootfs import busybox_rootfs_tar
from tests.support.trixie import trixie_tools

pytestmark = [pytest.mark.root, pytest.mark.dockerd]

LINKS = """\
FROM busybox AS base
RUN mkdir -p /real /x/old /owned /usr/local/bin /dirdest && ln -s /real /lnk \\
 && echo old > /x/old/o && echo d > /dirdest/in && chown 5:5 /owned && chmod 700 /owned
FROM base
COPY --link f /lnk/f
COPY --link f /dirdest
COPY --link --chown=7:7 f /owned/sub/f
COPY --link d /x/
COPY --link --chown=7:7 f /new/a/b/
COPY --link f /usr/local/bin/
WORKDIR /w
COPY --link f rel/
ADD --link f /added/
COPY --link --chmod=600 f /owned/chmodded
"""

BASE_CHANGES = """\
FROM busybox
ARG B=1
RUN echo $B > /b
COPY --link f /usr/local/bin/
COPY f /g
"""


@pytest.fixture(scope="module")
def sides() -> Iterator[dict[str, dict[str, str]]]:
    tools = trixie_tools()
    if not IS_ROOT or tools is None or not os.access(CLI, os.X_OK):
        pytest.skip("needs root, docker CLI 28 and trixie's dockerd/buildx")
    ours = DockyardDaemon(short_tmp("dylk-")).start()
    ref: ReferenceDockerd | None = None
    try:
        base = Path(short_tmp("lk26-"))
        base.mkdir(parents=True, exist_ok=True)
        (base / "daemon.json").write_text(
            json.dumps({"features": {"containerd-snapshotter": True}})
        )
        ref = ReferenceDockerd(
            base,
            binary=str(tools.dockerd),
            extra_args=["--config-file", str(base / "daemon.json")],
        ).start()
        envs = {}
        for name, env in (("ours", ours.env()), ("26.1", ref.env())):
            cfg = tools.docker_config(Path(short_tmp(f"lkcfg-{name[:2]}-")))
            proc = subprocess.run(
                [OLD_CLI, "import", str(busybox_rootfs_tar()), "busybox:latest"],
                env={**env, "DOCKER_BUILDKIT": "0"},
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert proc.returncode == 0, proc.stderr
            envs[name] = _buildx_env(env, cfg)
        info = subprocess.run(
            [CLI, "info", "--format", "{{json .DriverStatus}}"],
            env=envs["26.1"],
            capture_output=True,
            text=True,
        ).stdout
        assert "io.containerd.snapshotter" in info, info  # the store that has MergeOp
        yield envs
    finally:
        if ref is not None:
            ref.cleanup()
        ours.cleanup()


def _build(env: dict[str, str], ctx: Path, tag: str, *extra: str) -> tuple[bytes, str]:
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
    saved = subprocess.run([OLD_CLI, "save", tag], env=env, capture_output=True, timeout=120)
    assert saved.returncode == 0, saved.stderr.decode()
    return saved.stdout, err


def _layers(saved: bytes) -> list[tuple[str, list[tuple[str, str, int, int, int, bytes]]]]:
    """Each layer's diff ID (the digest of its tar) and entries, without mtimes."""
    outer = tarfile.open(fileobj=io.BytesIO(saved))

    def read(name: str) -> bytes:
        f = outer.extractfile(os.path.normpath(name))
        assert f is not None
        return f.read()

    manifest = json.loads(read("manifest.json"))[0]
    diff_ids = json.loads(read(manifest["Config"]))["rootfs"]["diff_ids"]
    out = []
    for diff_id, name in zip(diff_ids, manifest["Layers"], strict=True):
        entries = []
        with tarfile.open(fileobj=io.BytesIO(read(name))) as layer:
            for m in layer:
                f = layer.extractfile(m) if m.isfile() else None
                body = f.read() if f is not None else m.linkname.encode()
                entries.append((m.name.rstrip("/"), m.type.decode(), m.mode, m.uid, m.gid, body))
        out.append((diff_id, sorted(entries)))
    return out


CHMOD_FILES: dict[str, str | bytes] = {"f": "f\n", "d/x": "x\n", "d/y": "y\n"}
SYMBOLIC = """\
FROM busybox
COPY --chmod=u+x,go-w f /f1
COPY --chmod=go-w,a+X d /d1
COPY --chmod=a=r,u+w f /f3
COPY --chmod=u+s,g=u f /f4
"""
BY_RUN = """\
FROM busybox
COPY f /f1
COPY d /d1
COPY f /f3
COPY f /f4
RUN umask 0 && chmod u+x,go-w /f1 && chmod -R go-w,a+X /d1 && chmod a=r,u+w /f3 \\
 && chmod u+s,g=u /f4
"""


def _chmod_context(tmp_path: Path, dockerfile: str) -> Path:
    ctx = write_context(tmp_path, dockerfile, CHMOD_FILES)
    for rel, mode in (("f", 0o664), ("d", 0o775), ("d/x", 0o664), ("d/y", 0o775)):
        os.chmod(ctx / rel, mode)
    return ctx


def test_symbolic_chmod_gives_what_chmod_in_a_run_gives_on_dockerd_26(
    sides: dict[str, dict[str, str]], tmp_path: Path
) -> None:
    symbolic = _chmod_context(tmp_path / "s", SYMBOLIC)
    by_run = _chmod_context(tmp_path / "r", BY_RUN)
    ours = load_saved(_build(sides["ours"], symbolic, "lk-chmod")[0])
    theirs = load_saved(_build(sides["26.1"], by_run, "lk-chmod-run")[0])
    assert diff_trees(theirs.tree, ours.tree) == []
    assert ours.tree["/f1"][1] == 0o744 and ours.tree["/d1/y"][1] == 0o755
    # 26.1 itself takes the symbolic Dockerfile and leaves the modes alone (BuildKit 0.13)
    ignored = load_saved(_build(sides["26.1"], symbolic, "lk-chmod")[0])
    assert ignored.tree["/f1"][1] == 0o664 and ignored.tree["/f4"][1] == 0o664


def test_a_bad_symbolic_chmod_fails_in_buildkits_words(
    sides: dict[str, dict[str, str]], tmp_path: Path
) -> None:
    ctx = write_context(tmp_path, "FROM busybox\nCOPY --chmod=u+q f /f\n", {"f": "f"})
    proc = subprocess.run(
        [CLI, "build", "--progress=plain", "."],
        env=sides["ours"],
        cwd=ctx,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "invalid chmod parameter: 'u+q'. invalid syntax" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_link_layers_match_dockerd_26_with_the_containerd_store(
    sides: dict[str, dict[str, str]], tmp_path: Path
) -> None:
    ctx = write_context(tmp_path / "c", LINKS, {"f": "f\n", "d/x": "x\n", "d/sub/y": "y\n"})
    ours_saved, _ = _build(sides["ours"], ctx, "lk-links")
    theirs_saved, _ = _build(sides["26.1"], ctx, "lk-links")
    ours, theirs = _layers(ours_saved), _layers(theirs_saved)
    assert len(ours) == len(theirs)
    # the base layer is the same bytes; every step after it is compared entry by entry
    assert ours[0][0] == theirs[0][0]
    for n, ((_, mine), (_, ref)) in enumerate(zip(ours[1:], theirs[1:], strict=True)):
        assert mine == ref, f"layer {n + 2}"
    # what --link means, in the reference's own result: a symlink at the destination is
    # replaced (not followed), a directory replaced by the file, created parents the owner's
    by_path = {e[0]: e for _, entries in theirs[2:] for e in entries}
    assert by_path["lnk"][1] == tarfile.DIRTYPE.decode() and "real/f" not in by_path
    assert by_path["dirdest"][1] == tarfile.REGTYPE.decode()
    assert by_path["owned"][2:5] == (0o755, 7, 7)
    # --chmod turns --link off: the parent's /owned is copied into, not replaced
    assert by_path["owned/chmodded"][2] == 0o600
    ref26 = Reference("26.1", ReferenceDockerd(tmp_path), "26.1")
    _assert_same(ref26, load_saved(theirs_saved), load_saved(ours_saved))


def test_a_link_layer_survives_a_change_of_the_base(
    sides: dict[str, dict[str, str]], tmp_path: Path
) -> None:
    ctx = write_context(tmp_path / "c", BASE_CHANGES, {"f": "f\n"})
    for who, env in sides.items():
        first, _ = _build(env, ctx, "lk-base", "--build-arg", "B=1")
        second, log = _build(env, ctx, "lk-base", "--build-arg", "B=2")
        a = [d for d, _ in _layers(first)]
        b = [d for d, _ in _layers(second)]
        assert a[0] == b[0] and a[1] != b[1], who  # the RUN changed
        assert a[2] == b[2], who  # the --link layer is the same blob
        if who == "ours":
            m = re.search(r"^#(\d+) \[3/4\] COPY --link f /usr/local/bin/$", log, re.M)
            assert m and f"\n#{m[1]} CACHED\n" in log, log
