"""Unit tests of the pieces of the builder that need no daemon: context extraction, build
args, stage planning, metadata renderings, the cache explanation."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from dockyard.builder.args import BuildArgs
from dockyard.builder.cachelog import StepInputs, explain_miss
from dockyard.builder.context import extract_context
from dockyard.builder.metadata import go_duration, healthcheck_comment, parse_ports
from dockyard.builder.mounts import parse_mount
from dockyard.builder.stages import needed_stages, split_stages
from dockyard.errors import InvalidArgument
from dockyard.frontend.parser import parse_dockerfile


def _tar(*members: tuple[tarfile.TarInfo, bytes | None]) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    buf.seek(0)
    return buf


def _info(
    name: str, kind: bytes = tarfile.REGTYPE, mode: int = 0o644, link: str = ""
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.linkname = link
    info.mtime = 1_500_000_000
    return info


def test_extract_keeps_modes_links_and_absolute_symlinks(tmp_path: Path) -> None:
    stream = _tar(
        (_info("d", tarfile.DIRTYPE, 0o750), None),
        (_info("d/x", mode=0o4755), b"x"),
        (_info("d/hl", tarfile.LNKTYPE, link="d/x"), None),
        (_info("abs", tarfile.SYMTYPE, link="/etc/passwd"), None),
        (_info("fifo", tarfile.FIFOTYPE, 0o600), None),
    )
    extract_context(stream, tmp_path / "ctx")
    root = tmp_path / "ctx"
    assert stat.S_IMODE(os.lstat(root / "d").st_mode) == 0o750
    assert stat.S_IMODE(os.lstat(root / "d/x").st_mode) == 0o4755
    assert os.lstat(root / "d/x").st_mtime == 1_500_000_000
    assert os.lstat(root / "d/x").st_ino == os.lstat(root / "d/hl").st_ino
    assert os.readlink(root / "abs") == "/etc/passwd"
    assert stat.S_ISFIFO(os.lstat(root / "fifo").st_mode)


@pytest.mark.parametrize(
    "members",
    [
        [(_info("../escape"), b"x")],
        [(_info("/abs"), b"x")],
        [(_info("l", tarfile.SYMTYPE, link=".."), None), (_info("l/x"), b"x")],
        [(_info("h", tarfile.LNKTYPE, link="../../etc/passwd"), None)],
    ],
)
def test_extract_refuses_escapes(
    tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes]]
) -> None:
    with pytest.raises(InvalidArgument):
        extract_context(_tar(*members), tmp_path / "ctx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ctx"]


def test_build_args_scoping() -> None:
    args = BuildArgs({"A": "cli", "HTTP_PROXY": "p", "UNUSED": "u"})
    args.add_meta("A", "meta")
    args.add_meta("G", "global")
    stage = args.for_stage()
    assert stage.all_allowed() == {"HTTP_PROXY": "p"}  # proxy args need no declaration
    stage.add_arg("A", None)
    stage.add_arg("G", None)
    assert stage.all_allowed() == {"A": "cli", "G": "global", "HTTP_PROXY": "p"}
    assert stage.filter_allowed({"G": "env wins"}) == {"A": "cli", "HTTP_PROXY": "p"}
    assert stage.history_prefix({"A": "cli", "HTTP_PROXY": "p"}) == ["|1", "A=cli"]
    assert args.unused() == ["UNUSED"]


def test_stage_plan_and_needed_stages() -> None:
    df = parse_dockerfile(
        "ARG B=base\nFROM busybox AS base\nFROM busybox AS other\nRUN x\n"
        "FROM ${B} AS final\nCOPY --from=0 /a /a\n"
    )
    plan = split_stages(list(df.instructions))
    assert [s.name for s in plan.stages] == ["base", "other", "final"]
    assert len(plan.meta_args) == 1
    assert needed_stages(plan, 2, {"B": "base"}, "\\") == [0, 2]
    assert needed_stages(plan, 1, {}, "\\") == [1]


def test_metadata_renderings() -> None:
    assert go_duration(300_000_000_000) == "5m0s"
    assert go_duration(1_500_000_000) == "1.5s"
    assert go_duration(3_600_000_000_000) == "1h0m0s"
    assert go_duration(0) == "0s"
    hc = {"Test": ["CMD-SHELL", "echo ok"], "Interval": 300_000_000_000, "Retries": 3}
    assert healthcheck_comment(hc) == (
        'HEALTHCHECK &{["CMD-SHELL" "echo ok"] "5m0s" "0s" "0s" \'\\x03\'}'
    )
    assert parse_ports(["80", "90-91/udp"]) == ["80/tcp", "90/udp", "91/udp"]
    with pytest.raises(InvalidArgument):
        parse_ports(["x"])


def test_mount_parsing() -> None:
    m = parse_mount("type=cache,target=cache,id=go,sharing=locked,mode=0700,uid=5", "/w")
    assert (m.type, m.target, m.id, m.mode, m.uid) == ("cache", "/w/cache", "go", 0o700, 5)
    assert parse_mount("target=/src", "/").readonly is True  # bind is read-only by default
    assert parse_mount("type=bind,target=/src,rw", "/").readonly is False
    assert parse_mount("type=secret,id=tok", "/").target == "/run/secrets/tok"
    with pytest.raises(InvalidArgument):
        parse_mount("type=bogus,target=/x", "/")
    with pytest.raises(InvalidArgument):
        parse_mount("type=cache,wat=1,target=/x", "/")


def test_explain_miss_names_the_input() -> None:
    old = StepInputs("sha256:aa", "COPY f /f", {"A": "1"}, {"f": "sha256:11", "g": "sha256:22"})
    new = StepInputs("sha256:aa", "COPY f /f", {"A": "1"}, {"f": "sha256:33", "h": "sha256:44"})
    reasons = explain_miss(old, new, no_cache=False)
    assert reasons == [
        "file f changed: 11 -> 33",
        "file g removed (was 22)",
        "file h added (44)",
    ]
    moved = StepInputs("sha256:bb", "RUN |1 A=2 x", {"A": "2"})
    before = StepInputs("sha256:aa", "RUN |1 A=1 x", {"A": "1"})
    assert explain_miss(before, moved, False) == [
        "parent image changed: aa -> bb",
        "build arg A changed: '1' -> '2'",
        "instruction changed: 'RUN |1 A=1 x' -> 'RUN |1 A=2 x'",
    ]
    assert explain_miss(None, moved, False) == ["no earlier build of this step is recorded"]
    assert explain_miss(before, before, True) == ["--no-cache was given"]


def test_needed_stages_follow_stage_args_and_env() -> None:
    df = parse_dockerfile(
        "FROM busybox AS one\nFROM busybox AS two\nFROM busybox AS three\n"
        "FROM busybox\nARG SRC=one\nENV OTHER=three\nCOPY --from=$SRC /a /a\n"
        "COPY --from=${OTHER} /b /b\n"
    )
    plan = split_stages(list(df.instructions))
    assert needed_stages(plan, 3, {}, "\\") == [0, 2, 3]
    assert needed_stages(plan, 3, {}, "\\", {"SRC": "two"}) == [1, 2, 3]
