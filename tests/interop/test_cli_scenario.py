"""The docker CLI's daily surface: a scenario of the commands a user types, run through docker
CLI 28 against the reference dockerd 20.10 and against dockyard, step by step.

Each step runs on both daemons in turn; its exit code, stdout and stderr are compared after
`scenario_normalise` takes out what differs by nature (IDs, times, IPs, random host ports,
each side's own paths). A step is

- identical: the same exit code and the same normalised output;
- same shape: the same exit code and the same lines and columns once every value is masked
  (where values differ by nature: memory and CPU of `stats`, the daemon's version in `info`);
- differ: anything else.

A step is expected identical unless NATURE names why its values differ; a result worse than
expected fails the test unless KNOWN names the gap (both show in the table). With
DOCKYARD_CLI_SCENARIO_REPORT=FILE the table of results is written there in Markdown: that is
the table docs/COMPATIBILITY.md shows ("docker CLI 28 daily surface").
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import IS_ROOT, short_tmp, write_context
from tests.interop.conftest import DOCKER_CLIS, Side, normalise
from tests.registry.support import free_port
from tests.support.concurrent import at_once
from tests.support.daemons import DockyardDaemon, ReferenceDockerd
from tests.support.rootfs import busybox_rootfs_tar

pytestmark = [pytest.mark.root, pytest.mark.dockerd]

CLI = "28"
IDENTICAL, SHAPE, DIFFER = "identical", "same shape", "differ"
_RANK = {IDENTICAL: 0, SHAPE: 1, DIFFER: 2}


# Steps that take something of the host's that both daemons draw from: a user network's
# subnet (each daemon picks a free range among the host's routes, and two picking at once
# could take the same one). They run on one side, then the other, as all steps used to.
SERIAL_STEPS = {("network", "create")}


@dataclass(frozen=True)
class Step:
    args: tuple[str, ...]
    stdin_file: str = ""  # a file (placeholders allowed) fed to the command's stdin
    area: str = ""

    @property
    def command(self) -> str:
        return shlex.join(self.args)

    @property
    def expect(self) -> str:
        return SHAPE if self.command in NATURE else IDENTICAL


@dataclass(frozen=True)
class Seen:
    rc: int
    out: str
    err: str


@dataclass
class Result:
    step: Step
    mine: Seen
    docker: Seen
    verdict: str


@dataclass
class SideEnv:
    """One daemon with its own scratch directory and names for the placeholders."""

    side: Side
    tmp: Path
    values: dict[str, str] = field(default_factory=dict)
    # the client that runs the steps: docker CLI 28, or our own CLI (tests/cli/test_cli_scenario_ours.py)
    program: tuple[str, ...] = (DOCKER_CLIS[CLI],)

    def expand(self, text: str) -> str:
        for key, value in self.values.items():
            text = text.replace("{" + key + "}", value)
        return text


_IP = re.compile(r"\b(?!127\.0\.0\.1\b)(?!0\.0\.0\.0\b)\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}(/\d+)?\b")
_EPHEMERAL_PORT = re.compile(r":(3[2-9]\d{3}|[4-6]\d{4})\b")
_MAC = re.compile(r"\b([0-9a-f]{2}:){5}[0-9a-f]{2}\b")
_DURATION = re.compile(r"\b\d+(\.\d+)?(ms|µs|s)\b")
_KEY = re.compile(r"^([^:]{1,40}):( |$)")
_CLOCK = re.compile(r"\b\d\d:\d\d:\d\d\b")


def scenario_normalise(text: str, names: dict[str, str]) -> str:
    for old, new in sorted(names.items(), key=lambda kv: -len(kv[0])):
        text = text.replace(old, new)
    text = _MAC.sub("<MAC>", text)
    text = normalise(text)
    text = _IP.sub("<IP>", text)
    text = _EPHEMERAL_PORT.sub(":<PORT>", text)
    text = _DURATION.sub("<DUR>", text)
    return _CLOCK.sub("<CLOCK>", text)


def shape(text: str) -> list[str]:
    """Lines with every value masked: a key before `:` stays, other words become `x`."""
    out = []
    for line in text.splitlines():
        key = _KEY.match(line)
        if key:
            out.append(key.group(1) + ":")
        else:
            out.append(" ".join("x" for _ in line.split("  ")))
    return out


def verdict_of(mine: Seen, docker: Seen) -> str:
    if mine == docker:
        return IDENTICAL
    if mine.rc == docker.rc and (shape(mine.out), shape(mine.err)) == (
        shape(docker.out),
        shape(docker.err),
    ):
        return SHAPE
    return DIFFER


def S(command: str, **kw: str) -> Step:
    """A step from its command line as a user types it (shell quoting)."""
    return Step(tuple(shlex.split(command)), **kw)


def scenario() -> list[Step]:
    """The commands, in the order a user might type them. Placeholders: {tmp} (this side's
    scratch directory), {ctx} (a build context), {reg} (the local registry), {host} (the
    daemon's socket URL)."""
    return [
        # run ------------------------------------------------------------------
        S("run --rm --network=none busybox echo hello", area="run"),
        S("run --rm --network=none busybox sh -c 'echo out; echo err >&2; exit 3'", area="run"),
        S("run --rm --network=none busybox no-such-command", area="run"),
        S("run --rm --network=none busybox /etc/passwd", area="run"),
        S("run --rm --network=none -e A=1 -e SC_UNSET_VAR busybox sh -c 'env | sort'", area="run"),
        S(
            "run --rm --network=none --env-file '{tmp}/env' busybox sh -c 'echo $E1-$E2'",
            area="run",
        ),
        S("run --rm --network=none -w /tmp/wd busybox pwd", area="run"),
        S("run --rm --network=none -u 1000:1000 busybox id", area="run"),
        S("run --rm --network=none --entrypoint /bin/echo busybox a b", area="run"),
        S("run --rm --network=none --read-only busybox touch /x", area="run"),
        S("run --rm --network=none --hostname sc-host busybox hostname", area="run"),
        S(
            "run --rm --network=none --add-host sc.example:10.9.8.7 busybox grep sc.ex /etc/hosts",
            area="run",
        ),
        S(
            "run --rm --network=none --memory 64m busybox cat /sys/fs/cgroup/memory/memory.limit_in_bytes",
            area="run",
        ),
        S(
            "run --rm --network=none --pids-limit 20 busybox cat /sys/fs/cgroup/pids/pids.max",
            area="run",
        ),
        S(
            "run --rm --network=none --cap-drop ALL busybox sh -c 'grep CapEff /proc/self/status'",
            area="run",
        ),
        S(
            "run --rm --network=none --cap-add NET_ADMIN busybox sh -c 'grep CapEff /proc/self/status'",
            area="run",
        ),
        S(
            "run --rm --network=none --tmpfs /scratch busybox sh -c 'touch /scratch/f && echo ok'",
            area="run",
        ),
        S(
            "run --rm --network=none --ulimit nofile=1024:2048 busybox sh -c 'ulimit -n; ulimit -Hn'",
            area="run",
        ),
        S("run --rm --network=none -i busybox wc -c", area="run", stdin_file="{tmp}/env"),
        S("run --rm --network=none --init busybox ps -o pid,args", area="run"),
        S("run --rm --network=none --label sc=1 busybox true", area="run"),
        S("run --rm --restart always busybox true", area="run"),
        S("run --rm --network=none busybox:no-such-tag true", area="run"),
        S(
            "run -d --network=none --name sc-long --label sc=long busybox sh -c 'echo line1; echo line2; echo line3; sleep 300'",
            area="run",
        ),
        S("run -d --network=none --name sc-long busybox true", area="run"),
        S("run --name sc-done --network=none busybox sh -c 'echo done; exit 2'", area="run"),
        S("create --name sc-created --network=none busybox echo created", area="run"),
        S("start -a sc-created", area="run"),
        S("wait sc-done", area="run"),
        # ps -------------------------------------------------------------------
        S("ps --format '{{.Names}} {{.Image}} {{.Command}} {{.Status}}'", area="ps"),
        S("ps -a --filter name=sc- --format '{{.Names}}|{{.Status}}'", area="ps"),
        S("ps -a --filter status=exited --format '{{.Names}}'", area="ps"),
        S("ps -a --filter exited=2 --format '{{.Names}}'", area="ps"),
        S("ps -a --filter label=sc=long --format '{{.Names}} {{.Labels}}'", area="ps"),
        S("ps -a --filter ancestor=busybox --format '{{.Names}}'", area="ps"),
        S("ps -a -n 2 --format '{{.Names}}'", area="ps"),
        S("ps -l --format 'table {{.Names}}\t{{.Status}}'", area="ps"),
        S("ps -q --filter name=sc-long", area="ps"),
        S("ps -a --no-trunc --filter name=sc-done --format '{{.Command}}'", area="ps"),
        S("ps -a --filter name=sc-done --format '{{json .State}}'", area="ps"),
        S("ps --filter name=sc-long --format '{{.Mounts}} {{.Networks}} {{.Ports}}'", area="ps"),
        # logs -----------------------------------------------------------------
        S("logs sc-long", area="logs"),
        S("logs --tail 2 sc-long", area="logs"),
        S("logs -t sc-done", area="logs"),
        S("logs sc-no-such", area="logs"),
        # exec -----------------------------------------------------------------
        S("exec sc-long echo in-exec", area="exec"),
        S("exec -e X=1 -w /tmp sc-long sh -c 'echo $X; pwd'", area="exec"),
        S("exec -u nobody sc-long id -u", area="exec"),
        S("exec -i sc-long cat", area="exec", stdin_file="{tmp}/env"),
        S("exec sc-long no-such-command", area="exec"),
        S("exec sc-long sh -c 'exit 5'", area="exec"),
        S("exec sc-done true", area="exec"),
        # cp -------------------------------------------------------------------
        S("cp '{tmp}/env' sc-long:/tmp/copied", area="cp"),
        S("exec sc-long cat /tmp/copied", area="cp"),
        S("cp sc-long:/tmp/copied '{tmp}/back'", area="cp"),
        S("cp sc-long:/no/such '{tmp}/x'", area="cp"),
        S("cp sc-done:/etc/hostname '{tmp}/hn'", area="cp"),
        # inspect --------------------------------------------------------------
        S("top sc-long", area="inspect"),
        # stats ----------------------------------------------------------------
        S("stats --no-stream --format '{{.Name}} {{.PIDs}}' sc-long", area="stats"),
        S("stats --no-stream sc-long", area="stats"),
        # inspect --------------------------------------------------------------
        S(
            "inspect -f '{{.State.Status}} {{.State.ExitCode}} {{.Name}} {{.Config.Cmd}}' sc-done",
            area="inspect",
        ),
        S(
            "inspect -f '{{.HostConfig.NetworkMode}} {{.HostConfig.RestartPolicy.Name}}' sc-long",
            area="inspect",
        ),
        S("container inspect sc-no-such", area="inspect"),
        S("rename sc-created sc-renamed", area="inspect"),
        S("pause sc-long", area="inspect"),
        # ps -------------------------------------------------------------------
        S("ps --filter status=paused --format '{{.Names}} {{.Status}}'", area="ps"),
        # inspect --------------------------------------------------------------
        S("unpause sc-long", area="inspect"),
        S("diff sc-long", area="inspect"),
        # network --------------------------------------------------------------
        S("network create --label sc=net sc-net", area="network"),
        S("network ls --filter name=sc- --format '{{.Name}} {{.Driver}}'", area="network"),
        S("network ls --filter label=sc=net --format '{{.Name}}'", area="network"),
        S(
            "network inspect -f '{{.Name}} {{.Driver}} {{.Scope}} {{.Labels}}' sc-net",
            area="network",
        ),
        S(
            "run -d --name sc-web --network sc-net --network-alias web -p '{port}:80' -p 127.0.0.1::81 busybox httpd -f -p 80",
            area="network",
        ),
        S("port sc-web", area="network"),
        S("port sc-web 80/tcp", area="network"),
        S(
            "run --rm --network sc-net busybox wget -q -O - http://web/no-such-page",
            area="network",
        ),
        # -type=a: with both A and AAAA, busybox prints the answers as they arrive, an order
        # dockerd's own embedded DNS does not keep from one run to the next
        S("run --rm --network sc-net busybox nslookup -type=a sc-web", area="network"),
        S("network connect sc-net sc-long", area="network"),
        S(
            "inspect -f '{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}' sc-long",
            area="network",
        ),
        S("network disconnect sc-net sc-long", area="network"),
        S("network rm sc-net", area="network"),
        S("network rm sc-no-such", area="network"),
        # volume ---------------------------------------------------------------
        S("volume create --label sc=vol sc-vol", area="volume"),
        S(
            "run --rm --network=none -v sc-vol:/data busybox sh -c 'echo kept > /data/f'",
            area="volume",
        ),
        S("run --rm --network=none -v sc-vol:/data:ro busybox cat /data/f", area="volume"),
        S("run --rm --network=none -v sc-vol:/data:ro busybox touch /data/g", area="volume"),
        S("run --rm --network=none -v '{tmp}:/host' busybox cat /host/env", area="volume"),
        S("volume ls --filter name=sc- --format '{{.Name}} {{.Driver}}'", area="volume"),
        S("volume ls --filter label=sc=vol -q", area="volume"),
        S(
            "volume inspect -f '{{.Name}} {{.Driver}} {{.Labels}} {{.Scope}}' sc-vol",
            area="volume",
        ),
        S("volume rm sc-vol", area="volume"),
        S("volume rm sc-no-such", area="volume"),
        # images ---------------------------------------------------------------
        S("build -q -t sc-app:1 '{ctx}'", area="images"),
        S("build -t sc-app:1 '{ctx}'", area="images"),
        S("tag sc-app:1 sc-app:2", area="images"),
        S("images sc-app", area="images"),
        S(
            "images --filter 'reference=sc-*' --format '{{.Repository}}:{{.Tag}} {{.Size}}'",
            area="images",
        ),
        S("images --filter dangling=true -q", area="images"),
        S("images --filter label=sc.app=1 --format '{{.Repository}}:{{.Tag}}'", area="images"),
        S("images --filter before=sc-app:1 --format '{{.Repository}}'", area="images"),
        S("images --digests --format '{{.Repository}} {{.Tag}} {{.Digest}}'", area="images"),
        S("history sc-app:1", area="images"),
        S("history --no-trunc --format '{{.CreatedBy}} {{.Size}}' sc-app:1", area="images"),
        S(
            "image inspect -f '{{.Config.Cmd}} {{.Config.Env}} {{.Size}} {{.Os}}' sc-app:1",
            area="images",
        ),
        S("run --rm --network=none sc-app:1", area="images"),
        S("rmi sc-app:2", area="images"),
        # registry -------------------------------------------------------------
        S("login -u sc -p wrong '{reg}'", area="registry"),
        S("login -u sc --password-stdin '{reg}'", area="registry", stdin_file="{tmp}/password"),
        S("tag sc-app:1 '{reg}/{side}/app:1'", area="registry"),
        S("push -q '{reg}/{side}/app:1'", area="registry"),
        S("rmi '{reg}/{side}/app:1'", area="registry"),
        S("pull -q '{reg}/{side}/app:1'", area="registry"),
        S(
            "images --digests --format '{{.Repository}} {{.Tag}} {{.Digest}}' '{reg}/{side}/app'",
            area="registry",
        ),
        S("tag '{reg}/{side}/app:1' '{reg}/{side}/app:2'", area="registry"),
        S("rmi '{digest}'", area="registry"),
        S(
            "images --digests --format '{{.Repository}} {{.Tag}} {{.Digest}}' '{reg}/{side}/app'",
            area="registry",
        ),
        S("inspect -f '{{.RepoTags}} {{.RepoDigests}}' '{reg}/{side}/app:1'", area="registry"),
        S("pull -q '{reg}/{side}/app:1'", area="registry"),
        S("rmi '{reg}/{side}/app:2'", area="registry"),
        S("rmi '{reg}/{side}/app:1'", area="registry"),
        S(
            "images --digests --format '{{.Repository}} {{.Tag}} {{.Digest}}' '{reg}/{side}/app'",
            area="registry",
        ),
        S("pull '{reg}/{side}/no-such:1'", area="registry"),
        S("logout '{reg}'", area="registry"),
        # archive --------------------------------------------------------------
        S("save -o '{tmp}/app.tar' sc-app:1", area="archive"),
        S("rmi sc-app:1", area="archive"),
        S("load -i '{tmp}/app.tar'", area="archive"),
        S("load", area="archive", stdin_file="{tmp}/app.tar"),
        S("save -o '{tmp}/none.tar' sc-no-such", area="archive"),
        S(
            "run --name sc-exp --network=none busybox sh -c 'echo marker > /marker'",
            area="archive",
        ),
        S("export -o '{tmp}/exp.tar' sc-exp", area="archive"),
        S("import '{tmp}/exp.tar' sc-imp:1", area="archive"),
        S("run --rm --network=none sc-imp:1 cat /marker", area="archive"),
        S("commit sc-exp sc-commit:1", area="archive"),
        S(
            "commit -c 'ENV K=V' -c 'CMD [\"cat\", \"/marker\"]' -m 'a message' sc-exp sc-commit:2",
            area="archive",
        ),
        S("run --rm --network=none sc-commit:2", area="archive"),
        S("inspect -f '{{.Config.Env}} {{.Config.Cmd}} {{.Comment}}' sc-commit:2", area="archive"),
        S("history --format '{{.CreatedBy}}|{{.Comment}}' sc-commit:2", area="archive"),
        # context --------------------------------------------------------------
        S("context create sc-ctx --docker 'host={host}'", area="context"),
        S("context ls --format '{{.Name}} {{.DockerEndpoint}}'", area="context"),
        S("context inspect -f '{{.Endpoints.docker.Host}}' sc-ctx", area="context"),
        S("--context sc-ctx ps -a --filter name=sc-done --format '{{.Names}}'", area="context"),
        S("context rm sc-ctx", area="context"),
        # lifecycle ------------------------------------------------------------
        S("stop -t 1 sc-web", area="lifecycle"),
        S("restart -t 1 sc-long", area="lifecycle"),
        S("kill sc-long", area="lifecycle"),
        S("rm -f sc-long", area="lifecycle"),
        S("run -d --network=none --name sc-k1 busybox sleep 300", area="lifecycle"),
        S("kill sc-k1", area="lifecycle"),
        S("rm -f sc-k1", area="lifecycle"),
        S("kill sc-done", area="lifecycle"),
        S("rm sc-no-such", area="lifecycle"),
        # system ---------------------------------------------------------------
        S(
            "events --since '{t0}' --until '{t1}' --filter container=sc-done --format '{{.Type}} {{.Action}}'",
            area="system",
        ),
        S("system df --format '{{.Type}} {{.TotalCount}}'", area="system"),
        S("system df", area="system"),
        S("container prune -f", area="system"),
        S("ps -a --filter name=sc- --format '{{.Names}}'", area="system"),
        S("volume prune -f", area="system"),
        S("network prune -f", area="system"),
        S("image prune -f", area="system"),
        S("system prune -f", area="system"),
        S("version --format '{{.Client.Version}} {{.Server.Os}} {{.Server.Arch}}'", area="system"),
        S(
            "info --format '{{.OSType}} {{.Driver}} {{.LoggingDriver}} {{.CgroupDriver}}'",
            area="system",
        ),
        S("info --format '{{.InitBinary}} {{.RuncCommit.ID}}'", area="system"),
        S("info", area="system"),
    ]


# Differences measured and not (yet) fixed, by command: reported in the table, not failed.
KNOWN: dict[str, str] = {
    "history sc-app:1": (
        "COPY's `file:` checksum in created_by is not the legacy builder's tarsum (builder)"
    ),
}
# Same shape by nature: the values differ for reasons that are not a defect.
_RUNC_PREFIX = "dockerd's runc errors carry containerd's shim prefix and ': unknown'"
NATURE: dict[str, str] = {
    "run --rm --network=none busybox no-such-command": _RUNC_PREFIX,
    "run --rm --network=none busybox /etc/passwd": _RUNC_PREFIX,
    "exec sc-long no-such-command": _RUNC_PREFIX,
    "run --rm --network=none busybox:no-such-tag true": (
        "the resolver's error for Docker Hub (offline) is Python's, not Go's"
    ),
    "run --rm --network=none --init busybox ps -o pid,args": "docker-init vs dockyard-init",
    "top sc-long": "process IDs and times",
    "stats --no-stream sc-long": "CPU and memory figures",
    "info": "versions, plugins and runtimes of each daemon",
    "info --format '{{.InitBinary}} {{.RuncCommit.ID}}'": "docker-init vs dockyard-init",
}


@dataclass
class Scenario:
    ours: SideEnv
    theirs: SideEnv
    results: list[Result] = field(default_factory=list)

    def names(self, env: SideEnv) -> dict[str, str]:
        out = {
            str(env.tmp): "<TMP>",
            env.values["host"]: "<HOST>",
            env.side.env["DOCKER_CONFIG"]: "<CONFIG>",
            f":{env.values['port']}": ":<HOSTPORT>",
        }
        out[f"/{env.values['side']}/"] = "/<SIDE>/"
        digest = env.values.get("digest", "")
        if digest:
            out[digest.rpartition("@")[2]] = "sha256:<DIGEST>"
        return out

    def run_on(self, env: SideEnv, step: Step) -> Seen:
        args = [env.expand(a) for a in step.args]
        stdin = open(env.expand(step.stdin_file), "rb") if step.stdin_file else None
        try:
            proc = subprocess.run(
                [*env.program, *args],
                env=env.side.env,
                stdin=stdin if stdin else subprocess.DEVNULL,
                capture_output=True,
                timeout=180,
            )
        finally:
            if stdin:
                stdin.close()
        names = self.names(env)
        return Seen(
            proc.returncode,
            scenario_normalise(proc.stdout.decode(errors="replace"), names),
            scenario_normalise(proc.stderr.decode(errors="replace"), names),
        )

    def play(self, steps: list[Step]) -> None:
        for step in steps:
            if step.args[:1] == ("events",):
                for env in (self.ours, self.theirs):
                    env.values["t1"] = str(int(time.time()) + 1)
                time.sleep(1.2)
            if "{digest}" in step.args:
                for env in (self.ours, self.theirs):
                    env.values["digest"] = env.side.ok(
                        CLI,
                        "inspect",
                        "-f",
                        "{{index .RepoDigests 0}}",
                        env.expand("{reg}/{side}/app:1"),
                    ).strip()
            if step.args[:2] in SERIAL_STEPS:
                mine = self.run_on(self.ours, step)
                docker = self.run_on(self.theirs, step)
            else:
                # two daemons, two scratch folders, two client configs: the step runs on
                # both at once (tests/support/concurrent.py)
                seen = at_once(
                    {
                        "mine": lambda: self.run_on(self.ours, step),  # noqa: B023
                        "docker": lambda: self.run_on(self.theirs, step),  # noqa: B023
                    }
                )
                mine, docker = seen["mine"], seen["docker"]
            self.results.append(Result(step, mine, docker, verdict_of(mine, docker)))

    def table(self) -> str:
        counts = {v: sum(1 for r in self.results if r.verdict == v) for v in _RANK}
        lines = [
            f"{len(self.results)} commands: {counts[IDENTICAL]} identical, "
            f"{counts[SHAPE]} of the same shape, {counts[DIFFER]} differ.",
            "",
            "| area | command | exit (dockyard / dockerd) | result | note |",
            "|---|---|---|---|---|",
        ]
        for r in self.results:
            cmd = r.step.command.replace("|", "\\|")
            note = ""
            if r.verdict != IDENTICAL:
                note = KNOWN.get(r.step.command) or NATURE.get(r.step.command, "")
            lines.append(
                f"| {r.step.area} | `docker {cmd}` | {r.mine.rc} / {r.docker.rc} | "
                f"{r.verdict} | {note} |"
            )
        return "\n".join(lines) + "\n"


def _import_busybox(env: dict[str, str]) -> None:
    proc = subprocess.run(
        [DOCKER_CLIS[CLI], "import", str(busybox_rootfs_tar()), "busybox:latest"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr


@pytest.fixture(scope="module")
def sc_ours() -> Iterator[Side]:
    """A daemon of the scenario's own: listings and prunes see only what it made."""
    if not IS_ROOT:
        pytest.skip("needs root")
    daemon = DockyardDaemon(short_tmp("scdy-")).start()
    try:
        _import_busybox(daemon.env())
        yield Side("dockyard", daemon.env())
    finally:
        daemon.cleanup()


@pytest.fixture(scope="module")
def sc_theirs() -> Iterator[Side]:
    if not IS_ROOT:
        pytest.skip("needs root")
    if not ReferenceDockerd.available():
        pytest.skip("the reference dockerd (Debian docker.io) is not installed")
    ref = ReferenceDockerd(short_tmp("scdk-")).start()
    try:
        _import_busybox(ref.env())
        yield Side("dockerd", ref.env())
    finally:
        ref.cleanup()


@pytest.fixture(scope="module")
def registry() -> Iterator[str]:
    from tests.registry.support import Registry

    reg = Registry(short_tmp("screg-"), auth="htpasswd", users={"sc": "sc-password"}).start()
    try:
        yield reg.host
    finally:
        reg.cleanup()


def _side_env(side: Side, name: str, ctx: Path, reg: str) -> SideEnv:
    tmp = short_tmp(f"sc-{name}-")
    (tmp / "env").write_text("E1=one\nE2=two\n")
    (tmp / "password").write_text("sc-password\n")
    host = side.env["DOCKER_HOST"]
    env = SideEnv(side, tmp, {"tmp": str(tmp), "ctx": str(ctx), "reg": reg, "host": host})
    env.values["side"] = f"sc{name}"
    env.values["port"] = str(free_port())  # both daemons publish on this host: one port each
    env.values["t0"] = str(int(time.time()))
    return env


def _cleanup(env: SideEnv) -> None:
    docker = env.side.docker
    out = docker(CLI, "ps", "-aq", "--filter", "name=sc-").stdout.split()
    if out:
        docker(CLI, "rm", "-f", *out)
    for ctx in ("sc-ctx",):
        docker(CLI, "context", "rm", "-f", ctx)
    docker(CLI, "network", "rm", "sc-net")
    docker(CLI, "volume", "rm", "-f", "sc-vol")
    images = docker(CLI, "images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    doomed = [i for i in images if i.startswith("sc-") or "/sc" in i]
    if doomed:
        docker(CLI, "rmi", "-f", *doomed)
    subprocess.run(["rm", "-rf", str(env.tmp)])


def test_docker_cli_daily_surface(
    sc_ours: Side, sc_theirs: Side, registry: str, tmp_path: Path
) -> None:
    ours, theirs = sc_ours, sc_theirs
    if not os.path.exists(DOCKER_CLIS[CLI]):
        pytest.skip("docker CLI 28 is not installed")
    ctx = write_context(
        tmp_path / "ctx",
        "FROM busybox\nLABEL sc.app=1\nCOPY greeting /greeting\nRUN ln -s /greeting /g && "
        'mkdir -p /tmp/wd\nENV APP=1\nCMD ["cat", "/g"]\n',
        {"greeting": "hello from the app\n"},
    )
    sc = Scenario(_side_env(ours, "dy", ctx, registry), _side_env(theirs, "dk", ctx, registry))
    try:
        sc.play(scenario())
    finally:
        for env in (sc.ours, sc.theirs):
            _cleanup(env)
    report = os.environ.get("DOCKYARD_CLI_SCENARIO_REPORT")
    if report:
        Path(report).write_text(sc.table())
    worse = [
        r
        for r in sc.results
        if _RANK[r.verdict] > _RANK[r.step.expect] and r.step.command not in KNOWN
    ]
    detail = "\n\n".join(
        f"docker {' '.join(r.step.args)}: {r.verdict}\n"
        f"  dockyard rc={r.mine.rc}\n{_indent(r.mine.out + r.mine.err)}\n"
        f"  dockerd  rc={r.docker.rc}\n{_indent(r.docker.out + r.docker.err)}"
        for r in worse
    )
    assert not worse, f"{len(worse)} of {len(sc.results)} steps differ:\n\n{detail}"


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines()[:30])
