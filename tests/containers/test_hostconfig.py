"""HostConfig parsing: what is accepted, what is refused by name, and what it becomes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dockyard.engine.hostconfig import (
    PortBinding,
    capabilities,
    human_size,
    parse_bind,
    parse_device_rule,
    parse_host_config,
    parse_log_config,
    parse_mount,
)
from dockyard.errors import InvalidArgument, NotSupported
from dockyard.runtime.monitor import LogOptions
from dockyard.runtime.spec import DEFAULT_CAPABILITIES, ContainerConfig, Resources, build_spec

# What the docker CLI 28 sends for a plain `docker run` (captured on the wire).
CLI_DEFAULTS = json.loads(
    '{"Binds":null,"ContainerIDFile":"","LogConfig":{"Type":"","Config":{}},'
    '"NetworkMode":"default","PortBindings":{},"RestartPolicy":{"Name":"no",'
    '"MaximumRetryCount":0},"AutoRemove":false,"VolumeDriver":"","VolumesFrom":null,'
    '"ConsoleSize":[0,0],"CapAdd":null,"CapDrop":null,"CgroupnsMode":"","Dns":[],'
    '"DnsOptions":[],"DnsSearch":[],"ExtraHosts":null,"GroupAdd":null,"IpcMode":"",'
    '"Cgroup":"","Links":null,"OomScoreAdj":0,"PidMode":"","Privileged":false,'
    '"PublishAllPorts":false,"ReadonlyRootfs":false,"SecurityOpt":null,"UTSMode":"",'
    '"UsernsMode":"","ShmSize":0,"Isolation":"","CpuShares":0,"Memory":0,"NanoCpus":0,'
    '"CgroupParent":"","BlkioWeight":0,"BlkioWeightDevice":[],"BlkioDeviceReadBps":[],'
    '"BlkioDeviceWriteBps":[],"BlkioDeviceReadIOps":[],"BlkioDeviceWriteIOps":[],'
    '"CpuPeriod":0,"CpuQuota":0,"CpuRealtimePeriod":0,"CpuRealtimeRuntime":0,"CpusetCpus":"",'
    '"CpusetMems":"","Devices":[],"DeviceCgroupRules":null,"DeviceRequests":null,'
    '"MemoryReservation":0,"MemorySwap":0,"MemorySwappiness":-1,"OomKillDisable":false,'
    '"PidsLimit":0,"Ulimits":[],"CpuCount":0,"CpuPercent":0,"IOMaximumIOps":0,'
    '"IOMaximumBandwidth":0,"MaskedPaths":null,"ReadonlyPaths":null}'
)


def test_docker_cli_defaults_are_accepted() -> None:
    opts = parse_host_config(CLI_DEFAULTS)
    assert opts.capabilities == DEFAULT_CAPABILITIES
    assert opts.network_mode == "default"
    assert opts.resources.to_oci() == {}
    assert not opts.mounts and not opts.ports


@pytest.mark.parametrize(
    ("key", "value", "flag"),
    [
        ("DeviceRequests", [{"Driver": "nvidia"}], "--gpus"),
        ("OomScoreAdj", 500, "--oom-score-adj"),
        ("UsernsMode", "host", "--userns"),
        ("CgroupParent", "/mine", "--cgroup-parent"),
        ("LogConfig", {"Type": "syslog"}, "syslog"),
    ],
)
def test_unsupported_settings_are_refused_by_name(key: str, value: object, flag: str) -> None:
    with pytest.raises(NotSupported, match=flag):
        parse_host_config({**CLI_DEFAULTS, key: value})


def test_runtime_is_one_of_dockerds_names_for_runc() -> None:
    for name in ("runc", "io.containerd.runc.v2", ""):
        parse_host_config({**CLI_DEFAULTS, "Runtime": name})
    with pytest.raises(InvalidArgument, match=r"^Unknown runtime specified crun$"):
        parse_host_config({**CLI_DEFAULTS, "Runtime": "crun"})


def test_binds_and_volumes() -> None:
    assert parse_bind("/src:/dst:ro").readonly
    b = parse_bind("/src:/dst:rshared")
    assert (b.type, b.source, b.target, b.propagation) == ("bind", "/src", "/dst", "rshared")
    v = parse_bind("data:/var/lib/x")
    assert (v.type, v.source) == ("volume", "data")
    anon = parse_bind("/cache")
    assert (anon.type, anon.source) == ("volume", "")
    for bad in ("./rel:/x", "/a:b", "/a:/b:zz", "a:b:c:d", "/a:/", "bad name!:/x"):
        with pytest.raises(InvalidArgument):
            parse_bind(bad)


def test_mount_entries(tmp_path: Path) -> None:
    m = parse_mount({"Type": "bind", "Source": str(tmp_path), "Target": "/t", "ReadOnly": True})
    assert m.readonly and m.type == "bind"
    with pytest.raises(InvalidArgument, match="does not exist"):
        parse_mount({"Type": "bind", "Source": str(tmp_path / "nope"), "Target": "/t"})
    t = parse_mount(
        {"Type": "tmpfs", "Target": "/run", "TmpfsOptions": {"SizeBytes": 1 << 20, "Mode": 0o700}}
    )
    assert t.tmpfs_options == ("size=1048576", "mode=700")
    with pytest.raises(InvalidArgument):
        parse_mount({"Type": "npipe", "Target": "/x"})


def test_duplicate_mount_point_refused() -> None:
    with pytest.raises(InvalidArgument, match="Duplicate mount point"):
        parse_host_config({"Binds": ["/a:/x"], "Tmpfs": {"/x": ""}})


def test_capabilities_follow_mobys_rules() -> None:
    assert "CAP_NET_ADMIN" in capabilities(["net_admin"], [])
    assert "CAP_CHOWN" not in capabilities([], ["CHOWN"])
    assert capabilities(["NET_RAW"], ["ALL"]) == ("CAP_NET_RAW",)
    everything = capabilities(["ALL"], ["SYS_ADMIN"])
    assert "CAP_SYS_ADMIN" not in everything and "CAP_SYS_MODULE" in everything
    with pytest.raises(InvalidArgument, match="CAP_BOGUS"):
        capabilities(["BOGUS"], [])


def test_ports_and_restart_policy() -> None:
    opts = parse_host_config(
        {
            "PortBindings": {
                "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}],
                "53/udp": [{"HostIp": "", "HostPort": ""}],
            },
            "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3},
        }
    )
    assert PortBinding(80, "tcp", "127.0.0.1", 8080) in opts.ports
    assert PortBinding(53, "udp", "", 0) in opts.ports
    assert opts.restart.max_retries == 3
    for bad in ({"99999/tcp": [{}]}, {"80/sctp": [{}]}, {"80": [{"HostIp": "nope"}]}):
        with pytest.raises((InvalidArgument, NotSupported)):
            parse_host_config({"PortBindings": bad})
    with pytest.raises(InvalidArgument, match="AutoRemove"):
        parse_host_config({"AutoRemove": True, "RestartPolicy": {"Name": "always"}})
    with pytest.raises(InvalidArgument):
        parse_host_config({"RestartPolicy": {"Name": "sometimes"}})


def test_security_opts() -> None:
    assert parse_host_config({"SecurityOpt": ["no-new-privileges"]}).no_new_privileges
    assert parse_host_config({"SecurityOpt": ["seccomp=unconfined"]}).seccomp == "unconfined"
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": []}
    opts = parse_host_config({"SecurityOpt": [f"seccomp={json.dumps(profile)}"]})
    assert opts.seccomp == "custom" and opts.seccomp_profile == profile
    with pytest.raises(InvalidArgument):
        parse_host_config({"SecurityOpt": ["seccomp=/no/such/file.json"]})
    with pytest.raises(NotSupported):
        parse_host_config({"SecurityOpt": ["label=disable"]})


def test_resources_become_oci_limits() -> None:
    opts = parse_host_config(
        {"Memory": 64 << 20, "NanoCpus": 1_500_000_000, "PidsLimit": 50, "CpuShares": 512}
    )
    oci = opts.resources.to_oci()
    assert oci["memory"] == {"limit": 64 << 20, "swap": 128 << 20}
    assert oci["cpu"] == {"shares": 512, "quota": 150000, "period": 100000}
    assert oci["pids"] == {"limit": 50}
    with pytest.raises(InvalidArgument, match="Minimum memory"):
        parse_host_config({"Memory": 1024})


def _spec(**kw: object) -> dict[str, object]:
    cfg = ContainerConfig(rootfs=Path("/r"), args=("sh",), env=(), **kw)  # type: ignore[arg-type]
    return build_spec(cfg, cgroup_v2=True)


def test_v2_spec_has_private_cgroupns_and_same_resources() -> None:
    spec = _spec(resources=Resources(memory=64 << 20, pids_limit=10))
    linux = spec["linux"]
    assert {"type": "cgroup"} in linux["namespaces"]  # type: ignore[index]
    assert linux["resources"]["memory"]["limit"] == 64 << 20  # type: ignore[index]
    assert linux["resources"]["pids"] == {"limit": 10}  # type: ignore[index]
    v1 = build_spec(ContainerConfig(rootfs=Path("/r"), args=("sh",), env=()), cgroup_v2=False)
    assert {"type": "cgroup"} not in v1["linux"]["namespaces"]


def test_custom_seccomp_and_tmpfs_and_shm_in_spec() -> None:
    from dockyard.runtime.spec import TmpfsMount

    profile = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}],
    }
    spec = _spec(
        seccomp_profile=profile, tmpfs=(TmpfsMount("/run", ("size=1m",)),), shm_size=1 << 20
    )
    assert spec["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"  # type: ignore[index]
    mounts = {m["destination"]: m for m in spec["mounts"]}  # type: ignore[union-attr]
    assert mounts["/run"]["options"] == ["nosuid", "nodev", "noexec", "size=1m"]
    assert "size=1048576" in mounts["/dev/shm"]["options"]


def test_cgroupns_mode_is_honoured() -> None:
    private = _spec(cgroupns="private")
    assert {"type": "cgroup"} in private["linux"]["namespaces"]  # type: ignore[index]
    host = build_spec(
        ContainerConfig(rootfs=Path("/r"), args=("sh",), env=(), cgroupns="host"), cgroup_v2=True
    )
    assert {"type": "cgroup"} not in host["linux"]["namespaces"]
    assert parse_host_config({"CgroupnsMode": "private"}).cgroupns == "private"


def test_namespace_modes() -> None:
    opts = parse_host_config({"PidMode": "host", "IpcMode": "container:abc", "UTSMode": "host"})
    assert (opts.pid_mode, opts.ipc_mode, opts.uts_mode) == ("host", "container:abc", "host")
    with pytest.raises(InvalidArgument):
        parse_host_config({"UTSMode": "container:abc"})
    spec = _spec(pid_ns="host", ipc_ns="/proc/1/ns/ipc", uts_ns="host", hostname="x")
    kinds = {n["type"]: n for n in spec["linux"]["namespaces"]}  # type: ignore[index]
    assert "pid" not in kinds and "uts" not in kinds and kinds["ipc"]["path"] == "/proc/1/ns/ipc"
    assert "hostname" not in spec


def test_log_config_as_dockerd_checks_it() -> None:
    assert parse_log_config({}) == LogOptions("json-file", -1, 1)
    assert parse_log_config({"Type": "none", "Config": {"anything": "x"}}).driver == "none"
    opts = parse_log_config({"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}})
    assert (opts.max_size, opts.max_file) == (10_000_000, 3)  # go-units: decimal multiples
    assert human_size("1.5k") == 1500 and human_size("2KiB") == 2000 and human_size("7") == 7
    for bad, message in (
        ({"Type": "asdf"}, "logger: no log driver named 'asdf' is registered"),
        ({"Config": {"max-file": "x"}}, 'parsing "x": invalid syntax'),
        ({"Config": {"max-size": "-1"}}, "invalid size"),
    ):
        with pytest.raises(InvalidArgument, match=message):
            parse_log_config(bad)
    with pytest.raises(NotSupported, match="syslog"):
        parse_log_config({"Type": "syslog"})


def test_device_cgroup_rules_and_memory_swappiness() -> None:
    opts = parse_host_config(
        {**CLI_DEFAULTS, "DeviceCgroupRules": ["c 1:3 mr", "a *:* rwm"], "MemorySwappiness": 0}
    )
    assert [r.to_oci() for r in opts.device_rules] == [
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "mr"},
        {"allow": True, "type": "a", "access": "rwm"},
    ]
    assert opts.resources.to_oci()["memory"] == {"swappiness": 0}
    for rule in ("c 1:3", "x 1:3 rwm", "c 1:3 rwmx", "c one:3 r"):
        with pytest.raises(InvalidArgument, match="invalid device cgroup rule format"):
            parse_device_rule(rule)
