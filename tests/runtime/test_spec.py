"""Spec generation and seccomp evaluation: pure functions, no root needed."""

from __future__ import annotations

import json
import resource
from pathlib import Path
from typing import Any

import pytest

from dockyard.errors import InvalidArgument
from dockyard.runtime.seccomp import default_profile, default_seccomp
from dockyard.runtime.spec import (
    DEFAULT_CAPABILITIES,
    BindMount,
    ContainerConfig,
    Rlimit,
    build_spec,
    default_rlimits,
    write_bundle,
)


def cfg(**kwargs: Any) -> ContainerConfig:
    return ContainerConfig(rootfs=Path("/tmp/r"), args=("sh",), env=("A=1",), **kwargs)


def rules_for(seccomp: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [r for r in seccomp["syscalls"] if name in r["names"]]


def test_default_capabilities_are_dockers_fourteen() -> None:
    caps = build_spec(cfg())["process"]["capabilities"]
    assert len(DEFAULT_CAPABILITIES) == 14
    assert caps["bounding"] == caps["effective"] == caps["permitted"] == list(DEFAULT_CAPABILITIES)
    assert "inheritable" not in caps and "ambient" not in caps


def test_unknown_capability_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="CAP_NOPE"):
        build_spec(cfg(capabilities=("CAP_NOPE",)))


def test_masked_and_readonly_paths_and_mounts() -> None:
    spec = build_spec(cfg())
    assert "/proc/kcore" in spec["linux"]["maskedPaths"]
    assert "/sys/firmware" in spec["linux"]["maskedPaths"]
    assert "/proc/sys" in spec["linux"]["readonlyPaths"]
    mounts = {m["destination"]: m for m in spec["mounts"]}
    assert list(mounts)[:3] == ["/proc", "/dev", "/dev/pts"]
    assert "ro" in mounts["/sys"]["options"]
    assert "size=67108864" in mounts["/dev/shm"]["options"]
    assert spec["linux"]["resources"]["devices"][0] == {"allow": False, "access": "rwm"}


def test_privileged_lifts_confinement() -> None:
    spec = build_spec(cfg(privileged=True))
    assert "CAP_SYS_ADMIN" in spec["process"]["capabilities"]["bounding"]
    assert "maskedPaths" not in spec["linux"] and "seccomp" not in spec["linux"]
    assert spec["linux"]["resources"]["devices"] == [{"allow": True, "access": "rwm"}]


def test_seccomp_is_the_callers_choice() -> None:
    assert "seccomp" in build_spec(cfg())["linux"]
    assert "seccomp" not in build_spec(cfg(seccomp=False))["linux"]


def test_namespaces_follow_network_mode() -> None:
    def types(spec: dict[str, Any]) -> list[str]:
        return [n["type"] for n in spec["linux"]["namespaces"]]

    assert types(build_spec(cfg(), cgroup_v2=False)) == ["mount", "network", "uts", "pid", "ipc"]
    host = build_spec(cfg(network="host"), cgroup_v2=False)
    assert "network" not in types(host) and "sysctl" not in host["linux"]
    joined = build_spec(cfg(network="/run/netns/x"), cgroup_v2=False)
    assert {"type": "network", "path": "/run/netns/x"} in joined["linux"]["namespaces"]
    with pytest.raises(InvalidArgument):
        build_spec(cfg(network="bridge"))


def test_cgroup_namespace_private_on_v2_only() -> None:
    v1 = build_spec(cfg(cgroups_path="/dockyard/x"), cgroup_v2=False)
    v2 = build_spec(cfg(cgroups_path="/dockyard/x"), cgroup_v2=True)
    assert {"type": "cgroup"} not in v1["linux"]["namespaces"]
    assert {"type": "cgroup"} in v2["linux"]["namespaces"]
    assert v1["linux"]["cgroupsPath"] == v2["linux"]["cgroupsPath"] == "/dockyard/x"


def test_rlimits_never_above_the_hard_limit() -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    (nofile,) = default_rlimits()
    assert nofile.type == "RLIMIT_NOFILE"
    assert nofile.soft == nofile.hard == min(hard, 1048576)
    assert build_spec(cfg())["process"]["rlimits"] == [
        {"type": "RLIMIT_NOFILE", "soft": nofile.soft, "hard": nofile.hard}
    ]
    with pytest.raises(InvalidArgument, match="soft limit"):
        build_spec(cfg(rlimits=(Rlimit("RLIMIT_NOFILE", 10, 5),)))


