"""Docker's HostConfig, checked and turned into typed run options.

Parsing happens at `create` (so bad input is refused before anything exists: no snapshot, no
record, no mount) and again at `start` from the stored request. Every setting dockyard cannot
honour is refused by name (DESIGN.md: never silently ignored). Pure: no I/O except the
host's limits for --ulimit (runtime/spec.py does that check) and a bind source's existence.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockyard.errors import InvalidArgument, NotSupported
from dockyard.runtime.monitor_protocol import LogOptions
from dockyard.runtime.spec import (
    ALL_CAPABILITIES,
    DEFAULT_CAPABILITIES,
    DEFAULT_SHM_SIZE,
    Device,
    DeviceRule,
    Resources,
    Rlimit,
    grantable_capabilities,
)

VOLUME_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
PROPAGATIONS = ("private", "rprivate", "shared", "rshared", "slave", "rslave")
RESTART_POLICIES = ("no", "always", "unless-stopped", "on-failure")
# The runtimes dockerd 20.10 registers by default; all of them run runc, as ours does.
RUNTIMES = ("", "runc", "io.containerd.runc.v2", "io.containerd.runtime.v1.linux")

# Settings whose non-default value dockyard refuses by name (DESIGN.md).
UNSUPPORTED: dict[str, str] = {
    "DeviceRequests": "--gpus",
    "OomKillDisable": "--oom-kill-disable",
    "OomScoreAdj": "--oom-score-adj",
    "BlkioDeviceReadBps": "--device-read-bps",
    "BlkioDeviceWriteBps": "--device-write-bps",
    "BlkioDeviceReadIOps": "--device-read-iops",
    "BlkioDeviceWriteIOps": "--device-write-iops",
    "BlkioWeightDevice": "--blkio-weight-device",
    "KernelMemory": "--kernel-memory",
    "KernelMemoryTCP": "--kernel-memory-tcp",
    "StorageOpt": "--storage-opt",
    "UsernsMode": "--userns",
    "CgroupParent": "--cgroup-parent",
    "Cgroup": "--cgroup",
}


@dataclass(frozen=True)
class MountSpec:
    type: str  # bind | volume | tmpfs
    target: str
    source: str = ""  # host path (bind) or volume name ("" = anonymous volume)
    readonly: bool = False
    propagation: str = "rprivate"
    nocopy: bool = False
    tmpfs_options: tuple[str, ...] = ()
    create_source: bool = False  # -v creates a missing host directory; --mount refuses

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "target": self.target,
            "source": self.source,
            "readonly": self.readonly,
            "propagation": self.propagation,
            "nocopy": self.nocopy,
            "tmpfs_options": list(self.tmpfs_options),
            "create_source": self.create_source,
        }

    @staticmethod
    def from_json(d: dict[str, Any]) -> MountSpec:
        return MountSpec(
            d["type"],
            d["target"],
            d.get("source", ""),
            bool(d.get("readonly")),
            d.get("propagation", "rprivate"),
            bool(d.get("nocopy")),
            tuple(d.get("tmpfs_options") or ()),
            bool(d.get("create_source")),
        )


@dataclass(frozen=True)
class PortBinding:
    container_port: int
    proto: str
    host_ip: str
    host_port: int  # 0 = pick a free port at start

    @property
    def key(self) -> str:
        return f"{self.container_port}/{self.proto}"


@dataclass(frozen=True)
class RestartPolicy:
    name: str = "no"
    max_retries: int = 0


@dataclass(frozen=True)
class RunOptions:
    network_mode: str = "default"
    # The driver of the volumes made for this container (engine/container_create.py).
    volume_driver: str = "local"
    mounts: tuple[MountSpec, ...] = ()
    ulimits: tuple[Rlimit, ...] = ()
    capabilities: tuple[str, ...] = DEFAULT_CAPABILITIES
    privileged: bool = False
    readonly_rootfs: bool = False
    init: bool = False
    no_new_privileges: bool = False
    seccomp: str = "default"  # default | unconfined | custom
    seccomp_profile: dict[str, Any] | None = None
    resources: Resources = field(default_factory=Resources)
    shm_size: int = DEFAULT_SHM_SIZE
    sysctls: tuple[tuple[str, str], ...] = ()
    dns: tuple[str, ...] = ()
    dns_search: tuple[str, ...] = ()
    dns_options: tuple[str, ...] = ()
    extra_hosts: tuple[tuple[str, str], ...] = ()
    ports: tuple[PortBinding, ...] = ()
    publish_all: bool = False
    restart: RestartPolicy = field(default_factory=RestartPolicy)
    group_add: tuple[str, ...] = ()
    auto_remove: bool = False
    cgroupns: str = ""
    devices: tuple[Device, ...] = ()
    pid_mode: str = ""  # "", "host" or "container:NAME"
    ipc_mode: str = ""
    uts_mode: str = ""
    volumes_from: tuple[tuple[str, str], ...] = ()  # (container, "ro" | "rw" | "")
    device_rules: tuple[DeviceRule, ...] = ()
    logging: LogOptions = field(default_factory=LogOptions)


# Drivers dockerd 20.10 registers on Linux; dockyard writes json-file (or nothing, for none).
_KNOWN_LOG_DRIVERS = (
    "awslogs", "fluentd", "gcplogs", "gelf", "journald", "json-file", "local", "logentries",
    "none", "splunk", "syslog",
)  # fmt: skip
_JSON_FILE_OPTS = ("max-file", "max-size", "compress", "labels", "labels-regex", "env",
                   "env-regex", "tag")  # fmt: skip
_HUMAN_SIZE = re.compile(r"^(\d+(?:\.\d+)?) ?([kKmMgGtTpP])?[iI]?[bB]?$")


def parse_log_config(log: dict[str, Any]) -> LogOptions:
    """HostConfig.LogConfig checked as dockerd does at create (logger.ValidateLogOpts and
    jsonfilelog.New's option parsing), in dockerd's words."""
    driver = str(log.get("Type") or "json-file")
    opts = {str(k): str(v) for k, v in (log.get("Config") or {}).items()}
    if driver == "none":
        return LogOptions(driver="none")  # moby accepts any option with none
    if driver not in _KNOWN_LOG_DRIVERS:
        raise InvalidArgument(f"logger: no log driver named '{driver}' is registered")
    if driver != "json-file":
        raise NotSupported(f"log driver {driver!r} is not supported (json-file or none)")
    for key in opts:
        if key not in _JSON_FILE_OPTS:
            raise InvalidArgument(f"unknown log opt '{key}' for json-file log driver")
    for key in ("labels", "labels-regex", "env", "env-regex", "tag"):
        if opts.get(key):
            raise NotSupported(f"--log-opt {key} is not supported by dockyard yet")
    if opts.get("compress") not in (None, "", "false"):
        raise NotSupported("--log-opt compress is not supported by dockyard yet")
    max_size = -1
    if "max-size" in opts:
        max_size = human_size(opts["max-size"])
        if max_size <= 0:
            raise InvalidArgument("max-size must be a positive number")
    max_file = 1
    if "max-file" in opts:
        try:
            max_file = int(opts["max-file"])
        except ValueError:
            raise InvalidArgument(
                f'strconv.Atoi: parsing "{opts["max-file"]}": invalid syntax'
            ) from None
        if max_file < 1:
            raise InvalidArgument("max-file cannot be less than 1")
    return LogOptions("json-file", max_size, max_file)


def human_size(text: str) -> int:
    """go-units FromHumanSize: decimal multiples (10k = 10000), as json-file's max-size."""
    m = _HUMAN_SIZE.match(text)
    if not m:
        raise InvalidArgument(f"invalid size: '{text}'")
    unit = "kmgtp".find((m.group(2) or " ").lower()) + 1
    return int(float(m.group(1)) * 1000**unit)


_DEVICE_RULE = re.compile(r"^([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})$")


def parse_device_rule(rule: str) -> DeviceRule:
    """`--device-cgroup-rule`, as moby's deviceCgroupRuleRegex reads it."""
    m = _DEVICE_RULE.match(str(rule))
    if not m:
        raise InvalidArgument(f"invalid device cgroup rule format: '{rule}'")
    kind, major, minor, access = m.groups()
    return DeviceRule(
        kind, -1 if major == "*" else int(major), -1 if minor == "*" else int(minor), access
    )


def _set(value: Any) -> bool:
    """A HostConfig value that differs from Docker's "not set"."""
    return value not in (None, "", 0, False, [], {}, -1)


def normalize_capability(name: str) -> str:
    cap = name.strip().upper()
    if cap == "ALL":
        return cap
    if not cap.startswith("CAP_"):
        cap = "CAP_" + cap
    if cap not in ALL_CAPABILITIES:
        raise InvalidArgument(f'unknown capability: "{cap}"')
    return cap


def capabilities(add: list[str], drop: list[str]) -> tuple[str, ...]:
    """moby oci/caps TweakCapabilities: "ALL" in add wins, then "ALL" in drop, then both lists."""
    adds = [normalize_capability(c) for c in add or []]
    drops = [normalize_capability(c) for c in drop or []]
    if "ALL" in adds:
        return tuple(c for c in grantable_capabilities() if c not in drops)
    if "ALL" in drops:
        return tuple(dict.fromkeys(adds))
    caps = [c for c in DEFAULT_CAPABILITIES if c not in drops]
    caps += [c for c in adds if c not in caps]
    return tuple(caps)


def _check_target(target: str, what: str) -> str:
    if "\0" in target:
        raise InvalidArgument(f"invalid {what}: mount path contains a NUL byte: {target!r}")
    if not target or not target.startswith("/"):
        raise InvalidArgument(f"invalid {what}: mount path must be absolute: {target!r}")
    if target == "/":
        raise InvalidArgument(f"invalid {what}: destination can't be '/'")
    return target.rstrip("/") or "/"


def parse_bind(spec: str) -> MountSpec:
    """A `-v` entry: `/host:/ctr[:opts]`, `name:/ctr[:opts]` or `/ctr` (anonymous volume)."""
    parts = spec.split(":")
    if len(parts) == 1:
        return MountSpec("volume", _check_target(parts[0], f"volume specification {spec!r}"))
    if len(parts) > 3 or not parts[0] or not parts[1]:
        raise InvalidArgument(f"invalid volume specification: '{spec}'")
    source, target = parts[0], parts[1]
    opts = parts[2].split(",") if len(parts) == 3 else []
    readonly = False
    propagation = "rprivate"
    nocopy = False
    for opt in opts:
        if opt in ("ro", "rw"):
            readonly = opt == "ro"
        elif opt in PROPAGATIONS:
            propagation = opt
        elif opt == "nocopy":
            nocopy = True
        elif opt in ("z", "Z", "consistent", "cached", "delegated"):
            continue  # SELinux relabel and macOS hints: no effect on this host (as Docker)
        else:
            raise InvalidArgument(f"invalid mode: {opt} in volume specification '{spec}'")
    target = _check_target(target, f"volume specification '{spec}'")
    if source.startswith("/"):
        return MountSpec("bind", target, source, readonly, propagation, create_source=True)
    if source.startswith(".") or "/" in source:
        raise InvalidArgument(
            f"invalid volume specification '{spec}': a host path must be absolute"
        )
    if not VOLUME_NAME.match(source):
        raise InvalidArgument(
            f'"{source}" includes invalid characters for a local volume name, only '
            '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host '
            "directory, use absolute path"
        )
    if propagation != "rprivate":
        raise InvalidArgument(f"invalid volume specification '{spec}': propagation on a volume")
    return MountSpec("volume", target, source, readonly, nocopy=nocopy)


def parse_mount(m: dict[str, Any]) -> MountSpec:
    """A `--mount` entry as the Engine API carries it (HostConfig.Mounts)."""
    kind = (m.get("Type") or "").lower()
    target = _check_target(m.get("Target") or m.get("Destination") or "", f"mount {kind}")
    source = m.get("Source") or ""
    readonly = bool(m.get("ReadOnly"))
    if kind == "bind":
        if not source.startswith("/"):
            raise InvalidArgument(
                f'invalid mount config for type "bind": invalid mount path: {source!r} '
                "mount path must be absolute"
            )
        opts = m.get("BindOptions") or {}
        propagation = opts.get("Propagation") or "rprivate"
        if propagation not in PROPAGATIONS:
            raise InvalidArgument(f"invalid propagation mode: {propagation}")
        if not Path(source).exists() and not opts.get("CreateMountpoint"):
            raise InvalidArgument(
                f'invalid mount config for type "bind": bind source path does not exist: {source}'
            )
        return MountSpec("bind", target, source, readonly, propagation)
    if kind == "volume":
        if source and not VOLUME_NAME.match(source):
            raise InvalidArgument(f"invalid volume name {source!r}")
        vopts = m.get("VolumeOptions") or {}
        driver = (vopts.get("DriverConfig") or {}).get("Name") or "local"
        if driver != "local":
            raise NotSupported(f"volume driver {driver!r} is not supported (only local)")
        return MountSpec("volume", target, source, readonly, nocopy=bool(vopts.get("NoCopy")))
    if kind == "tmpfs":
        if source:
            raise InvalidArgument('invalid mount config for type "tmpfs": source must be empty')
        topts = m.get("TmpfsOptions") or {}
        tmpfs_opts: list[str] = []
        if topts.get("SizeBytes"):
            tmpfs_opts.append(f"size={int(topts['SizeBytes'])}")
        if topts.get("Mode"):
            tmpfs_opts.append(f"mode={int(topts['Mode']):o}")
        if readonly:
            tmpfs_opts.append("ro")
        return MountSpec("tmpfs", target, tmpfs_options=tuple(tmpfs_opts))
    raise InvalidArgument(f"mount type {kind!r} is not supported (use bind, volume or tmpfs)")


def _tmpfs(target: str, options: str) -> MountSpec:
    target = _check_target(target, "tmpfs")
    opts = tuple(o for o in (options or "").split(",") if o)
    for o in opts:
        key = o.split("=", 1)[0]
        if key not in (
            "size",
            "mode",
            "uid",
            "gid",
            "nr_inodes",
            "nr_blocks",
            "ro",
            "rw",
            "exec",
            "noexec",
            "suid",
            "nosuid",
            "dev",
            "nodev",
            "atime",
            "noatime",
            "strictatime",
            "relatime",
            "nodiratime",
            "sync",
            "async",
            "tmpcopyup",
            "notmpcopyup",
            "mpol",
        ):
            raise InvalidArgument(f"invalid tmpfs option {o!r} for {target}")
    return MountSpec("tmpfs", target, tmpfs_options=tuple(o for o in opts if "tmpcopyup" not in o))


def _ulimit(u: dict[str, Any]) -> Rlimit:
    name = str(u.get("Name") or "").lower()
    rtype = "RLIMIT_" + name.upper()
    from dockyard.runtime.spec import RLIMIT_NUMBERS

    if rtype not in RLIMIT_NUMBERS:
        raise InvalidArgument(f"invalid ulimit type: {name}")
    soft, hard = int(u.get("Soft", 0)), int(u.get("Hard", 0))
    if soft > hard:
        raise InvalidArgument(
            f"invalid ulimit argument: {name}={soft}:{hard}: soft limit must be less than or "
            "equal to hard limit"
        )
    return Rlimit(rtype, soft, hard)


def _security_opts(opts: list[str]) -> tuple[bool, str, dict[str, Any] | None]:
    nnp = False
    seccomp = "default"
    profile: dict[str, Any] | None = None
    for raw in opts or []:
        key, sep, value = raw.partition("=")
        if not sep:
            key, sep, value = raw.partition(":")
        if key == "no-new-privileges":
            if value.lower() not in ("", "true", "false", "1", "0"):
                raise InvalidArgument(f"invalid --security-opt: {raw!r}")
            nnp = value.lower() in ("", "true", "1")
        elif key == "seccomp":
            if value == "unconfined":
                seccomp = "unconfined"
            elif value in ("", "builtin"):
                seccomp = "default"
            else:
                # The docker CLI reads seccomp=FILE itself and sends the file's JSON here.
                try:
                    loaded = json.loads(value)
                except ValueError:
                    raise InvalidArgument(
                        "--security-opt seccomp: expected a JSON profile or 'unconfined' "
                        "(the client sends the file's contents)"
                    ) from None
                if not isinstance(loaded, dict) or "defaultAction" not in loaded:
                    raise InvalidArgument(
                        "--security-opt seccomp: the profile has no defaultAction"
                    )
                seccomp, profile = "custom", loaded
        elif key == "apparmor" and value == "unconfined":
            continue  # no AppArmor on this host: unconfined is what containers get anyway
        elif key in ("label", "apparmor", "systempaths", "mask", "unmask"):
            raise NotSupported(f"--security-opt {raw} is not supported by dockyard yet")
        else:
            raise InvalidArgument(f"invalid --security-opt: {raw!r}")
    return nnp, seccomp, profile


def _ports(bindings: dict[str, Any] | None) -> tuple[PortBinding, ...]:
    out: list[PortBinding] = []
    for key, hosts in (bindings or {}).items():
        port_s, _, proto = key.partition("/")
        proto = proto or "tcp"
        if proto not in ("tcp", "udp"):
            raise InvalidArgument(f"invalid proto {proto!r} in port {key!r} (tcp or udp)")
        try:
            cport = int(port_s)
        except ValueError:
            raise InvalidArgument(f"invalid container port {port_s!r}") from None
        if not 0 < cport < 65536:
            raise InvalidArgument(f"invalid container port {cport}")
        for h in hosts or [{}]:
            hip = (h or {}).get("HostIp") or ""
            if hip:
                try:
                    ipaddress.ip_address(hip)
                except ValueError:
                    raise InvalidArgument(f"invalid host IP {hip!r} in port {key!r}") from None
            hport_s = str((h or {}).get("HostPort") or "")
            if "-" in hport_s:
                raise NotSupported("host port ranges (-p A-B:C) are not supported by dockyard")
            try:
                hport = int(hport_s) if hport_s else 0
            except ValueError:
                raise InvalidArgument(f"invalid host port {hport_s!r}") from None
            if not 0 <= hport < 65536:
                raise InvalidArgument(f"invalid host port {hport}")
            out.append(PortBinding(cport, proto, hip, hport))
    return tuple(out)


def parse_extra_hosts(entries: list[str]) -> tuple[tuple[str, str], ...]:
    out = []
    for e in entries or []:
        # Docker accepts host:ip and (API >= 1.44 CLI) host=ip.
        sep = "=" if "=" in e else ":"
        name, _, addr = e.partition(sep)
        if not name or not addr:
            raise InvalidArgument(f"invalid --add-host {e!r}: expected HOST:IP")
        if addr == "host-gateway":
            raise NotSupported("--add-host HOST:host-gateway is not supported by dockyard yet")
        try:
            ipaddress.ip_address(addr.strip("[]"))
        except ValueError:
            raise InvalidArgument(f"invalid IP address in --add-host {e!r}") from None
        out.append((name, addr.strip("[]")))
    return tuple(out)


def parse_host_config(hc: dict[str, Any], update: bool = False) -> RunOptions:
    for key, what in UNSUPPORTED.items():
        if what and _set(hc.get(key)) and hc.get(key) != "private":
            raise NotSupported(f"{what} is not supported by dockyard yet")
    for key, flag in (("PidMode", "--pid"), ("IpcMode", "--ipc"), ("UTSMode", "--uts")):
        value = str(hc.get(key) or "")
        if value in ("", "private", "shareable", "host"):
            continue
        if value.startswith("container:") and key != "UTSMode":
            continue
        raise InvalidArgument(f"invalid {flag} mode {value!r}")
    for key, what in (
        ("MaskedPaths", "--security-opt systempaths"),
        ("ReadonlyPaths", "--security-opt systempaths"),
    ):
        if hc.get(key) is not None:
            raise NotSupported(f"{what} is not supported by dockyard yet")
    swappiness = hc.get("MemorySwappiness")
    if swappiness not in (None, -1) and not 0 <= int(swappiness) <= 100:
        # moby daemon_unix.go verifyPlatformContainerResources
        raise InvalidArgument(
            f"Invalid value: {swappiness}, valid memory swappiness range is 0-100"
        )
    runtime = str(hc.get("Runtime") or "")
    if runtime not in RUNTIMES:
        # moby daemon/container.go verifyPlatformContainerSettings
        raise InvalidArgument(f"Unknown runtime specified {runtime}")
    rt_period = int(hc.get("CpuRealtimePeriod") or 0)
    rt_runtime = int(hc.get("CpuRealtimeRuntime") or 0)
    if rt_period and rt_runtime > rt_period:
        raise InvalidArgument("cpu-rt-runtime cannot be higher than cpu-rt-period")
    for key in ("CpuCount", "CpuPercent", "IOMaximumIOps", "IOMaximumBandwidth"):
        if hc.get(key):
            raise NotSupported(f"{key} applies to Windows containers only")
    if hc.get("Isolation") not in (None, "", "default"):
        raise NotSupported(f"isolation {hc.get('Isolation')!r} is not supported on Linux")
    if hc.get("CgroupnsMode") not in (None, "", "host", "private"):
        raise InvalidArgument(f"invalid cgroupns mode {hc.get('CgroupnsMode')!r}")
    logging = parse_log_config(hc.get("LogConfig") or {})

    mounts: list[MountSpec] = [parse_bind(b) for b in hc.get("Binds") or []]
    mounts += [parse_mount(m) for m in hc.get("Mounts") or []]
    mounts += [_tmpfs(t, o) for t, o in (hc.get("Tmpfs") or {}).items()]
    seen: set[str] = set()
    for m in mounts:
        if m.target in seen:
            raise InvalidArgument(f"Duplicate mount point: {m.target}")
        seen.add(m.target)

    restart = hc.get("RestartPolicy") or {}
    rname = restart.get("Name") or "no"
    if rname not in RESTART_POLICIES:
        raise InvalidArgument(f"invalid restart policy: {rname!r}")
    retries = int(restart.get("MaximumRetryCount") or 0)
    if retries and rname != "on-failure":
        raise InvalidArgument(f"maximum retry count cannot be used with restart policy '{rname}'")
    if retries < 0:
        raise InvalidArgument("maximum retry count cannot be negative")
    if rname != "no" and hc.get("AutoRemove"):
        raise InvalidArgument("can't create 'AutoRemove' container with restart policy")

    nano = int(hc.get("NanoCpus") or 0)
    quota = int(hc.get("CpuQuota") or 0)
    period = int(hc.get("CpuPeriod") or 0)
    if nano:
        if quota or period:
            raise InvalidArgument(
                "Conflicting options: Nano CPUs and CPU Period/Quota cannot both be set"
            )
        # daemon/oci_linux.go: --cpus=N becomes quota N*100000 µs per 100000 µs period.
        period = 100000
        quota = nano * period // 1_000_000_000
        if quota < 1000:
            raise InvalidArgument("Range of CPUs is from 0.01 to the number of CPUs available")
    memory = int(hc.get("Memory") or 0)
    if memory and memory < 6 * 1024 * 1024:
        raise InvalidArgument("Minimum memory limit allowed is 6MB")
    swap = int(hc.get("MemorySwap") or 0)
    if memory and swap > 0 and swap < memory:
        raise InvalidArgument(
            "Minimum memoryswap limit should be larger than memory limit, see usage"
        )
    if not memory and swap > 0 and not update:
        raise InvalidArgument(
            "You should always set the Memory limit when using Memoryswap limit, see usage"
        )
    if swap < -1:
        swap = -1  # dockerd passes any negative on, and the container's swap is unlimited
    pids = hc.get("PidsLimit")
    resources = Resources(
        memory=memory,
        memory_reservation=int(hc.get("MemoryReservation") or 0),
        memory_swap=swap,
        cpu_shares=int(hc.get("CpuShares") or 0),
        cpu_quota=quota,
        cpu_period=period,
        cpuset_cpus=hc.get("CpusetCpus") or "",
        cpuset_mems=hc.get("CpusetMems") or "",
        pids_limit=int(pids) if pids not in (None, 0) else None,
        blkio_weight=int(hc.get("BlkioWeight") or 0),
        memory_swappiness=None if swappiness in (None, -1) else int(swappiness),
        cpu_rt_period=rt_period,
        cpu_rt_runtime=rt_runtime,
    )
    nnp, seccomp, profile = _security_opts(hc.get("SecurityOpt") or [])
    shm = int(hc.get("ShmSize") or 0)
    if shm < 0:
        raise InvalidArgument("SHM size can not be less than 0")
    mode = hc.get("NetworkMode") or "default"
    ports = _ports(hc.get("PortBindings"))
    if (ports or hc.get("PublishAllPorts")) and mode == "none":
        raise InvalidArgument("conflicting options: port publishing and the none network")
    return RunOptions(
        network_mode=mode,
        volume_driver=str(hc.get("VolumeDriver") or "local"),
        mounts=tuple(mounts),
        # A null entry is a nil *Ulimit to dockerd, which skips it.
        ulimits=tuple(_ulimit(u) for u in hc.get("Ulimits") or [] if u is not None),
        capabilities=capabilities(hc.get("CapAdd") or [], hc.get("CapDrop") or []),
        privileged=bool(hc.get("Privileged")),
        readonly_rootfs=bool(hc.get("ReadonlyRootfs")),
        init=bool(hc.get("Init")),
        no_new_privileges=nnp,
        seccomp=seccomp,
        seccomp_profile=profile,
        resources=resources,
        shm_size=shm or DEFAULT_SHM_SIZE,
        sysctls=tuple((str(k), str(v)) for k, v in (hc.get("Sysctls") or {}).items()),
        dns=tuple(hc.get("Dns") or ()),
        dns_search=tuple(hc.get("DnsSearch") or ()),
        dns_options=tuple(hc.get("DnsOptions") or ()),
        extra_hosts=parse_extra_hosts(hc.get("ExtraHosts") or []),
        ports=ports,
        publish_all=bool(hc.get("PublishAllPorts")),
        restart=RestartPolicy(rname, retries),
        group_add=tuple(str(g) for g in hc.get("GroupAdd") or ()),
        auto_remove=bool(hc.get("AutoRemove")),
        cgroupns=str(hc.get("CgroupnsMode") or ""),
        devices=tuple(_device(d) for d in hc.get("Devices") or []),
        device_rules=tuple(parse_device_rule(r) for r in hc.get("DeviceCgroupRules") or []),
        logging=logging,
        pid_mode=_ns_mode(hc.get("PidMode")),
        ipc_mode=_ns_mode(hc.get("IpcMode")),
        uts_mode=_ns_mode(hc.get("UTSMode")),
        volumes_from=tuple(_volumes_from(v) for v in hc.get("VolumesFrom") or []),
    )


def _ns_mode(value: Any) -> str:
    mode = str(value or "")
    return "" if mode in ("private", "shareable") else mode


def _device(d: dict[str, Any]) -> Device:
    host = str(d.get("PathOnHost") or "")
    inside = str(d.get("PathInContainer") or host)
    perms = str(d.get("CgroupPermissions") or "rwm")
    if not host.startswith("/") or not inside.startswith("/"):
        raise InvalidArgument(f"--device {host}: paths must be absolute")
    if not perms or set(perms) - set("rwm"):
        raise InvalidArgument(f"--device {host}: invalid cgroup permissions {perms!r}")
    if not Path(host).exists():
        raise InvalidArgument(
            f"error gathering device information while adding custom device "
            f'"{host}": no such file or directory'
        )
    if Path(host).is_dir():
        raise NotSupported(f"--device {host}: whole device directories are not supported yet")
    return Device(host, inside, perms)


def _volumes_from(spec: str) -> tuple[str, str]:
    name, _, mode = spec.partition(":")
    if mode not in ("", "ro", "rw"):
        raise InvalidArgument(f"invalid mode for volumes-from: {mode}")
    if not name:
        raise InvalidArgument(f"invalid volumes-from specification: {spec!r}")
    return name, mode


# What `docker update` may change (moby api/types/container UpdateConfig: Resources and
# RestartPolicy); the rest of Resources is refused by name when set.
UPDATABLE = (
    "Memory",
    "MemorySwap",
    "MemoryReservation",
    "NanoCpus",
    "CpuShares",
    "CpuQuota",
    "CpuPeriod",
    "CpusetCpus",
    "CpusetMems",
    "PidsLimit",
    "BlkioWeight",
    "RestartPolicy",
)


def updated_host_config(
    hc: dict[str, Any], body: dict[str, Any]
) -> tuple[dict[str, Any], RunOptions]:
    """A container's HostConfig (as received) with a `docker update` body applied, and the
    options parsed from it. Unset values (0, "", null) leave a setting as it is."""
    hc = dict(hc)
    for key, value in body.items():
        if key not in UPDATABLE:
            if value in (None, 0, "", [], {}):
                continue
            raise InvalidArgument(f"update of {key} is not supported")
        if key == "RestartPolicy":
            if value and value.get("Name"):
                hc[key] = value
            continue
        if value in (None, 0, "") and key not in ("PidsLimit",):
            continue
        hc[key] = value
    if body.get("NanoCpus"):
        hc.pop("CpuQuota", None)
        hc.pop("CpuPeriod", None)
    opts = parse_host_config(hc, update=True)
    if opts.restart.name != "no" and hc.get("AutoRemove"):
        raise InvalidArgument("Restart policy cannot be updated because AutoRemove is enabled")
    return hc, opts
