"""ADD of git repositories, differential against the reference dockerds, with a git server of
the test's own on 127.0.0.1 (tests/support/gitserver.py: `git http-backend`). dockerd runs
on the host, so it reaches the same server as dockyard.

- BuildKit (docker CLI 28 + buildx against dockyard and dockerd 26.1): `ADD URL.git#ref:subdir`
  checks the commit out (default branch, branch, tag, annotated tag, commit, sub-directory,
  `--chown`, `--keep-git-dir`, submodules, links pointing out of the tree); the images are
  compared file by file (type, mode, owner, size, content, link target), the config and
  history; mtimes are the checkout's time on both. The cache key holds the resolved commit:
  a rebuild is a hit, a new commit on the branch is a miss, on both daemons.
- Errors (unknown ref, unreachable host, missing sub-directory, COPY of a repository): a
  failed build naming the URL on both, no traceback in our daemon's log.
- The legacy builder (dockerd 20.10): no git at all — an http(s) URL ending in .git is
  downloaded like any URL (a 404 from a git server), `git@…` is a context path, and
  `--keep-git-dir` is an unknown flag; dockyard's legacy builder answers the same.
"""

from __future__ import annotations

import os
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.builder.imagediff import SavedImage, diff_trees, load_saved
from tests.builder.test_buildkit_reference import _fields, _history
from tests.conftest import IS_ROOT, short_tmp, write_context
from tests.session.test_buildx_reference import CLI, OLD_CLI, sides  # noqa: F401
from tests.support import gitserver
from tests.support.concurrent import at_once
from tests.support.daemons import DockyardDaemon, ReferenceDockerd
from tests.support.gitserver import GitServer, git
from tests.support.rootfs import busybox_rootfs_tar

pytestmark = [pytest.mark.root, pytest.mark.dockerd]


@pytest.fixture(scope="module")
def server() -> Iterator[GitServer]:
    if not gitserver.available():
        pytest.skip("needs git and git-http-backend")
    srv = GitServer(short_tmp("gitsrv-")).start()
    try:
        w = srv.repo("r")
        (w / "a.txt").write_text("a\n")
        (w / "x.sh").write_text("#!/bin/sh\necho x\n")
        os.chmod(w / "x.sh", 0o755)
        (w / "sub" / "deeper").mkdir(parents=True)
        (w / "sub" / "s.txt").write_text("s\n")
        (w / "sub" / "deeper" / "d.txt").write_text("d\n")
        os.symlink("a.txt", w / "link")
        os.symlink("/etc/passwd", w / "abs-out")  # links stay links, never followed
        os.symlink("../../../../etc", w / "sub" / "rel-out")
        os.symlink("/etc", w / "dir-out")
        git(w, "add", "-A")
        git(w, "commit", "-q", "-m", "one")
        git(w, "tag", "v1")
        git(w, "tag", "-a", "-m", "annotated", "v1-annotated")
        git(w, "checkout", "-q", "-b", "feature")
        (w / "f.txt").write_text("feature\n")
        git(w, "add", "-A")
        git(w, "commit", "-q", "-m", "two", date="2022-03-04T05:06:07Z")
        git(w, "checkout", "-q", "main")
        srv.publish("r")
        m = srv.repo("inner")
        (m / "inner.txt").write_text("inner\n")
        git(m, "add", "-A")
        git(m, "commit", "-q", "-m", "inner")
        srv.publish("inner")
        p = srv.repo("outer")
        (p / "top.txt").write_text("top\n")
        git(p, "-c", "protocol.allow=always", "submodule", "add", "-q", srv.url("inner"), "mods/in")
        git(p, "commit", "-q", "-m", "outer")
        srv.publish("outer")
        # a submodule that would read the daemon host's own files (a file:// URL)
        secret = srv.repo("secret")
        (secret / "secret.txt").write_text("host secret\n")
        git(secret, "add", "-A")
        git(secret, "commit", "-q", "-m", "s")
        e = srv.repo("evil")
        (e / "e.txt").write_text("e\n")
        git(e, "submodule", "add", "-q", f"file://{secret}", "steal")
        git(e, "commit", "-q", "-m", "evil")
        srv.publish("evil")
        yield srv
    finally:
        srv.stop()
        subprocess.run(["rm", "-rf", str(srv.root)], check=False)


def _build(
    env: dict[str, str], ctx: Path, tag: str, *extra: str, ok: bool = True
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [CLI, "build", "--progress=plain", "-t", tag, *extra, "."],
        env=env,
        cwd=ctx,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=300,
    )
    assert (proc.returncode == 0) == ok, proc.stderr[-3000:]
    return proc


