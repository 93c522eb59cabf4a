"""Docker's default seccomp profile, evaluated into a concrete OCI `linux.seccomp` section.

The profile (moby `profiles/seccomp/default.json`, shipped verbatim as package data) is a
template: rules carry `includes`/`excludes` conditions on capabilities, architecture and
kernel version. runc only understands the concrete form, so the conditions are resolved here
exactly as moby's `setupSeccomp` (`profiles/seccomp/seccomp_linux.go`) does when it builds a
container's spec.
"""

from __future__ import annotations

import json
import platform
import re
from collections.abc import Collection, Mapping
from functools import cache, lru_cache
from typing import Any

from dockyard.errors import InvalidArgument

# platform.machine() → the libseccomp names the profile's `arches` lists use (moby's goToNative).
_MACHINE_TO_NATIVE = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "i386": "x86",
    "i686": "x86",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv7l": "arm",
    "armv6l": "arm",
    "ppc64le": "ppc64le",
    "ppc64": "ppc64",
    "s390x": "s390x",
    "s390": "s390",
    "mips64": "mips64",
    "riscv64": "riscv64",
}

# libseccomp names → SCMP_ARCH_* (moby's nativeToSeccomp).
_NATIVE_TO_SECCOMP = {
    "x86": "SCMP_ARCH_X86",
    "amd64": "SCMP_ARCH_X86_64",
    "arm": "SCMP_ARCH_ARM",
    "arm64": "SCMP_ARCH_AARCH64",
    "mips64": "SCMP_ARCH_MIPS64",
    "mips64n32": "SCMP_ARCH_MIPS64N32",
    "mipsel64": "SCMP_ARCH_MIPSEL64",
    "mips3l64n32": "SCMP_ARCH_MIPSEL64N32",
    "mipsle": "SCMP_ARCH_MIPSEL",
    "ppc": "SCMP_ARCH_PPC",
    "ppc64": "SCMP_ARCH_PPC64",
    "ppc64le": "SCMP_ARCH_PPC64LE",
    "s390": "SCMP_ARCH_S390",
    "s390x": "SCMP_ARCH_S390X",
    "riscv64": "SCMP_ARCH_RISCV64",
}


@cache
def _profile_text() -> str:
    from importlib import resources  # at the first container start, not in an idle daemon

    return resources.files("dockyard.runtime").joinpath("data/seccomp-default.json").read_text()


def default_profile() -> dict[str, Any]:
    """A fresh copy of Docker's default profile, unevaluated."""
    profile: dict[str, Any] = json.loads(_profile_text())
    return profile


def _parse_kernel(release: str) -> tuple[int, int]:
    m = re.match(r"(\d+)\.(\d+)", release)
    if m is None:
        raise InvalidArgument(f"cannot parse kernel version {release!r}")
    return int(m.group(1)), int(m.group(2))


def default_seccomp(
    capabilities: Collection[str],
    arch: str = platform.machine(),
    *,
    kernel: str = platform.release(),
) -> dict[str, Any]:
    """Docker's default profile evaluated for a container with these bounding capabilities:
    a fresh copy of the evaluation kept per capability set (one per start otherwise, ~0.1 ms
    of parsing and rule matching, issue 17 row d)."""
    evaluated: dict[str, Any] = json.loads(
        _evaluated_default(frozenset(capabilities), arch, kernel)
    )
    return evaluated


@lru_cache(maxsize=32)
def _evaluated_default(capabilities: frozenset[str], arch: str, kernel: str) -> str:
    return json.dumps(evaluate_profile(default_profile(), capabilities, arch, kernel=kernel))


def evaluate_profile(
    profile: Mapping[str, Any],
    capabilities: Collection[str],
    arch: str = platform.machine(),
    *,
    kernel: str = platform.release(),
) -> dict[str, Any]:
    """Resolve a Docker-format seccomp profile into an OCI `linux.seccomp` section."""
    if profile.get("architectures") and profile.get("archMap"):
        raise InvalidArgument(
            "the seccomp profile sets both 'architectures' and 'archMap'; use only one"
        )
    native = _MACHINE_TO_NATIVE.get(arch, arch)
    running = _parse_kernel(kernel)
    caps = set(capabilities)

    out: dict[str, Any] = {"defaultAction": profile["defaultAction"]}
    if profile.get("defaultErrnoRet") is not None:
        out["defaultErrnoRet"] = profile["defaultErrnoRet"]
    architectures: list[str] = list(profile.get("architectures") or ())
    seccomp_arch = _NATIVE_TO_SECCOMP.get(native)
    for entry in profile.get("archMap") or ():
        if seccomp_arch is not None and entry["architecture"] == seccomp_arch:
            architectures.append(entry["architecture"])
            architectures.extend(entry.get("subArchitectures") or ())
            break
    if architectures:
        out["architectures"] = architectures

    syscalls: list[dict[str, Any]] = []
    for rule in profile.get("syscalls") or ():
        if not _applies(rule, caps, native, running):
            continue
        if rule.get("name") and rule.get("names"):
            raise InvalidArgument("a seccomp rule sets both 'name' and 'names'; use only one")
        names = [rule["name"]] if rule.get("name") else list(rule["names"])
        call: dict[str, Any] = {"names": names, "action": rule["action"]}
        if rule.get("errnoRet") is not None:
            call["errnoRet"] = rule["errnoRet"]
        if rule.get("args"):
            call["args"] = [
                {
                    "index": a["index"],
                    "value": a.get("value", 0),
                    "valueTwo": a.get("valueTwo", 0),
                    "op": a["op"],
                }
                for a in rule["args"]
            ]
        syscalls.append(call)
    out["syscalls"] = syscalls
    return out


def _applies(
    rule: Mapping[str, Any], caps: set[str], native: str, running: tuple[int, int]
) -> bool:
    # Same order and semantics as setupSeccomp: any excluded cap present drops the rule, every
    # included cap must be present, minKernel compares major.minor with the running kernel.
    excludes = rule.get("excludes") or {}
    includes = rule.get("includes") or {}
    if native in (excludes.get("arches") or ()):
        return False
    if any(c in caps for c in excludes.get("caps") or ()):
        return False
    if excludes.get("minKernel") and running >= _parse_kernel(excludes["minKernel"]):
        return False
    if includes.get("arches") and native not in includes["arches"]:
        return False
    if any(c not in caps for c in includes.get("caps") or ()):
        return False
    return not (includes.get("minKernel") and running < _parse_kernel(includes["minKernel"]))
