"""The rows of issue 17's table, grouped by the work they share.

A group measures one engine once per call and returns a value for each of its rows (the cold
and the cached build of one Dockerfile come from one call, a cached build right after its
cold one). Setup and teardown of a group run outside the timed parts.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.registry.support import Registry

from bench.engines import BASE_IMAGE, BUILD, REGISTRY, RUN, Engine
from bench.memory import total
from bench.sampling import sh, timed
from bench.workloads import Contexts, Sizes


@dataclass(frozen=True)
class Target:
    """The issue's target for dockyard on a row: an absolute bound, or a factor of the best
    peer (or of one named peer); `text` is how the table prints it."""

    text: str
    absolute: float | None = None
    factor: float | None = None
    peer: str | None = None


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    unit: str  # "s", "MiB", "runs/s"
    target: Target
    higher_is_better: bool = False
    floor: str | None = None  # the key of a physical floor (bench/floors.py)


@dataclass
class Bench:
    """What the groups share: where to work, the sizes, the inputs and the registries."""

    base: Path
    sizes: Sizes
    contexts: Contexts
    pull_registry: Registry
    push_registry: Registry
    pull_ref: str
    counter: itertools.count[int] = field(default_factory=itertools.count)

    def push_ref(self, engine: Engine) -> str:
        return f"{self.push_registry.host}/bench/push-{slug(engine)}:latest"

    def wipe_push_registry(self) -> None:
        """A registry that holds nothing, so every push uploads every blob."""
        self.push_registry.stop()
        shutil.rmtree(self.push_registry.storage, ignore_errors=True)
        self.push_registry.start()


def slug(engine: Engine) -> str:
    return engine.name.lower().replace(" ", "-")


Measure = Callable[[Bench, Engine, int], dict[str, float]]
Hook = Callable[[Bench, Engine], None]


def _nothing(bench: Bench, engine: Engine) -> None:
    pass


@dataclass(frozen=True)
class Group:
    key: str
    needs: str  # the capability an engine must have (bench/engines.py)
    rows: list[Row]
    measure: Measure
    setup: Hook = _nothing
    teardown: Hook = _nothing


def best(factor: float, peer: str | None = None) -> Target:
    who = peer or "best peer"
    return Target(f"≤ {factor:g} x {who}", factor=factor, peer=peer)


# -- builds ---------------------------------------------------------------------------------


def _cold_and_cached(ctx: Callable[[Bench], Path], name: str, cold: str, cached: str) -> Measure:
    def measure(bench: Bench, e: Engine, i: int) -> dict[str, float]:
        tag = f"bench-{name}-{slug(e)}"
        return {
            cold: timed(e.build_argv(ctx(bench), tag, no_cache=True), e.env),
            cached: timed(e.build_argv(ctx(bench), tag), e.env),
        }

    return measure


def _warm(ctx: Callable[[Bench], Path], name: str) -> Hook:
    def setup(bench: Bench, e: Engine) -> None:
        sh(e.build_argv(ctx(bench), f"bench-{name}-{slug(e)}"), e.env)

    return setup


def _big_layer(bench: Bench, e: Engine, i: int) -> dict[str, float]:
    tag = f"bench-e-{slug(e)}"
    took = timed(e.build_argv(bench.contexts.e, tag, no_cache=True), e.env)
    e.remove_image(tag)
    e.forget_build_cache()
    return {"e": took}


def _big_context(bench: Bench, e: Engine, i: int) -> dict[str, float]:
    """Cold: a copy of the context in a directory the engine has not seen, one file changed
    (nothing of it is kept anywhere; the COPY misses the cache). Cached: the same directory
    again, unchanged (the incremental context)."""
    d = bench.base / f"f-{slug(e)}-{i}"
    subprocess.run(["cp", "-a", str(bench.contexts.f_master), str(d)], check=True)
    (d / "stamp").write_text(f"{e.name} {i} {time.time_ns()}\n")
    tag = f"bench-f-{slug(e)}"
    try:
        cold = timed(e.build_argv(d, tag), e.env)
        cached = timed(e.build_argv(d, tag), e.env)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    e.remove_image(tag)
    e.forget_build_cache()
    return {"f cold": cold, "f cached": cached}


def _stages(bench: Bench, e: Engine, i: int) -> dict[str, float]:
    tag = f"bench-stages-{slug(e)}"
    took = timed(e.build_argv(bench.contexts.stages, tag, no_cache=True), e.env)
    return {"stages": took}


# -- containers -----------------------------------------------------------------------------


def _warm_run(bench: Bench, e: Engine) -> None:
    e.do("run", "--rm", BASE_IMAGE, "true")  # the bridge made, binaries in the page cache


def _run_rm(bench: Bench, e: Engine, i: int) -> dict[str, float]:
    return {
        "d bridge": timed(e.argv("run", "--rm", BASE_IMAGE, "true"), e.env),
        "d none": timed(e.argv("run", "--rm", "--network", "none", BASE_IMAGE, "true"), e.env),
    }


def _parallel(n: int, fn: Callable[[int], object]) -> None:
    with concurrent.futures.ThreadPoolExecutor(max(1, n)) as pool:
        list(pool.map(fn, range(n)))


def _remove_containers(e: Engine, names: list[str]) -> None:
    for chunk in range(0, len(names), 50):
        subprocess.run(
            e.argv("rm", "-f", *names[chunk : chunk + 50]), env=e.env, capture_output=True
        )


def _many_at_once(bench: Bench, e: Engine, i: int) -> dict[str, float]:
    n = bench.sizes.run_d
    names = [f"bench-d{i}-{k}" for k in range(n)]
    t0 = time.perf_counter()
    _parallel(n, lambda k: e.do("run", "-d", "--name", names[k], BASE_IMAGE, "sleep", "600"))
    took = time.perf_counter() - t0
    _remove_containers(e, names)
    return {"run -d at once": took}


def _per_container(bench: Bench, e: Engine, i: int) -> dict[str, float]:
    """(PSS of the daemon and of every per-container process with N containers running, each
    with `-p`, minus the same with none) / N, in MiB."""
    n = bench.sizes.cost_containers
    names = [f"bench-cost{i}-{k}" for k in range(n)]
    time.sleep(1)
    idle = total(e.owned_pids())
    _parallel(
        min(n, 10),
        lambda k: [
            e.do("run", "-d", "-p", "80", "--name", names[j], BASE_IMAGE, "sleep", "3600")
            for j in range(k, n, 10)
        ],
    )
    time.sleep(2)  # let start-up garbage go
    busy = total(e.owned_pids())
    _remove_containers(e, names)
    return {"per container": (busy.pss_kib - idle.pss_kib) / n / 1024}


def _throughput(bench: Bench, e: Engine, i: int) -> dict[str, float]:
    clients, n = bench.sizes.throughput_clients, bench.sizes.throughput_runs

    def client(k: int) -> None:
        for _ in range(k, n, clients):
            e.do("run", "--rm", BASE_IMAGE, "true")

    t0 = time.perf_counter()
    _parallel(clients, client)
    return {"throughput": n / (time.perf_counter() - t0)}


def _listed_names(bench: Bench) -> list[str]:
    return [f"bench-l{k}" for k in range(bench.sizes.listed_containers)]


def _create_listed(bench: Bench, e: Engine) -> None:
    names = _listed_names(bench)
    _parallel(
        8,
        lambda k: [
            e.do("create", "--name", names[j], BASE_IMAGE, "true") for j in range(k, len(names), 8)
        ],
    )


def _remove_listed(bench: Bench, e: Engine) -> None:
    _remove_containers(e, _listed_names(bench))


def _list(bench: Bench, e: Engine, i: int) -> dict[str, float]:
    names = _listed_names(bench)
    return {
        "ps": timed(e.argv("ps", "-a"), e.env),
        "inspect": timed(e.argv("inspect", names[i % len(names)]), e.env),
    }


# -- registry -------------------------------------------------------------------------------


def _pull_then_tag(bench: Bench, e: Engine) -> None:
    sh(e.pull_argv(bench.pull_ref), e.env)


def _pull_push(bench: Bench, e: Engine, i: int) -> dict[str, float]:
    e.remove_image(bench.push_ref(e))
    e.remove_image(bench.pull_ref)
    pull = timed(e.pull_argv(bench.pull_ref), e.env)
    e.do("tag", bench.pull_ref, bench.push_ref(e))
    bench.wipe_push_registry()
    push = timed(e.push_argv(bench.push_ref(e)), e.env)
    return {"g pull": pull, "g push": push}


def groups(sizes: Sizes) -> list[Group]:
    mib, files = sizes.context_mib, sizes.context_files
    return [
        Group(
            "a",
            BUILD,
            [
                Row("a cold", "a cold 3-step build", "s", best(0.5)),
                Row("b cached", "b cached 3-step", "s", Target("≤ 0.05 s", absolute=0.05)),
            ],
            _cold_and_cached(lambda b: b.contexts.a, "a", "a cold", "b cached"),
            setup=_warm(lambda b: b.contexts.a, "a"),
        ),
        Group(
            "c",
            BUILD,
            [
                Row("c cold", "c cold 12-step", "s", best(0.35)),
                Row("c cached", "c cached 12-step", "s", Target("≤ 0.06 s", absolute=0.06)),
            ],
            _cold_and_cached(lambda b: b.contexts.c, "c", "c cold", "c cached"),
            setup=_warm(lambda b: b.contexts.c, "c"),
        ),
        Group(
            "d",
            RUN,
            [
                Row(
                    "d bridge",
                    "d `run --rm true` (bridge)",
                    "s",
                    Target("≤ 0.15 s", absolute=0.15),
                    floor="runc run",
                ),
                Row(
                    "d none",
                    "d `run --rm --network none true`",
                    "s",
                    Target("≤ 0.10 s", absolute=0.10),
                    floor="runc run",
                ),
            ],
            _run_rm,
            setup=_warm_run,
        ),
        Group(
            "e",
            BUILD,
            [Row("e", f"e RUN writes {sizes.layer_mib} MiB", "s", best(0.6))],
            _big_layer,
        ),
        Group(
            "f",
            BUILD,
            [
                Row(
                    "f cold",
                    f"f COPY {mib} MiB / {files}-file context, cold",
                    "s",
                    best(0.7, "BuildKit"),
                    floor="tar | sha256sum",
                ),
                Row("f cached", "f same, cached", "s", best(1.0, "BuildKit")),
            ],
            _big_context,
        ),
        Group(
            "g",
            REGISTRY,
            [
                Row(
                    "g pull",
                    f"g pull {sizes.pull_layers * sizes.pull_layer_mib} MiB, "
                    f"{sizes.pull_layers} layers",
                    "s",
                    best(0.8, "Docker legacy"),
                    floor="curl | tar -xz",
                ),
                Row("g push", "g push", "s", best(0.45), floor="HTTP upload"),
            ],
            _pull_push,
            setup=_pull_then_tag,
        ),
        Group(
            "runs",
            RUN,
            [
                Row(
                    "run -d at once",
                    f"{sizes.run_d} x `run -d` at once (wall)",
                    "s",
                    Target("≤ 3 s", absolute=3.0),
                )
            ],
            _many_at_once,
        ),
        Group(
            "cost",
            RUN,
            [
                Row(
                    "per container",
                    f"per running container, PSS ({sizes.cost_containers} with `-p`)",
                    "MiB",
                    Target("≤ 3 MiB", absolute=3.0),
                )
            ],
            _per_container,
        ),
        Group(
            "throughput",
            RUN,
            [
                Row(
                    "throughput",
                    f"`run --rm true` throughput, {sizes.throughput_clients} parallel clients",
                    "runs/s",
                    Target("≥ best peer", factor=1.0),
                    higher_is_better=True,
                )
            ],
            _throughput,
            setup=_warm_run,
        ),
        Group(
            "list",
            RUN,
            [
                Row(
                    "ps",
                    f"`ps -a` with {sizes.listed_containers} containers",
                    "s",
                    Target("≤ best peer", factor=1.0),
                ),
                Row(
                    "inspect",
                    f"`inspect` with {sizes.listed_containers} containers",
                    "s",
                    Target("≤ best peer", factor=1.0),
                ),
            ],
            _list,
            setup=_create_listed,
            teardown=_remove_listed,
        ),
        Group(
            "stages",
            BUILD,
            [
                Row(
                    "stages",
                    f"{sizes.stages}-stage Dockerfile, cold",
                    "s",
                    Target("≤ best peer", factor=1.0),
                )
            ],
            _stages,
        ),
    ]


MEMORY_ROWS = [
    Row("h idle", "h daemon RSS idle", "MiB", Target("≤ 40 MiB", absolute=40.0)),
    Row("h after", "h daemon RSS after the workloads", "MiB", Target("≤ 45 MiB", absolute=45.0)),
]
