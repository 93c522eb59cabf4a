"""Legacy container links (`docker run --link NAME[:ALIAS]`, HostConfig.Links, and an
endpoint's Links in NetworkingConfig, which Compose v1 sends for its one-off containers).

Two kinds, as dockerd has them:

- On a user-defined network a link is an alias that only the linking container resolves
  (moby daemon/container_operations.go: the endpoint's links become sandbox-scoped DNS
  aliases of a container *name*; no environment variables, no hosts entries). The target is
  not looked up at create: it may start later (docker-py's test_create_with_links runs the
  target after the linking container). The network's DNS responder answers the alias only
  to the container holding the link (`linked_address`, keyed on the asker's address).
- On the default bridge (moby daemon.registerLinks, links/links.go) the target must exist at
  create and run at start; the linking container gets `ALIAS_NAME`, `ALIAS_PORT_*` and
  `ALIAS_ENV_*` variables and a hosts line "IP alias hostname [name]" per link, the target
  answers to the extra name `/PARENT/ALIAS` in container lists, and `DELETE
  /containers/PARENT/ALIAS?link=1` removes the link. The record keeps these as
  `Container.legacy_links` (target ID, alias).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping

from dockyard.engine.container_record import Container, RuntimeFacts
from dockyard.engine.endpoint_config import EndpointRequest, parse_links
from dockyard.errors import Conflict, InvalidArgument, NotFound, NotSupported


def attach(
    networks: dict[str, EndpointRequest],
    host_links: list[str],
    *,
    bridge_id: str,
    resolve: Callable[[str], Container],
) -> tuple[tuple[str, str], ...]:
    """HostConfig.Links at create. On the default bridge: the legacy links (target ID,
    alias), each target resolved now (dockerd's error when it is missing). On a user-defined
    network they join the first network's endpoint links, as the docker CLI's `--link` does.
    Endpoint links on the default bridge are refused by name."""
    for net_id, req in networks.items():
        if net_id == bridge_id and req.links:
            raise NotSupported(
                "endpoint links on the default bridge network are not supported by dockyard "
                "(use HostConfig.Links)"
            )
    if not host_links:
        return ()
    if not networks:
        raise InvalidArgument("conflicting options: links need a network to link on")
    first = next(iter(networks))
    if first != bridge_id:
        req = networks[first]
        networks[first] = dataclasses.replace(req, links=(*req.links, *parse_links(host_links)))
        return ()
    legacy = []
    for name, alias in parse_links(host_links):
        try:
            target = resolve(name)
        except NotFound:
            raise InvalidArgument(f"could not get container for {name}") from None
        mode = target.host_config.network_mode
        if mode == "host":
            raise InvalidArgument(
                "conflicting options: host type networking can't be used with links. This "
                "would result in undefined behavior"
            )
        legacy.append((target.id, alias))
    return tuple(legacy)


def _resolves(rec: Container, name: str) -> bool:
    return rec.name == name or rec.id.startswith(name)


def linked_address(
    answering: Iterable[tuple[Container, RuntimeFacts]], net_id: str, name: str, asker: str
) -> str | None:
    """The address a link alias names for the container at `asker` on `net_id`, if `name` is
    one of its links there and the target answers (runs, or is starting): links are the
    linking container's own."""
    by_ip: dict[str, tuple[Container, RuntimeFacts]] = {}
    for rec, runtime in answering:
        ep = runtime.endpoints.get(net_id)
        if ep is not None:
            by_ip[ep.ip] = (rec, runtime)
    me = by_ip.get(asker)
    if me is None:
        return None
    want = me[0].networks.get(net_id)
    for target, alias in want.links if want is not None else ():
        if alias.lower() != name:
            continue
        # By name first (the link names a container, whichever runs under it now).
        for rec, runtime in sorted(by_ip.values(), key=lambda pair: pair[0].name != target):
            if _resolves(rec, target):
                return runtime.endpoints[net_id].ip
    return None


def _ports(exposed: Iterable[str]) -> list[tuple[int, str]]:
    out = []
    for spec in exposed:
        port, _, proto = spec.partition("/")
        if port.isdigit():
            out.append((int(port), proto or "tcp"))
    # moby links.go withTCPPriority: TCP first, then by protocol; by number within one.
    return sorted(out, key=lambda p: (p[1] != "tcp", p[1], p[0]))


def link_env(link_name: str, target: Container, ip: str) -> list[str]:
    """moby links.go ToEnv: the variables one link gives the linking container. `link_name`
    is `/PARENT/ALIAS`; consecutive ports of one protocol also get _START/_END variables."""
    alias = link_name.rpartition("/")[2].upper().replace("-", "_")
    ports = _ports(target.config.exposed_ports)
    env: list[str] = []
    start = end = ports[0] if ports else (0, "")
    for i, (num, proto) in enumerate(ports):
        if i == 0:
            env.append(f"{alias}_PORT={proto}://{ip}:{num}")
        prefix = f"{alias}_PORT_{num}_{proto.upper()}"
        env += [
            f"{prefix}={proto}://{ip}:{num}",
            f"{prefix}_ADDR={ip}",
            f"{prefix}_PORT={num}",
            f"{prefix}_PROTO={proto}",
        ]
        if num == end[0] + 1 and proto == end[1]:
            end = (num, proto)
            if i < len(ports) - 1:
                continue
        if end != start:
            prefix = f"{alias}_PORT_{start[0]}_{start[1].upper()}"
            env += [
                f"{prefix}_START={start[1]}://{ip}:{start[0]}",
                f"{prefix}_PORT_START={start[0]}",
                f"{prefix}_END={end[1]}://{ip}:{end[0]}",
                f"{prefix}_PORT_END={end[0]}",
            ]
        start = end = (num, proto)
    env.append(f"{alias}_NAME={link_name}")
    for entry in target.config.env or ():
        key, sep, value = entry.partition("=")
        # moby skips the variables a build adds that mean nothing to the linking container
        if sep and key not in ("HOME", "PATH"):
            env.append(f"{alias}_ENV_{key}={value}")
    return env


@dataclasses.dataclass(frozen=True)
class LinkSetup:
    """What a start on the default bridge gets from its legacy links."""

    env: tuple[str, ...] = ()
    hosts: tuple[tuple[str, str], ...] = ()  # (address, names) lines of /etc/hosts


def for_start(rec: Container, get: Callable[[str], Container | None], bridge_id: str) -> LinkSetup:
    """The environment and hosts lines of `rec`'s legacy links. A target removed since
    create is dropped, as dockerd drops the link; one that does not run is dockerd's error."""
    env: list[str] = []
    hosts: list[tuple[str, str]] = []
    for target_id, alias in rec.legacy_links:
        target = get(target_id)
        if target is None:
            continue
        ep = target.runtime.endpoints.get(bridge_id)
        if not target.state.alive or ep is None:
            raise Conflict(
                f"Cannot link to a non running container: /{target.name} AS /{rec.name}/{alias}"
            )
        env += link_env(f"/{rec.name}/{alias}", target, ep.ip)
        # moby buildSandboxOptions: the alias, the target's hostname, and its name if the
        # alias is not that name.
        names = [alias, target.hostname]
        if alias != target.name:
            names.append(target.name)
        hosts.append((ep.ip, " ".join(names)))
    return LinkSetup(tuple(env), tuple(hosts))


def link_names(records: Iterable[Container]) -> Mapping[str, list[str]]:
    """{target ID: ["/PARENT/ALIAS", ...]}: the extra names dockerd lists a target under."""
    out: dict[str, list[str]] = {}
    for rec in records:
        for target_id, alias in rec.legacy_links:
            out.setdefault(target_id, []).append(f"/{rec.name}/{alias}")
    return out


def host_config_links(rec: Container, get: Callable[[str], Container | None]) -> list[str]:
    """HostConfig.Links as dockerd's inspect renders them ("/TARGET:/PARENT/ALIAS")."""
    out = []
    for target_id, alias in rec.legacy_links:
        target = get(target_id)
        if target is not None:
            out.append(f"/{target.name}:/{rec.name}/{alias}")
    return out


def split_link_name(name: str) -> tuple[str, str]:
    """`PARENT/ALIAS` of `DELETE /containers/PARENT/ALIAS?link=1` (moby daemon.rmLink)."""
    full = name if name.startswith("/") else "/" + name
    parent, _, alias = full.rpartition("/")
    if not parent:
        raise Conflict("Conflict, cannot remove the default link name of the container")
    return parent.lstrip("/"), alias
