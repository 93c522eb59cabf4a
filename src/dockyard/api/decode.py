"""The JSON request bodies of the Engine API, described as moby's Go structs, and reading them.

Every JSON body is checked against its struct (api/gojson.py: Go's rules and wording) before
a handler hands it to the engine, so a wrong type is a 400 naming the field and its Go type,
never an exception halfway through an allocation. The descriptions follow moby's api/types
for API 1.44 (v25); the struct and type names in messages are those dockerd 20.10 prints
(the reference daemon of the tests). A body over 16 MiB is refused with 413 before it is
read into memory; bodies that can be big (contexts, archives, imports, loads) are never JSON
and are spooled to disk (api/streams.py).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from dockyard.api.gojson import (
    AnyValue,
    Array,
    GoType,
    Map,
    Ptr,
    Scalar,
    Slice,
    StrSlice,
    Struct,
    decode,
)
from dockyard.errors import DockyardError, InvalidArgument

MAX_JSON_BODY = 16 << 20
# Small bodies decode on the event loop; bigger ones in a worker thread.
_INLINE = 64 << 10


class BodyTooLarge(DockyardError):
    status = 413


def _string(go: str = "string") -> Scalar:
    return Scalar(go, "string")


STRING = _string()
BOOL = Scalar("bool", "bool")
INT = Scalar("int", "int")
INT64 = Scalar("int64", "int")
UINT = Scalar("uint", "uint")
UINT16 = Scalar("uint16", "uint", 16)
UINT64 = Scalar("uint64", "uint")
DURATION = Scalar("time.Duration", "int")
STRINGS = Slice(STRING, "[]string")
STRMAP = Map(STRING, "map[string]string")
STRSLICE = StrSlice()

# api/types/container: HealthConfig, Resources, HostConfig, Config
HEALTH = Struct(
    "container.HealthConfig",
    {
        "Test": STRINGS,
        "Interval": DURATION,
        "Timeout": DURATION,
        "StartPeriod": DURATION,
        "StartInterval": DURATION,
        "Retries": INT,
    },
)
WEIGHT_DEVICE = Struct("blkiodev.WeightDevice", {"Path": STRING, "Weight": UINT16})
THROTTLE_DEVICE = Struct("blkiodev.ThrottleDevice", {"Path": STRING, "Rate": UINT64})
THROTTLE_DEVICES = Slice(Ptr(THROTTLE_DEVICE), "[]*blkiodev.ThrottleDevice")
DEVICE_MAPPING = Struct(
    "container.DeviceMapping",
    {"PathOnHost": STRING, "PathInContainer": STRING, "CgroupPermissions": STRING},
)
DEVICE_REQUEST = Struct(
    "container.DeviceRequest",
    {
        "Driver": STRING,
        "Count": INT,
        "DeviceIDs": STRINGS,
        "Capabilities": Slice(STRINGS, "[][]string"),
        "Options": STRMAP,
    },
)
ULIMIT = Struct("units.Ulimit", {"Name": STRING, "Hard": INT64, "Soft": INT64})
RESOURCES: dict[str, GoType] = {
    "CpuShares": INT64,
    "Memory": INT64,
    "NanoCpus": INT64,
    "CgroupParent": STRING,
    "BlkioWeight": UINT16,
    "BlkioWeightDevice": Slice(Ptr(WEIGHT_DEVICE), "[]*blkiodev.WeightDevice"),
    "BlkioDeviceReadBps": THROTTLE_DEVICES,
    "BlkioDeviceWriteBps": THROTTLE_DEVICES,
    "BlkioDeviceReadIOps": THROTTLE_DEVICES,
    "BlkioDeviceWriteIOps": THROTTLE_DEVICES,
    "CpuPeriod": INT64,
    "CpuQuota": INT64,
    "CpuRealtimePeriod": INT64,
    "CpuRealtimeRuntime": INT64,
    "CpusetCpus": STRING,
    "CpusetMems": STRING,
    "Devices": Slice(DEVICE_MAPPING, "[]container.DeviceMapping"),
    "DeviceCgroupRules": STRINGS,
    "DeviceRequests": Slice(DEVICE_REQUEST, "[]container.DeviceRequest"),
    "KernelMemory": INT64,
    "KernelMemoryTCP": INT64,
    "MemoryReservation": INT64,
    "MemorySwap": INT64,
    "MemorySwappiness": Ptr(INT64),
    "OomKillDisable": Ptr(BOOL),
    "PidsLimit": Ptr(INT64),
    "Ulimits": Slice(Ptr(ULIMIT), "[]*units.Ulimit"),
    "CpuCount": INT64,
    "CpuPercent": INT64,
    "IOMaximumIOps": UINT64,
    "IOMaximumBandwidth": UINT64,
}
RESTART_POLICY = Struct("container.RestartPolicy", {"Name": STRING, "MaximumRetryCount": INT})
LOG_CONFIG = Struct("container.LogConfig", {"Type": STRING, "Config": STRMAP})
PORT_BINDING = Struct("nat.PortBinding", {"HostIp": STRING, "HostPort": STRING})
MOUNT_DRIVER = Struct("mount.Driver", {"Name": STRING, "Options": STRMAP})
MOUNT = Struct(
    "mount.Mount",
    {
        "Type": _string("mount.Type"),
        "Source": STRING,
        "Target": STRING,
        "ReadOnly": BOOL,
        "Consistency": _string("mount.Consistency"),
        "BindOptions": Ptr(
            Struct(
                "mount.BindOptions",
                {
                    "Propagation": _string("mount.Propagation"),
                    "NonRecursive": BOOL,
                    "CreateMountpoint": BOOL,
                    "ReadOnlyNonRecursive": BOOL,
                    "ReadOnlyForceRecursive": BOOL,
                },
            )
        ),
        "VolumeOptions": Ptr(
            Struct(
                "mount.VolumeOptions",
                {"NoCopy": BOOL, "Labels": STRMAP, "DriverConfig": Ptr(MOUNT_DRIVER)},
            )
        ),
        "TmpfsOptions": Ptr(
            Struct(
                "mount.TmpfsOptions",
                {"SizeBytes": INT64, "Mode": Scalar("fs.FileMode", "uint", 32)},
            )
        ),
        "ClusterOptions": Ptr(Struct("mount.ClusterOptions", {})),
    },
)
HOST_CONFIG_FIELDS: dict[str, GoType] = {
    "Binds": STRINGS,
    "ContainerIDFile": STRING,
    "LogConfig": LOG_CONFIG,
    "NetworkMode": _string("container.NetworkMode"),
    "PortBindings": Map(Slice(PORT_BINDING, "[]nat.PortBinding"), "nat.PortMap"),
    "RestartPolicy": RESTART_POLICY,
    "AutoRemove": BOOL,
    "VolumeDriver": STRING,
    "VolumesFrom": STRINGS,
    "ConsoleSize": Array(UINT, 2, "[2]uint"),
    "Annotations": STRMAP,
    "CapAdd": STRSLICE,
    "CapDrop": STRSLICE,
    "CgroupnsMode": _string("container.CgroupnsMode"),
    "Dns": STRINGS,
    "DnsOptions": STRINGS,
    "DnsSearch": STRINGS,
    "ExtraHosts": STRINGS,
    "GroupAdd": STRINGS,
    "IpcMode": _string("container.IpcMode"),
    "Cgroup": _string("container.CgroupSpec"),
    "Links": STRINGS,
    "OomScoreAdj": INT,
    "PidMode": _string("container.PidMode"),
    "Privileged": BOOL,
    "PublishAllPorts": BOOL,
    "ReadonlyRootfs": BOOL,
    "SecurityOpt": STRINGS,
    "StorageOpt": STRMAP,
    "Tmpfs": STRMAP,
    "UTSMode": _string("container.UTSMode"),
    "UsernsMode": _string("container.UsernsMode"),
    "ShmSize": INT64,
    "Sysctls": STRMAP,
    "Runtime": STRING,
    "Isolation": _string("container.Isolation"),
    **RESOURCES,
    "Mounts": Slice(MOUNT, "[]mount.Mount"),
    "MaskedPaths": STRINGS,
    "ReadonlyPaths": STRINGS,
    "Init": Ptr(BOOL),
}
HOST_CONFIG = Struct("container.HostConfig", HOST_CONFIG_FIELDS)
CONFIG_FIELDS: dict[str, GoType] = {
    "Hostname": STRING,
    "Domainname": STRING,
    "User": STRING,
    "AttachStdin": BOOL,
    "AttachStdout": BOOL,
    "AttachStderr": BOOL,
    "ExposedPorts": Map(Struct("struct {}", {}), "nat.PortSet"),
    "Tty": BOOL,
    "OpenStdin": BOOL,
    "StdinOnce": BOOL,
    "Env": STRINGS,
    "Cmd": STRSLICE,
    "Healthcheck": Ptr(HEALTH),
    "ArgsEscaped": BOOL,
    "Image": STRING,
    "Volumes": Map(Struct("struct {}", {}), "map[string]struct {}"),
    "WorkingDir": STRING,
    "Entrypoint": STRSLICE,
    "NetworkDisabled": BOOL,
    "MacAddress": STRING,
    "OnBuild": STRINGS,
    "Labels": STRMAP,
    "StopSignal": STRING,
    "StopTimeout": Ptr(INT),
    "Shell": STRSLICE,
}

# api/types/network
ENDPOINT_SETTINGS = Struct(
    "network.EndpointSettings",
    {
        "IPAMConfig": Ptr(
            Struct(
                "network.EndpointIPAMConfig",
                {"IPv4Address": STRING, "IPv6Address": STRING, "LinkLocalIPs": STRINGS},
            )
        ),
        "Links": STRINGS,
        "Aliases": STRINGS,
        "MacAddress": STRING,
        "NetworkID": STRING,
        "EndpointID": STRING,
        "Gateway": STRING,
        "IPAddress": STRING,
        "IPPrefixLen": INT,
        "IPv6Gateway": STRING,
        "GlobalIPv6Address": STRING,
        "GlobalIPv6PrefixLen": INT,
        "DriverOpts": STRMAP,
        "DNSNames": STRINGS,
    },
)
NETWORKING_CONFIG = Struct(
    "network.NetworkingConfig",
    {"EndpointsConfig": Map(Ptr(ENDPOINT_SETTINGS), "map[string]*network.EndpointSettings")},
)

# runconfig.ContainerConfigWrapper: Config and (deprecated) HostConfig fields are promoted
# to the top level beside HostConfig, Cpuset and NetworkingConfig.
CONTAINER_CONFIG_WRAPPER = Struct(
    "runconfig.ContainerConfigWrapper",
    {
        **CONFIG_FIELDS,
        "HostConfig": Ptr(HOST_CONFIG),
        "Cpuset": STRING,
        "NetworkingConfig": Ptr(NETWORKING_CONFIG),
        **HOST_CONFIG_FIELDS,
    },
)
UPDATE_CONFIG = Struct("container.UpdateConfig", {**RESOURCES, "RestartPolicy": RESTART_POLICY})
CONSOLE_SIZE = Ptr(Array(UINT, 2, "[2]uint"))
EXEC_CONFIG = Struct(
    "types.ExecConfig",
    {
        "User": STRING,
        "Privileged": BOOL,
        "Tty": BOOL,
        "ConsoleSize": CONSOLE_SIZE,
        "AttachStdin": BOOL,
        "AttachStderr": BOOL,
        "AttachStdout": BOOL,
        "Detach": BOOL,
        "DetachKeys": STRING,
        "Env": STRINGS,
        "WorkingDir": STRING,
        "Cmd": STRINGS,
    },
)
EXEC_START = Struct(
    "types.ExecStartCheck", {"Detach": BOOL, "Tty": BOOL, "ConsoleSize": CONSOLE_SIZE}
)
NETWORK_CREATE = Struct(
    "types.NetworkCreateRequest",
    {
        "CheckDuplicate": BOOL,
        "Driver": STRING,
        "Scope": STRING,
        "EnableIPv6": BOOL,
        "IPAM": Ptr(
            Struct(
                "network.IPAM",
                {
                    "Driver": STRING,
                    "Options": STRMAP,
                    "Config": Slice(
                        Struct(
                            "network.IPAMConfig",
                            {
                                "Subnet": STRING,
                                "IPRange": STRING,
                                "Gateway": STRING,
                                "AuxiliaryAddresses": STRMAP,
                            },
                        ),
                        "[]network.IPAMConfig",
                    ),
                },
            )
        ),
        "Internal": BOOL,
        "Attachable": BOOL,
        "Ingress": BOOL,
        "ConfigOnly": BOOL,
        "ConfigFrom": Ptr(Struct("network.ConfigReference", {"Network": STRING})),
        "Options": STRMAP,
        "Labels": STRMAP,
        "Name": STRING,
    },
)
NETWORK_CONNECT = Struct(
    "types.NetworkConnect", {"Container": STRING, "EndpointConfig": Ptr(ENDPOINT_SETTINGS)}
)
NETWORK_DISCONNECT = Struct("types.NetworkDisconnect", {"Container": STRING, "Force": BOOL})
VOLUME_CREATE = Struct(
    "volume.VolumeCreateBody",
    {
        # A swarm cluster volume: not decoded further, the handler refuses it by name.
        "ClusterVolumeSpec": AnyValue(),
        "Driver": STRING,
        "DriverOpts": STRMAP,
        "Labels": STRMAP,
        "Name": STRING,
    },
)

# types.AuthConfig (its JSON names are lower case)
AUTH_CONFIG = Struct(
    "types.AuthConfig",
    {
        "username": STRING,
        "password": STRING,
        "auth": STRING,
        "email": STRING,
        "serveraddress": STRING,
        "identitytoken": STRING,
        "registrytoken": STRING,
    },
)


@dataclass(frozen=True)
class Body:
    """One endpoint's JSON body: its Go type, and what an empty body means there."""

    type: Struct
    # dockerd's answer to an empty body (json.Decoder's io.EOF), or None: an empty body is
    # the zero value (`commit`, whose config is optional).
    empty: str | None = "got EOF while reading request body"


