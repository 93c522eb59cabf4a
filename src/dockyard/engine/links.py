"""Legacy container links (`docker run --link NAME[:ALIAS]`, HostConfig.Links, and an
endpoint's Links in NetworkingConfig, which Compose v1 sends for its one-off containers).

On a user-defined network dockerd makes a link an alias that only the linking container
resolves (moby daemon/container_operations.go: the endpoint's links become sandbox-scoped DNS
aliases; no environment variables, no hosts entries of the target's). dockyard answers the
same way: the network's DNS responder answers an alias only to the container that holds the
link (`linked_address`, keyed on the asker's address). The default bridge's links (environment
variables and hosts entries of their own, deprecated in Docker) are refused by name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable

from dockyard.engine.container_record import Container
from dockyard.engine.endpoint_config import EndpointRequest
from dockyard.errors import InvalidArgument, NotFound, NotSupported


def parse(entries: list[str]) -> list[tuple[str, str]]:
    """`name:alias` (or `name`, aliased as itself) → (target, alias); a leading `/` dropped."""
    out = []
    for entry in entries:
        name, _, alias = str(entry).partition(":")
        name = name.strip("/")
        alias = alias.strip("/").rpartition("/")[2] or name
        if not name:
            raise InvalidArgument(f"invalid link: {entry!r}")
        out.append((name, alias))
    return out


def attach(
    networks: dict[str, EndpointRequest],
    host_links: list[str],
    endpoint_links: dict[str, list[str]],
    *,
    bridge_id: str,
    resolve: Callable[[str], str],
) -> None:
    """Record the links in `networks` ({network ID: request}) as (target ID, alias) pairs.
    HostConfig.Links go with the first network, as the docker CLI's `--link` does; a missing
    target is dockerd's error."""
    wanted: dict[str, list[tuple[str, str]]] = {}
    if host_links and networks:
        wanted.setdefault(next(iter(networks)), []).extend(parse(host_links))
    for net_id, entries in endpoint_links.items():
        wanted.setdefault(net_id, []).extend(parse(entries))
    for net_id, links in wanted.items():
        if not links:
            continue
        if net_id == bridge_id:
            raise NotSupported(
                "--link on the default bridge network is not supported by dockyard (links "
                "work on user-defined networks)"
            )
        resolved = []
        for name, alias in links:
            try:
                resolved.append((resolve(name), alias))
            except NotFound:
                raise InvalidArgument(f"could not get container for {name}") from None
        networks[net_id] = dataclasses.replace(networks[net_id], links=tuple(resolved))


def linked_address(records: Iterable[Container], net_id: str, name: str, asker: str) -> str | None:
    """The address a link alias names for the container at `asker` on `net_id`, if `name` is
    one of its links there and the target runs: links are the linking container's own."""
    by_ip = {}
    for rec in records:
        ep = rec.runtime.endpoints.get(net_id)
        if ep is not None and rec.state.alive:
            by_ip[ep.ip] = rec
    me = by_ip.get(asker)
    if me is None:
        return None
    want = me.networks.get(net_id)
    for target_id, alias in want.links if want is not None else ():
        if alias.lower() != name:
            continue
        for ip, rec in by_ip.items():
            if rec.id == target_id:
                return ip
    return None