def test_rlimit_above_hard_limit_refused_without_cap_sys_resource() -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    capeff = next(
        int(line.split()[1], 16)
        for line in Path("/proc/self/status").read_text().splitlines()
        if line.startswith("CapEff:")
    )
    if hard == resource.RLIM_INFINITY or capeff >> 24 & 1:
        pytest.skip("this process could raise the limit")
    with pytest.raises(InvalidArgument, match="nofile"):
        build_spec(cfg(rlimits=(Rlimit("RLIMIT_NOFILE", hard + 1, hard + 1),)))


def test_user_binds_and_readonly_root() -> None:
    spec = build_spec(
        cfg(
            uid=1000,
            gid=1000,
            additional_gids=(27,),
            readonly_rootfs=True,
            binds=(BindMount(Path("/etc/hosts"), "/etc/hosts", readonly=True),),
        )
    )
    assert spec["process"]["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [27]}
    assert spec["root"]["readonly"] is True
    bind = spec["mounts"][-1]
    assert bind == {
        "destination": "/etc/hosts",
        "type": "bind",
        "source": "/etc/hosts",
        "options": ["rbind", "rprivate", "ro"],
    }


def test_write_bundle_makes_root_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    spec = build_spec(cfg())
    spec["root"]["path"] = "rootfs"
    write_bundle(tmp_path / "b", spec)
    written = json.loads((tmp_path / "b" / "config.json").read_text())
    assert written["root"]["path"] == str(tmp_path / "b" / "rootfs")
    assert written["process"]["args"] == ["sh"]


def test_seccomp_default_caps_on_x86_64() -> None:
    sc = default_seccomp(DEFAULT_CAPABILITIES, "x86_64", kernel="6.18.0")
    assert sc["defaultAction"] == "SCMP_ACT_ERRNO" and sc["defaultErrnoRet"] == 1
    assert sc["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    # Without CAP_SYS_ADMIN: clone only without namespace flags, clone3 answers ENOSYS so
    # libc falls back to clone, and unshare/mount are not allowed at all.
    (clone,) = rules_for(sc, "clone")
    assert clone["args"] == [
        {"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}
    ]
    (clone3,) = rules_for(sc, "clone3")
    assert clone3["action"] == "SCMP_ACT_ERRNO" and clone3["errnoRet"] == 38
    assert rules_for(sc, "unshare") == [] and rules_for(sc, "mount") == []
    assert rules_for(sc, "chroot") and rules_for(sc, "arch_prctl")
    assert rules_for(sc, "ptrace")  # minKernel 4.8 rule
    assert not any("includes" in r or "excludes" in r for r in sc["syscalls"])


def test_seccomp_with_sys_admin_allows_unshare_and_any_clone() -> None:
    sc = default_seccomp((*DEFAULT_CAPABILITIES, "CAP_SYS_ADMIN"), "x86_64", kernel="6.18.0")
    assert [r.get("args") for r in rules_for(sc, "clone")] == [None]
    assert rules_for(sc, "unshare")[0]["action"] == "SCMP_ACT_ALLOW"
    assert all(r["action"] == "SCMP_ACT_ALLOW" for r in rules_for(sc, "clone3"))


def test_seccomp_arch_and_kernel_conditions() -> None:
    arm = default_seccomp(DEFAULT_CAPABILITIES, "aarch64", kernel="6.1")
    assert arm["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    assert rules_for(arm, "arch_prctl") == [] and rules_for(arm, "set_tls")
    old = default_seccomp(DEFAULT_CAPABILITIES, "x86_64", kernel="4.4.0-generic")
    assert rules_for(old, "ptrace") == []


def test_shipped_profile_is_mobys() -> None:
    profile = default_profile()
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO"
    assert len(profile["syscalls"]) == 31 and profile["archMap"][0]["architecture"] == (
        "SCMP_ARCH_X86_64"
    )


def test_the_default_seccomp_profile_is_evaluated_once_per_capability_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every start asks for it (issue 17 row d): kept per capability set, handed out as a
    fresh copy each time, the same as a fresh evaluation."""
    from dockyard.runtime import seccomp

    caps = ("CAP_CHOWN", "CAP_KILL", "CAP_SYS_MADV_NOT_A_CAP")
    fresh = seccomp.evaluate_profile(seccomp.default_profile(), caps)
    calls = []
    real = seccomp.evaluate_profile
    monkeypatch.setattr(
        seccomp, "evaluate_profile", lambda *a, **k: calls.append(a) or real(*a, **k)
    )
    first = seccomp.default_seccomp(caps)
    first["syscalls"].clear()  # a caller's change stays its own
    second = seccomp.default_seccomp(list(reversed(caps)))
    assert second == fresh and len(calls) <= 1
