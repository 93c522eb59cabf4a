"""OCI runtime spec (config.json) generation with Docker's confinement.

The defaults follow moby's `oci/defaults.go` (mounts, masked and read-only paths, device
cgroup rules) and `daemon/oci_linux.go` (capabilities, namespaces, sysctls, /dev/shm size).
The caller supplies an already-mounted root filesystem and the files it bind-mounts
(/etc/hosts, /etc/hostname, /etc/resolv.conf); `/.dockerenv` lives in the caller's init layer.
"""

from __future__ import annotations

import json
import os
import resource
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockyard.errors import InvalidArgument
from dockyard.runtime.seccomp import default_seccomp

OCI_VERSION = "1.0.2-dev"

# Linux capability numbers (include/uapi/linux/capability.h), index = bit.
ALL_CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)

# moby oci.DefaultCapabilities(); order kept as Docker writes it.
DEFAULT_CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)

MASKED_PATHS: tuple[str, ...] = (
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
)

READONLY_PATHS: tuple[str, ...] = (
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
)

# Docker's HostConfig.ShmSize default (64 MiB), applied in daemon/oci_linux.go.
DEFAULT_SHM_SIZE = 64 * 1024 * 1024

# Docker containers see the nofile limit dockerd/containerd run with (their units set
# LimitNOFILE=infinity, i.e. fs.nr_open = 1048576).
DOCKER_NOFILE = 1048576

# Linux resource numbers (include/uapi/asm-generic/resource.h); Python lacks RLIMIT_LOCKS.
_RLIMIT_NUMBERS = {
    "RLIMIT_CPU": 0,
    "RLIMIT_FSIZE": 1,
    "RLIMIT_DATA": 2,
    "RLIMIT_STACK": 3,
    "RLIMIT_CORE": 4,
    "RLIMIT_RSS": 5,
    "RLIMIT_NPROC": 6,
    "RLIMIT_NOFILE": 7,
    "RLIMIT_MEMLOCK": 8,
    "RLIMIT_AS": 9,
    "RLIMIT_LOCKS": 10,
    "RLIMIT_SIGPENDING": 11,
    "RLIMIT_MSGQUEUE": 12,
    "RLIMIT_NICE": 13,
    "RLIMIT_RTPRIO": 14,
    "RLIMIT_RTTIME": 15,
}

_UNLIMITED = 2**64 - 1


@dataclass(frozen=True)
class Rlimit:
    type: str  # "RLIMIT_NOFILE"
    soft: int
    hard: int


def _host_hard_limit(rtype: str) -> int:
    hard = resource.getrlimit(_RLIMIT_NUMBERS[rtype])[1]
    return _UNLIMITED if hard == resource.RLIM_INFINITY else hard


def default_rlimits() -> tuple[Rlimit, ...]:
    """Docker's nofile limit, lowered to the current hard limit when that is smaller.

    Without CAP_SYS_RESOURCE runc cannot raise a hard limit ("error setting rlimit type 7").
    """
    cap = min(DOCKER_NOFILE, _host_hard_limit("RLIMIT_NOFILE"))
    return (Rlimit("RLIMIT_NOFILE", cap, cap),)


@dataclass(frozen=True)
class BindMount:
    source: Path
    destination: str
    readonly: bool = False


@dataclass(frozen=True)
class ContainerConfig:
    rootfs: Path
    args: tuple[str, ...]
    env: tuple[str, ...]
    cwd: str = "/"
    uid: int = 0
    gid: int = 0
    additional_gids: tuple[int, ...] = ()
    hostname: str = ""
    terminal: bool = False
    # "host" (no net namespace), "none" (a new one with only lo) or a netns path to join.
    network: str = "none"
    binds: tuple[BindMount, ...] = ()
    readonly_rootfs: bool = False
    cgroups_path: str = ""
    capabilities: tuple[str, ...] = DEFAULT_CAPABILITIES
    privileged: bool = False
    seccomp: bool = True
    no_new_privileges: bool = False
    rlimits: tuple[Rlimit, ...] = field(default_factory=default_rlimits)


