"""Differential tests: the same Dockerfile built by Docker 20.10's legacy builder and by dockyard
gives the same image (files applied layer by layer, config fields, layer count, history flags).

Both daemons get the same base: `import` of the same busybox rootfs tarball.
"""

from __future__ import annotations

import bz2
import hashlib
import io
import lzma
import os
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.builder.imagediff import SavedImage, diff_trees, load_saved
from tests.builder.reference_corpus import ERRORS, HOST_PATH_IN_MESSAGE, SECTIONS, SPECIAL
from tests.conftest import Clients, short_tmp, write_context
from tests.support.concurrent import at_once
from tests.support.daemons import ReferenceDockerd
from tests.support.rootfs import busybox_rootfs_tar

pytestmark = [pytest.mark.root, pytest.mark.dockerd]

REF_DOCKER = "/usr/bin/docker"  # Debian's 20.10 client, matching the reference daemon


@pytest.fixture(scope="module")
def reference() -> Iterator[ReferenceDockerd]:
    if os.geteuid() != 0 or not ReferenceDockerd.available():
        pytest.skip("needs root and the reference dockerd (docker.io)")
    d = ReferenceDockerd(short_tmp("refd-")).start()
    try:
        proc = subprocess.run(
            [REF_DOCKER, "import", str(busybox_rootfs_tar()), "busybox:latest"],
            env=d.env(),
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0, proc.stderr
        yield d
    finally:
        d.cleanup()


def _ref(d: ReferenceDockerd, *args: str, cwd: Path | None = None) -> bytes:
    proc = subprocess.run([REF_DOCKER, *args], env=d.env(), capture_output=True, cwd=cwd)
    assert proc.returncode == 0, proc.stderr.decode() + proc.stdout.decode()
    return proc.stdout


def _ours(clients: Clients, *args: str, cwd: Path | None = None) -> bytes:
    proc = subprocess.run(["docker", *args], env=clients.daemon.env(), capture_output=True, cwd=cwd)
    assert proc.returncode == 0, proc.stderr.decode() + proc.stdout.decode()
    return proc.stdout


def _build_both(
    reference: ReferenceDockerd, clients: Clients, ctx: Path, name: str, *extra: str
) -> tuple[SavedImage, SavedImage]:
    def ref() -> SavedImage:
        _ref(reference, "build", "-q", "-t", name, *extra, ".", cwd=ctx)
        return load_saved(_ref(reference, "save", name))

    def ours() -> SavedImage:
        _ours(clients, "build", "-q", "-t", name, *extra, ".", cwd=ctx)
        return load_saved(_ours(clients, "save", name))

    # two daemons, two storages: the builds are independent (tests/support/concurrent.py)
    images = at_once({"theirs": ref, "ours": ours})
    return images["theirs"], images["ours"]


def _assert_same(theirs: SavedImage, ours: SavedImage) -> None:
    assert diff_trees(theirs.tree, ours.tree) == []
    assert theirs.config_fields() == ours.config_fields()
    assert theirs.layer_count == ours.layer_count
    assert theirs.empty_layer_flags() == ours.empty_layer_flags()
    assert theirs.config.get("author", "") == ours.config.get("author", "")
    assert _created_by(theirs) == _created_by(ours)


def _created_by(image: SavedImage) -> list[str]:
    """History texts with the content hashes of COPY/ADD masked (Docker's are tarsums of
    the files as its client packed them; dockyard's hash contents and modes)."""
    import re

    return [
        re.sub(r"(file|dir|multi):[0-9a-f]{64}", r"\1:<hash>", h.get("created_by") or "")
        for h in image.config.get("history") or []
    ]


METADATA = """\
ARG BASE=busybox
FROM $BASE AS one
ARG A=1
ARG B
ENV E=$A F="x y" G=${B:-none}
LABEL a=$A "b c"=d
RUN echo a=$A b=$B > /args && echo $HTTP_PROXY > /proxy
RUN true
WORKDIR /tmp
WORKDIR sub/dir
USER daemon:root
VOLUME /v1 ["/v2"]
SHELL ["/bin/sh", "-ec"]
STOPSIGNAL SIGKILL
HEALTHCHECK --interval=5m --timeout=3s --retries=3 CMD echo ok
EXPOSE 80 90-91/udp 7/tcp
ONBUILD RUN echo trig
MAINTAINER me
CMD ["x"]
ENTRYPOINT echo
"""


def test_metadata_instructions_match_docker(
    reference: ReferenceDockerd, clients: Clients, tmp_path: Path
) -> None:
    ctx = write_context(tmp_path / "ctx", METADATA)
    theirs, ours = _build_both(
        reference, clients, ctx, "diff-meta", "--build-arg", "B=2", "--build-arg", "HTTP_PROXY=px"
    )
    _assert_same(theirs, ours)
    assert ours.config_fields()["Cmd"] == ["x"]  # CMD set in this stage survives ENTRYPOINT


COPY_RULES = """\
FROM busybox
COPY a.txt /a-file
COPY a.txt /dir1/
COPY dir /dir2
COPY dir/ /dir3/sub/
COPY *.txt /globbed/
COPY d?r /q/
COPY --chown=daemon:daemon a.txt exec.sh /owned/
COPY --chown=1234:5678 dir /numeric
COPY link hard1 hard2 /links/
COPY exec.sh .
WORKDIR /w
COPY a.txt rel
COPY dir ./
"""


def _copy_context(tmp_path: Path) -> Path:
    ctx = write_context(
        tmp_path / "ctx",
        COPY_RULES,
        {
            "a.txt": "a\n",
            "b.txt": "b\n",
            "exec.sh": "#!/bin/sh\necho hi\n",
            "dir/x": "x\n",
            "dir/nested/y": "y\n",
            "dir/empty/.keep": "",
        },
    )
    os.chmod(ctx / "exec.sh", 0o755)
    os.chmod(ctx / "dir/nested", 0o700)
    os.chmod(ctx / "dir", 0o750)
    os.chmod(ctx / "dir/x", 0o640)
    (ctx / "link").symlink_to("a.txt")
    (ctx / "hard1").write_text("h\n")
    os.link(ctx / "hard1", ctx / "hard2")
    return ctx


def test_copy_rules_match_docker(
    reference: ReferenceDockerd, clients: Clients, tmp_path: Path
) -> None:
    theirs, ours = _build_both(reference, clients, _copy_context(tmp_path), "diff-copy")
    _assert_same(theirs, ours)


MULTISTAGE = """\
FROM busybox AS base
RUN mkdir -p /data/keep /data/gone && echo 1 > /data/keep/f && echo 2 > /data/gone/g \\
 && ln /data/keep/f /data/keep/hl && ln -s /data/keep/f /data/sl && chmod 4755 /data/keep/f
FROM base AS mid
RUN rm -rf /data/gone && rm /bin/vi && echo 3 > /data/keep/new && chown 1:1 /data/keep/new
RUN rm -rf /data/keep && mkdir /data/keep && echo fresh > /data/keep/only
FROM busybox
COPY --from=mid /data /copied
COPY --from=0 /data/keep/f /f
COPY --from=base /data/sl /sl
"""


def test_multistage_and_whiteouts_match_docker(
    reference: ReferenceDockerd, clients: Clients, tmp_path: Path
) -> None:
    ctx = write_context(tmp_path / "ctx", MULTISTAGE)
    theirs, ours = _build_both(reference, clients, ctx, "diff-multi")
    _assert_same(theirs, ours)
    _ref(reference, "build", "-q", "-t", "diff-mid", "--target", "mid", ".", cwd=ctx)
    _ours(clients, "build", "-q", "-t", "diff-mid", "--target", "mid", ".", cwd=ctx)
    _assert_same(
        load_saved(_ref(reference, "save", "diff-mid")),
        load_saved(_ours(clients, "save", "diff-mid")),
    )


def _tar_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        d = tarfile.TarInfo("pkg")
        d.type = tarfile.DIRTYPE
        d.mode = 0o750
        d.uid = 7
        tar.addfile(d)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o604
            info.uid, info.gid = 1000, 1000
            info.mtime = 1_600_000_000
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


ADD_ARCHIVES = """\
FROM busybox
ADD plain.tar /plain/
ADD pkg.tar.gz /gz
ADD pkg.tar.bz2 pkg.tar.xz /multi/
ADD notatar.gz /raw/
ADD a.txt /added
"""


def test_add_archives_match_docker(
    reference: ReferenceDockerd, clients: Clients, tmp_path: Path
) -> None:
    import gzip

    raw = _tar_bytes({"pkg/one": b"1\n", "pkg/two": b"22\n"})
    ctx = write_context(
        tmp_path / "ctx",
        ADD_ARCHIVES,
        {
            "plain.tar": raw,
            "pkg.tar.gz": gzip.compress(raw),
            "pkg.tar.bz2": bz2.compress(_tar_bytes({"pkg/bz": b"b\n"})),
            "pkg.tar.xz": lzma.compress(_tar_bytes({"pkg/xz": b"x\n"})),
            "notatar.gz": gzip.compress(b"just text\n"),
            "a.txt": "a\n",
        },
    )
    theirs, ours = _build_both(reference, clients, ctx, "diff-add")
    _assert_same(theirs, ours)


ADD_WHITEOUTS = """\
FROM busybox
RUN mkdir -p /d/sub/gone/deep /d/opq && echo x > /d/x && echo y > /d/y \\
 && echo k > /d/sub/keep && echo o > /d/opq/old
ADD wh.tar /d/
RUN find / -xdev -name '.wh.*' > /found
"""


def _whiteout_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in (
            (".wh.x", b""),
            ("new", b"n\n"),
            ("sub/", None),
            ("sub/.wh.gone", b""),
            ("opq/", None),
            ("opq/.wh..wh..opq", b""),
            ("opq/n", b"n\n"),
        ):
            info = tarfile.TarInfo(name.rstrip("/"))
            info.mode, info.mtime = 0o644, 1_600_000_000
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_add_of_an_archive_with_whiteouts_matches_docker(
    reference: ReferenceDockerd, clients: Clients, tmp_path: Path
) -> None:
    """Issue 11 §6: dockerd 20.10 builds it, `x` is gone and no `.wh.` file remains (its
    commit re-applies the diff), `.wh.gone` removes a directory, an opaque marker hides what
    the directory held below. Failed here with `cannot apply layer extracting '.wh.x'`."""
    ctx = write_context(tmp_path / "ctx", ADD_WHITEOUTS, {"wh.tar": _whiteout_tar()})
    theirs, ours = _build_both(reference, clients, ctx, "diff-add-wh")
    _assert_same(theirs, ours)
    assert "/d/x" not in ours.tree and "/d/sub/gone" not in ours.tree
    assert "/d/opq/old" not in ours.tree and "/d/opq/n" in ours.tree and "/d/y" in ours.tree
    assert not [p for p in ours.tree if "/.wh." in p]
    assert ours.tree["/found"][4] == hashlib.sha256(b"").hexdigest()  # none in a container


KITCHEN = """\
# escape=`
FROM busybox
ENV DIR=/opt/app X=env
ARG X=arg
WORKDIR $DIR/sub
RUN echo $X > x && mkdir -p /d/e && ln /opt/app/sub/x /d/e/hl && mknod /d/fifo p `
 && ln -s ../e /d/e/rel && touch -h /d/e/rel && mkdir /empty && chmod 1777 /empty
COPY ["with space.txt", "./"]
COPY --chown=daemon tree /opt/app/tree/
COPY tree/ relative-dir
COPY a.txt /d/e
ADD pkg.tar /opt/app/unpacked
COPY long /long/
RUN rm /d/e/hl && chmod 600 /opt/app/sub/x && chown 5:6 /d
USER 1000:1000
RUN touch /tmp/by-user
"""


def test_kitchen_sink_matches_docker(
    reference: ReferenceDockerd, clients: Clients, tmp_path: Path
) -> None:
    long_name = "n" * 120 + "/" + "m" * 110
    ctx = write_context(
        tmp_path / "ctx",
        KITCHEN,
        {
            "with space.txt": "s\n",
            "a.txt": "a\n",
            "tree/f": "f\n",
            "tree/empty/.gitkeep": "",
            "pkg.tar": _tar_bytes({"pkg/one": b"1\n"}),
            f"long/{long_name}": "long\n",
            "unicodé/ü.txt": "u\n",
        },
    )
    (ctx / "tree" / "sl").symlink_to("f")
    (ctx / "tree" / "abs").symlink_to("/etc/passwd")
    os.link(ctx / "tree" / "f", ctx / "tree" / "empty" / "hardlinked")  # stays a link
    os.mkfifo(ctx / "tree" / "fifo")
    theirs, ours = _build_both(reference, clients, ctx, "diff-kitchen")
    _assert_same(theirs, ours)


CACHE_STEPS = """\
FROM busybox
ARG A=1
COPY f /f
RUN echo $A > /a
ENV E=1
COPY g /g
RUN echo done
"""


def _hits(output: str) -> list[bool]:
    return ["Using cache" in step for step in output.split("Step ")[2:]]


def test_cache_hits_match_docker(
    reference: ReferenceDockerd, clients: Clients, tmp_path: Path
) -> None:
    ctx = write_context(tmp_path / "ctx", CACHE_STEPS, {"f": "f1", "g": "g1"})

    def both(*extra: str) -> tuple[list[bool], list[bool]]:
        out = at_once(
            {
                "theirs": lambda: _ref(
                    reference, "build", "-t", "diff-cache", *extra, ".", cwd=ctx
                ),
                "ours": lambda: _ours(clients, "build", "-t", "diff-cache", *extra, ".", cwd=ctx),
            }
        )
        return _hits(out["theirs"].decode()), _hits(out["ours"].decode())

    both()
    theirs, ours = both()
    assert theirs == ours == [True] * 6
    os.utime(ctx / "f", (5, 5))  # only the mtime: still cached
    theirs, ours = both()
    assert theirs == ours
    (ctx / "g").write_text("g2")
    theirs, ours = both()
    assert theirs == ours == [True, True, True, True, False, False]
    theirs, ours = both("--build-arg", "A=2")
    assert theirs == ours
    theirs, ours = both("--no-cache")
    assert theirs == ours == [False] * 6


def test_network_flag_keeps_the_cache_as_docker(
    reference: ReferenceDockerd, clients: Clients, tmp_path: Path
) -> None:
    """Issue 19: builds run on the host's network by default, so `--network=host` is the same
    step; the legacy builder hits its cache with or without the flag, and so do we."""
    ctx = write_context(tmp_path / "ctx", CACHE_STEPS, {"f": "f1", "g": "g1"})
    for network in ((), ("--network=host",), ()):
        theirs = _ref(reference, "build", "-t", "diff-net", *network, ".", cwd=ctx).decode()
        ours = _ours(clients, "build", "-t", "diff-net", *network, ".", cwd=ctx).decode()
    assert _hits(theirs) == _hits(ours) == [True] * 6
    theirs = _ref(reference, "build", "--network=host", "-t", "diff-net", ".", cwd=ctx).decode()
    ours = _ours(clients, "build", "--network=host", "-t", "diff-net", ".", cwd=ctx).decode()
    assert _hits(theirs) == _hits(ours) == [True] * 6


def test_onbuild_child_matches_docker(
    reference: ReferenceDockerd, clients: Clients, tmp_path: Path
) -> None:
    parent = write_context(
        tmp_path / "p",
        """\
FROM busybox
ONBUILD ARG T=trig
ONBUILD COPY marker /m
ONBUILD RUN echo $T > /ran
CMD ["sh"]
""",
    )
    _ref(reference, "build", "-q", "-t", "diff-onbuild-parent", ".", cwd=parent)
    _ours(clients, "build", "-q", "-t", "diff-onbuild-parent", ".", cwd=parent)
    child = write_context(tmp_path / "c", "FROM diff-onbuild-parent\nENV X=1\n", {"marker": "m\n"})
    theirs, ours = _build_both(reference, clients, child, "diff-onbuild-child")
    _assert_same(theirs, ours)


def test_label_flag_and_target_match_docker(
    reference: ReferenceDockerd, clients: Clients, tmp_path: Path
) -> None:
    ctx = write_context(tmp_path / "ctx", "FROM busybox AS a\nRUN true\nFROM busybox\nENV A=1\n")
    theirs, ours = _build_both(
        reference,
        clients,
        ctx,
        "diff-label",
        "--label",
        "b=2",
        "--label",
        "a=x y $HOME",
        "--target",
        "a",
    )
    _assert_same(theirs, ours)
    assert ours.config_fields()["Labels"] == {"a": "x y $HOME", "b": "2"}


REPLACEMENTS = """\
FROM busybox AS build
ENV A=1 B=$A
ENV A=2 C=$A
ARG E=argval
ENV E=envval
RUN echo "$E $A $B $C" > /vals
WORKDIR /src
COPY . .
RUN mkdir -p out/bin && cp -a app/main out/bin/ && ln -s bin out/link && chmod -R go-rwx out
RUN rm -rf /src/app/lib && mkdir /src/replaced && rm /src/replaced -r && touch /src/replaced
RUN rm /src/out/link && mkdir /src/out/link && echo in > /src/out/link/f
FROM scratch
COPY --from=build /src/out /
COPY --from=build --chown=65534:65534 /vals /etc/
COPY --from=build /src /src
WORKDIR /proc/y
"""

REPLACEMENT_FILES: dict[str, str | bytes] = {
    "app/main": "a\n",
    "app/lib/l.so": "b\n",
    "app/node_modules/x/i.js": "n\n",
    "docs/readme.md": "d\n",
    "docs/keep.md": "keep\n",
    ".dockerignore": "**/node_modules\ndocs\n!docs/keep.md\n*.md\n",
}


def test_dockerignore_env_chains_and_type_changes_match_docker(
    reference: ReferenceDockerd, clients: Clients, tmp_path: Path
) -> None:
    ctx = write_context(tmp_path / "ctx", REPLACEMENTS, REPLACEMENT_FILES)
    theirs, ours = _build_both(reference, clients, ctx, "diff-replace")
    _assert_same(theirs, ours)
    assert "/src/docs/keep.md" in ours.tree and "/src/app/node_modules" not in ours.tree


def test_cache_from_matches_docker(
    reference: ReferenceDockerd, clients: Clients, tmp_path: Path
) -> None:
    ctx = write_context(
        tmp_path / "ctx",
        "FROM busybox\nCOPY f /f\nRUN echo built > /x\nENV A=1\nRUN echo $A > /a\n",
        {"f": "f"},
    )
    hits: dict[str, list[bool]] = {}
    images: dict[str, SavedImage] = {}
    for who, run in (("ref", _ref), ("ours", _ours)):
        d: object = reference if who == "ref" else clients
        run(d, "build", "-q", "-t", "diff-cf-src", ".", cwd=ctx)  # type: ignore[arg-type]
        saved = run(d, "save", "diff-cf-src")  # type: ignore[arg-type]
        run(d, "rmi", "diff-cf-src")  # type: ignore[arg-type]
        (tmp_path / f"{who}.tar").write_bytes(saved)
        run(d, "load", "-i", str(tmp_path / f"{who}.tar"))  # type: ignore[arg-type]
        out = run(  # type: ignore[arg-type]
            d, "build", "-t", "diff-cf", "--cache-from", "diff-cf-src", ".", cwd=ctx
        ).decode()
        hits[who] = _hits(out)
        images[who] = load_saved(run(d, "save", "diff-cf"))  # type: ignore[arg-type]
    assert hits["ref"] == hits["ours"] == [True, True, True, True]
    _assert_same(images["ref"], images["ours"])


EDGE_CONFIG = """\
FROM busybox AS first
CMD ["keep"]
FROM first
ENTRYPOINT
CMD []
LABEL cmd=empty-json
ENTRYPOINT []
EXPOSE 8080/TCP 53/Udp 7
WORKDIR /a/
WORKDIR b/../c
ENV legacy value with  spaces
LABEL a=b=c empty= "quoted key"="v"
CMD
"""


def test_edge_config_values_match_docker(
    reference: ReferenceDockerd, clients: Clients, tmp_path: Path
) -> None:
    ctx = write_context(tmp_path / "ctx", EDGE_CONFIG)
    theirs, ours = _build_both(reference, clients, ctx, "diff-edge")
    _assert_same(theirs, ours)
    assert ours.config["config"]["Entrypoint"] is None
    assert ours.config["config"]["Cmd"] == ["/bin/sh", "-c"]
    assert ours.config["config"]["WorkingDir"] == "/a/c"


# A corpus of smaller Dockerfiles found to matter while comparing with Docker 20.10.
CORPUS: dict[str, tuple[str, dict[str, str]]] = {
    "copy-dest-rules": (
        """\
FROM busybox
RUN mkdir /real && ln -s /real /linkdir && mkdir -p /w && ln -s /etc /w/etclink
COPY f /tmp
COPY f /linkdir
COPY f /linkdir/
COPY f /a/b/c
COPY d* /x/
COPY d1 /linkdir/d1copy
WORKDIR /w
COPY f .
COPY f etclink/
COPY d2 /x
ADD f /y/
""",
        {"f": "f\n", "d1/a": "1\n", "d1/s/c": "3\n", "d2/b": "2\n"},
    ),
    "users-and-exec-form": (
        """\
FROM busybox
USER daemon
WORKDIR /newdir/sub
USER root
RUN ["sh", "-c", "echo exec > /exec"]
ENV PATH=/custom:$PATH HOME=/h
RUN echo $HOME > /home && mkdir -p /h
USER 1:1
RUN touch /tmp/u && id > /tmp/id
USER root
COPY --chown=1:1 f /owned/deep/
COPY --chown=daemon f /o2
WORKDIR /
RUN ln -s dangling /dl && mkdir -p /a/b && touch /a/b/c && rm -r /a && mkdir -p /a/b
""",
        {"f": "f\n"},
    ),
    "args-everywhere": (
        """\
ARG TAG=latest
ARG SRC=f1
FROM busybox:${TAG} AS first
ARG SRC
ARG DIR=/opt/${SRC}
ARG U=daemon
COPY $SRC $DIR/
WORKDIR $DIR
USER $U
ENV E1=$SRC E2=${UNSET:-dflt} E3=${SRC:+set}
LABEL l=$DIR
RUN echo "$SRC $DIR $U" > /tmp/out
FROM first
ARG SRC=override
ARG TAG
RUN echo "$SRC $TAG" > /tmp/second
EXPOSE ${PORT:-8080}
STOPSIGNAL ${SIG:-9}
VOLUME /v $SRC
""",
        {"f1": "f1\n", "f2": "f2\n"},
    ),
    "runtime-files-stay-out": (
        """\
FROM busybox
RUN touch /dev/foo /tmp/y && mkdir -p /run && touch /run/x \\
 && echo "1.2.3.4 x" >> /etc/hosts && echo nameserver 9.9.9.9 > /etc/resolv.conf \\
 && echo h > /etc/hostname
RUN rm -f /etc/mtab; ls / > /rootls
""",
        {},
    ),
    "copy-onto-symlinks": (
        """\
FROM busybox
RUN mkdir /t && ln -s /nonexist /t/l && ln -s ../t2 /t/l2 && ln -s /tmp /t/dl \\
 && ln -s /t/f2 /t/f && mkdir /t/d && ln -s /t/d /t/dd && mkdir -p /u/x && touch /u/x/old
COPY f /bin/sh
COPY f /t/l
COPY f /t/l2
COPY f /t/dl
COPY f /t/dl/
COPY f /t/
COPY f /t/dd
COPY d /t/dd
COPY d /u
""",
        {"f": "f\n", "d/x/y": "y\n"},
    ),
    "run-after-volume-discards": (
        """\
FROM busybox
RUN mkdir /data && echo before > /data/before
VOLUME /data /newvol
RUN cat /data/before && echo after > /data/after && echo x > /newvol/x && echo out > /outside
COPY f /data/copied
""",
        {"f": "f\n"},
    ),
    "no-op-steps-and-empty-layers": (
        """\
FROM busybox
COPY empty /tmp/
COPY empty /
WORKDIR /tmp
WORKDIR /newwd
WORKDIR /newwd
RUN true
RUN touch /tmp
""",
        {"empty/.gitkeep": ""},
    ),
    "add-archives-with-chown": (
        """\
FROM busybox
ADD --chown=1:1 pkg.tar /x/
ADD pkg.tar /existing/dir/
ADD pkg.tar /bin/
""",
        {},
    ),
    # Dockerfile reference, ENV: a redefined variable keeps the place of its first definition.
    "env-redefined-keeps-its-place": (
        """\
FROM busybox
ENV A=1 B=2 C=3
ENV A=override H=$A
ENV PATH=/x:$PATH B=
""",
        {},
    ),
    # COPY --chown: only what is copied gets the owner; created parents stay root's.
    "copy-chown-created-parents": (
        """\
FROM busybox
COPY --chown=1000:1000 dir /new/parent/chowned/
COPY --chown=1000:1000 f /other/deep/file
ADD --chown=7:7 f /added/parent/
""",
        {"f": "f\n", "dir/a": "a\n", "dir/sub/b": "b\n"},
    ),
    # Context symlinks: a link to a directory inside the copied tree stays a link.
    "copy-context-symlinks": (
        """\
FROM busybox
COPY . /all/
COPY dir-link /via-link/
COPY file-link /file-via-link
""",
        {"realdir/x": "x\n", "f": "f\n"},
    ),
    # Special modes in the context: the legacy builder's lchown clears setuid/setgid.
    "copy-setuid-context-files": (
        """\
FROM busybox
COPY suid sgid sticky /modes/
COPY --chown=1:1 suid /owned-suid
""",
        {"suid": "s\n", "sgid": "g\n", "sticky/x": "x\n"},
    ),
    # COPY --from: a stage's files keep their owners and setuid bits (no ownership fix-up).
    "copy-from-keeps-owners-and-modes": (
        """\
FROM busybox AS src
RUN mkdir -p /out/sub && echo 1 > /out/suid && chmod 4755 /out/suid && chown 1:1 /out/suid \\
 && echo 2 > /out/sub/g && chown -R 2:2 /out/sub && chmod 2775 /out/sub
FROM busybox
COPY --from=src /out /copied
COPY --from=src /out/suid /suid-file
COPY --from=src --chown=3:3 /out /chowned/
""",
        {},
    ),
    # HEALTHCHECK: an inherited check's unset durations and retries are kept.
    "healthcheck-inherited-partly-overridden": (
        """\
FROM busybox AS parent
HEALTHCHECK --interval=5m --timeout=3s --start-period=10s --retries=4 CMD echo parent
FROM parent
HEALTHCHECK --interval=30s CMD ["/bin/true", "exec form"]
""",
        {},
    ),
}


CORPUS.update(SECTIONS)


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_corpus_matches_docker(
    reference: ReferenceDockerd, clients: Clients, tmp_path: Path, case: str
) -> None:
    ctx = corpus_context(tmp_path / "ctx", case)
    theirs, ours = _build_both(
        reference, clients, ctx, f"diff-corpus-{case}", "--build-arg", "SRC=f2"
    )
    _assert_same(theirs, ours)


def corpus_context(path: Path, case: str) -> Path:
    """The context of a CORPUS case: its files and what a dict of texts cannot say."""
    dockerfile, files = CORPUS[case]
    ctx = write_context(path, dockerfile, files)
    if case == "no-op-steps-and-empty-layers":
        (ctx / "empty" / ".gitkeep").unlink()
    if case == "add-archives-with-chown":
        (ctx / "pkg.tar").write_bytes(_tar_bytes({"pkg/one": b"1\n"}))
    if case == "copy-context-symlinks":
        (ctx / "dir-link").symlink_to("realdir")
        (ctx / "file-link").symlink_to("f")
        (ctx / "outside-link").symlink_to("/etc/passwd")
    if case == "copy-setuid-context-files":
        (ctx / "suid").chmod(0o4755)
        (ctx / "sgid").chmod(0o2750)
        (ctx / "sticky").chmod(0o1777)
    if case in SPECIAL:
        SPECIAL[case](ctx)
    return ctx


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_refused_dockerfiles_match_docker(
    reference: ReferenceDockerd, clients: Clients, tmp_path: Path, case: str
) -> None:
    """Both builders refuse it, with the same words (the daemon's message, through the same
    20.10 client)."""
    dockerfile, files, words = ERRORS[case]
    ctx = write_context(tmp_path / "ctx", dockerfile, files)

    def refused(env: dict[str, str]) -> str:
        proc = subprocess.run(
            [REF_DOCKER, "build", "-q", "."], env=env, cwd=ctx, capture_output=True, text=True
        )
        assert proc.returncode != 0, proc.stdout
        return proc.stderr.strip().splitlines()[-1]

    envs = {"theirs": reference.env(), "ours": clients.daemon.env()}
    messages = list(at_once({k: lambda env=env: refused(env) for k, env in envs.items()}).values())
    theirs, ours = (_error_core(m) for m in messages)
    assert words in theirs[1] and words in ours[1], messages
    if case not in HOST_PATH_IN_MESSAGE:
        assert theirs[1] == ours[1], messages
    # dockyard names the Dockerfile's line for every error (dockerd only for parse errors)
    assert ours[0] is not None and theirs[0] in (None, ours[0]), messages


def _error_core(message: str) -> tuple[str | None, str]:
    """(line, text) of a build error as the client prints it: dockerd's `dockerfile parse
    error line N: X` and dockyard's `Dockerfile:N: X`."""
    import re

    message = message.removeprefix("Error response from daemon: ")
    message = message.removeprefix("failed to parse Dockerfile: ")
    m = re.match(r"(?:dockerfile parse error line (\d+): |Dockerfile:(\d+): )(.*)", message)
    if m is None:
        return None, message
    return m.group(1) or m.group(2), m.group(3)


# Made by scripts/bookworm-base.sh, which scripts/test.sh runs first.
BOOKWORM_TAR = (
    Path(os.environ.get("DOCKYARD_TEST_CACHE", "/var/cache/dockyard")) / "bookworm-minbase.tar"
)


@pytest.mark.slow
def test_debian_userland_matches_docker(
    reference: ReferenceDockerd, clients: Clients, tmp_path: Path
) -> None:
    """useradd/usermod (shadow files and their modes), setgid dirs, opaque directories and
    hardlinks on a real Debian base; ~5,000 files change."""
    if not BOOKWORM_TAR.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{BOOKWORM_TAR} is missing: scripts/test.sh makes it")
        pytest.skip("no cached bookworm rootfs (scripts/bookworm-base.sh makes it)")
    at_once(
        {
            "theirs": lambda: _ref(reference, "import", str(BOOKWORM_TAR), "bookworm:diff"),
            "ours": lambda: _ours(clients, "import", str(BOOKWORM_TAR), "bookworm:diff"),
        }
    )
    ctx = write_context(
        tmp_path / "ctx",
        """\
FROM bookworm:diff
RUN useradd -m -u 1500 app && groupadd extra && usermod -aG extra app
USER app
RUN id > /tmp/id.txt && touch /tmp/mine
USER root
RUN cp -a /usr/share /opt/share && chown -R 1:1 /opt/share/doc \\
 && rm -rf /usr/share/zoneinfo /usr/share/locale /usr/share/doc && mkdir /usr/share/doc \\
 && ln /usr/bin/ls /usr/local/bin/ls-hard && chmod g+s /opt/share && rm -f /etc/motd
COPY --chown=app:extra Dockerfile /home/app/
""",
    )
    theirs, ours = _build_both(reference, clients, ctx, "diff-debian")
    _assert_same(theirs, ours)
