"""Confinement equal to Docker's: the same probe in dockerd and in dockyard, compared line by line.

The probe reports what a process sees of its confinement: capability sets, seccomp and
no_new_privs, the /dev listing, the mount table (type and flags), masked and read-only paths,
which namespaces differ from the host's, /.dockerenv, its cgroup, the network sysctls Docker
sets. IDs, sizes and overlay paths are normalised away; everything else must be equal.
"""

from __future__ import annotations

import difflib
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Clients, short_tmp
from tests.containers.helpers import docker_ok
from tests.support.daemons import ReferenceDockerd
from tests.support.rootfs import busybox_rootfs_tar

pytestmark = [pytest.mark.root, pytest.mark.dockerd]

PROBE = r"""
echo '--- status'; grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status
echo '--- id'; id
echo '--- dev'; ls -la /dev | awk '{print $1, $NF}' | grep -v '^total' | sort -k2
echo '--- shm'; ls -ld /dev/shm | awk '{print $1}'
echo '--- mounts'; awk '{print $2, $3, $4}' /proc/self/mounts
echo '--- masked'
for p in /proc/asound /proc/acpi /proc/kcore /proc/keys /proc/latency_stats /proc/timer_list \
         /proc/timer_stats /proc/sched_debug /proc/scsi /sys/firmware; do
  if [ -e $p ]; then echo "$p $(stat -c %F $p) $(cat $p 2>/dev/null | wc -c)"; fi
done
echo '--- readonly'
for p in /proc/bus /proc/fs /proc/irq /proc/sys /proc/sysrq-trigger /sys /sys/fs/cgroup; do
  if [ -e $p ]; then (touch $p/.probe 2>/dev/null || echo 1 > $p 2>/dev/null) && echo "$p writable" \
    || echo "$p read-only"; fi
done
echo '--- ns'; for ns in cgroup ipc mnt net pid uts user; do echo "$ns $(readlink /proc/self/ns/$ns)"; done
echo '--- dockerenv'; ls -l /.dockerenv | awk '{print $1, $5}'
echo '--- cgroup'; cat /proc/self/cgroup
echo '--- sysctl'; cat /proc/sys/net/ipv4/ip_unprivileged_port_start /proc/sys/net/ipv4/ping_group_range
echo '--- etc'; ls -l /etc/hostname /etc/hosts /etc/resolv.conf | awk '{print $1, $NF}'
echo '--- pid1'; cat /proc/1/cmdline | tr '\0' ' '; echo
"""


def normalise(report: str, host_ns: dict[str, str]) -> list[str]:
    out = []
    section = ""
    for line in report.splitlines():
        if line.startswith("--- "):
            section = line
        line = re.sub(r"\b[0-9a-f]{64}\b", "<id>", line)
        line = re.sub(r"/(docker|dockyard)/", "/<engine>/", line)
        if section == "--- mounts":
            line = re.sub(r"lowerdir=[^ ]*", "<overlay>", line)
            line = re.sub(r",?(size|nr_inodes|inode64|uid|gid|ptmxmode|mode)=[^, ]*", "", line)
        parts = line.split()
        if len(parts) == 2 and parts[0] in host_ns:
            line = f"{parts[0]} {'host' if parts[1] == host_ns[parts[0]] else 'private'}"
        out.append(line)
    return out


@pytest.fixture(scope="module")
def reference() -> Iterator[ReferenceDockerd]:
    if not ReferenceDockerd.available():
        pytest.skip("dockerd (Debian's docker.io) is not installed")
    d = ReferenceDockerd(short_tmp("dyref-")).start()
    try:
        proc = subprocess.run(
            ["docker", "import", str(busybox_rootfs_tar()), "busybox:latest"],
            env=d.env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        yield d
    finally:
        d.cleanup()


def _probe_dockerd(d: ReferenceDockerd, *flags: str) -> str:
    proc = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", *flags, "busybox", "sh", "-c", PROBE],
        env=d.env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _host_ns() -> dict[str, str]:
    return {
        ns: os.readlink(f"/proc/self/ns/{ns}")
        for ns in ("cgroup", "ipc", "mnt", "net", "pid", "uts", "user")
    }


@pytest.mark.parametrize(
    "flags",
    [
        [],
        ["--cap-add", "NET_ADMIN", "--cap-drop", "CHOWN"],
        ["--security-opt", "no-new-privileges", "--read-only"],
        ["-u", "1000:1000"],
        ["--init"],
    ],
    ids=["defaults", "caps", "nnp-readonly", "user", "init"],
)
def test_probe_reports_match_dockerd(
    clients: Clients, reference: ReferenceDockerd, flags: list[str]
) -> None:
    ours = docker_ok(
        clients, "run", "--rm", "--network", "none", *flags, "busybox", "sh", "-c", PROBE
    )
    theirs = _probe_dockerd(reference, *flags)
    host_ns = _host_ns()
    a, b = normalise(theirs, host_ns), normalise(ours, host_ns)
    if flags == ["--init"]:
        # tini vs dockyard-init: the same place and role, a different name.
        a = [re.sub(r"/sbin/docker-init -- ", "<init> ", x) for x in a]
        b = [re.sub(r"/sbin/docker-init -- ", "<init> ", x) for x in b]
    diff = list(difflib.unified_diff(a, b, "dockerd", "dockyard", lineterm=""))
    changed = [d for d in diff if d[:1] in "+-" and not d.startswith(("+++", "---"))]
    assert not changed, "\n".join(diff)
    assert not diff, "\n".join(diff)


def test_host_network_probe_matches(clients: Clients, reference: ReferenceDockerd) -> None:
    cmd = "readlink /proc/self/ns/net; hostname; cat /etc/hosts | head -1"
    ours = docker_ok(clients, "run", "--rm", "--network", "host", "busybox", "sh", "-c", cmd)
    proc = subprocess.run(
        ["docker", "run", "--rm", "--network", "host", "busybox", "sh", "-c", cmd],
        env=reference.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ours == proc.stdout
    assert ours.splitlines()[0] == os.readlink("/proc/self/ns/net")


def test_probe_is_sensitive(clients: Clients) -> None:
    """The comparison would notice a difference: --privileged changes the report."""
    host_ns = _host_ns()
    plain = normalise(
        docker_ok(clients, "run", "--rm", "--network", "none", "busybox", "sh", "-c", PROBE),
        host_ns,
    )
    priv = normalise(
        docker_ok(
            clients,
            "run",
            "--rm",
            "--network",
            "none",
            "--privileged",
            "busybox",
            "sh",
            "-c",
            PROBE,
        ),
        host_ns,
    )
    assert plain != priv
    assert Path("/proc/self/ns/net").exists()
