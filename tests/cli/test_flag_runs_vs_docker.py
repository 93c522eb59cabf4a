"""Every flag of the daily commands (but run/create, which test_flags_vs_docker.py sends
through a recording proxy) run through docker CLI 28 and through our CLI against the same
dockyard daemon: each case must end with docker's exit status and its normalised stdout and
stderr. Each side works on its own objects (`{n}` is `d` for docker, `y` for ours); a case's
setup commands run first through docker CLI for that side.

`test_every_docker_flag_has_a_case` holds the cases to docker CLI 28's `--help`: a flag docker
has and no case uses fails it, so a new flag cannot go untested.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cli.test_flags_vs_docker import COMMANDS, KNOWN_MISSING, docker_flags
from tests.conftest import IS_ROOT, short_tmp, write_context
from tests.support.daemons import DockyardDaemon

DOCKER = shutil.which("docker")
pytestmark = pytest.mark.skipif(DOCKER is None, reason="docker CLI 28 not on PATH")


@dataclass(frozen=True)
class Case:
    command: str  # the (sub)command as COMMANDS names it
    args: str  # shell words after the command; placeholders {n} {tmp} {ctx} {reg} {net}
    setup: tuple[str, ...] = ()
    stdin: str = ""  # a file under {tmp} fed to stdin
    # the output holds go-units durations ("3 seconds ago", "Up 1 second") that depend on
    # when each side ran: they are normalised, and so are the tabwriter's paddings they widen
    loose_times: bool = False


def C(command: str, args: str, *setup: str, stdin: str = "", loose_times: bool = False) -> Case:
    return Case(command, args, setup, stdin, loose_times)


_LONG = "run -d --name {0}-{{n}} busybox sleep 300"
_NET = "network create --subnet 172.31.{net}.0/24 fn-{n}"
CASES: list[Case] = [
    # build: -q so that the second side's cache hits do not change the output
    C(
        "build",
        "--quiet --tag fb-{n} --label side={n} --build-arg A=1 --file {ctx}/Dockerfile --target final "
        "--iidfile {tmp}/iid --rm --force-rm --no-cache --network host --add-host h:10.0.0.1 "
        "--disable-content-trust {ctx}",
    ),
    C(
        "build",
        "-q --cpu-period 100000 --cpu-quota 50000 --cpu-shares 512 --cpuset-cpus 0 "
        "--cpuset-mems 0 --memory 64m --memory-swap 128m --shm-size 64m "
        "--ulimit nofile=1024:2048 --cgroup-parent /fb {ctx}",
    ),
    C("build", "-q --compress --cache-from busybox {ctx}"),
    C("build", "-q --isolation default --security-opt seccomp=unconfined {ctx}"),
    C("build", "-q --platform linux/amd64 {ctx}"),
    C("build", "-q --squash {ctx}"),
    C("build", "-q --pull {ctx}"),
    # exec
    C("exec", "--detach fe-{n} true", _LONG.format("fe")),
    C(
        "exec",
        "--detach-keys ctrl-x --env A=1 --env-file {tmp}/env --interactive --user 1000 "
        "--workdir /tmp --privileged fe-{n} sh -c 'echo $A $E1 $(id -u) $(pwd)'",
        _LONG.format("fe"),
    ),
    C("exec", "--tty fe-{n} true", _LONG.format("fe")),
    # ps
    C(
        "ps",
        "--all --filter name=fe-{n} --format '{{.Names}} {{.Size}}' --last 1 --no-trunc --size",
        _LONG.format("fe"),
    ),
    C("ps", "--latest --quiet --filter name=fe-{n}", _LONG.format("fe")),
    # images
    C(
        "images",
        "--all --digests --filter reference=busybox --format '{{.Repository}} {{.Digest}}' "
        "--no-trunc",
    ),
    C("images", "--quiet busybox"),
    C("images", "--tree"),
    # logs
    C(
        "logs",
        "--details --since 0 --until 2100-01-01T00:00:00Z --tail 1 --timestamps fl-{n}",
        "run --name fl-{n} busybox sh -c 'echo a; echo b'",
    ),
    C("logs", "--follow fl-{n}", "run --name fl-{n} busybox sh -c 'echo a; echo b'"),
    # inspect
    C("inspect", "--format '{{.Name}}' --size --type container fe-{n}", _LONG.format("fe")),
    # cp
    C("cp", "--archive {tmp}/env fe-{n}:/tmp/", _LONG.format("fe")),
    C(
        "cp",
        "--follow-link --quiet fe-{n}:/tmp/lnk {tmp}/out",
        _LONG.format("fe"),
        "exec fe-{n} ln -s /etc/hostname /tmp/lnk",
    ),
    C("cp", "--follow-link fe-{n}:/tmp/lnk -", _LONG.format("fe"), "exec fe-{n} ln -s /a /tmp/lnk"),
    # stats
    C(
        "stats",
        "--all --no-stream --no-trunc --format '{{.Name}} {{.PIDs}}' fe-{n}",
        _LONG.format("fe"),
    ),
    # events (the daemon's /events: dockerpy's endpoint)
    C("events", "--filter container=fe-{n} --format '{{.Type}}' --since 0 --until 1"),
    C("system events", "--filter type=container --format '{{.Type}}' --since 0 --until 1"),
    C("system df", "--format '{{.Type}}'"),
    *(
        C(
            "system df",
            args,
            "run -d --name fdf-{n} -v fdv-{n}:/data busybox sleep 300",
            "run --name fdx-{n} busybox sh -c 'echo x > /f'",
            "volume create fdw-{n}",
            loose_times=True,
        )
        for args in (
            "--verbose",
            "-v --format table",
            "-v --format json",
            "-v --format '{{range .Containers}}{{.Names}} {{.Size}} {{.LocalVolumes}}\\n{{end}}'",
        )
    ),
    C("system info", "--format '{{.OSType}} {{.Driver}}'"),
    C("system prune", "--all --filter until=1h --force --volumes"),
    C("system prune", "--force --filter label=never.set=1"),
    # network
    C(
        "network create",
        "--attachable --aux-address a=172.31.{net}.5 --driver bridge --gateway 172.31.{net}.1 "
        "--internal --ip-range 172.31.{net}.0/25 --ipam-driver default --ipv4 --ipv6=false "
        "--label l=1 --opt com.docker.network.bridge.enable_icc=true --subnet 172.31.{net}.0/24 "
        "fn-{n}",
    ),
    C("network create", "--ipam-opt foo=bar fn2-{n}"),
    C("network create", "--config-from x fn3-{n}"),
    C("network create", "--config-only fn4-{n}"),
    C("network create", "--ingress fn5-{n}"),
    C("network create", "--scope swarm fn6-{n}"),
    C(
        "network connect",
        "--alias al --driver-opt k=v --ip 172.31.{net}.9 --link-local-ip 169.254.1.1 fn-{n} fe-{n}",
        _NET,
        _LONG.format("fe"),
    ),
    C("network connect", "--gw-priority 1 fn-{n} fe-{n}", _NET, _LONG.format("fe")),
    C("network connect", "--ip6 2001:db8::9 fn-{n} fe-{n}", _NET, _LONG.format("fe")),
    C("network connect", "--link fe-{n}:x fn-{n} fe-{n}", _NET, _LONG.format("fe")),
    C(
        "network disconnect",
        "--force fn-{n} fe-{n}",
        _NET,
        _LONG.format("fe"),
        "network connect fn-{n} fe-{n}",
    ),
    C("network inspect", "--format '{{.Name}} {{.Driver}}' --verbose fn-{n}", _NET),
    C("network ls", "--filter name=fn-{n} --format '{{.Name}}' --no-trunc", _NET),
    C("network ls", "--quiet --filter name=fn-{n} --no-trunc", _NET),
    C("network prune", "--filter label=never.set=1 --force"),
    C("network rm", "--force fn-{n} fn-nope-{n}", _NET),
    # volume
    C(
        "volume create",
        "--driver local --label l=1 --opt type=tmpfs --opt device=tmpfs fv-{n}",
    ),
    C(
        "volume create",
        "--availability active --group g --limit-bytes 1 --required-bytes 1 --scope single "
        "--secret s=t --sharing none --topology-preferred x=y --topology-required x=y --type "
        "mount fv2-{n}",
    ),
    C("volume inspect", "--format '{{.Name}} {{.Driver}}' fv-{n}", "volume create fv-{n}"),
    C("volume ls", "--filter name=fv-{n} --format '{{.Name}}'", "volume create fv-{n}"),
    C("volume ls", "--quiet --filter name=fv-{n}", "volume create fv-{n}"),
    C("volume ls", "--cluster"),
    C("volume prune", "--all --filter label=never.set=1 --force"),
    C("volume rm", "--force fv-{n} fv-nope-{n}", "volume create fv-{n}"),
    # registry
    C("login", "--username sc --password sc-password {reg}"),
    C("login", "--username sc --password-stdin {reg}", stdin="password"),
    C("logout", "{reg}"),
    C(
        "push",
        "--disable-content-trust --quiet {reg}/{n}/app:1",
        "login -u sc -p sc-password {reg}",
        "tag busybox {reg}/{n}/app:1",
    ),
    C("push", "--all-tags {reg}/{n}/app", "tag busybox {reg}/{n}/app:1"),
    C("push", "--platform linux/amd64 {reg}/{n}/app:1", "tag busybox {reg}/{n}/app:1"),
    C(
        "pull",
        "--disable-content-trust --quiet {reg}/{n}/app:1",
        "login -u sc -p sc-password {reg}",
        "tag busybox {reg}/{n}/app:1",
        "push -q {reg}/{n}/app:1",
    ),
    C("pull", "--all-tags --quiet {reg}/{n}/app"),
    C("pull", "--platform linux/amd64 --quiet {reg}/{n}/app:1"),
    # archives
    C("save", "--output {tmp}/s.tar busybox"),
    C("save", "--platform linux/amd64 --output {tmp}/s2.tar busybox"),
    C("load", "--input {tmp}/s.tar --quiet", "save -o {tmp}/s.tar busybox"),
    C("load", "--platform linux/amd64 --input {tmp}/s.tar", "save -o {tmp}/s.tar busybox"),
    C("load", "--quiet", "save -o {tmp}/s.tar busybox", stdin="s.tar"),
    # tags and removal
    C("tag", "busybox ft-{n}:1"),
    C("rmi", "--force --no-prune ft-{n}:1", "tag busybox ft-{n}:1"),
    C("rmi", "--platform linux/amd64 ft-{n}:1", "tag busybox ft-{n}:1"),
    C("rm", "--force --volumes fr-{n}", "run -d --name fr-{n} -v /anon busybox sleep 300"),
    C("rm", "--link fr-{n}/x", "run -d --name fr-{n} busybox sleep 300"),
    C("stop", "--signal SIGKILL --timeout 1 fs-{n}", _LONG.format("fs")),
    C("kill", "--signal SIGTERM fk-{n}", _LONG.format("fk")),
]

# Where our CLI deliberately does not do what docker CLI 28 does, by case: the product's rule
# is to refuse a setting by name rather than accept and drop it.
DELIBERATE: dict[str, str] = {
    "build -q --isolation default --security-opt seccomp=unconfined {ctx}": (
        "docker's legacy-build client never sends --security-opt: it is dropped silently; ours "
        "refuses it by name"
    ),
}
# Not done yet: ours refuses the flag by name where docker CLI 28 does the work.
NOT_YET: dict[str, str] = {}
# docker CLI 28 warns that *its* legacy builder is deprecated (DOCKER_BUILDKIT=0); our
# builder is not docker's, so the notice is taken out of docker's side.
_LEGACY_NOTICE = re.compile(
    r"DEPRECATED: The legacy builder is deprecated and will be removed in a future release\.\n"
    r"\s+BuildKit is currently disabled; enable it by removing the DOCKER_BUILDKIT=0\n"
    r"\s+environment-variable\.\n\n?"
)

_NORMALISE: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"sha256:[0-9a-f]{64}"), "sha256:<ID>"),
    (re.compile(r"\b[0-9a-f]{64}\b"), "<ID>"),
    (re.compile(r"\b[0-9a-f]{12}\b"), "<ID>"),
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)"), "<TIME>"),
    (re.compile(r"\b\d+(\.\d+)?\s?(B|kB|KB|MB|GB|KiB|MiB|GiB)\b"), "<SIZE>"),
    # the program's own name in its messages
    (re.compile(r"(^|'|\s)(?:docker|dockyard)(?=[: ])", re.M), r"\1<CLI>"),
)


_DURATION = re.compile(
    r"\b(Less than a second|About an? (minute|hour)|\d+ (seconds?|minutes|hours|days|weeks|"
    r"months|years))\b"
)


_GO_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)? [+-]\d{4} [A-Z]+")


def normalise_times(text: str) -> str:
    """Durations as <DURATION>, Go's time.Time.String() as <TIME>, and each run of two or
    more spaces (a tabwriter's padding, which a longer duration widens) as two spaces."""
    text = _GO_TIME.sub("<TIME>", _DURATION.sub("<DURATION>", text))
    return re.sub(r" {2,}", "  ", text)


def normalise(text: str, values: dict[str, str]) -> str:
    text = _LEGACY_NOTICE.sub("", text)
    for key in ("tmp", "reg", "ctx"):
        text = text.replace(values[key], "<" + key.upper() + ">")
    text = re.sub(rf"-{values['n']}\b", "-<N>", text)
    text = re.sub(rf"/{values['n']}/", "/<N>/", text)
    text = text.replace(f"172.31.{values['net']}.", "172.31.<NET>.")
    for pattern, repl in _NORMALISE:
        text = pattern.sub(repl, text)
    return text


@dataclass
class Side:
    cli: list[str]
    values: dict[str, str]

    def expand(self, text: str) -> str:
        for key, value in self.values.items():
            text = text.replace("{" + key + "}", value)
        return text


@pytest.fixture(scope="module")
def daemon() -> Iterator[DockyardDaemon]:
    """A daemon of this module's own: prunes here must not reach other tests' objects."""
    if not IS_ROOT:
        pytest.skip("needs root")
    from tests.interop.test_cli_scenario import _import_busybox

    d = DockyardDaemon(short_tmp("dyfl-")).start()
    try:
        _import_busybox(d.env())
        yield d
    finally:
        d.cleanup()


@pytest.fixture(scope="module")
def registry() -> Iterator[str]:
    from tests.registry.support import Registry

    reg = Registry(short_tmp("flreg-"), auth="htpasswd", users={"sc": "sc-password"}).start()
    try:
        yield reg.host
    finally:
        reg.cleanup()


def _run(side: Side, env: dict[str, str], words: list[str], stdin: str) -> tuple[int, str, str]:
    with open(stdin, "rb") if stdin else open("/dev/null", "rb") as f:
        proc = subprocess.run(
            [*side.cli, *words], env=env, stdin=f, capture_output=True, timeout=120
        )
    return (
        proc.returncode,
        proc.stdout.decode(errors="replace"),
        proc.stderr.decode(errors="replace"),
    )


@pytest.mark.root
@pytest.mark.parametrize("case", CASES, ids=[f"{c.command} {c.args}"[:70] for c in CASES])
def test_flag_behaves_as_docker(
    daemon: DockyardDaemon, registry: str, tmp_path: Path, case: Case
) -> None:
    env = dict(daemon.env(), DOCKER_CONFIG=str(tmp_path / "config"))
    ctx = write_context(
        tmp_path / "ctx", "FROM busybox AS final\nARG A\nRUN echo $A > /a\nLABEL k=v\n"
    )
    seen = {}
    for n, net, cli in (
        ("d", "211", [str(DOCKER)]),
        ("y", "212", [sys.executable, "-m", "dockyard.cli.main"]),
    ):
        tmp = tmp_path / n
        tmp.mkdir()
        (tmp / "env").write_text("E1=one\n")
        (tmp / "password").write_text("sc-password\n")
        values = {"n": n, "net": net, "tmp": str(tmp), "ctx": str(ctx), "reg": registry}
        side = Side(cli, values)
        for step in case.setup:
            rc, out, err = _run(
                Side([str(DOCKER)], values), env, shlex.split(side.expand(step)), ""
            )
            assert rc == 0, f"setup {step!r} failed: {out}{err}"
        words = [side.expand(w) for w in [*case.command.split(), *shlex.split(case.args)]]
        rc, out, err = _run(side, env, words, str(tmp / case.stdin) if case.stdin else "")
        out, err = normalise(out, values), normalise(err, values)
        if case.loose_times:
            out, err = normalise_times(out), normalise_times(err)
        seen[n] = (rc, out, err)
        # this side's objects go before the other side runs (containers, networks, volumes)
        _cleanup(env, n)
    if f"{case.command} {case.args}" in {**DELIBERATE, **NOT_YET}:
        assert seen["y"][0] != 0 and seen["d"][0] == 0, "the deliberate difference is gone"
        return
    assert seen["y"] == seen["d"], (
        f"docker {case.command} {case.args}\n  docker: {seen['d']!r}\n  ours:   {seen['y']!r}"
    )


def _cleanup(env: dict[str, str], n: str) -> None:
    def docker(*args: str) -> str:
        return subprocess.run(
            [str(DOCKER), *args], env=env, capture_output=True, text=True, timeout=60
        ).stdout

    ids = docker("ps", "-aq").split()
    if ids:
        docker("rm", "-f", *ids)
    for net in docker("network", "ls", "-q", "--filter", "name=fn").split():
        docker("network", "rm", net)
    vols = docker("volume", "ls", "-q").split()
    if vols:
        docker("volume", "rm", "-f", *vols)
    refs = [r for r in docker("images", "--format", "{{.Repository}}:{{.Tag}}").split()]
    doomed = [r for r in refs if not r.startswith("busybox:")]
    if doomed:
        docker("rmi", "-f", *doomed)


def test_every_docker_flag_has_a_case() -> None:
    used: dict[str, set[str]] = {}
    for case in CASES:
        for word in shlex.split(case.args):
            if word.startswith("-"):
                used.setdefault(case.command, set()).add(word.split("=")[0])
    missing = {}
    for command in COMMANDS:
        if command in ("run", "create"):
            continue  # every run/create flag: test_flags_vs_docker.py
        flags = {f for f in docker_flags(command) if f.startswith("--")}
        flags -= KNOWN_MISSING.get(command, set())
        if flags - used.get(command, set()):
            missing[command] = sorted(flags - used.get(command, set()))
    assert not missing, f"docker CLI 28 flags without a case here: {missing}"
