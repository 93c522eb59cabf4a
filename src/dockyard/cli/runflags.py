"""The `run`/`create` flags beyond the common ones, and the HostConfig fields they make.

Kept apart from commands/ops.py so that `dockyard run` parses its flags without importing the
container-operations module (the CLI's start is on every command's hot path).
"""

from __future__ import annotations

from dockyard.cli.context import CommandError

TYPE_CHECKING = False  # typing itself costs ~1.5 ms of start-up; mypy honours this name

if TYPE_CHECKING:
    import argparse
    from typing import Any


def ram_in_bytes(value: str) -> int:
    """go-units RAMInBytes (`1mb`, `512m`, `1.5g`), as docker's `bytes` flags take them."""
    from dockyard.cli.runconfig import UsageError, parse_memory

    try:
        return parse_memory(value)
    except UsageError as exc:
        raise CommandError(str(exc), 125) from None


def parse_size(value: str) -> int:
    """A size with an optional b/k/m/g suffix (1024-based), as docker's flags take it."""
    units = {"b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
    v = value.strip().lower()
    if v and v[-1] in units:
        return int(float(v[:-1]) * units[v[-1]])
    return int(v)


def parse_duration(value: str) -> int:
    """Go's time.ParseDuration (`1m30s`, `500ms`, `2h`) in nanoseconds."""
    import re

    units = {
        "ns": 1,
        "us": 1000,
        "µs": 1000,
        "ms": 10**6,
        "s": 10**9,
        "m": 60 * 10**9,
        "h": 3600 * 10**9,
    }
    text = value.strip()
    if text in ("0", ""):
        return 0
    parts = re.findall(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text.lstrip("+"):
        raise CommandError(f'invalid argument "{value}": time: invalid duration "{value}"', 125)
    return int(sum(float(n) * units[u] for n, u in parts))


# The flags of docker run/create beyond the core set (cli/command/container/opts.go), as
# (names, kind, help, target). A target "H:Field" sets HostConfig.Field, "C:Field" sets
# Config.Field; kinds: bool, str, int, list (repeatable), map (repeatable K=V), bytes
# (RAMInBytes), duration. Flags that need more than one field are handled in extra_run_flags.
_RUN_FLAGS: list[tuple[tuple[str, ...], str, str, str]] = [
    (
        ("--annotation",),
        "map",
        "Add an annotation to the container (passed through to the OCI runtime)",
        "H:Annotations",
    ),
    (
        ("--blkio-weight",),
        "int",
        "Block IO (relative weight), between 10 and 1000, or 0 to disable",
        "H:BlkioWeight",
    ),
    (
        ("--blkio-weight-device",),
        "list",
        "Block IO weight (relative device weight)",
        "weight-device",
    ),
    (("--cgroup-parent",), "str", "Optional parent cgroup for the container", "H:CgroupParent"),
    (("--cgroupns",), "str", "Cgroup namespace to use (host|private)", "H:CgroupnsMode"),
    (("--cidfile",), "str", "Write the container ID to the file", "client"),
    (("--cpu-count",), "int", "CPU count (Windows only)", "windows"),
    (("--cpu-percent",), "int", "CPU percent (Windows only)", "windows"),
    (("--cpu-period",), "int", "Limit CPU CFS (Completely Fair Scheduler) period", "H:CpuPeriod"),
    (("--cpu-quota",), "int", "Limit CPU CFS (Completely Fair Scheduler) quota", "H:CpuQuota"),
    (
        ("--cpu-rt-period",),
        "int",
        "Limit CPU real-time period in microseconds",
        "H:CpuRealtimePeriod",
    ),
    (
        ("--cpu-rt-runtime",),
        "int",
        "Limit CPU real-time runtime in microseconds",
        "H:CpuRealtimeRuntime",
    ),
    (("-c", "--cpu-shares"), "int", "CPU shares (relative weight)", "H:CpuShares"),
    (("--cpuset-cpus",), "str", "CPUs in which to allow execution (0-3, 0,1)", "H:CpusetCpus"),
    (("--cpuset-mems",), "str", "MEMs in which to allow execution (0-3, 0,1)", "H:CpusetMems"),
    (("--device",), "list", "Add a host device to the container", "devices"),
    (
        ("--device-cgroup-rule",),
        "list",
        "Add a rule to the cgroup allowed devices list",
        "H:DeviceCgroupRules",
    ),
    (
        ("--device-read-bps",),
        "list",
        "Limit read rate (bytes per second) from a device",
        "throttle:BlkioDeviceReadBps",
    ),
    (
        ("--device-read-iops",),
        "list",
        "Limit read rate (IO per second) from a device",
        "throttle:BlkioDeviceReadIOps",
    ),
    (
        ("--device-write-bps",),
        "list",
        "Limit write rate (bytes per second) to a device",
        "throttle:BlkioDeviceWriteBps",
    ),
    (
        ("--device-write-iops",),
        "list",
        "Limit write rate (IO per second) to a device",
        "throttle:BlkioDeviceWriteIOps",
    ),
    (("--domainname",), "str", "Container NIS domain name", "C:Domainname"),
    (("--gpus",), "str", "GPU devices to add to the container ('all' to pass all GPUs)", "gpus"),
    (("--health-cmd",), "str", "Command to run to check health", "health"),
    (
        ("--health-interval",),
        "duration",
        "Time between running the check (ms|s|m|h) (default 0s)",
        "health",
    ),
    (("--health-retries",), "int", "Consecutive failures needed to report unhealthy", "health"),
    (
        ("--health-start-interval",),
        "duration",
        "Time between running the check during the start period (ms|s|m|h) (default 0s)",
        "health",
    ),
    (
        ("--health-start-period",),
        "duration",
        "Start period for the container to initialize before starting health-retries countdown (ms|s|m|h) (default 0s)",
        "health",
    ),
    (
        ("--health-timeout",),
        "duration",
        "Maximum time to allow one check to run (ms|s|m|h) (default 0s)",
        "health",
    ),
    (
        ("--io-maxbandwidth",),
        "bytes",
        "Maximum IO bandwidth limit for the system drive (Windows only)",
        "windows",
    ),
    (
        ("--io-maxiops",),
        "int",
        "Maximum IOps limit for the system drive (Windows only)",
        "windows",
    ),
    (("--ip",), "str", "IPv4 address (e.g., 172.30.100.104)", "endpoint"),
    (("--ip6",), "str", "IPv6 address (e.g., 2001:db8::33)", "endpoint"),
    (("--ipc",), "str", "IPC mode to use", "H:IpcMode"),
    (("--isolation",), "str", "Container isolation technology", "H:Isolation"),
    (("--kernel-memory",), "bytes", "Kernel memory limit", "dropped"),
    (("--label-file",), "list", "Read in a line delimited file of labels", "client"),
    (("--link",), "list", "Add link to another container", "H:Links"),
    (("--link-local-ip",), "list", "Container IPv4/IPv6 link-local addresses", "endpoint"),
    (("--log-driver",), "str", "Logging driver for the container", "log"),
    (("--log-opt",), "list", "Log driver options", "log"),
    (("--mac-address",), "str", "Container MAC address (e.g., 92:d0:c6:0a:29:33)", "endpoint"),
    (("--memory-reservation",), "bytes", "Memory soft limit", "H:MemoryReservation"),
    (
        ("--memory-swap",),
        "str",
        "Swap limit equal to memory plus swap: '-1' to enable unlimited swap",
        "swap",
    ),
    (
        ("--memory-swappiness",),
        "int",
        "Tune container memory swappiness (0 to 100) (default -1)",
        "swappiness",
    ),
    (("--network-alias",), "list", "Add network-scoped alias for the container", "endpoint"),
    (("--no-healthcheck",), "bool", "Disable any container-specified HEALTHCHECK", "health"),
    (("--oom-kill-disable",), "bool", "Disable OOM Killer", "H:OomKillDisable"),
    (("--oom-score-adj",), "int", "Tune host's OOM preferences (-1000 to 1000)", "H:OomScoreAdj"),
    (("--pid",), "str", "PID namespace to use", "H:PidMode"),
    (("--platform",), "str", "Set platform if server is multi-platform capable", "client"),
    (
        ("--pull",),
        "str",
        'Pull image before running ("always", "missing", "never") (default "missing")',
        "client",
    ),
    (("-q", "--quiet"), "bool", "Suppress the pull output", "client"),
    (("--runtime",), "str", "Runtime to use for this container", "H:Runtime"),
    (("--stop-timeout",), "int", "Timeout (in seconds) to stop a container", "C:StopTimeout"),
    (("--storage-opt",), "map", "Storage driver options for the container", "H:StorageOpt"),
    (("--sysctl",), "map", "Sysctl options", "H:Sysctls"),
    (("--use-api-socket",), "bool", "Bind mount Docker API socket and required auth", "client"),
    (("--userns",), "str", "User namespace to use", "H:UsernsMode"),
    (("--uts",), "str", "UTS namespace to use", "H:UTSMode"),
    (("--volume-driver",), "str", "Optional volume driver for the container", "H:VolumeDriver"),
    (("--volumes-from",), "list", "Mount volumes from the specified container(s)", "H:VolumesFrom"),
    (("--disable-content-trust",), "bool", "Skip image verification (default true)", "client"),
    (("-a", "--attach"), "list", "Attach to STDIN, STDOUT or STDERR", "client"),
]


def _dest(names: tuple[str, ...]) -> str:
    return names[-1].lstrip("-").replace("-", "_")


def add_extra_run_flags(p: argparse.ArgumentParser, run: bool = True) -> None:
    from dockyard.cli.flags import add_bool

    for names, kind, help_text, _target in _RUN_FLAGS:
        if kind == "bool":
            add_bool(p, *names, help=help_text, default=names[-1] == "--disable-content-trust")
        elif kind in ("list", "map"):
            p.add_argument(*names, action="append", default=[], help=help_text)
        elif kind == "int":
            p.add_argument(*names, type=int, default=None, help=help_text)
        else:
            p.add_argument(*names, default=None, help=help_text)
    if run:
        p.add_argument(
            "--detach-keys", default="", help="Override the key sequence for detaching a container"
        )
    p.add_argument("--restart", help="Restart policy (no, on-failure[:N], always, unless-stopped)")
    p.add_argument("--dns", action="append", default=[], help="Set custom DNS servers")
    p.add_argument("--dns-search", action="append", default=[], help="Set DNS search domains")
    p.add_argument("--dns-option", action="append", default=[], help="Set DNS options")
    p.add_argument("--add-host", action="append", default=[], help="Add a host-to-IP mapping")
    p.add_argument("--ulimit", action="append", default=[], help="Ulimit options")
    p.add_argument("--security-opt", action="append", default=[], help="Security options")
    p.add_argument("--mount", action="append", default=[], help="Attach a filesystem mount")
    p.add_argument("--shm-size", help="Size of /dev/shm")
    p.add_argument("-P", "--publish-all", action="store_true", help="Publish exposed ports")
    p.add_argument("--group-add", action="append", default=[], help="Additional groups")


def mount_spec(spec: str) -> dict[str, Any]:
    """docker/cli opts.MountOpt: `type=bind,source=/a,target=/b,readonly`."""
    out: dict[str, Any] = {"Type": "volume"}
    for field in spec.split(","):
        key, sep, value = field.partition("=")
        key = key.strip().lower()
        if key in ("type",):
            out["Type"] = value
        elif key in ("source", "src"):
            out["Source"] = value
        elif key in ("target", "destination", "dst"):
            out["Target"] = value
        elif key in ("readonly", "ro"):
            out["ReadOnly"] = value.lower() not in ("0", "false") if sep else True
        elif key == "bind-propagation":
            out.setdefault("BindOptions", {})["Propagation"] = value
        elif key == "volume-nocopy":
            out.setdefault("VolumeOptions", {})["NoCopy"] = True
        elif key == "tmpfs-size":
            out.setdefault("TmpfsOptions", {})["SizeBytes"] = parse_size(value)
        elif key == "tmpfs-mode":
            out.setdefault("TmpfsOptions", {})["Mode"] = int(value, 8)
        else:
            raise CommandError(
                f'invalid argument "{spec}" for "--mount" flag: unexpected key \'{key}\''
            )
    return out


def _kv(items: list[str], flag: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        if not key:
            raise CommandError(f'invalid argument "{item}" for "{flag}" flag', 125)
        out[key] = value
    return out


def _table_flags(args: argparse.Namespace, extra: dict[str, Any]) -> None:
    """The declarative part of _RUN_FLAGS: one field per flag."""
    for names, kind, _help, target in _RUN_FLAGS:
        if not target.startswith(("H:", "C:")):
            continue
        value = getattr(args, _dest(names), None)
        if value in (None, [], False):
            continue
        if kind == "map":
            value = _kv(value, names[-1])
        elif kind == "bytes":
            value = ram_in_bytes(value)
        elif kind == "duration":
            value = parse_duration(value)
        key = target[2:] if target.startswith("H:") else "Config." + target[2:]
        extra[key] = value


def _healthcheck(args: argparse.Namespace) -> dict[str, Any] | None:
    """opts.go: --health-* make Config.Healthcheck; --no-healthcheck is Test ["NONE"]."""
    cmd = getattr(args, "health_cmd", None)
    timing = {
        "Interval": getattr(args, "health_interval", None),
        "Timeout": getattr(args, "health_timeout", None),
        "StartPeriod": getattr(args, "health_start_period", None),
        "StartInterval": getattr(args, "health_start_interval", None),
    }
    retries = getattr(args, "health_retries", None)
    given = cmd is not None or retries is not None or any(v is not None for v in timing.values())
    if getattr(args, "no_healthcheck", False):
        if given:
            raise CommandError("--no-healthcheck conflicts with --health-* options", 125)
        return {"Test": ["NONE"]}
    if not given:
        return None
    doc: dict[str, Any] = {"Test": ["CMD-SHELL", cmd] if cmd else None}
    for key, value in timing.items():
        ns = parse_duration(value) if value is not None else 0
        if ns < 0:
            raise CommandError(f"--health-{key.lower()} cannot be negative", 125)
        doc[key] = ns
    if retries is not None and retries < 0:
        raise CommandError("--health-retries cannot be negative", 125)
    doc["Retries"] = retries or 0
    return doc


def check_platform_flags(args: argparse.Namespace, code: int = 1) -> None:
    """Windows-only flags: docker's CLI refuses them against a Linux daemon (opts.go), with
    status 1 for run as for create (measured)."""
    for names, _kind, _help, target in _RUN_FLAGS:
        if target == "windows" and getattr(args, _dest(names), None) not in (None, 0, "", "0"):
            raise CommandError(
                f'"{names[-1]}" is only supported on a Docker daemon running on windows, but the '
                "Docker daemon is running on linux",
                code,
            )


def extra_run_flags(args: argparse.Namespace) -> dict[str, Any]:
    """Create-body fields for the flags above: HostConfig keys, "Config.X" for Config.X, and
    "Endpoint" for the endpoint settings of the container's network.

    --kernel-memory is accepted and not sent, as docker CLI 28 does (API 1.42 dropped it).
    """
    extra: dict[str, Any] = {}
    _table_flags(args, extra)
    health = _healthcheck(args)
    if health is not None:
        extra["Config.Healthcheck"] = health
    devices = []
    for spec in getattr(args, "device", None) or []:
        parts = spec.split(":")
        host = parts[0]
        inside = parts[1] if len(parts) > 1 and parts[1] else host
        perms = parts[2] if len(parts) > 2 else "rwm"
        devices.append({"PathOnHost": host, "PathInContainer": inside, "CgroupPermissions": perms})
    if devices:
        extra["Devices"] = devices
    weights = []
    for spec in getattr(args, "blkio_weight_device", None) or []:
        path, _, weight = spec.rpartition(":")
        try:
            weights.append({"Path": path, "Weight": int(weight)})
        except ValueError:
            raise CommandError(
                f'invalid argument "{spec}" for "--blkio-weight-device" flag', 125
            ) from None
    if weights:
        extra["BlkioWeightDevice"] = weights
    for names, _kind, _help, target in _RUN_FLAGS:
        if target.startswith("throttle:"):
            rates = []
            for spec in getattr(args, _dest(names), None) or []:
                path, _, rate = spec.rpartition(":")
                try:
                    amount = int(rate) if "iops" in names[-1] else ram_in_bytes(rate)
                except ValueError:
                    raise CommandError(
                        f'invalid argument "{spec}" for "{names[-1]}" flag', 125
                    ) from None
                rates.append({"Path": path, "Rate": amount})
            if rates:
                extra[target.split(":", 1)[1]] = rates
    if getattr(args, "log_driver", None) or getattr(args, "log_opt", None):
        extra["LogConfig"] = {
            "Type": args.log_driver or "",
            "Config": _kv(args.log_opt or [], "--log-opt"),
        }
    swap = getattr(args, "memory_swap", None)
    if swap:
        extra["MemorySwap"] = -1 if swap == "-1" else parse_size(swap)
    # opts.go sends the flag's default (-1: the kernel's setting) when it is not given
    swappiness = getattr(args, "memory_swappiness", None)
    extra["MemorySwappiness"] = -1 if swappiness is None else swappiness
    if getattr(args, "cidfile", None):
        extra["ContainerIDFile"] = args.cidfile
    if getattr(args, "gpus", None):
        count = -1 if args.gpus == "all" else None
        extra["DeviceRequests"] = [
            {
                "Driver": "",
                "Count": count if count is not None else 0,
                "DeviceIDs": None,
                "Capabilities": [["gpu"]],
                "Options": {},
            }
        ]
    endpoint: dict[str, Any] = {}
    ipam: dict[str, Any] = {}
    if getattr(args, "ip", None):
        ipam["IPv4Address"] = args.ip
    if getattr(args, "ip6", None):
        ipam["IPv6Address"] = args.ip6
    if getattr(args, "link_local_ip", None):
        ipam["LinkLocalIPs"] = list(args.link_local_ip)
    if ipam:
        endpoint["IPAMConfig"] = ipam
    if getattr(args, "network_alias", None):
        network = getattr(args, "network", None) or "default"
        if network in ("default", "bridge", "host", "none") or network.startswith("container:"):
            raise CommandError(
                "network-scoped aliases are only supported for user-defined networks", 125
            )
        endpoint["Aliases"] = list(args.network_alias)
    if getattr(args, "mac_address", None):
        endpoint["MacAddress"] = args.mac_address
    if endpoint:
        extra["Endpoint"] = endpoint
    if getattr(args, "restart", None):
        name, _, count = args.restart.partition(":")
        extra["RestartPolicy"] = {"Name": name, "MaximumRetryCount": int(count or 0)}
    for flag, key in (
        ("dns", "Dns"),
        ("dns_search", "DnsSearch"),
        ("dns_option", "DnsOptions"),
        ("group_add", "GroupAdd"),
    ):
        if getattr(args, flag, None):
            extra[key] = list(getattr(args, flag))
    if getattr(args, "add_host", None):
        extra["ExtraHosts"] = list(args.add_host)
    ulimits = []
    for u in getattr(args, "ulimit", None) or []:
        name, _, values = u.partition("=")
        soft, _, hard = values.partition(":")
        try:
            ulimits.append({"Name": name, "Soft": int(soft), "Hard": int(hard or soft)})
        except ValueError:
            raise CommandError(f'invalid argument "{u}" for "--ulimit" flag') from None
    if ulimits:
        extra["Ulimits"] = ulimits
    security = []
    for opt in getattr(args, "security_opt", None) or []:
        key, sep, value = opt.partition("=")
        if key == "seccomp" and value not in ("unconfined", "builtin", ""):
            # As docker/cli does: the profile file is read here and sent inline.
            import json

            try:
                with open(value) as f:
                    value = json.dumps(json.load(f))
            except (OSError, ValueError) as e:
                raise CommandError(f"opening seccomp profile ({value}) failed: {e}") from None
        security.append(f"{key}{sep}{value}")
    if security:
        extra["SecurityOpt"] = security
    if getattr(args, "mount", None):
        extra["Mounts"] = [mount_spec(m) for m in args.mount]
    if getattr(args, "shm_size", None):
        extra["ShmSize"] = parse_size(args.shm_size)
    if getattr(args, "publish_all", False):
        extra["PublishAllPorts"] = True
    return extra
