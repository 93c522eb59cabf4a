"""Differential tests of BuildKit's semantics: the same Dockerfile built through BuildKit's
session by Debian's 20.10 client (`DOCKER_BUILDKIT=1`) against dockyard and against two
references — dockerd 20.10 (Debian bookworm's docker.io, BuildKit 0.8) and dockerd 26.1
(Debian trixie's, BuildKit 0.13; scripts/trixie-clients.sh) — gives the same image: files
(type, mode, owner, size, content, link target), config (no times or IDs), layer count and
history (`created_by`, `empty_layer`, `comment`).

dockyard writes BuildKit 0.13's history; dockerd 20.10's older BuildKit differs in two texts,
which the comparison with it maps (`_as_buildkit_0_8`): its COPY/ADD text names no
`--chown`/`--chmod`, its HEALTHCHECK text has no StartInterval. Dockerfiles of today's syntax
(heredocs, `--chmod`, `--link`, `RUN --mount` without a `# syntax=` line) go to 26.1 only.
Both references build with `--network host` (they run with `--bridge none`); so does dockyard,
whose builds use the host's network anyway.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.builder.imagediff import SavedImage, diff_trees, load_saved
from tests.builder.test_reference import (
    ADD_ARCHIVES,
    COPY_RULES,
    CORPUS,
    EDGE_CONFIG,
    KITCHEN,
    MULTISTAGE,
    REPLACEMENT_FILES,
    REPLACEMENTS,
    _copy_context,
    _tar_bytes,
    corpus_context,
)
from tests.conftest import Clients, short_tmp, write_context
from tests.support.concurrent import at_once
from tests.support.daemons import ReferenceDockerd
from tests.support.rootfs import busybox_rootfs_tar
from tests.support.trixie import trixie_tools

pytestmark = [pytest.mark.root, pytest.mark.dockerd]

CLIENT = "/usr/bin/docker"  # Debian's 20.10 client, the one that speaks BuildKit's session


@dataclass
class Reference:
    name: str
    daemon: ReferenceDockerd
    version: str

    def env(self) -> dict[str, str]:
        return {**self.daemon.env(), "DOCKER_BUILDKIT": "1", "BUILDKIT_PROGRESS": "plain"}


def _start(name: str, base: Path, binary: str) -> Reference:
    d = ReferenceDockerd(base, binary=binary).start()
    env = {**d.env(), "DOCKER_BUILDKIT": "0"}
    proc = subprocess.run(
        [CLIENT, "import", str(busybox_rootfs_tar()), "busybox:latest"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    version = subprocess.run(
        [CLIENT, "version", "--format", "{{.Server.Version}}"],
        env=env,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return Reference(name, d, version)


@pytest.fixture(scope="module")
def refs() -> Iterator[dict[str, Reference]]:
    if os.geteuid() != 0 or not ReferenceDockerd.available() or not os.access(CLIENT, os.X_OK):
        pytest.skip("needs root, the reference dockerd and Debian's 20.10 client")
    tools = trixie_tools()
    if tools is None:
        pytest.skip("dockerd 26.1 is missing: scripts/trixie-clients.sh fetches it")
    out: dict[str, Reference] = {}
    try:
        out["20.10"] = _start("20.10", short_tmp("bkr20-"), "dockerd")
        out["26.1"] = _start("26.1", short_tmp("bkr26-"), str(tools.dockerd))
        # the versions compared against, in the test log (-rA shows them)
        print("references:", {k: r.version for k, r in out.items()}, tools.versions)
        assert out["20.10"].version.startswith("20.10"), out["20.10"].version
        assert out["26.1"].version.startswith("26.1"), out["26.1"].version
        yield out
    finally:
        for r in out.values():
            r.daemon.cleanup()


def _build(env: dict[str, str], ctx: Path, tag: str, extra: tuple[str, ...]) -> bytes:
    proc = subprocess.run(
        [CLIENT, "build", "--network", "host", "-q", "-t", tag, *extra, "."],
        env=env,
        cwd=ctx,
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-3000:]
    saved = subprocess.run([CLIENT, "save", tag], env=env, capture_output=True, timeout=120)
    assert saved.returncode == 0, saved.stderr.decode()
    return saved.stdout


def build_fails(argv: list[str], env: dict[str, str], ctx: Path) -> str:
    """A build that must fail: its output (the client's stderr and stdout)."""
    proc = subprocess.run(
        argv,
        env=env,
        cwd=ctx,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=300,
    )
    out = proc.stderr + proc.stdout
    assert proc.returncode != 0, out[-3000:]
    return out


_FAILED_STEP = re.compile(r"^ > (\[[^\]]*\d+/\d+\] .*):$", re.M)


def assert_fails_alike(case: Case, outputs: dict[str, str]) -> None:
    """Every side failed at the same step (BuildKit's ` > [2/3] RUN …:` summary line),
    whose output has `case.fails_with`; none with a traceback."""
    steps = {}
    for who, out in outputs.items():
        assert case.fails_with in out, f"{who}: {out[-3000:]}"
        assert "Traceback" not in out, who
        m = _FAILED_STEP.search(out)
        assert m, f"{who}: {out[-3000:]}"
        steps[who] = m[1]
    assert len(set(steps.values())) == 1, steps


def _ours_env(clients: Clients) -> dict[str, str]:
    return {**clients.daemon.env(), "DOCKER_BUILDKIT": "1", "BUILDKIT_PROGRESS": "plain"}


def _history(image: SavedImage) -> list[tuple[str, bool, str]]:
    return [
        (h.get("created_by") or "", bool(h.get("empty_layer")), h.get("comment") or "")
        for h in image.config.get("history") or []
    ]


_COPY_FLAGS = re.compile(r"^((?:COPY|ADD)(?: --(?:chown|chmod)=\S+)*)")


def _as_buildkit_0_8(history: list[tuple[str, bool, str]]) -> list[tuple[str, bool, str]]:
    """dockyard's (BuildKit 0.13's) history as dockerd 20.10's BuildKit 0.8 writes it."""
    out = []
    for text, empty, comment in history:
        m = _COPY_FLAGS.match(text)
        if m and text.endswith(" # buildkit"):
            text = m.group(1).split(" ")[0] + text[m.end() :]
        if text.startswith("HEALTHCHECK &{"):
            # drop StartInterval: the fifth quoted item
            text = re.sub(r'^(HEALTHCHECK &\{\[.*?\] "[^"]*" "[^"]*" "[^"]*") "[^"]*"', r"\1", text)
        out.append((text, empty, comment))
    return out


def _fields(image: SavedImage) -> dict[str, Any]:
    fields = image.config_fields()
    fields["ArgsEscaped"] = bool((image.config.get("config") or {}).get("ArgsEscaped"))
    return fields


def _assert_same(
    ref: Reference, theirs: SavedImage, ours: SavedImage, old_content: tuple[str, ...] = ()
) -> None:
    where = f"against dockerd {ref.version}"
    if ref.name == "20.10":
        for path in old_content:
            assert theirs.tree[path][:4] == ours.tree[path][:4], where  # type, mode, owner
            theirs.tree[path] = ours.tree[path]
    assert diff_trees(theirs.tree, ours.tree) == [], where
    assert _fields(theirs) == _fields(ours), where
    assert theirs.layer_count == ours.layer_count, where
    expected = _history(ours) if ref.name == "26.1" else _as_buildkit_0_8(_history(ours))
    assert _history(theirs) == expected, where
    assert theirs.config.get("author", "") == ours.config.get("author", ""), where


@dataclass(frozen=True)
class Case:
    dockerfile: str
    files: dict[str, str | bytes]
    args: tuple[str, ...] = ()
    current_only: bool = False  # today's syntax: 26.1 only
    # files whose content is BuildKit 0.8's own: its RUN gives a user no supplementary
    # groups (`id` prints no `groups=`), 0.13's does, and so does dockyard's
    old_buildkit_content: tuple[str, ...] = ()
    # the build fails on every side: the same step, printing this line
    fails_with: str = ""


CASES: dict[str, Case] = {
    "metadata": Case(
        """\
FROM busybox
ARG X=2
ENV A=1 B="x y"
LABEL l=v "k 2"=w
USER daemon
WORKDIR /w
WORKDIR /w
USER root
RUN echo $X > /x
COPY f /f
COPY --chown=1:1 f /g/
ADD f /h
VOLUME /v
EXPOSE 80 90-91/udp 7/tcp
CMD ["sh"]
ENTRYPOINT ["/bin/sh","-c"]
SHELL ["/bin/sh","-ec"]
HEALTHCHECK --interval=5m --timeout=3s --retries=3 CMD echo ok
STOPSIGNAL SIGKILL
ONBUILD RUN echo trig
MAINTAINER me
""",
        {"f": "f\n"},
    ),
    "args-in-run-history": Case(
        """\
ARG TOP=t
FROM busybox
ARG A=1
ARG B
ARG A=3
ENV B=envb
ARG C=c
ARG D
ARG TOP
RUN true
RUN ["sh", "-c", "echo $A $B $D $TOP > /ab"]
FROM busybox
RUN echo no args here > /n
""",
        {},
        ("--build-arg", "A=9", "--build-arg", "HTTP_PROXY=px"),
    ),
    "workdir-owned-by-user": Case(
        """\
FROM busybox
WORKDIR /
WORKDIR rel
USER daemon
WORKDIR /tmp
WORKDIR /o/p
WORKDIR q
USER 1000
WORKDIR /num/x
USER 1000:2
WORKDIR /numgroup
USER daemon:root
WORKDIR /named/group
USER root
RUN stat -c '%u:%g %n' /o /o/p /o/p/q /num /num/x /numgroup /named /named/group > /owners
""",
        {},
    ),
    "run-under-volume-kept": Case(
        """\
FROM busybox
RUN mkdir /data && echo before > /data/before
VOLUME /data /newvol
RUN echo after > /data/after && mkdir -p /newvol && echo x > /newvol/x && echo out > /outside
COPY f /data/copied
RUN rm /data/before
""",
        {"f": "f\n"},
    ),
    "empty-steps-are-layers": Case(
        """\
FROM busybox
RUN true
COPY empty /tmp/
WORKDIR /tmp
WORKDIR /
COPY nomatch* /never/
RUN touch /tmp
""",
        {"empty/.gitkeep": ""},
    ),
    "path-default-and-kept": Case(
        """\
FROM busybox AS nopath
RUN echo $PATH > /path
FROM scratch AS fromscratch
COPY f /f
FROM busybox AS ownpath
ENV PATH=/opt/bin
FROM ownpath
RUN ["/bin/busybox", "sh", "-c", "echo $PATH > /path"]
""",
        {"f": "f\n"},
    ),
    "labels-flag-and-target": Case(
        "FROM busybox AS a\nRUN true\nLABEL in=file\nFROM busybox\nENV A=1\n",
        {},
        ("--label", "b=2", "--label", "a=x y $HOME", "--target", "a"),
    ),
    "shell-and-args-escaped": Case(
        """\
FROM busybox
SHELL ["/bin/sh", "-ec"]
RUN echo one > /one
CMD echo shell form
ENTRYPOINT echo shell entry
""",
        {},
    ),
    "expose-and-healthcheck": Case(
        """\
FROM busybox
EXPOSE 8080/TCP 53/Udp 7 7/tcp 100-102
HEALTHCHECK --interval=30s --timeout=10s --start-period=5s --retries=5 CMD ["true"]
HEALTHCHECK NONE
""",
        {},
    ),
    "onbuild-parent": Case(
        """\
FROM busybox
ONBUILD ARG T=trig
ONBUILD RUN echo $T > /ran
ONBUILD ENV O=1
CMD ["sh"]
""",
        {},
    ),
    "copy-rules": Case(COPY_RULES, {}),
    "multistage-whiteouts": Case(MULTISTAGE, {}),
    "add-archives": Case(ADD_ARCHIVES, {}),
    "kitchen-sink": Case(KITCHEN, {}),
    "replacements-and-dockerignore": Case(REPLACEMENTS, REPLACEMENT_FILES),
    "edge-config": Case(EDGE_CONFIG, {}),
    "heredocs": Case(
        """\
FROM busybox
ARG NAME=world
COPY <<EOT /hello.txt
hello $NAME
EOT
COPY <<"EOT" /literal.txt
hello $NAME
EOT
RUN <<EOS
echo heredoc > /hd
echo two >> /hd
EOS
RUN <<EOS sh
echo piped > /piped
EOS
""",
        {},
        current_only=True,
    ),
    "chmod-and-link": Case(
        """\
FROM busybox AS pre
RUN echo pre > /pre
FROM busybox
ARG U=1
COPY --chown=$U:$U --chmod=0755 --link f /f1
COPY --chmod=600 d/x d/sub/y /d/
COPY --from=pre --link /pre /g
ADD --chown=2 --chmod=640 f d/x /add/
""",
        {"f": "f\n", "d/x": "x\n", "d/sub/y": "y\n"},
        current_only=True,
    ),
    "run-sandbox-etc-and-hostname": Case(
        """\
FROM busybox
RUN echo h > /etc/hostname; hostname > /hn; echo "$HOSTNAME" > /hnenv; ls /etc > /etcls \\
 && ls -a / > /rootls && grep -c buildkitsandbox /etc/hosts > /hosts-names \\
 && (echo x >> /etc/resolv.conf || echo ro > /resolv-ro)
""",
        {},
    ),
    "run-mounts": Case(
        """\
FROM busybox AS src
RUN mkdir /out && echo from-stage > /out/s
FROM busybox
RUN --mount=type=bind,source=f,target=/mnt/f cat /mnt/f > /copied
RUN --mount=type=bind,from=src,source=/out,target=/s cp /s/s /from-stage
RUN --mount=type=cache,target=/cache echo cached > /cache/c && ls /cache > /cachels
RUN --mount=type=tmpfs,target=/t touch /t/gone && ls /t > /tmpls
""",
        {"f": "f\n"},
        current_only=True,
    ),
}
# BuildKit's expected differences from the legacy builder on the legacy corpus, in one place:
# the cases below do not run through BuildKit, for the reason given. Everything else in
# test_reference.py's CORPUS runs here against both references. (The differences BuildKit's
# semantics do reproduce are builder/semantics.py's BuildKitSemantics knobs.)
BUILDKIT_DIFFERENCES = {
    "copy-special-files-in-context": "BuildKit 0.8 (dockerd 20.10) copies no fifo from the "
    "context; dockyard does, as the legacy builder",
    "copy-unicode-and-odd-names": "BuildKit 0.8 (dockerd 20.10) cannot find a context file "
    "whose name is not ASCII ('failed to calculate checksum ... not found')",
    "from-stage-as-base-and-names-case": "BuildKit refuses `FROM SECOND` naming a stage "
    "`AS second` ('repository name must be lowercase'); dockyard resolves it as the legacy "
    "builder",
}
# corpus cases whose build fails under BuildKit, on both references and on dockyard alike:
# the same step fails, printing this line (BuildKit makes no mount point for a VOLUME; its
# RUN binds /etc/hosts and /etc/resolv.conf read-only: Semantics.run_in_buildkit_sandbox)
BUILDKIT_FAILURES = {
    "run-after-volume-discards": "can't create /newvol/x: nonexistent directory",
    "runtime-files-stay-out": "can't create /etc/hosts: Read-only file system",
}
# files whose content is BuildKit 0.8's own (see Case.old_buildkit_content)
OLD_BUILDKIT_CONTENT = {
    "users-and-exec-form": ("/tmp/id",),
    "user-forms-and-copy-unaffected": ("/tmp/id1000",),
}
for _name in sorted(set(CORPUS) - set(BUILDKIT_DIFFERENCES)):
    _df, _files = CORPUS[_name]
    CASES[f"corpus-{_name}"] = Case(
        _df,
        dict(_files),
        ("--build-arg", "SRC=f2"),
        old_buildkit_content=OLD_BUILDKIT_CONTENT.get(_name, ()),
        fails_with=BUILDKIT_FAILURES.get(_name, ""),
    )


def _context(tmp_path: Path, name: str, case: Case) -> Path:
    if name == "copy-rules":
        return _copy_context(tmp_path)
    if name.startswith("corpus-"):
        return corpus_context(tmp_path / "ctx", name.removeprefix("corpus-"))
    ctx = write_context(tmp_path / "ctx", case.dockerfile, case.files)
    if name == "empty-steps-are-layers":
        (ctx / "empty" / ".gitkeep").unlink()
    if name == "add-archives":
        import bz2
        import gzip
        import lzma

        raw = _tar_bytes({"pkg/one": b"1\n", "pkg/two": b"22\n"})
        (ctx / "plain.tar").write_bytes(raw)
        (ctx / "pkg.tar.gz").write_bytes(gzip.compress(raw))
        (ctx / "pkg.tar.bz2").write_bytes(bz2.compress(_tar_bytes({"pkg/bz": b"b\n"})))
        (ctx / "pkg.tar.xz").write_bytes(lzma.compress(_tar_bytes({"pkg/xz": b"x\n"})))
        (ctx / "notatar.gz").write_bytes(gzip.compress(b"just text\n"))
        (ctx / "a.txt").write_text("a\n")
    if name == "kitchen-sink":
        for rel, content in {
            "with space.txt": "s\n",
            "a.txt": "a\n",
            "tree/f": "f\n",
            "tree/empty/.gitkeep": "",
            "long/" + "n" * 120 + "/" + "m" * 110: "long\n",
        }.items():
            (ctx / rel).parent.mkdir(parents=True, exist_ok=True)
            (ctx / rel).write_text(content)
        (ctx / "pkg.tar").write_bytes(_tar_bytes({"pkg/one": b"1\n"}))
        (ctx / "tree" / "sl").symlink_to("f")
        (ctx / "tree" / "abs").symlink_to("/etc/passwd")
        os.link(ctx / "tree" / "f", ctx / "tree" / "empty" / "hardlinked")
    return ctx


@pytest.mark.parametrize("name", sorted(CASES))
def test_buildkit_semantics_match_both_references(
    refs: dict[str, Reference], clients: Clients, tmp_path: Path, name: str
) -> None:
    case = CASES[name]
    ctx = _context(tmp_path, name, case)
    tag = f"bkdiff-{name}"
    compared = ["26.1"] if case.current_only else ["20.10", "26.1"]
    if case.fails_with:
        argv = [CLIENT, "build", "--network", "host", "-t", tag, *case.args, "."]
        envs = {"ours": _ours_env(clients), **{k: refs[k].env() for k in compared}}
        outputs = at_once(
            {who: lambda env=env: build_fails(argv, env, ctx) for who, env in envs.items()}
        )
        assert_fails_alike(case, outputs)
        return
    # three daemons, three storages: the builds are independent (tests/support/concurrent.py)
    envs = {"ours": _ours_env(clients), **{k: refs[k].env() for k in compared}}
    saved = at_once(
        {who: lambda env=env: _build(env, ctx, tag, case.args) for who, env in envs.items()}
    )
    ours = load_saved(saved["ours"])
    for key in compared:
        _assert_same(refs[key], load_saved(saved[key]), ours, case.old_buildkit_content)


def test_onbuild_triggers_match_both_references(
    refs: dict[str, Reference], clients: Clients, tmp_path: Path
) -> None:
    parent = _context(tmp_path / "p", "onbuild-parent", CASES["onbuild-parent"])
    child = write_context(tmp_path / "c", "FROM bkdiff-onbuild\nENV X=1\n")
    envs = {"ours": _ours_env(clients), **{k: r.env() for k, r in refs.items()}}

    def parent_then_child(env: dict[str, str]) -> SavedImage:
        _build(env, parent, "bkdiff-onbuild", ())
        return load_saved(_build(env, child, "bkdiff-onbuild-child", ()))

    images = at_once({who: lambda env=env: parent_then_child(env) for who, env in envs.items()})
    for key, ref in refs.items():
        _assert_same(ref, images[key], images["ours"])


def test_a_cached_step_is_never_the_other_builders(clients: Clients, tmp_path: Path) -> None:
    """One cache serves both paths with the semantics in each step's key: the same
    Dockerfile built by the legacy builder, then through BuildKit's session, then again,
    hits only its own builder's steps."""
    ctx = write_context(
        tmp_path / "ctx", "FROM busybox\nUSER daemon\nWORKDIR /w\nRUN true\nCOPY f /f\n", {"f": "f"}
    )
    legacy = {**clients.daemon.env(), "DOCKER_BUILDKIT": "0"}
    buildkit = _ours_env(clients)

    def build(env: dict[str, str]) -> str:
        proc = subprocess.run(
            [CLIENT, "build", "-t", "bk-cache", "."],
            env=env,
            cwd=ctx,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout + proc.stderr

    build(legacy)
    first = build(buildkit)
    assert "CACHED" not in first, first
    again = build(buildkit)
    assert again.count("CACHED") == 3, again  # WORKDIR, RUN and COPY
    assert "Using cache" in build(legacy)
    ours = load_saved(
        subprocess.run([CLIENT, "save", "bk-cache"], env=legacy, capture_output=True).stdout
    )
    assert ours.tree["/w"][2:4] == (0, 0)  # the legacy builder's, built last
