"""What a container start prepares before runc runs: its mounts, network and spec input.

Volumes are made and seeded, bind sources checked (or made, for `-v`), the network
namespace created and plugged into the container's networks, the /etc files written, the
user resolved in the image, and the init added: all of it becomes a runtime/spec.py
ContainerConfig. Called by ContainerManager.start with the root filesystem mounted; once the
process runs, `publish_ports` hands its published ports to a proxy, and `rewrite_hosts`
keeps /etc/hosts of the containers on a user network naming each other.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dockyard.engine import links
from dockyard.engine.container_record import Config, Container, PublishedPort, RuntimeFacts
from dockyard.engine.hostconfig import RunOptions
from dockyard.engine.network import Endpoint
from dockyard.errors import Conflict, InvalidArgument
from dockyard.runtime.etcfiles import (
    effective_hostname,
    hosts_file,
    rewrite_in_place,
    write_etc_files,
)
from dockyard.runtime.init import INIT_PATH_IN_CONTAINER, init_binary
from dockyard.runtime.process import process_env
from dockyard.runtime.spec import (
    BindMount,
    ContainerConfig,
    TmpfsMount,
    default_rlimits,
)
from dockyard.runtime.users import resolve_user

if TYPE_CHECKING:
    from dockyard.engine.containers import ContainerManager

PROXY_PID = "portproxy.pid"  # in the container's state dir: the proxy of its published ports


def host_names(rec: Container, hostname: str) -> str:
    """The names a container's own /etc/hosts line carries: hostname, then short ID."""
    names = [hostname]
    if rec.id[:12] != hostname:
        names.append(rec.id[:12])
    return " ".join(names)


async def prepare(
    mgr: ContainerManager,
    rec: Container,
    opts: RunOptions,
    rootfs: Path,
    state_dir: Path,
    undo: list[Any],
) -> tuple[RuntimeFacts, ContainerConfig]:
    """Everything a start needs before runc: mounts, network, /etc files, the spec input.

    Each step that makes something (a namespace, an endpoint) pushes its undo on `undo`,
    which the caller runs in reverse when a later step fails.
    """
    cfg = rec.config
    mode = opts.network_mode
    runtime = RuntimeFacts()
    binds: list[BindMount] = []
    tmpfs: list[TmpfsMount] = []
    for m in rec.mounts:
        spec = m.spec
        if spec.type == "tmpfs":
            tmpfs.append(TmpfsMount(spec.target, spec.tmpfs_options))
            continue
        if spec.type == "bind":
            src = Path(spec.source)
            if not src.exists():
                if not spec.create_source:
                    raise InvalidArgument(
                        f'invalid mount config for type "bind": bind source path does not '
                        f"exist: {src}"
                    )
                src.mkdir(parents=True, exist_ok=True)  # Docker's -v makes it
            binds.append(BindMount(src, spec.target, spec.readonly, spec.propagation))
            continue
        name = m.volume
        if not mgr.volumes.exists(name):
            mgr.volumes.create(name, anonymous=m.anonymous)
        if not spec.nocopy:
            from dockyard.diff.fsutil import resolve_in_root

            await asyncio.to_thread(mgr.volumes.seed, name, resolve_in_root(rootfs, spec.target))
        binds.append(BindMount(mgr.volumes.path(name), spec.target, spec.readonly))

    host_net = mode == "host"
    hostname = effective_hostname(rec.hostname, host_net or opts.uts_mode == "host")
    hostname_full = f"{hostname}.{cfg.domainname}" if cfg.domainname and not host_net else hostname
    netns_path = ""
    etc_binds: tuple[BindMount, ...]
    linked = links.LinkSetup()
    if mode.startswith("container:"):
        other = mgr.resolve(mode.split(":", 1)[1])
        if not other.state.alive or not other.state.pid:
            raise Conflict(f"cannot join network of a non running container: {other.id}")
        netns_path = f"/proc/{other.state.pid}/ns/net"
        odir = mgr.root / other.id
        etc_binds = (
            BindMount(odir / "resolv.conf", "/etc/resolv.conf"),
            BindMount(odir / "hostname", "/etc/hostname"),
            BindMount(odir / "hosts", "/etc/hosts"),
        )
        network = netns_path
        hostname = other.hostname
    else:
        own: list[tuple[str, str]] = []
        dns_servers: tuple[str, ...] = opts.dns
        network = "host" if host_net else "none"
        requested = rec.networks
        if requested:
            netns = state_dir / "netns"
            await asyncio.to_thread(mgr.networks.create_netns, netns)
            undo.append(lambda: mgr.networks.delete_netns(netns))
            netns_path = str(netns)
            endpoints: dict[str, Endpoint] = {}
            for i, (net_id, want) in enumerate(requested.items()):
                ep = await asyncio.to_thread(
                    mgr.networks.connect,
                    net_id,
                    rec.id,
                    netns_path,
                    f"eth{i}",
                    i == 0,
                    want,
                )
                undo.append(lambda ep=ep: mgr.networks.disconnect(ep, rec.id, None))
                endpoints[net_id] = ep
                if i == 0:
                    own.append((ep.ip, host_names(rec, hostname)))
            runtime = RuntimeFacts(endpoints, (), netns_path)
            await mgr.ensure_dns(runtime)
            first = next(iter(endpoints))
            bridge_id = mgr.networks.get("bridge")["Id"]
            if rec.legacy_links:
                linked = links.for_start(rec, mgr.get, bridge_id)
                own.extend(linked.hosts)
            if first != bridge_id and not opts.dns:
                # User-defined network: names resolve through our responder.
                dns_servers = (endpoints[first].gateway,)
            network = netns_path
        etc_binds = write_etc_files(
            state_dir,
            hostname_full,
            host_net,
            dns=dns_servers,
            dns_search=opts.dns_search,
            dns_options=opts.dns_options,
            extra_hosts=opts.extra_hosts,
            own_hosts=own,
        )
    if opts.readonly_rootfs:
        # Docker mounts the /etc files read-only too when the root is read-only.
        etc_binds = tuple(dataclasses.replace(b, readonly=True) for b in etc_binds)
    all_binds: list[BindMount] = []
    user = resolve_user(rootfs, cfg.user)
    extra_gids = list(user.additional_gids)
    for g in opts.group_add:
        gid = int(g) if g.isdigit() else resolve_user(rootfs, f"0:{g}").gid
        if gid not in extra_gids:
            extra_gids.append(gid)
    # moby CreateDaemonEnvironment: the links' variables, then the container's own over them
    env = process_env([*linked.env, *(cfg.env or ())], hostname, user.home, tty=cfg.tty)
    argv = [rec.path, *rec.args]
    if opts.init:
        # Docker mounts the init before the /etc files (daemon/oci_linux.go order).
        init = await asyncio.to_thread(init_binary, mgr.daemon_root / "bin")
        all_binds.append(BindMount(init, INIT_PATH_IN_CONTAINER, readonly=True))
        argv = [INIT_PATH_IN_CONTAINER, "--", *argv]
    all_binds += etc_binds
    all_binds += binds
    limits = {r.type: r for r in default_rlimits()}
    for r in opts.ulimits:
        limits[r.type] = r
    seccomp_on = opts.seccomp != "unconfined"
    spec_cfg = ContainerConfig(
        rootfs=rootfs,
        args=tuple(argv),
        env=tuple(env),
        cwd=cfg.working_dir or "/",
        uid=user.uid,
        gid=user.gid,
        additional_gids=tuple(extra_gids),
        hostname=hostname,
        terminal=cfg.tty,
        network=network,
        binds=tuple(all_binds),
        tmpfs=tuple(tmpfs),
        readonly_rootfs=opts.readonly_rootfs,
        shm_size=opts.shm_size,
        resources=opts.resources,
        sysctls=opts.sysctls,
        cgroupns=opts.cgroupns,
        devices=opts.devices,
        device_rules=opts.device_rules,
        uts_ns=_ns_path(mgr, opts.uts_mode, "uts"),
        pid_ns=_ns_path(mgr, opts.pid_mode, "pid"),
        ipc_ns=_ns_path(mgr, opts.ipc_mode, "ipc"),
        cgroups_path=f"/dockyard/{rec.id}",
        capabilities=opts.capabilities,
        privileged=opts.privileged,
        seccomp=seccomp_on,
        seccomp_profile=opts.seccomp_profile,
        no_new_privileges=opts.no_new_privileges,
        rlimits=tuple(limits.values()),
    )
    return runtime, spec_cfg


