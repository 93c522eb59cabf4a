"""engine/network.py's container endpoints with the kernel: what a start makes, and that once
a bridge is up a start runs no process at all (issue 17 row d: `unshare`, `nsenter`, `ip` and
four `iptables -C` per start cost more than the container's own runc).

The NetworkManager runs in a network namespace of the test's own (tests/support/netns.py), so
its bridge and iptables rules never reach the host's.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dockyard.engine.network import NetworkManager
from tests.conftest import IS_ROOT
from tests.support.netns import in_private_netns, ip_json

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(not IS_ROOT, reason="needs root (network namespaces, iptables)"),
]


@pytest.fixture
def spawned(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[list[str]]]:
    """The argv of every process started through subprocess meanwhile."""
    seen: list[list[str]] = []
    real_init = subprocess.Popen.__init__

    def recording(self: subprocess.Popen[Any], args: Any, *a: Any, **kw: Any) -> None:
        seen.append([str(x) for x in args] if isinstance(args, list | tuple) else [str(args)])
        real_init(self, args, *a, **kw)

    monkeypatch.setattr(subprocess.Popen, "__init__", recording)
    yield seen


def test_a_start_on_an_existing_bridge_runs_no_process(
    tmp_path: Path, spawned: list[list[str]]
) -> None:
    mgr = NetworkManager(tmp_path / "networks", tmp_path)
    bridge = mgr.get("bridge")

    def scenario() -> dict[str, Any]:
        first = tmp_path / "c1" / "netns"
        mgr.create_netns(first)
        ep1 = mgr.connect(bridge["Id"], "c1", str(first), "eth0", True)
        made_bridge = list(spawned)
        spawned.clear()
        second = tmp_path / "c2" / "netns"
        mgr.create_netns(second)
        ep2 = mgr.connect(bridge["Id"], "c2", str(second), "eth0", True)
        start = list(spawned)
        seen = {
            "addr": ip_json(second, "addr", "show", "eth0"),
            "route": ip_json(second, "route", "show"),
            "host_end": ip_json("/proc/self/ns/net", "link", "show", ep2.host_if),
        }
        spawned.clear()
        for ep, ns, cid in ((ep1, first, "c1"), (ep2, second, "c2")):
            mgr.disconnect(ep, cid, None)
            mgr.delete_netns(ns)
        seen.update(made_bridge=made_bridge, start=start, stop=list(spawned), ep2=ep2)
        seen["veths_left"] = [
            link["ifname"]
            for link in ip_json("/proc/self/ns/net", "link", "show")
            if str(link["ifname"]).startswith("veth")
        ]
        seen["rules"] = subprocess.run(
            ["iptables", "-w", "-t", "nat", "-S"], capture_output=True, text=True
        ).stdout
        return seen

    try:
        seen = in_private_netns(scenario)
    finally:  # a failed run must not leave the namespaces mounted under tmp_path
        for cid in ("c1", "c2"):
            NetworkManager.delete_netns(tmp_path / cid / "netns")
    # the first start made the bridge and its rules ...
    assert any(argv[:3] == ["ip", "link", "add"] for argv in seen["made_bridge"])
    assert any(argv[0] == "iptables" for argv in seen["made_bridge"])
    # ... and the second one ran nothing, nor did taking both down
    assert seen["start"] == []
    assert seen["stop"] == []
    ep2 = seen["ep2"]
    eth0 = seen["addr"][0]
    assert eth0["address"] == ep2.mac == "02:42:0a:d5:00:03"
    assert (ep2.ip, ep2.prefix) == ("10.213.0.3", 24)
    assert {(a["local"], a["prefixlen"]) for a in eth0["addr_info"] if a["family"] == "inet"} == {
        (ep2.ip, ep2.prefix)
    }
    assert "UP" in eth0["flags"]
    default = [r for r in seen["route"] if r["dst"] == "default"]
    assert default and default[0]["gateway"] == "10.213.0.1"
    assert seen["host_end"][0]["master"] == mgr.get("bridge")["Bridge"]
    assert seen["veths_left"] == []
    assert "MASQUERADE" in seen["rules"]
    assert not os.path.exists(tmp_path / "c1" / "netns")
    assert mgr.get("bridge")["Allocations"] == {}
