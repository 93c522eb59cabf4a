"""`run`/`create` flags → the `POST /containers/create` body, as docker/cli's opts.go builds it.

Pure functions of the parsed flags and the environment, so they are unit-tested.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing itself costs ~1.5 ms of start-up; mypy honours this name

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any


class UsageError(Exception):
    """A flag value docker's CLI would refuse before talking to the daemon (exit 125)."""


class RunFlags:
    """The create-relevant subset of `docker run` flags (docker/cli ContainerOptions).

    A plain class rather than a dataclass (`dataclasses` adds ~5 ms to `run`'s start-up) or a
    NamedTuple (`typing` imports `re`: ~5 ms of CPU here).
    """

    image: str
    args: Sequence[str]
    detach: bool
    interactive: bool
    tty: bool
    auto_remove: bool
    env: Sequence[str]
    env_files: Sequence[str]
    workdir: str
    user: str
    entrypoint: str | None
    network: str
    volumes: Sequence[str]
    publish: Sequence[str]
    expose: Sequence[str]
    hostname: str
    labels: Sequence[str]
    memory: str
    cpus: str
    pids_limit: int | None
    read_only: bool
    cap_add: Sequence[str]
    cap_drop: Sequence[str]
    init: bool | None
    privileged: bool
    stop_signal: str
    tmpfs: Sequence[str]
    extra: Mapping[str, Any] | None

    def __init__(
        self,
        *,
        image: str,
        args: Sequence[str] = (),
        detach: bool = False,
        interactive: bool = False,
        tty: bool = False,
        auto_remove: bool = False,
        env: Sequence[str] = (),
        env_files: Sequence[str] = (),
        workdir: str = "",
        user: str = "",
        entrypoint: str | None = None,
        network: str = "default",
        volumes: Sequence[str] = (),
        publish: Sequence[str] = (),
        expose: Sequence[str] = (),
        hostname: str = "",
        labels: Sequence[str] = (),
        memory: str = "",
        cpus: str = "",
        pids_limit: int | None = None,
        read_only: bool = False,
        cap_add: Sequence[str] = (),
        cap_drop: Sequence[str] = (),
        init: bool | None = None,
        privileged: bool = False,
        stop_signal: str = "",
        tmpfs: Sequence[str] = (),
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        self.image = image
        self.args = args
        self.detach = detach
        self.interactive = interactive
        self.tty = tty
        self.auto_remove = auto_remove
        self.env = env
        self.env_files = env_files
        self.workdir = workdir
        self.user = user
        self.entrypoint = entrypoint
        self.network = network
        self.volumes = volumes
        self.publish = publish
        self.expose = expose
        self.hostname = hostname
        self.labels = labels
        self.memory = memory
        self.cpus = cpus
        self.pids_limit = pids_limit
        self.read_only = read_only
        self.cap_add = cap_add
        self.cap_drop = cap_drop
        self.init = init
        self.privileged = privileged
        self.stop_signal = stop_signal
        self.tmpfs = tmpfs
        self.extra = extra

    def __repr__(self) -> str:
        return f"RunFlags({self.__dict__!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RunFlags) and self.__dict__ == other.__dict__


def resolve_env(item: str, environ: Mapping[str, str]) -> str:
    """opts.ValidateEnv: `K` without `=` takes the value of K here, if it is set."""
    key, sep, _ = item.partition("=")
    if not key:
        raise UsageError(f"invalid environment variable: {item}")
    if sep:
        return item
    if key in environ:
        return f"{key}={environ[key]}"
    return item


def parse_env_file(text: str, name: str, environ: Mapping[str, str]) -> list[str]:
    """opts.ParseEnvFile: `#` comments and blank lines skipped; bare names looked up.

    A bare name that is not set here is left out, unlike `-e NAME` (docker's rule).
    """
    out: list[str] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.lstrip()
        if not line or line.startswith("#"):
            continue
        key, sep, _ = line.partition("=")
        if not key:
            raise UsageError(f"invalid environment variable: {line}")
        import re  # (here, not at the top: `run` without --env-file needs no `re`)

        if re.search(r"\s", key):
            raise UsageError(f"variable '{key}' contains whitespaces (in {name}, line {lineno})")
        if sep:
            out.append(line)
        elif key in environ:
            out.append(f"{key}={environ[key]}")
    return out


def normalize_caps(caps: Sequence[str]) -> list[str]:
    """opts.NormalizeCapabilities: upper case, `CAP_` prefixed (`ALL` as is), no duplicates."""
    out: list[str] = []
    for cap in caps:
        c = cap.strip().upper()
        if c != "ALL" and not c.startswith("CAP_"):
            c = "CAP_" + c
        if c not in out:
            out.append(c)
    return out


def parse_labels(items: Sequence[str]) -> dict[str, str]:
    """`-l K=V`; `-l K` gives an empty value."""
    labels: dict[str, str] = {}
    for item in items:
        key, _, value = item.partition("=")
        if not key:
            raise UsageError(f"invalid label: {item}")
        labels[key] = value
    return labels


def _port_range(text: str, what: str, spec: str) -> tuple[int, int]:
    import re  # (re's cache keeps the pattern; a `run` without -p needs no `re`)

    m = re.match(r"^(\d+)(?:-(\d+))?$", text)
    if not m:
        raise UsageError(f"invalid {what} port: {text} (in {spec!r})")
    start = int(m.group(1))
    end = int(m.group(2) or start)
    if not 0 < start <= end <= 65535:
        raise UsageError(f"invalid {what} port range: {text} (in {spec!r})")
    return start, end


def parse_port_spec(spec: str) -> list[tuple[str, str, str]]:
    """nat.ParsePortSpec: `[ip:][hostPort:]containerPort[/proto]` → (port/proto, ip, hostPort).

    Ranges pair up one to one; a host range for a single container port is kept whole,
    as docker does (the daemon picks one port from it).
    """
    proto = "tcp"
    body = spec
    if "/" in spec:
        body, proto = spec.rsplit("/", 1)
        if proto not in ("tcp", "udp", "sctp"):
            raise UsageError(f"invalid proto: {proto}")
    ip = ""
    if body.startswith("["):
        end = body.find("]")
        if end < 0:
            raise UsageError(f"invalid IP address in {spec!r}")
        ip, body = body[1:end], body[end + 1 :].lstrip(":")
        parts = body.split(":")
        host, container = (parts[0], parts[1]) if len(parts) == 2 else ("", parts[-1])
    else:
        parts = body.split(":")
        if len(parts) == 1:
            host, container = "", parts[0]
        elif len(parts) == 2:
            host, container = parts
        elif len(parts) == 3:
            ip, host, container = parts
        else:
            raise UsageError(f"invalid port format: {spec!r}")
    cstart, cend = _port_range(container, "container", spec)
    if not host:
        return [(f"{p}/{proto}", ip, "") for p in range(cstart, cend + 1)]
    hstart, hend = _port_range(host, "host", spec)
    if cend != cstart and hend - hstart != cend - cstart:
        raise UsageError(f"invalid ranges specified for container and host ports: {spec!r}")
    if cstart == cend:
        hp = str(hstart) if hstart == hend else f"{hstart}-{hend}"
        return [(f"{cstart}/{proto}", ip, hp)]
    return [(f"{c}/{proto}", ip, str(hstart + i)) for i, c in enumerate(range(cstart, cend + 1))]


def parse_volume(spec: str, cwd: str) -> tuple[str | None, str]:
    """`-v`: (bind string for HostConfig.Binds, or None for an anonymous volume; target).

    A relative host path written with a leading `.` is made absolute, as the docker CLI
    does since 23.0; a name without `/` is a named volume, passed through.
    """
    parts = spec.split(":")
    if len(parts) == 1:
        if not spec.startswith("/"):
            raise UsageError(f"invalid volume specification: '{spec}': must be an absolute path")
        return None, spec
    if len(parts) > 3 or not parts[0] or not parts[1]:
        raise UsageError(f"invalid volume specification: '{spec}'")
    src = parts[0]
    if src.startswith("."):
        src = os.path.normpath(os.path.join(cwd, src))
    if not parts[1].startswith("/"):
        raise UsageError(f"invalid volume specification: '{spec}': destination must be absolute")
    return ":".join([src, *parts[1:]]), parts[1]


_MEM_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_memory(text: str) -> int:
    """go-units RAMInBytes: `512m`, `1g`, `1.5GiB`, plain bytes."""
    import re

    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgtb]?)(?:i?b)?", text.strip().lower())
    if not m:
        raise UsageError(f"invalid size: '{text}'")
    return int(float(m.group(1)) * _MEM_UNITS[m.group(2)])


