"""The daily CLI scenario through our CLI and through docker CLI 28, on the same dockyard daemon:
each step must end with the same exit status and the same normalised output (IDs, times,
sizes, the program's name and each side's object names taken out).

Each side works on its own objects (`{n}` becomes `d` for docker, `y` for ours), so the two
runs do not see each other's containers. With DOCKYARD_COMPAT_TABLE=path the test writes the
results table that docs/COMPATIBILITY.md shows.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import Clients, write_context

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(shutil.which("docker") is None, reason="docker CLI 28 not on PATH"),
]


@dataclass(frozen=True)
class Step:
    args: tuple[str, ...]
    note: str = ""


def S(*args: str, note: str = "") -> Step:
    return Step(tuple(args), note)


SCENARIO: list[Step] = [
    S("version", "--format", "{{.Server.Os}}/{{.Client.Os}}"),
    S("build", "-q", "-t", "sc-{n}", "--label", "side={n}", "{ctx}"),
    S("build", "-t", "sc-bad-{n}", "{bad}", note="a failed RUN exits with its status"),
    S("images", "sc-{n}", "--format", "{{.Repository}}:{{.Tag}} {{.Size}}"),
    S("images", "--format", "table {{.Repository}}\\t{{.Tag}}", "sc-{n}"),
    S("run", "--rm", "sc-{n}"),
    S("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 7"),
    S("run", "--rm", "busybox", "no-such-command"),
    S(
        "run",
        "--rm",
        "-e",
        "A=1",
        "-w",
        "/tmp",
        "-u",
        "65534",
        "busybox",
        "sh",
        "-c",
        "echo $A $(pwd) $(id -u)",
    ),
    S(
        "run",
        "-d",
        "--name",
        "web-{n}",
        "-l",
        "tier=web",
        "--health-cmd",
        "true",
        "--health-interval",
        "1s",
        "busybox",
        "sleep",
        "300",
    ),
    S(
        "ps",
        "--filter",
        "name=web-{n}",
        "--format",
        '{{.Names}} {{.Image}} {{.Command}} {{.Label "tier"}}',
    ),
    S("ps", "-a", "--filter", "name=web-{n}", "--format", "table {{.Names}}\\t{{.Labels}}"),
    S("ps", "-q", "--filter", "name=web-{n}"),
    S("exec", "web-{n}", "sh", "-c", "echo in-exec; exit 3"),
    S("exec", "-e", "B=2", "-w", "/etc", "web-{n}", "sh", "-c", "echo $B $(pwd)"),
    S("logs", "web-{n}"),
    S("inspect", "-f", "{{.State.Running}} {{.Config.Labels}} {{json .Config.Cmd}}", "web-{n}"),
    S("inspect", "-f", "{{.Config.Healthcheck.Test}} {{.Config.Healthcheck.Interval}}", "web-{n}"),
    S("inspect", "-f", "{{.Nope}}", "web-{n}", note="a key the object lacks is an error"),
    S("inspect", "-f", "{{if}}", "web-{n}", note="a template that does not parse: status 64"),
    # PIDs on a container without a healthcheck: while a check's `runc exec` starts, runc's
    # init and its threads sit in the container's cgroup and pids.current counts them (on
    # either daemon), so web-{n}'s count is 1 most of the time and 6 now and then
    S("stats", "--no-stream", "--format", "{{.Name}}", "web-{n}"),
    S("run", "-d", "--name", "calm-{n}", "busybox", "sleep", "300"),
    S("stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}", "calm-{n}"),
    S("rm", "-f", "calm-{n}"),
    S("stop", "-t", "1", "web-{n}"),
    S("ps", "-a", "--filter", "name=web-{n}", "--format", "{{.Names}} {{.State}}"),
    S("rm", "web-{n}"),
    S("rm", "web-{n}", note="already gone"),
    S("kill", "no-such-{n}"),
    S("create", "--name", "c-{n}", "--memory-swappiness", "20", "busybox", "echo", "created"),
    S("start", "-a", "c-{n}"),
    S("rm", "-f", "c-{n}"),
    S(
        "create",
        "--device-read-bps",
        "/dev/sda:1mb",
        "busybox",
        note="refused by name by the daemon",
    ),
    S("run", "--cpu-count", "2", "busybox", note="Windows-only flag"),
    S("network", "create", "net-{n}"),
    S("network", "ls", "--filter", "name=net-{n}", "--format", "{{.Name}} {{.Driver}} {{.Scope}}"),
    S("network", "inspect", "-f", "{{.Name}} {{.Driver}}", "net-{n}"),
    S("network", "rm", "net-{n}"),
    S("volume", "create", "vol-{n}"),
    S("volume", "ls", "-q", "--filter", "name=vol-{n}"),
    S("volume", "inspect", "--format", "{{.Name}} {{.Driver}} {{.Scope}}", "vol-{n}"),
    S("volume", "rm", "vol-{n}"),
    S("tag", "busybox", "sc-tag-{n}:1"),
    S("images", "sc-tag-{n}", "--format", "json"),
    S("rmi", "sc-tag-{n}:1"),
    S("rmi", "sc-tag-{n}:1", note="already gone"),
    S("save", "-o", "{tmp}/bb-{n}.tar", "busybox"),
    S("load", "-q", "-i", "{tmp}/bb-{n}.tar"),
    S("events", "--since", "1", "--until", "2", note="the daemon has no /events yet"),
    S("system", "df", note="the daemon has no /system/df yet"),
    S("rmi", "sc-{n}"),
]

_NORMALISE: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"sha256:[0-9a-f]{64}"), "sha256:<ID>"),
    (re.compile(r"\b[0-9a-f]{64}\b"), "<ID>"),
    (re.compile(r"\b[0-9a-f]{12}\b"), "<ID>"),
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)"), "<TIME>"),
    (re.compile(r"(About a|About an|Less than a|\d+) (second|minute|hour)s?( ago)?"), "<AGO>"),
    (re.compile(r"\b\d+(\.\d+)?\s?(B|kB|KB|MB|GB|KiB|MiB|GiB)\b"), "<SIZE>"),
    (re.compile(r"[ \t]{2,}"), "  "),
    (re.compile(r"[ \t]+$", re.M), ""),
)


def normalise(text: str, side: str, tmp: Path) -> str:
    text = text.replace(str(tmp), "<TMP>")
    text = re.sub(rf"\b(sc|sc-bad|sc-tag|web|calm|c|net|vol|no-such|bb)-{side}\b", r"\1-<N>", text)
    # the program's own name in its messages ("docker: …", "See 'docker run --help'.")
    text = re.sub(r"\b(docker|dockyard)\b(?=[: ])", "<CLI>", text)
    for pattern, repl in _NORMALISE:
        text = pattern.sub(repl, text)
    return text


@dataclass
class Outcome:
    rc: int
    out: str
    err: str


def _run(
    clients: Clients, cli: list[str], step: Step, side: str, tmp: Path, ctx: dict[str, Path]
) -> Outcome:
    args = [
        a.replace("{n}", side)
        .replace("{ctx}", str(ctx["ok-" + side]))
        .replace("{bad}", str(ctx["bad"]))
        .replace("{tmp}", str(tmp))
        for a in step.args
    ]
    proc = subprocess.run(
        [*cli, *args],
        env=clients.daemon.env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return Outcome(
        proc.returncode, normalise(proc.stdout, side, tmp), normalise(proc.stderr, side, tmp)
    )


def _cell(text: str) -> str:
    one = text.strip().replace("\n", "⏎ ").replace("|", "\\|")
    return (one[:60] + "…") if len(one) > 60 else one


def test_daily_scenario_matches_docker_cli(clients: Clients, tmp_path: Path) -> None:
    # one context per side: a shared one would let the second build reuse the first's cached
    # steps, and `rmi` would then delete a different number of parent images on each side
    ctx = {
        f"ok-{side}": write_context(
            tmp_path / f"ok-{side}",
            f'FROM busybox\nRUN echo built > /built && echo {side} > /side\nCMD ["cat", "/built"]\n',
        )
        for side in ("d", "y")
    } | {
        "bad": write_context(tmp_path / "bad", "FROM busybox\nRUN exit 100\n"),
    }
    ours_cli = [sys.executable, "-m", "dockyard.cli.main"]
    rows: list[str] = []
    differ: list[str] = []
    for step in SCENARIO:
        docker = _run(clients, ["docker"], step, "d", tmp_path, ctx)
        ours = _run(clients, ours_cli, step, "y", tmp_path, ctx)
        same_rc = ours.rc == docker.rc
        same_out = ours.out == docker.out
        same_err = ours.err == docker.err
        shown = " ".join(step.args)
        verdict = (
            "same"
            if same_rc and same_out and same_err
            else ("same status and stdout; stderr differs" if same_rc and same_out else "DIFFERENT")
        )
        rows.append(
            f"| `{_cell(shown)}` | {docker.rc} | {ours.rc} | {_cell(docker.out or docker.err)} | {verdict}"
            + (f" ({step.note})" if step.note else "")
            + " |"
        )
        if not (same_rc and same_out):
            differ.append(
                f"{shown}\n  docker: rc={docker.rc} out={docker.out!r} err={docker.err!r}\n"
                f"  ours:   rc={ours.rc} out={ours.out!r} err={ours.err!r}"
            )
    table = os.environ.get("DOCKYARD_COMPAT_TABLE")
    if table:
        header = "| command (`{n}`: each side's own objects) | docker CLI 28 | dockyard CLI | docker's output (normalised) | result |\n|---|---|---|---|---|\n"
        Path(table).write_text(header + "\n".join(rows) + "\n")
    assert not differ, "steps where our CLI and docker CLI 28 differ:\n" + "\n".join(differ)