def _ns_path(mgr: ContainerManager, mode: str, kind: str) -> str:
    """ "" (new), "host", or /proc/<pid>/ns/<kind> of the running container named."""
    if not mode.startswith("container:"):
        return mode
    other = mgr.resolve(mode.split(":", 1)[1])
    if not other.state.alive or not other.state.pid:
        raise Conflict(f"cannot join the {kind} namespace of a non running container: {other.id}")
    return f"/proc/{other.state.pid}/ns/{kind}"


async def publish_ports(
    mgr: ContainerManager, cid: str, runtime: RuntimeFacts, opts: RunOptions, cfg: Config, pid: int
) -> tuple[PublishedPort, ...]:
    """`-p` and `-P` (every exposed port not published already) of a started container."""
    bindings = [(p.container_port, p.proto, p.host_ip, p.host_port) for p in opts.ports]
    if opts.publish_all:
        have = {(b[0], b[1]) for b in bindings}
        for key in sorted(cfg.exposed_ports):
            port_s, _, proto = key.partition("/")
            if (int(port_s), proto or "tcp") not in have:
                bindings.append((int(port_s), proto or "tcp", "", 0))
    if not bindings:
        return ()
    eps = list(runtime.endpoints.values())
    if opts.network_mode == "host" or not eps:
        return ()  # Docker: published ports are discarded with the host network
    pid_file = mgr.root / cid / PROXY_PID
    pid_file.unlink(missing_ok=True)
    published = await mgr.networks.publish(cid, eps[0].ip, bindings, pid_file, pid)
    return tuple(PublishedPort(*p) for p in published)


def rewrite_hosts(mgr: ContainerManager, rec: Container, running: list[Container]) -> None:
    """/etc/hosts of a running container: itself, then its peers on user networks (the
    default bridge has no name resolution, Docker's rule)."""
    eps = rec.runtime.endpoints
    own: list[tuple[str, str]] = []
    if eps:
        first = next(iter(eps.values()))
        own.append((first.ip, host_names(rec, rec.hostname)))
    bridge = mgr.networks.get("bridge")["Id"]
    for other in running:
        if other.id == rec.id:
            continue
        for net_id, ep in other.runtime.endpoints.items():
            if net_id in eps and net_id != bridge:
                want = other.networks.get(net_id)
                aliases = want.aliases if want is not None else ()
                names = " ".join(dict.fromkeys([other.name, *aliases, other.id[:12]]))
                own.append((ep.ip, names))
    text = hosts_file(host_network=False, own=own, extra=rec.host_config.options.extra_hosts)
    path = mgr.root / rec.id / "hosts"
    if path.exists():
        rewrite_in_place(path, text)