def _saved(env: dict[str, str], tag: str) -> tuple[SavedImage, bytes]:
    saved = subprocess.run([OLD_CLI, "save", tag], env=env, capture_output=True, timeout=120)
    assert saved.returncode == 0, saved.stderr.decode()
    return load_saved(saved.stdout), saved.stdout


def _last_layer_mtimes(saved: bytes) -> dict[str, int]:
    import io
    import json

    with tarfile.open(fileobj=io.BytesIO(saved)) as t:
        manifest = json.load(t.extractfile("manifest.json"))  # type: ignore[arg-type]
        layer = t.extractfile(manifest[0]["Layers"][-1])
        with tarfile.open(fileobj=layer) as lt:
            return {m.name: int(m.mtime) for m in lt.getmembers()}


# Dockerfiles by name; `{r}`, `{outer}` are the served repositories' URLs
CASES = {
    "default-branch": "FROM busybox\nADD {r} /r/\n",
    "branch-no-slash": "FROM busybox\nADD {r}#feature /r\n",
    "tag": "FROM busybox\nADD {r}#v1 /t/\n",
    "annotated-tag": "FROM busybox\nADD {r}#v1-annotated /t/\n",
    "commit": "FROM busybox\nADD {r}#{feature} /c/\n",
    "subdir": "FROM busybox\nADD {r}#feature:sub /s\nADD {r}#:sub/deeper/ /d/\n",
    "chown-and-workdir": "FROM busybox\nWORKDIR /w\nADD --chown=5:6 {r}#main:sub rel/\n",
    "keep-git-dir": "FROM busybox\nADD --keep-git-dir=true {r}#feature /k\n",
    "submodules": "FROM busybox\nADD {outer} /o/\n",
    "onto-existing-tree": "FROM busybox\nADD {r} /etc/\n",
}


def _urls(server: GitServer) -> dict[str, str]:
    feature = git(server.root / "work" / "r", "rev-parse", "feature")
    return {
        "r": server.url("r"),
        "outer": server.url("outer"),
        "evil": server.url("evil"),
        "feature": feature,
    }


def _comparable(image: SavedImage) -> SavedImage:
    """What the two daemons can agree on: the files of a kept .git are git's own bookkeeping
    (index times, packs or loose objects) except HEAD; a submodule's `.git` file names the
    daemon's own directory."""
    tree = {}
    for path, entry in image.tree.items():
        if "/.git/" in path and not path.endswith(("/.git/HEAD", "/.git/shallow")):
            continue
        if path.endswith("/mods/in/.git"):
            entry = (*entry[:4], "", entry[5])
        tree[path] = entry
    return SavedImage(image.config, tree, image.layer_count)


@pytest.mark.parametrize("name", sorted(CASES))
def test_add_git_matches_dockerd_26(
    sides: dict[str, dict[str, str]],  # noqa: F811
    server: GitServer,
    tmp_path: Path,
    name: str,
) -> None:
    ctx = write_context(tmp_path / "c", CASES[name].format(**_urls(server)))

    def build(side: str) -> tuple[SavedImage, bytes]:
        _build(sides[side], ctx, f"git-{name}")
        return _saved(sides[side], f"git-{name}")

    # two daemons, two storages, one git server that serves each request on its own
    # thread: the builds are independent (tests/support/concurrent.py)
    saved = at_once({side: lambda side=side: build(side) for side in ("ours", "26.1")})
    images = {}
    for side, (image, raw) in saved.items():
        images[side] = _comparable(image)
        # the checked-out files have the checkout's mtimes, not the commit's (2021/2022);
        # BuildKit keeps a commit's checkout, so its files may be from an earlier build
        for path, mtime in _last_layer_mtimes(raw).items():
            assert mtime >= int(server.started) - 1, (side, path, mtime)
    ours, theirs = images["ours"], images["26.1"]
    assert diff_trees(theirs.tree, ours.tree) == []
    assert _fields(theirs) == _fields(ours)
    assert theirs.layer_count == ours.layer_count
    assert _history(theirs) == _history(ours)
    if name == "keep-git-dir":
        head = ours.tree["/k/.git/HEAD"]
        assert head[0] == "file"


