"""Our CLI's flags against docker CLI 28's (on PATH): the `--help` flag lists of the daily
commands, and, for every run/create flag, the create request both CLIs send to the same
dockyard daemon (through a recording proxy) and the exit status they end with."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dockyard.cli import commandline as cli_main
from tests.conftest import Clients, short_tmp
from tests.support.wireproxy import RecordingProxy

DOCKER = shutil.which("docker")
pytestmark = pytest.mark.skipif(DOCKER is None, reason="docker CLI 28 not on PATH")

COMMANDS = [
    "build", "run", "create", "exec", "ps", "images", "logs", "inspect", "cp", "stats",
    "events", "system df", "system events", "system info", "system prune", "network create",
    "network connect", "network disconnect", "network inspect", "network ls", "network prune",
    "network rm", "volume create", "volume inspect", "volume ls", "volume prune", "volume rm",
    "login", "logout", "push", "pull", "save", "load", "tag", "rmi", "rm", "stop", "kill",
]  # fmt: skip

# Flags of docker CLI 28 this CLI does not have yet, by command: the test fails when one of
# them appears (remove it here) or when any other flag goes missing.
KNOWN_MISSING: dict[str, set[str]] = {}

_FLAG = re.compile(r"^\s+(?:-(\w), )?--([\w-]+)")


def docker_flags(command: str) -> set[str]:
    out = subprocess.run(
        [str(DOCKER), *command.split(), "--help"],
        capture_output=True,
        text=True,
        env=dict(os.environ, DOCKER_BUILDKIT="0"),
        check=True,
    ).stdout
    flags: set[str] = set()
    options = False
    for line in out.splitlines():
        if line.startswith("Options:"):
            options = True
        elif options and (m := _FLAG.match(line)):
            flags.add("--" + m.group(2))
            if m.group(1):
                flags.add("-" + m.group(1))
    flags.discard("--help")
    return flags


def our_flags(command: str) -> set[str]:
    words = command.split()
    parser: argparse.ArgumentParser = cli_main._build_parser(words[0])
    for word in words:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs or word not in subs[0].choices:
            return set()
        parser = subs[0].choices[word]
    return {
        opt
        for action in parser._actions
        if action.help != argparse.SUPPRESS
        for opt in action.option_strings
        if opt != "--help"
    }


def coverage() -> tuple[int, int, dict[str, set[str]]]:
    have = total = 0
    missing: dict[str, set[str]] = {}
    for command in COMMANDS:
        theirs = docker_flags(command)
        ours = our_flags(command)
        total += len(theirs)
        have += len(theirs & ours)
        if theirs - ours:
            missing[command] = theirs - ours
    return have, total, missing


def test_help_lists_every_flag_docker_has() -> None:
    have, total, missing = coverage()
    print(f"flag coverage: {have}/{total}")
    unexpected = {c: m - KNOWN_MISSING.get(c, set()) for c, m in missing.items()}
    unexpected = {c: m for c, m in unexpected.items() if m}
    assert not unexpected, f"flags docker CLI 28 has and we do not: {unexpected}"
    stale = {c: k - missing.get(c, set()) for c, k in KNOWN_MISSING.items()}
    assert not any(stale.values()), f"KNOWN_MISSING lists flags we now have: {stale}"


# -- every run/create flag, on the wire ------------------------------------------------------
# A value per flag, chosen to be valid for docker's own parser.
SAMPLES: dict[str, list[str]] = {
    "--add-host": ["--add-host", "db:10.0.0.9"],
    "--annotation": ["--annotation", "org.example.k=v"],
    "--attach": ["--attach", "stdout"],
    "--blkio-weight": ["--blkio-weight", "300"],
    "--blkio-weight-device": ["--blkio-weight-device", "/dev/sda:200"],
    "--cap-add": ["--cap-add", "NET_ADMIN"],
    "--cap-drop": ["--cap-drop", "CHOWN"],
    "--cgroup-parent": ["--cgroup-parent", "/dyt"],
    "--cgroupns": ["--cgroupns", "private"],
    "--cidfile": ["--cidfile", "{tmp}/cid"],
    "--cpu-count": ["--cpu-count", "2"],
    "--cpu-percent": ["--cpu-percent", "50"],
    "--cpu-period": ["--cpu-period", "100000"],
    "--cpu-quota": ["--cpu-quota", "50000"],
    "--cpu-rt-period": ["--cpu-rt-period", "1000"],
    "--cpu-rt-runtime": ["--cpu-rt-runtime", "500"],
    "--cpu-shares": ["--cpu-shares", "512"],
    "--cpus": ["--cpus", "1.5"],
    "--cpuset-cpus": ["--cpuset-cpus", "0"],
    "--cpuset-mems": ["--cpuset-mems", "0"],
    "--device": ["--device", "/dev/null:/dev/xnull:rw"],
    "--device-cgroup-rule": ["--device-cgroup-rule", "c 1:3 rwm"],
    "--device-read-bps": ["--device-read-bps", "/dev/sda:1mb"],
    "--device-read-iops": ["--device-read-iops", "/dev/sda:100"],
    "--device-write-bps": ["--device-write-bps", "/dev/sda:2mb"],
    "--device-write-iops": ["--device-write-iops", "/dev/sda:200"],
    "--disable-content-trust": ["--disable-content-trust"],
    "--dns": ["--dns", "10.0.0.53"],
    "--dns-option": ["--dns-option", "ndots:2"],
    "--dns-search": ["--dns-search", "example.com"],
    "--domainname": ["--domainname", "example.org"],
    "--entrypoint": ["--entrypoint", "/bin/sh"],
    "--env": ["--env", "A=1"],
    "--env-file": ["--env-file", "{tmp}/env"],
    "--expose": ["--expose", "8080"],
    "--gpus": ["--gpus", "all"],
    "--group-add": ["--group-add", "10"],
    "--health-cmd": ["--health-cmd", "true"],
    "--health-interval": ["--health-interval", "1m30s"],
    "--health-retries": ["--health-retries", "3"],
    "--health-start-interval": ["--health-start-interval", "2s"],
    "--health-start-period": ["--health-start-period", "500ms"],
    "--health-timeout": ["--health-timeout", "10s"],
    "--hostname": ["--hostname", "box"],
    "--init": ["--init"],
    "--interactive": ["--interactive"],
    "--io-maxbandwidth": ["--io-maxbandwidth", "10m"],
    "--io-maxiops": ["--io-maxiops", "100"],
    "--ip": ["--ip", "172.30.100.104"],
    "--ip6": ["--ip6", "2001:db8::33"],
    "--ipc": ["--ipc", "private"],
    "--isolation": ["--isolation", "default"],
    "--kernel-memory": ["--kernel-memory", "64m"],
    "--label": ["--label", "a=b"],
    "--label-file": ["--label-file", "{tmp}/labels"],
    "--link": ["--link", "other:alias"],
    "--link-local-ip": ["--link-local-ip", "169.254.0.7"],
    "--log-driver": ["--log-driver", "json-file"],
    "--log-opt": ["--log-opt", "max-size=1m"],
    "--mac-address": ["--mac-address", "92:d0:c6:0a:29:33"],
    "--memory": ["--memory", "64m"],
    "--memory-reservation": ["--memory-reservation", "32m"],
    "--memory-swap": ["--memory-swap", "128m", "--memory", "64m"],
    "--memory-swappiness": ["--memory-swappiness", "10"],
    "--mount": ["--mount", "type=tmpfs,target=/scratch"],
    "--name": ["--name", "{name}"],
    "--network": ["--network", "none"],
    "--network-alias": ["--network-alias", "web"],
    "--no-healthcheck": ["--no-healthcheck"],
    "--oom-kill-disable": ["--oom-kill-disable"],
    "--oom-score-adj": ["--oom-score-adj", "100"],
    "--pid": ["--pid", "host"],
    "--pids-limit": ["--pids-limit", "50"],
    "--platform": ["--platform", "linux/amd64"],
    "--privileged": ["--privileged"],
    "--publish": ["--publish", "127.0.0.1:18080:80"],
    "--publish-all": ["--publish-all", "--expose", "81"],
    "--pull": ["--pull", "never"],
    "--quiet": ["--quiet"],
    "--read-only": ["--read-only"],
    "--restart": ["--restart", "on-failure:3"],
    "--rm": ["--rm"],
    "--runtime": ["--runtime", "runc"],
    "--security-opt": ["--security-opt", "no-new-privileges"],
    "--shm-size": ["--shm-size", "128m"],
    "--stop-signal": ["--stop-signal", "SIGUSR1"],
    "--stop-timeout": ["--stop-timeout", "5"],
    "--storage-opt": ["--storage-opt", "size=1G"],
    "--sysctl": ["--sysctl", "net.ipv4.ip_forward=1"],
    "--tmpfs": ["--tmpfs", "/run:size=1m"],
    "--tty": ["--tty"],
    "--ulimit": ["--ulimit", "nofile=1024:2048"],
    "--use-api-socket": ["--use-api-socket"],
    "--user": ["--user", "1000:1000"],
    "--userns": ["--userns", "host"],
    "--uts": ["--uts", "host"],
    "--volume": ["--volume", "/data"],
    "--volume-driver": ["--volume-driver", "local"],
    "--volumes-from": ["--volumes-from", "other"],
    "--workdir": ["--workdir", "/w"],
    "--detach": ["--detach"],
    "--detach-keys": ["--detach-keys", "ctrl-x"],
    "--sig-proxy": ["--sig-proxy=false"],
}


def _zeroless(value: Any) -> Any:
    """The body with zero values taken out: docker sends every field, we send fewer."""
    if isinstance(value, dict):
        out = {k: _zeroless(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, "", 0, False, [], {}, [0, 0])}
    if isinstance(value, list):
        return [_zeroless(v) for v in value]
    return value


@pytest.fixture(scope="module")
def proxy(clients: Clients) -> Iterator[RecordingProxy]:
    base = short_tmp("dyp-")
    p = RecordingProxy(clients.daemon.socket, base / "proxy.sock").start()
    try:
        yield p
    finally:
        p.stop()
        shutil.rmtree(base, ignore_errors=True)


def _create_through(
    proxy: RecordingProxy, clients: Clients, cli: list[str], args: list[str]
) -> tuple[int, Any, list[tuple[str, str]], str]:
    proxy.clear()
    env = dict(clients.daemon.env(), DOCKER_HOST=proxy.host, DOCKYARD_HOST=proxy.host)
    proc = subprocess.run(
        [*cli, "create", *args, "busybox", "true"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    creates = [r for r in proxy.requests() if r.method == "POST" and r.path == "/containers/create"]
    if proc.returncode == 0:
        subprocess.run([*cli, "rm", "-f", proc.stdout.strip()], env=env, capture_output=True)
    body = _zeroless(creates[-1].json()) if creates else None
    query = [q for q in creates[-1].query if q[0] != "name"] if creates else []
    return proc.returncode, body, query, proc.stderr


@pytest.mark.root
@pytest.mark.parametrize("flag", sorted(SAMPLES))
def test_each_run_flag_sends_what_docker_sends(
    proxy: RecordingProxy, clients: Clients, tmp_path: Path, flag: str
) -> None:
    if flag in ("--detach", "--detach-keys", "--sig-proxy"):
        pytest.skip("a flag of run only: covered by the run tests")
    (tmp_path / "env").write_text("E=1\n")
    (tmp_path / "labels").write_text("from.file=1\n")
    name = f"flag{abs(hash(flag)) % 10**6}"
    args = [a.format(tmp=tmp_path, name=name) for a in SAMPLES[flag]]
    (tmp_path / "cid").unlink(missing_ok=True)
    ours = _create_through(proxy, clients, [sys.executable, "-m", "dockyard.cli.main"], args)
    (tmp_path / "cid").unlink(missing_ok=True)
    theirs = _create_through(proxy, clients, [str(DOCKER)], args)
    assert ours[0] == theirs[0], (
        f"{flag}: exit {ours[0]} vs docker's {theirs[0]}\n{ours[3]}\n{theirs[3]}"
    )
    assert ours[2] == theirs[2], f"{flag}: create query {ours[2]} vs docker's {theirs[2]}"
    assert ours[1] == theirs[1], (
        f"{flag}: create body differs\nours:   {json.dumps(ours[1], sort_keys=True)}\n"
        f"docker: {json.dumps(theirs[1], sort_keys=True)}"
    )
