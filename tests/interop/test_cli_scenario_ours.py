"""The clients' CLI scenario (test_cli_scenario.py, the docker CLI's daily surface) typed into our
own CLI instead of docker CLI 28: a drop-in must end each step with docker CLI's exit code and
its normalised output.

Both clients talk to a dockyard daemon of their own (listings and prunes see only what that
client made), so what differs is the client alone. The verdicts are the clients' scenario's
(identical / same shape / differ); a step that is not identical fails unless the scenario names
why its values differ by nature (NATURE) or OURS_NATURE does here. With
DOCKYARD_CLI_OURS_REPORT=FILE the table docs/COMPATIBILITY.md shows ("dockyard CLI vs docker
CLI 28") is written there.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import IS_ROOT, short_tmp, write_context
from tests.interop.conftest import DOCKER_CLIS, Side
from tests.interop.test_cli_scenario import (
    _RANK,
    CLI,
    DIFFER,
    IDENTICAL,
    NATURE,
    SHAPE,
    Result,
    Scenario,
    Seen,
    _cleanup,
    _import_busybox,
    _indent,
    _side_env,
    scenario,
    verdict_of,
)
from tests.support.daemons import DockyardDaemon

pytestmark = [pytest.mark.root]

OUR_CLI = (sys.executable, "-m", "dockyard.cli.main")

# Values that differ between the two clients by nature (same daemon behind each): the step
# must still be of the same shape.
OURS_NATURE: dict[str, str] = {
    "version --format '{{.Client.Version}} {{.Server.Os}} {{.Server.Arch}}'": (
        "each client's own version"
    ),
    "info": "each client's own version (and the values of the daemon's state)",
}
# Differences measured and not fixed here, by command: reported in the table, not failed (an
# entry whose step has become identical fails the test: take it out). None since the cp rework.
OURS_KNOWN: dict[str, str] = {}
# docker CLI 28 warns that *its* legacy builder is deprecated (DOCKER_BUILDKIT=0); our CLI's
# builder is not docker's, so that notice is taken out of docker's side before comparing.
_LEGACY_NOTICE = re.compile(
    r"DEPRECATED: The legacy builder is deprecated and will be removed in a future release\.\n"
    r"\s+BuildKit is currently disabled; enable it by removing the DOCKER_BUILDKIT=0\n"
    r"\s+environment-variable\.\n\n?"
)

# The program's own name in its messages: "docker: Error …", "See 'docker run --help'.", and
# usage lines; a drop-in installed as `docker` prints that name.
_PROGRAM = re.compile(r"(^|'|\s)(?:docker|dockyard)(?=[: ])", re.M)


def _unname(seen: Seen) -> Seen:
    err = _LEGACY_NOTICE.sub("", seen.err)
    return Seen(seen.rc, _PROGRAM.sub(r"\1<CLI>", seen.out), _PROGRAM.sub(r"\1<CLI>", err))


def _daemon(prefix: str) -> Iterator[Side]:
    if not IS_ROOT:
        pytest.skip("needs root")
    daemon = DockyardDaemon(short_tmp(prefix)).start()
    try:
        _import_busybox(daemon.env())
        yield Side("dockyard", daemon.env())
    finally:
        daemon.cleanup()


@pytest.fixture(scope="module")
def for_ours() -> Iterator[Side]:
    yield from _daemon("scoy-")


@pytest.fixture(scope="module")
def for_docker() -> Iterator[Side]:
    yield from _daemon("scod-")


@pytest.fixture(scope="module")
def registry() -> Iterator[str]:
    from tests.registry.support import Registry

    reg = Registry(short_tmp("scoreg-"), auth="htpasswd", users={"sc": "sc-password"}).start()
    try:
        yield reg.host
    finally:
        reg.cleanup()


def table(results: list[Result]) -> str:
    counts = {v: sum(1 for r in results if r.verdict == v) for v in _RANK}
    lines = [
        f"{len(results)} commands: {counts[IDENTICAL]} identical, "
        f"{counts[SHAPE]} of the same shape, {counts[DIFFER]} differ.",
        "",
        "| area | command | exit (dockyard CLI / docker CLI 28) | result | note |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        cmd = r.step.command.replace("|", "\\|")
        note = ""
        if r.verdict != IDENTICAL:
            note = (
                OURS_KNOWN.get(r.step.command)
                or OURS_NATURE.get(r.step.command)
                or NATURE.get(r.step.command, "")
            )
        lines.append(
            f"| {r.step.area} | `{cmd}` | {r.mine.rc} / {r.docker.rc} | {r.verdict} | {note} |"
        )
    return "\n".join(lines) + "\n"


def test_our_cli_runs_the_daily_scenario_as_docker_cli(
    for_ours: Side, for_docker: Side, registry: str, tmp_path: Path
) -> None:
    if not os.path.exists(DOCKER_CLIS[CLI]):
        pytest.skip("docker CLI 28 is not installed")
    ctx = write_context(
        tmp_path / "ctx",
        "FROM busybox\nLABEL sc.app=1\nCOPY greeting /greeting\nRUN ln -s /greeting /g && "
        'mkdir -p /tmp/wd\nENV APP=1\nCMD ["cat", "/g"]\n',
        {"greeting": "hello from the app\n"},
    )
    ours = _side_env(for_ours, "yc", ctx, registry)
    ours.program = OUR_CLI
    sc = Scenario(ours, _side_env(for_docker, "dc", ctx, registry))
    try:
        sc.play(scenario())
    finally:
        for env in (sc.ours, sc.theirs):
            _cleanup(env)
    for r in sc.results:
        r.mine, r.docker = _unname(r.mine), _unname(r.docker)
        r.verdict = verdict_of(r.mine, r.docker)
    report = os.environ.get("DOCKYARD_CLI_OURS_REPORT")
    if report:
        Path(report).write_text(table(sc.results))
    worse = [
        r
        for r in sc.results
        if r.verdict != IDENTICAL
        and r.step.command not in OURS_KNOWN
        and not (r.verdict == SHAPE and (r.step.command in NATURE or r.step.command in OURS_NATURE))
    ]
    detail = "\n\n".join(
        f"{r.step.command}: {r.verdict}\n"
        f"  dockyard CLI rc={r.mine.rc}\n{_indent(r.mine.out)}\n  stderr:\n{_indent(r.mine.err)}\n"
        f"  docker CLI   rc={r.docker.rc}\n{_indent(r.docker.out)}\n  stderr:\n{_indent(r.docker.err)}"
        for r in worse
    )
    assert not worse, f"{len(worse)} of {len(sc.results)} steps differ:\n\n{detail}"
    fixed = [r.step.command for r in sc.results if r.verdict == IDENTICAL]
    stale = sorted(set(OURS_KNOWN) & set(fixed))
    assert not stale, f"OURS_KNOWN names steps that are identical now: {stale}"