def cgroup_v2_host() -> bool:
    """True on a unified (v2-only) cgroup hierarchy."""
    return Path("/sys/fs/cgroup/cgroup.controllers").exists()


def _have_cap(cap: str) -> bool:
    bit = ALL_CAPABILITIES.index(cap)
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> bit & 1)
    return False


def _kernel_capabilities() -> tuple[str, ...]:
    try:
        last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    except OSError:
        last = len(ALL_CAPABILITIES) - 1
    return ALL_CAPABILITIES[: last + 1]


def _check_caps(caps: Collection[str]) -> None:
    unknown = sorted(set(caps) - set(ALL_CAPABILITIES))
    if unknown:
        raise InvalidArgument(f"unknown capability: {', '.join(unknown)}")


def _rlimits(limits: tuple[Rlimit, ...]) -> list[dict[str, Any]]:
    out = []
    can_raise = _have_cap("CAP_SYS_RESOURCE")
    for r in limits:
        if r.type not in _RLIMIT_NUMBERS:
            raise InvalidArgument(f"unknown rlimit {r.type!r}")
        if r.soft > r.hard:
            raise InvalidArgument(
                f"{r.type}: soft limit {r.soft} is greater than hard limit {r.hard}"
            )
        host_hard = _host_hard_limit(r.type)
        if r.hard > host_hard and not can_raise:
            name = r.type.removeprefix("RLIMIT_").lower()
            raise InvalidArgument(
                f"ulimit {name}={r.soft}:{r.hard} exceeds this host's hard limit {host_hard} "
                "and the daemon lacks CAP_SYS_RESOURCE to raise it; use a value <= "
                f"{host_hard}"
            )
        out.append({"type": r.type, "soft": r.soft, "hard": r.hard})
    return out


def _mounts(cfg: ContainerConfig) -> list[dict[str, Any]]:
    sys_ro = [] if cfg.privileged else ["ro"]
    mounts: list[dict[str, Any]] = [
        {
            "destination": "/proc",
            "type": "proc",
            "source": "proc",
            "options": ["nosuid", "noexec", "nodev"],
        },
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        },
        {
            "destination": "/sys",
            "type": "sysfs",
            "source": "sysfs",
            "options": ["nosuid", "noexec", "nodev", *sys_ro],
        },
        {
            "destination": "/sys/fs/cgroup",
            "type": "cgroup",
            "source": "cgroup",
            "options": ["nosuid", "noexec", "nodev", *sys_ro],
        },
        {
            "destination": "/dev/mqueue",
            "type": "mqueue",
            "source": "mqueue",
            "options": ["nosuid", "noexec", "nodev"],
        },
        {
            "destination": "/dev/shm",
            "type": "tmpfs",
            "source": "shm",
            "options": ["nosuid", "noexec", "nodev", "mode=1777", f"size={DEFAULT_SHM_SIZE}"],
        },
    ]
    for b in cfg.binds:
        if not b.destination.startswith("/"):
            raise InvalidArgument(f"bind mount destination {b.destination!r} must be absolute")
        # Docker's bind mounts are recursive and private unless a propagation mode is asked for.
        opts = ["rbind", "rprivate"] + (["ro"] if b.readonly else [])
        mounts.append(
            {
                "destination": b.destination,
                "type": "bind",
                "source": str(Path(b.source).absolute()),
                "options": opts,
            }
        )
    return mounts


def _device_rules(privileged: bool) -> list[dict[str, Any]]:
    if privileged:
        return [{"allow": True, "access": "rwm"}]

    def allow(major: int, minor: int, allowed: bool = True) -> dict[str, Any]:
        return {"allow": allowed, "type": "c", "major": major, "minor": minor, "access": "rwm"}

    # moby oci.DefaultLinuxSpec: deny all, then null, zero, full, urandom, tty, console;
    # /dev/tun (10:200) stays denied. runc adds its own allow rules for the default devices.
    return [
        {"allow": False, "access": "rwm"},
        allow(1, 5),
        allow(1, 3),
        allow(1, 9),
        allow(1, 8),
        allow(5, 0),
        allow(5, 1),
        allow(10, 229, allowed=False),
    ]