def _add_step_cached(proc: subprocess.CompletedProcess[str]) -> bool:
    """Whether the ADD's copy was a cache hit (BuildKit shows the git source and the copy as
    two vertexes of the same name; the copy is the one that says CACHED)."""
    lines = proc.stderr.splitlines()
    ids = {line.split()[0] for line in lines if "] ADD " in line}
    assert ids, proc.stderr
    return any(f"{i} CACHED" in lines for i in ids)


def test_the_cache_key_holds_the_resolved_commit(
    sides: dict[str, dict[str, str]],  # noqa: F811
    server: GitServer,
    tmp_path: Path,
) -> None:
    w = server.repo("moving")
    (w / "m.txt").write_text("1\n")
    git(w, "add", "-A")
    git(w, "commit", "-q", "-m", "1")
    server.publish("moving")
    ctx = write_context(tmp_path / "c", f"FROM busybox\nADD {server.url('moving')}#main /m/\n")
    hits: dict[str, list[bool]] = {"ours": [], "26.1": []}
    for step in range(3):
        if step == 2:  # a new commit on the branch: the ref now names another commit
            (w / "m.txt").write_text("2\n")
            git(w, "commit", "-q", "-am", "2")
            server.publish("moving")
        for side in ("ours", "26.1"):
            hits[side].append(_add_step_cached(_build(sides[side], ctx, "git-moving")))
    assert hits["26.1"] == [False, True, False], hits
    assert hits["ours"] == hits["26.1"]
    ours, _ = _saved(sides["ours"], "git-moving")
    assert ours.tree["/m/m.txt"] == _saved(sides["26.1"], "git-moving")[0].tree["/m/m.txt"]


ERRORS = {
    "unknown-ref": ("FROM busybox\nADD {r}#nope /r/\n", "does not contain ref nope"),
    "unreachable": ("FROM busybox\nADD http://127.0.0.1:1/none.git /r/\n", "127.0.0.1:1"),
    "missing-subdir": ("FROM busybox\nADD {r}#main:nosuch /r/\n", "invalid subdir /nosuch"),
    "copy-of-a-repository": ("FROM busybox\nCOPY {r} /r/\n", "source can't be a git ref for COPY"),
    "subdir-through-a-link-out": ("FROM busybox\nADD {r}#main:dir-out /r/\n", "invalid subdir"),
    "file-submodule": ("FROM busybox\nADD {evil} /e/\n", "'file' not allowed"),
}


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_git_errors_match_dockerd_26(
    sides: dict[str, dict[str, str]],  # noqa: F811
    server: GitServer,
    tmp_path: Path,
    name: str,
) -> None:
    dockerfile, words = ERRORS[name]
    ctx = write_context(tmp_path / "c", dockerfile.format(**_urls(server)))
    failed = at_once(
        {
            side: lambda side=side: _build(sides[side], ctx, f"git-err-{name}", ok=False)
            for side in ("26.1", "ours")
        }
    )
    for side, proc in failed.items():
        assert words in proc.stderr, (side, proc.stderr[-2000:])
        assert "Traceback" not in proc.stderr


# --- the legacy builder ------------------------------------------------------------------


