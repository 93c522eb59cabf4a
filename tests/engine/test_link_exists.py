"""The bridge checks ask the daemon's own network namespace (engine/network.py link_exists),
not /sys/class/net, which shows the namespace sysfs was mounted from: in a fresh namespace
(`unshare --net`, /sys not remounted) sysfs still lists the host's eth0 and not a link made
inside."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.conftest import IS_ROOT

_PROBE = """
import subprocess
from dockyard.engine.network import link_exists
subprocess.run(["ip", "link", "add", "dyprobe0", "type", "bridge"], check=True)
print(link_exists("dyprobe0"), link_exists("lo"), link_exists("HOSTLINK"))
"""


@pytest.mark.skipif(not IS_ROOT or shutil.which("unshare") is None, reason="needs root")
def test_links_are_looked_up_in_the_daemons_namespace() -> None:
    host = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True)
    names = [line.split(":")[1].strip().split("@")[0] for line in host.stdout.splitlines()]
    outside = next(n for n in names if n != "lo")  # eth0 here: seen in sysfs, not inside
    out = subprocess.run(
        ["unshare", "--net", sys.executable, "-c", _PROBE.replace("HOSTLINK", outside)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True", "False"]
