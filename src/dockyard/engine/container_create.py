"""`docker create`: the request checked and merged into a new container's typed record.

HostConfig is parsed first (engine/hostconfig.py), so bad input leaves nothing behind; the
container config is the request's values over the image's (moby daemon/create.go merge);
networks are resolved to IDs with what is asked of each endpoint (aliases, fixed addresses,
MAC, driver options; engine/endpoint_config.py) and legacy links; mounts are planned with the
volume each gets (an anonymous one per image VOLUME) and those volumes made. The manager
stores the record (ContainerManager.create).
"""

from __future__ import annotations

import dataclasses
import secrets
from typing import TYPE_CHECKING, Any

from dockyard.engine import links
from dockyard.engine.container_record import Config, Container, HostConfig, MountPlan
from dockyard.engine.endpoint_config import EndpointRequest
from dockyard.engine.hostconfig import MountSpec, RunOptions, parse_host_config
from dockyard.engine.names import random_name, valid_name
from dockyard.errors import InvalidArgument, NotFound, NotSupported
from dockyard.image.config import now_rfc3339

if TYPE_CHECKING:
    from dockyard.engine.containers import ContainerManager


def new_container(
    mgr: ContainerManager,
    body: dict[str, Any],
    name: str | None,
    *,
    cid: str | None = None,
    snapshot: int | None = None,
) -> tuple[Container, list[str]]:
    """The record of a new container (checked first: bad input leaves nothing behind but
    the volumes and snapshot it asked for) and the warnings dockerd gives. A build step's
    container (builder/kept.py) brings its own ID and the snapshot it wrote in."""
    config = dict(body)
    host_config = config.pop("HostConfig", None) or {}
    net_config = config.pop("NetworkingConfig", None) or {}
    opts = parse_host_config(host_config)
    if config.get("NetworkDisabled"):
        raise NotSupported("NetworkDisabled is not supported; use --network none")
    networks = _requested_networks(
        mgr, opts.network_mode, net_config, str(config.get("MacAddress") or "")
    )
    legacy_links = links.attach(
        networks,
        list(host_config.get("Links") or []),
        bridge_id=mgr.networks.get("bridge")["Id"],
        resolve=mgr.resolve,
    )
    image_name = config.get("Image") or ""
    if not image_name:
        raise InvalidArgument("no image specified")
    image = mgr.images.get(image_name)
    img_cfg = image.config.container_config
    if name:
        name = valid_name(name)
        mgr.check_name_free(name)
    else:
        name = random_name(lambda n: mgr.meta.name_in_use(n) is not None)
    cid = cid or secrets.token_hex(32)
    merged = Config.from_docker(merge_config(config, img_cfg, cid))
    if not merged.entrypoint and not merged.cmd:
        raise InvalidArgument("No command specified")
    if opts.network_mode.startswith("container:") and (
        config.get("Hostname") or host_config.get("Dns") or host_config.get("ExtraHosts")
    ):
        raise InvalidArgument(
            "conflicting options: hostname, dns and add-host cannot be used with "
            "--network container:"
        )
    mounts = _plan_mounts(mgr, opts, merged)
    new_volumes = [m for m in mounts if m.volume and not mgr.volumes.exists(m.volume)]
    if new_volumes and opts.volume_driver != "local":
        # dockerd makes the container's new volumes with its VolumeDriver, looked up as a
        # plugin (daemon/volumes.go registerMountPoints); dockyard has none but `local`, and
        # a container that makes no volume never looks it up.
        driver = opts.volume_driver
        raise NotFound(f'error looking up volume plugin {driver}: plugin "{driver}" not found')
    for m in new_volumes:
        mgr.volumes.create(m.volume, anonymous=m.anonymous)
    if snapshot is None:
        snapshot = mgr.layers.new_active()
    argv = [*(merged.entrypoint or ()), *(merged.cmd or ())]
    record = Container(
        id=cid,
        name=name,
        image_id=image.id,
        created=now_rfc3339(),
        image_name=image_name,
        path=argv[0],
        args=tuple(argv[1:]),
        config=merged,
        host_config=HostConfig(host_config),
        snapshot=snapshot,
        mounts=tuple(mounts),
        networks=networks,
        legacy_links=legacy_links,
    )
    warnings = []
    if opts.network_mode == "host" and (opts.ports or opts.publish_all):
        warnings.append("Published ports are discarded when using host network mode")
    return record, warnings