@pytest.fixture(scope="module")
def legacy() -> Iterator[tuple[DockyardDaemon, ReferenceDockerd]]:
    if not IS_ROOT or not ReferenceDockerd.available():
        pytest.skip("needs root and Debian's dockerd 20.10")
    ours = DockyardDaemon(short_tmp("dygl-")).start()
    ref: ReferenceDockerd | None = None
    try:
        ref = ReferenceDockerd(short_tmp("dkgl-")).start()
        for env in (ours.env(), ref.env()):
            proc = subprocess.run(
                [OLD_CLI, "import", str(busybox_rootfs_tar()), "busybox:latest"],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert proc.returncode == 0, proc.stderr
        yield ours, ref
    finally:
        if ref is not None:
            ref.cleanup()
        ours.cleanup()


LEGACY = {
    # moby 20.10 copy.go: an http(s) source is a download, whatever its suffix (the
    # fragment is not sent); git http-backend answers a plain GET of the repository 404
    "https-dot-git-is-a-download": (
        "FROM busybox\nADD {r}#main /r/\n",
        "with status 404 Not Found",
    ),
    "scp-like-is-a-context-path": (
        "FROM busybox\nADD git@127.0.0.1:r.git /r/\n",
        "stat git@127.0.0.1:r.git: file does not exist",
    ),
    "git-scheme-is-a-context-path": (
        "FROM busybox\nADD git://127.0.0.1/r.git /r/\n",
        "stat git://127.0.0.1/r.git: file does not exist",
    ),
    "keep-git-dir-is-unknown": (
        "FROM busybox\nADD --keep-git-dir=true {r} /r/\n",
        "Unknown flag: keep-git-dir",
    ),
}


@pytest.mark.parametrize("name", sorted(LEGACY))
def test_the_legacy_builder_has_no_git_sources_as_dockerd_20_10(
    legacy: tuple[DockyardDaemon, ReferenceDockerd],
    server: GitServer,
    tmp_path: Path,
    name: str,
) -> None:
    dockerfile, words = LEGACY[name]
    ctx = write_context(tmp_path / "c", dockerfile.format(**_urls(server)))
    for env in (legacy[1].env(), legacy[0].env()):
        proc = subprocess.run(
            [OLD_CLI, "build", "-t", "legacy-git", "."],
            env=env,
            cwd=ctx,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=300,
        )
        assert proc.returncode != 0, proc.stdout
        assert words in proc.stderr + proc.stdout, (env["DOCKER_HOST"], proc.stderr)
    assert "Traceback" not in legacy[0].log.read_text()


@pytest.mark.parametrize("fragment", ["", "#feature:sub"])
def test_a_git_repository_as_the_build_context_matches_dockerd_26(
    sides: dict[str, dict[str, str]],  # noqa: F811
    server: GitServer,
    fragment: str,
) -> None:
    """`docker build URL.git#ref:dir` through buildx: the frontend's `context` attribute names
    the repository; the Dockerfile and the files come from its checkout (no .git)."""
    w = server.repo("ctx")
    if not (w / "Dockerfile").exists():
        (w / "Dockerfile").write_text("FROM busybox\nCOPY . /ctx/\n")
        (w / "f.txt").write_text("f\n")
        (w / "sub").mkdir()
        (w / "sub" / "Dockerfile").write_text("FROM busybox\nCOPY . /sub/\n")
        (w / "sub" / "s.txt").write_text("s\n")
        git(w, "add", "-A")
        git(w, "commit", "-q", "-m", "c")
        git(w, "branch", "feature")
        server.publish("ctx")
    images = {}
    for side in ("ours", "26.1"):
        proc = subprocess.run(
            [CLI, "build", "--progress=plain", "-t", "git-ctx", server.url("ctx") + fragment],
            env=sides[side],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        images[side] = _saved(sides[side], "git-ctx")[0]
    assert diff_trees(images["26.1"].tree, images["ours"].tree) == []
    assert _history(images["26.1"]) == _history(images["ours"])


@pytest.mark.parametrize("fragment", ["#main", "#feature:sub", "#nope"])
def test_the_legacy_remote_context_from_git_matches_dockerd_20_10(
    legacy: tuple[DockyardDaemon, ReferenceDockerd], server: GitServer, fragment: str
) -> None:
    """`POST /build?remote=URL.git#ref:dir` (docker-py's `remote=`): the daemon clones as
    moby 20.10's remotecontext/git does; the context keeps `.git` (left out of the
    comparison: git's bookkeeping), an unknown ref is an error status naming it."""
    import urllib.parse

    from tests.support.api import request

    w = server.repo("lctx")
    if not (w / "Dockerfile").exists():
        (w / "Dockerfile").write_text("FROM busybox\nCOPY . /ctx/\n")
        (w / "f.txt").write_text("f\n")
        (w / "sub").mkdir()
        (w / "sub" / "Dockerfile").write_text("FROM busybox\nCOPY . /sub/\n")
        (w / "sub" / "s.txt").write_text("s\n")
        git(w, "add", "-A")
        git(w, "commit", "-q", "-m", "c")
        git(w, "branch", "feature")
        server.publish("lctx")
    remote = urllib.parse.quote(server.url("lctx") + fragment, safe="")
    trees = []
    for d in (legacy[1], legacy[0]):
        reply = request(d.socket, "POST", f"/build?t=git-lctx&remote={remote}", b"")
        text = reply.body.decode(errors="replace")
        if fragment == "#nope":
            assert "couldn't find remote ref nope" in text, text
            continue
        assert "Successfully tagged git-lctx" in text, text
        saved = subprocess.run(
            [OLD_CLI, "save", "git-lctx"], env=d.env(), capture_output=True, timeout=120
        )
        tree = load_saved(saved.stdout).tree
        trees.append({p: e for p, e in tree.items() if "/.git/" not in p})
    if trees:
        assert diff_trees(trees[0], trees[1]) == []
    assert "Traceback" not in legacy[0].log.read_text()
