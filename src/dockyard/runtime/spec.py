"""OCI runtime spec (config.json) generation with Docker's confinement.

The defaults follow moby's `oci/defaults.go` (mounts, masked and read-only paths, device
cgroup rules) and `daemon/oci_linux.go` (capabilities, namespaces, sysctls, /dev/shm size).
The caller supplies an already-mounted root filesystem and the files it bind-mounts
(/etc/hosts, /etc/hostname, /etc/resolv.conf); `/.dockerenv` lives in the caller's init layer.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockyard.errors import InvalidArgument
from dockyard.statefile import write_json

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
RLIMIT_NUMBERS = {
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
    hard = resource.getrlimit(RLIMIT_NUMBERS[rtype])[1]
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
    # Docker's default for -v and --mount type=bind; "rshared", "rslave"... when asked for.
    propagation: str = "rprivate"


@dataclass(frozen=True)
class TmpfsMount:
    destination: str
    # Extra mount options (`size=64m,mode=1777`); Docker adds nosuid,nodev,noexec first.
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class DeviceRule:
    """A device cgroup rule (`--device-cgroup-rule 'c 1:3 rwm'`); -1 is `*` (any)."""

    type: str  # a (all), b or c
    major: int
    minor: int
    access: str

    def to_oci(self) -> dict[str, Any]:
        rule: dict[str, Any] = {"allow": True, "type": self.type, "access": self.access}
        if self.major >= 0:
            rule["major"] = self.major
        if self.minor >= 0:
            rule["minor"] = self.minor
        return rule


@dataclass(frozen=True)
class Device:
    """A host device node made in the container (`--device HOST[:CONTAINER[:PERMS]]`)."""

    host_path: str
    container_path: str
    permissions: str = "rwm"

    def spec_entries(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """(linux.devices entry, linux.resources.devices allow rule) from the host node."""
        import stat

        st = os.stat(self.host_path)
        if stat.S_ISCHR(st.st_mode):
            kind = "c"
        elif stat.S_ISBLK(st.st_mode):
            kind = "b"
        else:
            raise InvalidArgument(f"{self.host_path} is not a device node")
        major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
        node = {
            "path": self.container_path,
            "type": kind,
            "major": major,
            "minor": minor,
            "fileMode": stat.S_IMODE(st.st_mode),
            "uid": 0,
            "gid": 0,
        }
        rule = {
            "allow": True,
            "type": kind,
            "major": major,
            "minor": minor,
            "access": self.permissions,
        }
        return node, rule


INT64_MAX = (1 << 63) - 1


def default_swap(memory: int) -> int:
    """Docker: with -m and no --memory-swap, swap is allowed up to the memory limit (memory +
    swap = 2 * memory, daemon/daemon_unix.go). Past 2^63-1 Go's product wraps negative and
    the container gets unlimited swap (measured on dockerd 20.10): say -1 directly, since
    runc refuses a number that does not fit in int64."""
    return 2 * memory if 2 * memory <= INT64_MAX else -1


@dataclass(frozen=True)
class Resources:
    """The cgroup limits Docker's HostConfig sets (0 / None = unlimited, as Docker means it).

    The OCI `linux.resources` section is cgroup-v1 shaped; runc maps it onto v2 files
    (memory.max, cpu.max, pids.max) itself, so one form serves both hierarchies.
    """

    memory: int = 0
    memory_reservation: int = 0
    memory_swap: int = 0  # -1 = unlimited swap
    cpu_shares: int = 0
    cpu_quota: int = 0
    cpu_period: int = 0
    cpuset_cpus: str = ""
    cpuset_mems: str = ""
    pids_limit: int | None = None
    blkio_weight: int = 0
    memory_swappiness: int | None = None  # None: the kernel's (Docker's -1)
    cpu_rt_period: int = 0
    cpu_rt_runtime: int = 0

    def to_oci(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        mem: dict[str, Any] = {}
        if self.memory:
            mem["limit"] = self.memory
            mem["swap"] = self.memory_swap if self.memory_swap else default_swap(self.memory)
        elif self.memory_swap:
            mem["swap"] = self.memory_swap
        if self.memory_reservation:
            mem["reservation"] = self.memory_reservation
        if self.memory_swappiness is not None:
            mem["swappiness"] = self.memory_swappiness
        if mem:
            out["memory"] = mem
        cpu: dict[str, Any] = {}
        if self.cpu_shares:
            cpu["shares"] = self.cpu_shares
        if self.cpu_quota:
            cpu["quota"] = self.cpu_quota
        if self.cpu_period:
            cpu["period"] = self.cpu_period
        if self.cpuset_cpus:
            cpu["cpus"] = self.cpuset_cpus
        if self.cpuset_mems:
            cpu["mems"] = self.cpuset_mems
        if self.cpu_rt_period:
            cpu["realtimePeriod"] = self.cpu_rt_period
        if self.cpu_rt_runtime:
            cpu["realtimeRuntime"] = self.cpu_rt_runtime
        if cpu:
            out["cpu"] = cpu
        if self.pids_limit is not None and self.pids_limit != 0:
            # Docker: 0 or -1 means unlimited; runc spells unlimited as -1... or absent.
            out["pids"] = {"limit": self.pids_limit if self.pids_limit > 0 else -1}
        if self.blkio_weight:
            out["blockIO"] = {"weight": self.blkio_weight}
        return out


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
    tmpfs: tuple[TmpfsMount, ...] = ()
    readonly_rootfs: bool = False
    shm_size: int = DEFAULT_SHM_SIZE
    resources: Resources = field(default_factory=Resources)
    sysctls: tuple[tuple[str, str], ...] = ()
    cgroupns: str = ""  # "" = Docker's default for the host, "host" or "private"
    devices: tuple[Device, ...] = ()
    # --device-cgroup-rule: linux.resources.devices entries, after the defaults
    device_rules: tuple[DeviceRule, ...] = ()
    uts_ns: str = ""
    pid_ns: str = ""
    ipc_ns: str = ""
    cgroups_path: str = ""
    capabilities: tuple[str, ...] = DEFAULT_CAPABILITIES
    privileged: bool = False
    seccomp: bool = True
    # A Docker-format profile (`--security-opt seccomp=FILE`) instead of the default one.
    seccomp_profile: dict[str, Any] | None = None
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
    """Every capability this kernel knows that the daemon itself may still grant.

    --privileged asks for all of them; a capability outside our own bounding set (this VM
    has no CAP_SYS_RESOURCE) would make runc fail with "unable to apply caps".
    """
    try:
        last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    except OSError:
        last = len(ALL_CAPABILITIES) - 1
    bounding = (1 << 64) - 1
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapBnd:"):
            bounding = int(line.split()[1], 16)
    return tuple(c for i, c in enumerate(ALL_CAPABILITIES[: last + 1]) if bounding >> i & 1)


def grantable_capabilities() -> tuple[str, ...]:
    return _kernel_capabilities()


def _check_caps(caps: Collection[str]) -> None:
    unknown = sorted(set(caps) - set(ALL_CAPABILITIES))
    if unknown:
        raise InvalidArgument(f"unknown capability: {', '.join(unknown)}")


def _rlimits(limits: tuple[Rlimit, ...]) -> list[dict[str, Any]]:
    out = []
    can_raise = _have_cap("CAP_SYS_RESOURCE")
    for r in limits:
        if r.type not in RLIMIT_NUMBERS:
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
            "options": ["nosuid", "noexec", "nodev", "mode=1777", f"size={cfg.shm_size}"],
        },
    ]
    if cfg.ipc_ns == "host":
        # Docker's --ipc=host: the host's /dev/shm. (An mqueue mount made in the host's IPC
        # namespace already shows the host's queues.)
        mounts = [m for m in mounts if m["destination"] != "/dev/shm"]
        mounts.append(
            {
                "destination": "/dev/shm",
                "type": "bind",
                "source": "/dev/shm",
                "options": ["rbind", "rprivate"],
            }
        )
    for b in cfg.binds:
        if not b.destination.startswith("/"):
            raise InvalidArgument(f"bind mount destination {b.destination!r} must be absolute")
        # Docker's bind mounts are recursive and private unless a propagation mode is asked for.
        opts = ["rbind", b.propagation] + (["ro"] if b.readonly else [])
        mounts.append(
            {
                "destination": b.destination,
                "type": "bind",
                "source": str(Path(b.source).absolute()),
                "options": opts,
            }
        )
    for t in cfg.tmpfs:
        if not t.destination.startswith("/"):
            raise InvalidArgument(f"tmpfs destination {t.destination!r} must be absolute")
        # daemon/oci_linux.go: tmpfs mounts default to nosuid,nodev,noexec; user options win.
        mounts.append(
            {
                "destination": t.destination,
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "nodev", "noexec", *t.options],
            }
        )
    return mounts


# moby pkg/devices HostDevices: these /dev entries are never copied into a container.
_SKIP_DEV = {"pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev", "console"}


def host_devices() -> list[dict[str, Any]]:
    """Every block and character device of the host, for --privileged (as Docker does)."""
    import stat

    out: list[dict[str, Any]] = []

    def walk(directory: Path) -> None:
        try:
            entries = sorted(directory.iterdir())
        except OSError:
            return
        for entry in entries:
            if entry.name in _SKIP_DEV and directory == Path("/dev"):
                continue
            try:
                st = entry.lstat()
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                walk(entry)
                continue
            if stat.S_ISCHR(st.st_mode):
                kind = "c"
            elif stat.S_ISBLK(st.st_mode):
                kind = "b"
            else:
                continue
            out.append(
                {
                    "path": str(entry),
                    "type": kind,
                    "major": os.major(st.st_rdev),
                    "minor": os.minor(st.st_rdev),
                    "fileMode": stat.S_IMODE(st.st_mode),
                    "uid": st.st_uid,
                    "gid": st.st_gid,
                }
            )

    walk(Path("/dev"))
    return out


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
    # --uts/--pid/--ipc: "" a new namespace, "host" none (the host's), or a path to join.
    for kind, mode in (("uts", cfg.uts_ns), ("pid", cfg.pid_ns), ("ipc", cfg.ipc_ns)):
        if mode == "host":
            continue
        if mode and not mode.startswith("/"):
            raise InvalidArgument(f"{kind} namespace {mode!r}: expected 'host' or a path")
        ns.append({"type": kind, "path": mode} if mode else {"type": kind})
    # Docker's default cgroupns mode: "host" on cgroup v1, "private" on v2 (--cgroupns).
    if cfg.cgroupns == "private" or (cfg.cgroupns != "host" and cgroup_v2):
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

    resources = cfg.resources.to_oci()
    resources["devices"] = _device_rules(cfg.privileged)
    linux: dict[str, Any] = {
        "namespaces": _namespaces(cfg, v2),
        "resources": resources,
    }
    if cfg.privileged:
        linux["devices"] = host_devices()
    elif cfg.devices:
        entries = [d.spec_entries() for d in cfg.devices]
        linux["devices"] = [node for node, _ in entries]
        resources["devices"] += [rule for _, rule in entries]
    if not cfg.privileged:
        resources["devices"] += [rule.to_oci() for rule in cfg.device_rules]
    if not cfg.privileged:
        linux["maskedPaths"] = list(MASKED_PATHS)
        linux["readonlyPaths"] = list(READONLY_PATHS)
    if cfg.cgroups_path:
        linux["cgroupsPath"] = cfg.cgroups_path
    sysctl: dict[str, str] = {}
    if cfg.network != "host":
        # Docker 20.10+ sets these in a container's own network namespace so that unprivileged
        # users can bind low ports and ping.
        sysctl = {
            "net.ipv4.ip_unprivileged_port_start": "0",
            "net.ipv4.ping_group_range": "0 2147483647",
        }
    sysctl.update(dict(cfg.sysctls))
    if sysctl:
        linux["sysctl"] = sysctl
    if cfg.seccomp and not cfg.privileged:
        # at the first container start: an idle daemon has no use for it (0.12 MiB of heap
        # with importlib.resources)
        from dockyard.runtime.seccomp import default_seccomp, evaluate_profile

        if cfg.seccomp_profile is not None:
            linux["seccomp"] = evaluate_profile(cfg.seccomp_profile, caps)
        else:
            linux["seccomp"] = default_seccomp(caps)

    spec: dict[str, Any] = {
        "ociVersion": OCI_VERSION,
        "process": process,
        "root": {"path": str(Path(cfg.rootfs).absolute()), "readonly": cfg.readonly_rootfs},
        "mounts": _mounts(cfg),
        "linux": linux,
    }
    if cfg.hostname and not cfg.uts_ns:
        spec["hostname"] = cfg.hostname
    return spec


def write_bundle(bundle_dir: Path, spec: dict[str, Any]) -> None:
    """Write `spec` as `bundle_dir/config.json` (atomically), with an absolute root path."""
    bundle_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # rootperms.py
    spec = dict(spec)
    root = dict(spec.get("root") or {})
    if not root.get("path"):
        raise InvalidArgument("the spec has no root.path")
    root["path"] = str((bundle_dir / root["path"]).absolute())
    spec["root"] = root
    # Not fsynced (two fsyncs cost ~2-30 ms per start, issue 17 row d): the bundle is made
    # again from the container's record on every start, and runc reads it at once. Not
    # indented either: json's C encoder serves only indent=None (0.19 vs 0.50 ms a spec).
    write_json(bundle_dir / "config.json", spec, durable=False)