CREATE = Body(CONTAINER_CONFIG_WRAPPER, "EOF")
COMMIT = Body(CONTAINER_CONFIG_WRAPPER, None)
UPDATE = Body(UPDATE_CONFIG, "EOF")
EXEC = Body(EXEC_CONFIG)
# An empty body is the zero value here (our CLI sends none; v25 ReadJSON allows it).
EXEC_START_BODY = Body(EXEC_START, None)
NETWORK = Body(NETWORK_CREATE)
CONNECT = Body(NETWORK_CONNECT)
DISCONNECT = Body(NETWORK_DISCONNECT)
VOLUME = Body(VOLUME_CREATE)
AUTH = Body(AUTH_CONFIG)


async def read_json(request: web.Request, body: Body) -> dict[str, Any]:
    """The request's JSON body decoded as `body` describes, refused with 413 past 16 MiB
    (without reading it: aiohttp discards the rest of an unread body)."""
    if request.content_length is not None and request.content_length > MAX_JSON_BODY:
        raise _too_large()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(1 << 16):
        size += len(chunk)
        if size > MAX_JSON_BODY:
            raise _too_large()
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        if body.empty is not None:
            raise InvalidArgument(body.empty)
        return {}
    if len(raw) <= _INLINE:
        value = decode(raw, body.type)
    else:
        value = await asyncio.to_thread(decode, raw, body.type)
    return value if isinstance(value, dict) else {}


