"""What a legacy build leaves in `docker ps -a` (builder/kept.py), against dockerd 20.10.

dockerd's legacy builder runs RUN and config-only steps in containers of the engine's: with
`rm` (the default) a RUN whose command fails keeps its container, Exited (N) with what it
wrote; `--force-rm` removes that one too; `--rm=false` keeps every step's (COPY shows none; WORKDIR's runs `#(nop) WORKDIR /w`).
The containers left are ordinary ones: `diff` shows the step's writes, `start -a` runs the
step's command again, `rm` removes them.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import write_context
from tests.interop.conftest import Side

pytestmark = [pytest.mark.root, pytest.mark.dockerd]

DOCKERFILE = "FROM busybox\nENV A=1\nWORKDIR /w\nRUN echo ok > /ok\nCOPY Dockerfile /df\nRUN echo hi > /x; exit 7\n"
_ID = re.compile(r"\b[0-9a-f]{12}\b")


def _ids(side: Side) -> set[str]:
    return set(side.ok("28", "ps", "-aq", "--no-trunc").split())


def _left(side: Side, ctx: Path, *flags: str) -> tuple[list[str], list[str], str]:
    """Build with `flags`; the containers the build left (image, command, state, exit code,
    diff) and the build's output lines about containers."""
    before = _ids(side)
    proc = side.docker("28", "build", "--no-cache", *flags, str(ctx))
    assert proc.returncode == 7, proc.stderr
    new = sorted(_ids(side) - before)
    rows = []
    try:
        for cid in new:
            row = side.ok(
                "28",
                "inspect",
                "--format",
                "{{json .Config.Cmd}} {{json .Config.Entrypoint}} {{.State.Status}} "
                "{{.State.ExitCode}} {{.HostConfig.NetworkMode}} {{.Config.Hostname}}",
                cid,
            ).strip()
            diff = side.ok("28", "diff", cid).split()
            rows.append(_ID.sub("<ID>", f"{row} {diff}").replace(cid[:12], "<SELF>"))
        if any("exit 7" in r for r in rows):
            failed = next(c for c, r in zip(new, rows, strict=True) if "exit 7" in r)
            again = side.docker("28", "start", "-a", failed)
            rows.append(f"start -a: {again.returncode}")
    finally:
        for cid in new:
            side.ok("28", "rm", cid)
    assert not _ids(side) & set(new)
    lines = [_ID.sub("<ID>", x) for x in proc.stdout.splitlines() if "container" in x]
    return sorted(rows), lines, proc.stderr.splitlines()[-1]


@pytest.mark.parametrize("flags", [(), ("--force-rm",), ("--rm=false",)], ids=str)
def test_failed_build_leaves_containers_as_dockerd(
    ours: Side, theirs: Side, tmp_path: Path, flags: tuple[str, ...]
) -> None:
    ctx = write_context(tmp_path, DOCKERFILE)
    mine, docker = _left(ours, ctx, *flags), _left(theirs, ctx, *flags)
    assert mine[:2] == docker[:2]
    # dockyard names the Dockerfile line first ("Dockerfile:5: The command …")
    assert docker[2] in mine[2]
    kept = {(): 1, ("--force-rm",): 0, ("--rm=false",): 4}[flags]
    assert sum(1 for row in docker[0] if not row.startswith("start -a")) == kept
