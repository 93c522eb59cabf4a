"""`docker build --network NAME`: a RUN step's namespace plugged into a user-defined network.

moby's legacy builder runs each step in a container on the build's network; names there
resolve through the network's DNS responder (engine/dns.py) as they do for containers. The
step gets an address of the network's pool for the time it runs, under the step's ID.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from dockyard.engine.network import Endpoint

if TYPE_CHECKING:
    from dockyard.engine.containers import ContainerManager


class BuildNetworks:
    """The engine's side of builder/runner.StepNetworks."""

    def __init__(self, containers: ContainerManager) -> None:
        self.containers = containers
        self._endpoints: dict[str, Endpoint] = {}

    async def attach(self, network: str, step_id: str, netns: Path) -> tuple[str, ...]:
        networks = self.containers.networks
        net = networks.get(network)
        await asyncio.to_thread(networks.create_netns, netns)
        ep = await asyncio.to_thread(networks.connect, net["Id"], step_id, str(netns), "eth0", True)
        self._endpoints[step_id] = ep
        if net["Name"] == "bridge":
            return ()  # the default bridge has no responder: the host's resolvers
        await self.containers.dns.ensure(net["Id"], ep.gateway)
        return (ep.gateway,)

    async def detach(self, step_id: str, netns: Path) -> None:
        networks = self.containers.networks
        ep = self._endpoints.pop(step_id, None)
        if ep is not None:
            await asyncio.to_thread(networks.disconnect, ep, step_id, str(netns))
        await asyncio.to_thread(networks.delete_netns, netns)
