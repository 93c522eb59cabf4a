"""System endpoints: /_ping, /version, /info, /events, /system/df, swarm's refusals, and
dockyard's own /dockyard/system/check."""

from __future__ import annotations

import json
from pathlib import Path

from aiohttp import web

from dockyard.api.helpers import (
    COMMON_HEADERS,
    Router,
    engine_of,
    filters_param,
    flag,
    json_response,
)
from dockyard.engine.events import EventFilter
from dockyard.engine.image_prune import parse_timestamp
from dockyard.errors import InvalidArgument, Unavailable


async def ping(request: web.Request) -> web.StreamResponse:
    headers = {
        "Builder-Version": "2",
        "Swarm": "inactive",
        "Cache-Control": "no-cache, no-store, must-revalidate",
        "Pragma": "no-cache",
    }
    if request.method == "HEAD":
        # Docker answers HEAD with an explicit zero length (clients probe with it).
        headers["Content-Length"] = "0"
        return web.Response(headers=headers, content_type="text/plain", charset="utf-8")
    return web.Response(body=b"OK", headers=headers, content_type="text/plain", charset="utf-8")


async def version(request: web.Request) -> web.StreamResponse:
    return json_response(engine_of(request).version())


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def kernel_features() -> dict[str, bool]:
    """What the kernel offers, in the fields of Docker's /info (pkg/sysinfo): the docker CLI
    prints a WARNING line for each one that is false, so absent fields read as missing support."""
    v1 = Path("/sys/fs/cgroup/memory").is_dir()
    if v1:
        mem, cpu = "/sys/fs/cgroup/memory/", "/sys/fs/cgroup/cpu/"
        has = {
            "MemoryLimit": Path(mem + "memory.limit_in_bytes").exists(),
            "SwapLimit": Path(mem + "memory.memsw.limit_in_bytes").exists(),
            "KernelMemory": Path(mem + "memory.kmem.limit_in_bytes").exists(),
            "KernelMemoryTCP": Path(mem + "memory.kmem.tcp.limit_in_bytes").exists(),
            "OomKillDisable": Path(mem + "memory.oom_control").exists(),
            "CpuCfsPeriod": Path(cpu + "cpu.cfs_period_us").exists(),
            "CpuCfsQuota": Path(cpu + "cpu.cfs_quota_us").exists(),
            "CPUShares": Path(cpu + "cpu.shares").exists(),
            "CPUSet": Path("/sys/fs/cgroup/cpuset").is_dir(),
            "PidsLimit": Path("/sys/fs/cgroup/pids").is_dir(),
        }
    else:
        controllers = set(_read("/sys/fs/cgroup/cgroup.controllers").split())
        has = {
            "MemoryLimit": "memory" in controllers,
            "SwapLimit": "memory" in controllers,
            "KernelMemory": False,
            "KernelMemoryTCP": False,
            "OomKillDisable": False,
            "CpuCfsPeriod": "cpu" in controllers,
            "CpuCfsQuota": "cpu" in controllers,
            "CPUShares": "cpu" in controllers,
            "CPUSet": "cpuset" in controllers,
            "PidsLimit": "pids" in controllers,
        }
    has["IPv4Forwarding"] = _read("/proc/sys/net/ipv4/ip_forward") == "1"
    has["BridgeNfIptables"] = _read("/proc/sys/net/bridge/bridge-nf-call-iptables") == "1"
    has["BridgeNfIp6tables"] = _read("/proc/sys/net/bridge/bridge-nf-call-ip6tables") == "1"
    return has


async def info(request: web.Request) -> web.StreamResponse:
    doc = engine_of(request).info()
    for key, value in kernel_features().items():
        doc.setdefault(key, value)
    return json_response(doc)


async def events(request: web.Request) -> web.StreamResponse:
    """`GET /events`: JSON messages, one per line, flushed as they happen (dockerd streams
    them the same way). With `until`, the stream ends then; otherwise when the client goes."""
    since = until = None
    if request.query.get("since"):
        since = parse_timestamp(request.query["since"], "since")
    if request.query.get("until"):
        until = parse_timestamp(request.query["until"], "until")
    if since is not None and until is not None and until < since:
        raise InvalidArgument("`since` time cannot be after `until` time")
    flt = EventFilter.parse(filters_param(request))
    resp = web.StreamResponse(status=200, headers=COMMON_HEADERS)
    resp.content_type = "application/json"
    await resp.prepare(request)
    async for ev in engine_of(request).events.subscribe(since, until, flt):
        await resp.write(json.dumps(ev.to_json()).encode() + b"\n")
    await resp.write_eof()
    return resp


async def system_df(request: web.Request) -> web.StreamResponse:
    types = request.query.getall("type", [])
    return json_response(await engine_of(request).disk_usage.report(types))


_NOT_A_MANAGER = (
    'This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to '
    "connect this node to swarm and try again."
)


async def swarm_leave(request: web.Request) -> web.StreamResponse:
    # dockerd's answer on a node outside any swarm; docker-py's tests accept it in tearDown.
    raise Unavailable("This node is not part of a swarm")


async def swarm_inspect(request: web.Request) -> web.StreamResponse:
    raise Unavailable(_NOT_A_MANAGER)


async def system_check(request: web.Request) -> web.StreamResponse:
    """`dockyard system check [--repair]` (engine/fsck.py); no Docker counterpart, hence the
    /dockyard/ prefix."""
    report = await engine_of(request).system_check(repair=flag(request, "repair"))
    return json_response(report.as_json())


def setup(router: Router) -> None:
    router.add("GET", "/_ping", ping)
    router.add("HEAD", "/_ping", ping)
    router.add("GET", "/version", version)
    router.add("GET", "/info", info)
    router.add("GET", "/events", events)
    router.add("GET", "/system/df", system_df)
    router.add("POST", "/swarm/leave", swarm_leave)
    router.add("GET", "/swarm", swarm_inspect)
    router.add("POST", "/dockyard/system/check", system_check)