def _too_large() -> BodyTooLarge:
    return BodyTooLarge(
        f"request body too large: JSON bodies are limited to {MAX_JSON_BODY >> 20} MiB"
    )


async def read_create(request: web.Request, body: Body = CREATE) -> dict[str, Any]:
    """A create (or commit) body, split as the engine takes it (`container_create`)."""
    decoded = await read_json(request, body)
    if body.empty is not None and not any(k in CONFIG_FIELDS for k in decoded):
        raise InvalidArgument("Config cannot be empty in order to create a container")
    return container_create(decoded)


async def read_config(request: web.Request) -> dict[str, Any]:
    """The optional container Config of `POST /commit` (decoded as create's body)."""
    decoded = await read_json(request, COMMIT)
    return {k: v for k, v in decoded.items() if k in CONFIG_FIELDS}


def container_create(decoded: dict[str, Any]) -> dict[str, Any]:
    """A create (or commit) body as the engine takes it: Config's fields, HostConfig and
    NetworkingConfig, with dockerd's handling of the deprecated top-level HostConfig fields
    (runconfig getHostConfig: used whole when there is no HostConfig object, else only
    Memory, MemorySwap, CpuShares, CpusetCpus and VolumeDriver fill in what it leaves
    unset) and of Cpuset."""
    config = {k: v for k, v in decoded.items() if k in CONFIG_FIELDS}
    top = {k: v for k, v in decoded.items() if k in HOST_CONFIG_FIELDS}
    inner = decoded.get("HostConfig")
    if inner is None:
        host = top if top else None
    else:
        host = inner
        for key in ("Memory", "MemorySwap", "CpuShares", "CpusetCpus", "VolumeDriver"):
            if top.get(key) and not host.get(key):
                host[key] = top[key]
    if host is not None and decoded.get("Cpuset") and not host.get("CpusetCpus"):
        host["CpusetCpus"] = decoded["Cpuset"]
    out: dict[str, Any] = dict(config)
    if host is not None:
        out["HostConfig"] = host
    if decoded.get("NetworkingConfig") is not None:
        out["NetworkingConfig"] = decoded["NetworkingConfig"]
    return out