def _namespaces(cfg: ContainerConfig, cgroup_v2: bool) -> list[dict[str, str]]:
    ns: list[dict[str, str]] = [{"type": "mount"}]
    if cfg.network == "none":
        ns.append({"type": "network"})
    elif cfg.network != "host":
        if not cfg.network.startswith("/"):
            raise InvalidArgument(
                f"network {cfg.network!r}: expected 'host', 'none' or a netns path"
            )
        ns.append({"type": "network", "path": cfg.network})
    ns += [{"type": "uts"}, {"type": "pid"}, {"type": "ipc"}]
    # Docker's default cgroupns mode: "host" on cgroup v1, "private" on v2.
    if cgroup_v2:
        ns.append({"type": "cgroup"})
    return ns


def build_spec(cfg: ContainerConfig, *, cgroup_v2: bool | None = None) -> dict[str, Any]:
    """The config.json for `cfg`; `cgroup_v2` defaults to what this host runs."""
    if not cfg.args:
        raise InvalidArgument("no command specified")
    if not cfg.cwd.startswith("/"):
        raise InvalidArgument(f"the working directory {cfg.cwd!r} is not an absolute path")
    v2 = cgroup_v2_host() if cgroup_v2 is None else cgroup_v2
    caps = list(_kernel_capabilities()) if cfg.privileged else list(cfg.capabilities)
    _check_caps(caps)

    process: dict[str, Any] = {
        "terminal": cfg.terminal,
        "user": {"uid": cfg.uid, "gid": cfg.gid},
        "args": list(cfg.args),
        "env": list(cfg.env),
        "cwd": cfg.cwd,
        # daemon/oci_linux.go: bounding = effective = permitted; no inheritable set since the
        # CVE-2022-24769 fix, and no ambient caps.
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        "rlimits": _rlimits(cfg.rlimits),
        "noNewPrivileges": cfg.no_new_privileges,
    }
    if cfg.additional_gids:
        process["user"]["additionalGids"] = list(cfg.additional_gids)

    linux: dict[str, Any] = {
        "namespaces": _namespaces(cfg, v2),
        "resources": {"devices": _device_rules(cfg.privileged)},
    }
    if not cfg.privileged:
        linux["maskedPaths"] = list(MASKED_PATHS)
        linux["readonlyPaths"] = list(READONLY_PATHS)
    if cfg.cgroups_path:
        linux["cgroupsPath"] = cfg.cgroups_path
    if cfg.network != "host":
        # Docker 20.10+ sets these in a container's own network namespace so that unprivileged
        # users can bind low ports and ping.
        linux["sysctl"] = {
            "net.ipv4.ip_unprivileged_port_start": "0",
            "net.ipv4.ping_group_range": "0 2147483647",
        }
    if cfg.seccomp and not cfg.privileged:
        linux["seccomp"] = default_seccomp(caps)

    spec: dict[str, Any] = {
        "ociVersion": OCI_VERSION,
        "process": process,
        "root": {"path": str(Path(cfg.rootfs).absolute()), "readonly": cfg.readonly_rootfs},
        "mounts": _mounts(cfg),
        "linux": linux,
    }
    if cfg.hostname:
        spec["hostname"] = cfg.hostname
    return spec


def write_bundle(bundle_dir: Path, spec: dict[str, Any]) -> None:
    """Write `spec` as `bundle_dir/config.json` (atomically), with an absolute root path."""
    bundle_dir.mkdir(parents=True, exist_ok=True)
    spec = dict(spec)
    root = dict(spec.get("root") or {})
    if not root.get("path"):
        raise InvalidArgument("the spec has no root.path")
    root["path"] = str((bundle_dir / root["path"]).absolute())
    spec["root"] = root
    tmp = bundle_dir / f".config.json.{os.getpid()}"
    with tmp.open("w") as f:
        json.dump(spec, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(bundle_dir / "config.json")