def parse_cpus(text: str) -> int:
    """`--cpus 1.5` → NanoCpus."""
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"invalid argument {text!r} for --cpus") from None
    if value < 0:
        raise UsageError("invalid --cpus: must be positive")
    return round(value * 1e9)


def _read_text(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def build_create_body(
    flags: RunFlags, environ: Mapping[str, str], cwd: str, read_file: Any = None
) -> dict[str, Any]:
    """The JSON body of `POST /containers/create`: Config + HostConfig + NetworkingConfig."""
    env: list[str] = []
    for name in flags.env_files:
        text = read_file(name) if read_file else _read_text(name)
        env.extend(parse_env_file(text, name, environ))
    env.extend(resolve_env(e, environ) for e in flags.env)

    # docker run attaches stdout+stderr unless detached, and stdin with -i.
    attach_stdin = flags.interactive and not flags.detach
    attach_out = not flags.detach

    entrypoint: list[str] | None = None
    if flags.entrypoint is not None:
        # `--entrypoint ""` resets the image's entrypoint: docker sends [""].
        entrypoint = [flags.entrypoint]

    exposed: dict[str, dict[str, Any]] = {}
    bindings: dict[str, list[dict[str, str]]] = {}
    for spec in flags.publish:
        for port, ip, host_port in parse_port_spec(spec):
            exposed[port] = {}
            bindings.setdefault(port, []).append({"HostIp": ip, "HostPort": host_port})
    for spec in flags.expose:
        proto = "tcp"
        body = spec
        if "/" in spec:
            body, proto = spec.rsplit("/", 1)
        start, end = _port_range(body, "expose", spec)
        for p in range(start, end + 1):
            exposed[f"{p}/{proto}"] = {}

    binds: list[str] = []
    volumes: dict[str, dict[str, Any]] = {}
    for spec in flags.volumes:
        bind, target = parse_volume(spec, cwd)
        if bind is None:
            volumes[target] = {}
        else:
            binds.append(bind)

    tmpfs: dict[str, str] = {}
    for spec in flags.tmpfs:
        path, _, opts = spec.partition(":")
        tmpfs[path] = opts

    config: dict[str, Any] = {
        "Hostname": flags.hostname,
        "Domainname": "",
        "User": flags.user,
        "AttachStdin": attach_stdin,
        "AttachStdout": attach_out,
        "AttachStderr": attach_out,
        "Tty": flags.tty,
        "OpenStdin": flags.interactive,
        "StdinOnce": attach_stdin,
        "Env": env,
        "Cmd": list(flags.args) if flags.args else None,
        "Image": flags.image,
        "Volumes": volumes,
        "WorkingDir": flags.workdir,
        "Entrypoint": entrypoint,
        "OnBuild": None,
        "Labels": parse_labels(flags.labels),
    }
    if exposed:
        config["ExposedPorts"] = exposed
    if flags.stop_signal:
        config["StopSignal"] = flags.stop_signal

    host_config: dict[str, Any] = {
        "Binds": binds or None,
        "ContainerIDFile": "",
        "LogConfig": {"Type": "", "Config": {}},
        "NetworkMode": flags.network or "default",
        "PortBindings": bindings,
        "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
        "AutoRemove": flags.auto_remove,
        "VolumeDriver": "",
        "VolumesFrom": None,
        "ConsoleSize": [0, 0],
        "CapAdd": normalize_caps(flags.cap_add) or None,
        "CapDrop": normalize_caps(flags.cap_drop) or None,
        "CgroupnsMode": "",
        "Dns": [],
        "DnsOptions": [],
        "DnsSearch": [],
        "ExtraHosts": None,
        "GroupAdd": None,
        "IpcMode": "",
        "Cgroup": "",
        "Links": None,
        "OomScoreAdj": 0,
        "PidMode": "",
        "Privileged": flags.privileged,
        "PublishAllPorts": False,
        "ReadonlyRootfs": flags.read_only,
        "SecurityOpt": None,
        "UTSMode": "",
        "UsernsMode": "",
        "ShmSize": 0,
        "Memory": parse_memory(flags.memory) if flags.memory else 0,
        "NanoCpus": parse_cpus(flags.cpus) if flags.cpus else 0,
        "PidsLimit": flags.pids_limit,
    }
    if tmpfs:
        host_config["Tmpfs"] = tmpfs
    if flags.init is not None:
        host_config["Init"] = flags.init
    endpoints: dict[str, Any] = {}
    for key, value in (flags.extra or {}).items():
        if key.startswith("Config."):
            config[key[len("Config.") :]] = value
        elif key == "Endpoint":
            # --ip, --network-alias, --mac-address…: settings of the one network joined
            endpoints[flags.network or "default"] = value
        else:
            host_config[key] = value
    return {
        **config,
        "HostConfig": host_config,
        "NetworkingConfig": {"EndpointsConfig": endpoints},
    }
