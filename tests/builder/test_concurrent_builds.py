"""Builds at once (issue 10 §4): overlapping Dockerfiles share the build cache, so a step they
have in common runs once and makes one layer, and nothing in the store is left half-made.

The common step writes a random UUID, so a step run twice would make two different
layers: the test sees a duplicate as a second diff ID, or as images disagreeing on the file.
"""

from __future__ import annotations

import concurrent.futures
import json
from pathlib import Path

from tests.builder.helpers import api_build, error_of
from tests.conftest import Clients, write_context
from tests.support.api import request

COMMON = "FROM busybox\nCOPY same.txt /same.txt\nRUN sleep 1; cat /proc/sys/kernel/random/uuid > /shared\n"
VARIANTS = {
    "cb-a": COMMON + "RUN echo a > /a\n",
    "cb-b": COMMON + "RUN echo b > /b\n",
    "cb-a2": COMMON + "RUN echo a > /a\n",
    "cb-c": COMMON + "RUN echo c > /c\nRUN echo cc >> /c\n",
}


def _diff_ids(clients: Clients) -> dict[str, list[str]]:
    """Every image (intermediate ones included) and its layers."""
    reply = request(clients.daemon.socket, "GET", "/v1.44/images/json?all=1")
    out = {}
    for summary in json.loads(reply.body):
        inspect = request(clients.daemon.socket, "GET", f"/v1.44/images/{summary['Id']}/json")
        out[summary["Id"]] = json.loads(inspect.body)["RootFS"]["Layers"]
    return out


def test_overlapping_builds_at_once_share_the_cache(fresh_clients: Clients, tmp_path: Path) -> None:
    c = fresh_clients
    (base,) = _diff_ids(c).values()
    contexts = {
        tag: write_context(tmp_path / tag, text, {"same.txt": "same\n"})
        for tag, text in VARIANTS.items()
    }
    with concurrent.futures.ThreadPoolExecutor(len(contexts)) as pool:
        results = dict(
            zip(
                contexts,
                pool.map(lambda tag: api_build(c, contexts[tag], t=tag), contexts),
                strict=True,
            )
        )
    for tag, messages in results.items():
        assert error_of(messages) == "", (tag, messages)

    shared = {tag: c.ok("run", "--rm", tag, "cat", "/shared") for tag in VARIANTS}
    assert len(set(shared.values())) == 1, shared  # the common RUN ran once
    assert c.ok("run", "--rm", "cb-a", "cat", "/a") == "a\n"
    assert c.ok("run", "--rm", "cb-c", "cat", "/c") == "c\ncc\n"
    assert c.ok("inspect", "-f", "{{.Id}}", "cb-a") == c.ok("inspect", "-f", "{{.Id}}", "cb-a2")

    layers = {d for ids in _diff_ids(c).values() for d in ids}
    # busybox, COPY, the common RUN, then a, b, c and cc: one layer each, no second copy
    assert len(layers) == len(base) + 2 + 4, sorted(layers)
    # (`init` and `empty` are the snapshotter's own: the init layer, an empty lower dir)
    snapshots = sorted(p.name for p in (c.daemon.root / "overlay").iterdir() if p.name.isdigit())
    assert len(snapshots) == len(layers), " ".join(snapshots)  # none left of a duplicate
    assert list((c.daemon.root / "content/ingest").iterdir()) == []


def test_step_locks_pass_on_when_the_holder_fails_or_a_waiter_leaves() -> None:
    import asyncio

    from dockyard.builder.steplocks import StepLocks

    locks = StepLocks()
    order: list[str] = []

    async def holder() -> None:
        async with locks.hold("k"):
            order.append("first runs")
            await asyncio.sleep(0.05)
            raise RuntimeError("the step failed")

    async def waiter(name: str) -> None:
        async with locks.hold("k"):
            order.append(f"{name} runs")

    async def main() -> None:
        first = asyncio.create_task(holder())
        await asyncio.sleep(0)
        leaver = asyncio.create_task(waiter("leaver"))
        second = asyncio.create_task(waiter("second"))
        await asyncio.sleep(0.01)
        leaver.cancel()  # its client went away while it waited
        await asyncio.gather(first, leaver, second, return_exceptions=True)
        assert len(locks) == 0  # nothing kept for a key nobody waits on

    asyncio.run(main())
    assert order == ["first runs", "second runs"]
