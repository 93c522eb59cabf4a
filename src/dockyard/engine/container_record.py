"""A container's record, typed: its config, its HostConfig, its runtime facts and its State.

- `Config`: Docker's container config (moby api/types/container/config.go), the request's
  values merged over the image's at create.
- `HostConfig`: the HostConfig as received (inspect shows it back, with Docker's defaults
  filled in) and the options parsed from it (engine/hostconfig.py RunOptions), parsed once
  when first asked for.
- `MountPlan`, `EndpointRequest` (engine/endpoint_config.py): what the container asked for
  at create (mounts with the volume each one got; networks by ID with what it asked of each
  endpoint), in order (the first network is eth0).
- `RuntimeFacts`: what a run holds (its endpoints, published ports and network namespace),
  empty while it does not run.
- `State` (engine/container_state.py): the status and its named transitions.

The metadata store keeps the record as two JSON documents (`to_row`/`from_row`); their shape
is the one dockyard has always written, so a store from before this type existed opens. Only
ContainerManager.write() stores a changed record.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, cast

from dockyard.engine.container_state import State
from dockyard.engine.endpoint_config import EndpointRequest
from dockyard.engine.hostconfig import MountSpec, RunOptions, parse_host_config
from dockyard.engine.network import Endpoint
from dockyard.metadata.store import ContainerRow


def _strs(value: object) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in cast(list[object], value))


@dataclass(frozen=True)
class Healthcheck:
    """moby container.HealthConfig; durations in nanoseconds, every field omitempty."""

    test: tuple[str, ...] = ()
    interval: int = 0
    timeout: int = 0
    start_period: int = 0
    retries: int = 0

    @property
    def disabled(self) -> bool:
        return not self.test or self.test[0] in ("NONE", "")

    def to_docker(self) -> dict[str, object]:
        out: dict[str, object] = {}
        for key, value in (
            ("Test", list(self.test)),
            ("Interval", self.interval),
            ("Timeout", self.timeout),
            ("StartPeriod", self.start_period),
            ("Retries", self.retries),
        ):
            if value:
                out[key] = value
        return out

    @staticmethod
    def from_docker(doc: object) -> Healthcheck | None:
        if not isinstance(doc, dict):
            return None
        return Healthcheck(
            _strs(doc.get("Test")) or (),
            int(doc.get("Interval") or 0),
            int(doc.get("Timeout") or 0),
            int(doc.get("StartPeriod") or 0),
            int(doc.get("Retries") or 0),
        )


@dataclass(frozen=True)
class Config:
    """Docker's container config, in moby's field order (`to_docker` keeps it)."""

    hostname: str = ""
    domainname: str = ""
    user: str = ""
    attach_stdin: bool = False
    attach_stdout: bool = False
    attach_stderr: bool = False
    exposed_ports: tuple[str, ...] = ()  # "80/tcp"
    tty: bool = False
    open_stdin: bool = False
    stdin_once: bool = False
    env: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    healthcheck: Healthcheck | None = None
    args_escaped: bool = False
    image: str = ""
    volumes: tuple[str, ...] | None = None
    working_dir: str = ""
    entrypoint: tuple[str, ...] | None = None
    network_disabled: bool = False
    mac_address: str = ""
    on_build: tuple[str, ...] | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    stop_signal: str = ""
    stop_timeout: int | None = None
    shell: tuple[str, ...] | None = None

    def to_docker(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "Hostname": self.hostname,
            "Domainname": self.domainname,
            "User": self.user,
            "AttachStdin": self.attach_stdin,
            "AttachStdout": self.attach_stdout,
            "AttachStderr": self.attach_stderr,
        }
        if self.exposed_ports:
            out["ExposedPorts"] = {p: {} for p in self.exposed_ports}
        out.update(Tty=self.tty, OpenStdin=self.open_stdin, StdinOnce=self.stdin_once)
        out["Env"] = None if self.env is None else list(self.env)
        out["Cmd"] = None if self.cmd is None else list(self.cmd)
        if self.healthcheck is not None:
            out["Healthcheck"] = self.healthcheck.to_docker()
        if self.args_escaped:
            out["ArgsEscaped"] = True
        out["Image"] = self.image
        out["Volumes"] = None if self.volumes is None else {v: {} for v in self.volumes}
        out["WorkingDir"] = self.working_dir
        out["Entrypoint"] = None if self.entrypoint is None else list(self.entrypoint)
        if self.network_disabled:
            out["NetworkDisabled"] = True
        if self.mac_address:
            out["MacAddress"] = self.mac_address
        out["OnBuild"] = None if self.on_build is None else list(self.on_build)
        out["Labels"] = dict(self.labels)
        if self.stop_signal:
            out["StopSignal"] = self.stop_signal
        if self.stop_timeout is not None:
            out["StopTimeout"] = self.stop_timeout
        if self.shell:
            out["Shell"] = list(self.shell)
        return out

    @staticmethod
    def from_docker(doc: Mapping[str, Any]) -> Config:
        volumes = doc.get("Volumes")
        timeout = doc.get("StopTimeout")
        return Config(
            hostname=str(doc.get("Hostname") or ""),
            domainname=str(doc.get("Domainname") or ""),
            user=str(doc.get("User") or ""),
            attach_stdin=bool(doc.get("AttachStdin")),
            attach_stdout=bool(doc.get("AttachStdout")),
            attach_stderr=bool(doc.get("AttachStderr")),
            exposed_ports=tuple(doc.get("ExposedPorts") or {}),
            tty=bool(doc.get("Tty")),
            open_stdin=bool(doc.get("OpenStdin")),
            stdin_once=bool(doc.get("StdinOnce")),
            env=_strs(doc.get("Env")),
            cmd=_strs(doc.get("Cmd")),
            healthcheck=Healthcheck.from_docker(doc.get("Healthcheck")),
            args_escaped=bool(doc.get("ArgsEscaped")),
            image=str(doc.get("Image") or ""),
            volumes=None if volumes is None else tuple(volumes),
            working_dir=str(doc.get("WorkingDir") or ""),
            entrypoint=_strs(doc.get("Entrypoint")),
            network_disabled=bool(doc.get("NetworkDisabled")),
            mac_address=str(doc.get("MacAddress") or ""),
            on_build=_strs(doc.get("OnBuild")),
            labels={str(k): str(v) for k, v in (doc.get("Labels") or {}).items()},
            stop_signal=str(doc.get("StopSignal") or ""),
            stop_timeout=None if timeout is None else int(timeout),
            shell=_strs(doc.get("Shell")),
        )

    @property
    def has_healthcheck(self) -> bool:
        return self.healthcheck is not None and not self.healthcheck.disabled


@dataclass(frozen=True)
class HostConfig:
    """The HostConfig as the client sent it, and what it means (parsed on first use)."""

    received: Mapping[str, Any] = field(default_factory=dict)

    @functools.cached_property
    def options(self) -> RunOptions:
        return parse_host_config(dict(self.received))

    @property
    def network_mode(self) -> str:
        return str(self.received.get("NetworkMode") or "default")

    @property
    def auto_remove(self) -> bool:
        return bool(self.received.get("AutoRemove"))

    @property
    def restart_policy(self) -> tuple[str, int]:
        """(name, maximum retry count); "no" when unset."""
        policy = self.received.get("RestartPolicy") or {}
        return str(policy.get("Name") or "no"), int(policy.get("MaximumRetryCount") or 0)

    def to_docker(self) -> dict[str, Any]:
        return dict(self.received)


@dataclass(frozen=True)
class MountPlan:
    """A mount as planned at create: the spec, and the volume it uses (named or anonymous)."""

    spec: MountSpec
    volume: str = ""
    anonymous: bool = False

    def to_json(self) -> dict[str, Any]:
        d = self.spec.to_json()
        if self.volume or self.spec.type == "volume":
            d["volume"] = self.volume
            d["anonymous"] = self.anonymous
        return d

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> MountPlan:
        return MountPlan(
            MountSpec.from_json(dict(d)), str(d.get("volume") or ""), bool(d.get("anonymous"))
        )


@dataclass(frozen=True)
class PublishedPort:
    container_port: int
    proto: str
    host_ip: str
    host_port: int

    def to_json(self) -> list[Any]:
        return [self.container_port, self.proto, self.host_ip, self.host_port]


@dataclass(frozen=True)
class RuntimeFacts:
    """What a run holds; empty (no endpoints, ports or namespace) when it does not run."""

    endpoints: Mapping[str, Endpoint] = field(default_factory=dict)  # network ID → endpoint
    ports: tuple[PublishedPort, ...] = ()
    netns: str = ""

    @property
    def network_ids(self) -> set[str]:
        return {ep.network for ep in self.endpoints.values()}

    def to_json(self) -> dict[str, Any]:
        return {
            "Endpoints": {k: ep.to_json() for k, ep in self.endpoints.items()},
            "Ports": [p.to_json() for p in self.ports],
            "Netns": self.netns,
        }

    @staticmethod
    def from_json(d: Mapping[str, Any] | None) -> RuntimeFacts:
        d = d or {}
        return RuntimeFacts(
            {k: Endpoint(**ep) for k, ep in (d.get("Endpoints") or {}).items()},
            tuple(
                PublishedPort(int(p[0]), str(p[1]), str(p[2]), int(p[3]))
                for p in d.get("Ports") or []
            ),
            str(d.get("Netns") or ""),
        )


@dataclass
class Container:
    id: str
    name: str
    image_id: str
    created: str
    image_name: str
    path: str
    args: tuple[str, ...]
    config: Config
    host_config: HostConfig
    snapshot: int
    mounts: tuple[MountPlan, ...] = ()
    networks: dict[str, EndpointRequest] = field(default_factory=dict)
    runtime: RuntimeFacts = field(default_factory=RuntimeFacts)
    # Legacy links on the default bridge: (target container ID, alias) (engine/links.py).
    legacy_links: tuple[tuple[str, str], ...] = ()
    restart_count: int = 0
    stopped_by_user: bool = False  # `unless-stopped` stays down after a daemon restart
    recovered_exit: bool = False  # its exit was found at daemon start, not seen
    state: State = field(default_factory=State)

    @property
    def hostname(self) -> str:
        return self.config.hostname or self.id[:12]

    def copy(self) -> Container:
        """A record of its own: the parts a change edits in place (the State, the networks
        table) copied, the frozen ones shared."""
        return replace(self, networks=dict(self.networks), state=replace(self.state))

    def to_row(self) -> ContainerRow:
        config: dict[str, Any] = {
            "Config": self.config.to_docker(),
            "HostConfig": self.host_config.to_docker(),
            "Snapshot": self.snapshot,
            "Path": self.path,
            "Args": list(self.args),
            "ImageName": self.image_name,
            "Mounts": [m.to_json() for m in self.mounts],
            "Networks": {k: n.to_json() for k, n in self.networks.items()},
            "RestartCount": self.restart_count,
            "Runtime": self.runtime.to_json(),
        }
        if self.legacy_links:
            config["LegacyLinks"] = [list(link) for link in self.legacy_links]
        if self.stopped_by_user:
            config["StoppedByUser"] = True
        if self.recovered_exit:
            config["RecoveredExit"] = True
        return ContainerRow(
            self.id, self.name, self.image_id, self.created, config, self.state.to_docker()
        )

    @staticmethod
    def from_row(row: ContainerRow) -> Container:
        c = row.config
        return Container(
            id=row.id,
            name=row.name,
            image_id=row.image_id,
            created=row.created,
            image_name=str(c.get("ImageName") or ""),
            path=str(c.get("Path") or ""),
            args=tuple(str(a) for a in c.get("Args") or []),
            config=Config.from_docker(c.get("Config") or {}),
            host_config=HostConfig(c.get("HostConfig") or {}),
            snapshot=int(c.get("Snapshot") or 0),
            mounts=tuple(MountPlan.from_json(m) for m in c.get("Mounts") or []),
            networks={
                k: EndpointRequest.from_json(v) for k, v in (c.get("Networks") or {}).items()
            },
            runtime=RuntimeFacts.from_json(c.get("Runtime")),
            legacy_links=tuple((str(t), str(a)) for t, a in c.get("LegacyLinks") or ()),
            restart_count=int(c.get("RestartCount") or 0),
            stopped_by_user=bool(c.get("StoppedByUser")),
            recovered_exit=bool(c.get("RecoveredExit")),
            state=State.from_docker(row.state),
        )
