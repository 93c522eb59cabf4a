"""`docker top` and `docker stats`: processes and cgroup counters of a running container.

top runs the host's `ps` with the caller's arguments (default `-ef`) and keeps the rows whose
PID belongs to the container (runc ps), as moby's ContainerTop does. stats reads the cgroup
files runc made for `cgroupsPath` /dockyard/<id> (v1: one tree per controller; v2: one
unified tree) and answers in the Engine API's v1-shaped document; with stream=false two
samples a short time apart fill `precpu_stats`, so the CLI can compute CPU %.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from dockyard.engine.container_record import Container
from dockyard.engine.seams import ContainerRuntime
from dockyard.errors import Conflict, InvalidArgument, RuntimeFailure
from dockyard.runtime.spec import cgroup_v2_host

CGROUP = Path("/sys/fs/cgroup")


async def top(runtime: ContainerRuntime, rec: Container, ps_args: str) -> dict[str, Any]:
    if not rec.state.alive:
        raise Conflict(f"Container {rec.id} is not running")
    pids = set(await runtime.ps(rec.id))
    args = (ps_args or "-ef").split()
    proc = await asyncio.create_subprocess_exec(
        "ps", *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise InvalidArgument(f"ps: {err.decode().strip()}")
    lines = out.decode(errors="replace").splitlines()
    if not lines:
        raise RuntimeFailure("ps printed nothing")
    titles = lines[0].split()
    if "PID" not in titles:
        raise InvalidArgument("Couldn't find PID field in ps output")
    pid_col = titles.index("PID")
    processes = []
    for line in lines[1:]:
        fields = line.split(None, len(titles) - 1)
        if len(fields) <= pid_col:
            continue
        try:
            pid = int(fields[pid_col])
        except ValueError:
            continue
        if pid in pids:
            processes.append(fields)
    return {"Titles": titles, "Processes": processes}


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _int(path: Path) -> int:
    v = _read(path)
    try:
        return int(v)
    except ValueError:
        return 0


def _kv(path: Path) -> dict[str, int]:
    out = {}
    for line in _read(path).splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


def _system_cpu_ns() -> int:
    # /proc/stat's first line, in clock ticks, as moby's getSystemCPUUsage.
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:8]
    ticks = os.sysconf("SC_CLK_TCK")
    return sum(int(f) for f in fields) * 1_000_000_000 // ticks


_NET_FIELDS = ("rx_bytes", "rx_packets", "rx_errors", "rx_dropped")
_NET_TX = ("tx_bytes", "tx_packets", "tx_errors", "tx_dropped")


def network_counters(pid: int) -> dict[str, dict[str, int]]:
    """Per-interface counters of the container's network namespace, as libnetwork's
    Sandbox.Statistics gives them: the endpoints' interfaces (not `lo`); none for a container
    in the host's namespace. /proc/PID/net/dev is the namespace of PID, read from outside."""
    try:
        if os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat("/proc/self/ns/net").st_ino:
            return {}
        lines = Path(f"/proc/{pid}/net/dev").read_text().splitlines()[2:]
    except OSError:
        return {}
    out = {}
    for line in lines:
        name, _, rest = line.partition(":")
        name = name.strip()
        values = rest.split()
        if name == "lo" or len(values) < 12:
            continue
        # columns: rx bytes packets errs drop fifo frame compressed multicast, then tx ...
        rx = [int(v) for v in values[0:4]]
        tx = [int(v) for v in values[8:12]]
        out[name] = dict(zip(_NET_FIELDS + _NET_TX, rx + tx, strict=True))
    return out


def _sample(cid: str) -> dict[str, Any]:
    rel = f"dockyard/{cid}"
    ncpu = os.cpu_count() or 1
    if cgroup_v2_host():
        base = CGROUP / rel
        cpu = _kv(base / "cpu.stat")
        mem_stat = _kv(base / "memory.stat")
        limit_s = _read(base / "memory.max")
        limit = int(limit_s) if limit_s.isdigit() else 0
        usage = _int(base / "memory.current")
        pids = _int(base / "pids.current")
        total = cpu.get("usage_usec", 0) * 1000
        kernel = cpu.get("system_usec", 0) * 1000
        user = cpu.get("user_usec", 0) * 1000
        percpu: list[int] = []
    else:
        mem = CGROUP / "memory" / rel
        acct = CGROUP / "cpuacct" / rel
        usage = _int(mem / "memory.usage_in_bytes")
        limit = _int(mem / "memory.limit_in_bytes")
        mem_stat = _kv(mem / "memory.stat")
        total = _int(acct / "cpuacct.usage")
        percpu = [int(x) for x in _read(acct / "cpuacct.usage_percpu").split() if x.isdigit()]
        st = _kv(acct / "cpuacct.stat")
        ticks = os.sysconf("SC_CLK_TCK")
        kernel = st.get("system", 0) * 1_000_000_000 // ticks
        user = st.get("user", 0) * 1_000_000_000 // ticks
        pids = _int(CGROUP / "pids" / rel / "pids.current")
    host_mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if not limit or limit > host_mem:
        limit = host_mem
    return {
        "cpu_stats": {
            "cpu_usage": {
                "total_usage": total,
                "percpu_usage": percpu or None,
                "usage_in_kernelmode": kernel,
                "usage_in_usermode": user,
            },
            "system_cpu_usage": _system_cpu_ns(),
            "online_cpus": ncpu,
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
        },
        "memory_stats": {"usage": usage, "limit": limit, "stats": mem_stat},
        "pids_stats": {"current": pids},
    }


async def stats(rec: Container, name: str, *, previous: bool = True) -> dict[str, Any]:
    """One stats document; `previous` takes a first sample ~0.5 s earlier for precpu_stats."""
    now = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    if not rec.state.alive:
        empty: dict[str, Any] = {
            "read": "0001-01-01T00:00:00Z",
            "preread": "0001-01-01T00:00:00Z",
            "pids_stats": {},
            "blkio_stats": {},
            "num_procs": 0,
            "storage_stats": {},
            "cpu_stats": {"cpu_usage": {"total_usage": 0}, "throttling_data": {}},
            "precpu_stats": {"cpu_usage": {"total_usage": 0}, "throttling_data": {}},
            "memory_stats": {},
            "name": f"/{name}",
            "id": rec.id,
        }
        return empty
    pre = await asyncio.to_thread(_sample, rec.id) if previous else None
    pre_time = now
    if previous:
        await asyncio.sleep(0.5)
    cur = await asyncio.to_thread(_sample, rec.id)
    doc: dict[str, Any] = {
        "read": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z",
        "preread": pre_time + "Z" if pre else "0001-01-01T00:00:00Z",
        "pids_stats": cur["pids_stats"],
        "blkio_stats": {"io_service_bytes_recursive": None},
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": cur["cpu_stats"],
        "precpu_stats": pre["cpu_stats"]
        if pre
        else {"cpu_usage": {"total_usage": 0}, "throttling_data": {}},
        "memory_stats": cur["memory_stats"],
        "name": f"/{name}",
        "id": rec.id,
    }
    networks = network_counters(rec.state.pid)
    if networks:
        doc["networks"] = networks
    return doc
