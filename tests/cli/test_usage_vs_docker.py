"""Usage errors as docker CLI 28 makes them: every command of ours is given no arguments, nine
arguments and an unknown flag, through docker CLI 28 and through our CLI against the same
dockyard daemon; where docker answers with a usage error (its text names the usage line), ours
must end with the same status and the same stderr, the program's name aside. A list of
flag errors (a flag without its value, a value that is not a number or a boolean, an
abbreviated flag, a shorthand it does not have, `--rm=true`) is compared the same way.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.cli import commandline as cli_main
from tests.conftest import IS_ROOT, short_tmp
from tests.support.daemons import DockyardDaemon

DOCKER = shutil.which("docker")
pytestmark = pytest.mark.skipif(DOCKER is None, reason="docker CLI 28 not on PATH")

OURS = [sys.executable, "-m", "dockyard.cli.main"]
_PROGRAM = re.compile(r"(^|'|\s)(?:docker|dockyard)(?=[: ])", re.M)
# docker CLI 28's notice that *its* legacy builder is deprecated: not ours to print.
_LEGACY_NOTICE = re.compile(
    r"DEPRECATED: The legacy builder is deprecated and will be removed in a future release\.\n"
    r"\s+BuildKit is currently disabled; enable it by removing the DOCKER_BUILDKIT=0\n"
    r"\s+environment-variable\.\n\n?"
)
# Streams or prompts when given nothing: not run without arguments.
_WAITS = {"events", "system events", "stats", "container stats", "login", "attach"}


def _paths() -> list[str]:
    def walk(p: argparse.ArgumentParser, path: list[str]) -> Iterator[str]:
        subs = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
        if path:
            yield " ".join(path)
        if subs:
            for word, child in subs[0].choices.items():
                yield from walk(child, [*path, word])

    return [p for p in walk(cli_main._build_parser(), []) if p not in OURS_ONLY]


# Commands docker CLI 28 does not have (docker would answer "unknown command"): dockyard's own.
OURS_ONLY = {"daemon", "system check"}


PATHS = _paths()
CASES: list[list[str]] = []
for _path in PATHS:
    words = _path.split()
    if _path not in _WAITS:
        CASES.append(words)
    CASES.append([*words, *(f"a{i}" for i in range(9))])
    CASES.append([*words, "--bogus-flag"])
CASES += [
    ["ps", "-n"],
    ["ps", "--last"],
    ["ps", "-n", "abc"],
    ["ps", "--all=maybe"],
    ["ps", "--form", "x"],
    ["ps", "-Z"],
    ["stop", "-t", "x", "c1"],
    ["run", "--rm=maybe", "busybox"],
    ["run", "--rm=false", "--bogus", "busybox"],
    ["run", "-m"],
    ["--bogus", "ps"],
    ["bogus"],
    ["network", "bogus"],
    ["exec", "c1"],
    ["logs", "--tail"],
    ["images", "a", "b"],
]


@pytest.fixture(scope="module")
def env() -> Iterator[dict[str, str]]:
    """A daemon of the module's own, so that a command given valid arguments touches only it."""
    if not IS_ROOT:
        pytest.skip("needs root")
    d = DockyardDaemon(short_tmp("dyus-")).start()
    try:
        yield d.env()
    finally:
        d.cleanup()


def _run(cli: list[str], words: list[str], env: dict[str, str]) -> tuple[int, str, str] | None:
    try:
        proc = subprocess.run(
            [*cli, *words],
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=30,
        )
    except subprocess.TimeoutExpired:
        return None
    return (
        proc.returncode,
        _PROGRAM.sub(r"\1<CLI>", proc.stdout),
        _PROGRAM.sub(r"\1<CLI>", _LEGACY_NOTICE.sub("", proc.stderr)),
    )


def _is_usage_error(seen: tuple[int, str, str] | None) -> bool:
    return seen is not None and seen[0] != 0 and "\nUsage:  " in seen[2]


@pytest.mark.root
@pytest.mark.parametrize("words", CASES, ids=[" ".join(c)[:60] for c in CASES])
def test_usage_error_as_docker(env: dict[str, str], tmp_path: Path, words: list[str]) -> None:
    env = dict(env, DOCKER_CONFIG=str(tmp_path / "config"))
    theirs = _run([str(DOCKER)], words, env)
    if not _is_usage_error(theirs) and words[0] != "bogus":
        ours = _run(OURS, words, env)
        assert not _is_usage_error(ours), f"ours refuses what docker takes: {ours}"
        return
    ours = _run(OURS, words, env)
    assert ours == theirs, f"docker {' '.join(words)}\n  docker: {theirs!r}\n  ours:   {ours!r}"