def _requested_networks(
    mgr: ContainerManager, mode: str, net_config: dict[str, Any], mac: str = ""
) -> dict[str, EndpointRequest]:
    """{network ID: endpoint request (engine/endpoint_config.py)} for bridge-type modes;
    {} for host/none/container. Config.MacAddress is the primary network's MAC, as
    dockerd 20.10 applies it."""
    if mode == "host" or mode == "none":
        return {}
    if mode.startswith("container:"):
        try:
            mgr.resolve(mode.split(":", 1)[1])
        except NotFound as e:
            # 400, not 404: the docker CLI takes any 404 from create for a missing image.
            raise InvalidArgument(f"--network {mode}: {e}") from None
        return {}
    name = "bridge" if mode == "default" else mode
    net = _network_arg(mgr, name)
    if net["Driver"] == "host" or net["Driver"] == "null":
        return {}
    out: dict[str, EndpointRequest] = {net["Id"]: EndpointRequest(mac=mac)}
    for key, ep in (net_config.get("EndpointsConfig") or {}).items():
        other = _network_arg(mgr, "bridge" if key == "default" else key)
        if other["Driver"] != "bridge":
            continue
        req = EndpointRequest.from_api(ep)
        if other["Id"] == net["Id"] and mac and not req.mac:
            req = dataclasses.replace(req, mac=mac)
        req.check(other)
        out[other["Id"]] = req
    if mac:
        out[net["Id"]].check(net)
    return out


def _network_arg(mgr: ContainerManager, name: str) -> dict[str, Any]:
    try:
        return mgr.networks.get(name)
    except NotFound:
        raise InvalidArgument(f"network {name} not found") from None


def _plan_mounts(mgr: ContainerManager, opts: RunOptions, cfg: Config) -> list[MountPlan]:
    """Mounts as stored: the request's, then an anonymous volume per image VOLUME."""
    out: list[MountPlan] = []
    for m in opts.mounts:
        if m.type == "volume":
            out.append(MountPlan(m, m.source or secrets.token_hex(32), not m.source))
        else:
            out.append(MountPlan(m))
    taken = {m.target for m in opts.mounts}
    for source, mode in opts.volumes_from:
        try:
            other = mgr.resolve(source)
        except NotFound as e:
            raise InvalidArgument(f"--volumes-from: {e}") from None
        for om in other.mounts:
            if om.spec.type == "tmpfs" or om.spec.target in taken:
                continue
            spec = om.spec
            if mode:
                spec = dataclasses.replace(spec, readonly=mode == "ro")
            # Shared, not owned: removing this container never removes the volume.
            out.append(MountPlan(spec, om.volume, anonymous=False))
            taken.add(om.spec.target)
    for target in sorted(cfg.volumes or ()):
        if "\0" in target:
            raise InvalidArgument(f"invalid volume {target!r}: the path contains a NUL byte")
        t = target.rstrip("/") or "/"
        if t in taken or t == "/":
            continue
        out.append(MountPlan(MountSpec("volume", t), secrets.token_hex(32), anonymous=True))
    return out


def merge_config(req: dict[str, Any], img: dict[str, Any], cid: str) -> dict[str, Any]:
    """The container's Config: the request's values over the image's, as Docker merges."""
    merged = dict(img)
    for key in (
        "User",
        "WorkingDir",
        "Tty",
        "OpenStdin",
        "StdinOnce",
        "AttachStdin",
        "AttachStdout",
        "AttachStderr",
        "StopSignal",
        "Hostname",
        "Domainname",
        "StopTimeout",
        "MacAddress",
    ):
        if req.get(key):
            merged[key] = req[key]
    # moby daemon/commit.go merge: the request's Env as sent (bare `VAR` names kept),
    # then the image's entries whose names it does not set.
    env = list(req.get("Env") or [])
    keys = {e.split("=", 1)[0] for e in env}
    env += [e for e in img.get("Env") or [] if e.split("=", 1)[0] not in keys]
    merged["Env"] = env
    if req.get("Entrypoint") is not None:
        merged["Entrypoint"] = req["Entrypoint"] or None
        # A new entrypoint drops the image's Cmd (Docker: daemon/create.go merge)
        merged["Cmd"] = req.get("Cmd") or None
    elif req.get("Cmd"):
        merged["Cmd"] = req["Cmd"]
    labels = dict(img.get("Labels") or {})
    labels.update(req.get("Labels") or {})
    merged["Labels"] = labels
    ports = dict(img.get("ExposedPorts") or {})
    ports.update(req.get("ExposedPorts") or {})
    if ports:
        merged["ExposedPorts"] = ports
    volumes = dict(img.get("Volumes") or {})
    volumes.update(req.get("Volumes") or {})
    if volumes:
        merged["Volumes"] = volumes
    if req.get("Healthcheck"):
        hc = dict(img.get("Healthcheck") or {})
        hc.update({k: v for k, v in req["Healthcheck"].items() if v})
        merged["Healthcheck"] = hc
    merged["Image"] = req.get("Image", "")
    if not merged.get("Hostname"):
        merged["Hostname"] = cid[:12]
    return merged
