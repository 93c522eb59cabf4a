"""The benchmark's inputs: sizes, Dockerfiles, build contexts and the image the pull row pulls."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import write_context
from tests.registry.support import RegImage, layer_tar, make_image


@dataclass(frozen=True)
class Sizes:
    """How big each row's work is: the issue's sizes, or tiny ones for the smoke test."""

    context_mib: int = 200
    context_files: int = 5000
    layer_mib: int = 512
    pull_layers: int = 5
    pull_layer_mib: int = 20
    run_d: int = 30
    cost_containers: int = 50
    throughput_runs: int = 40  # `run --rm` in total, spread over the parallel clients
    throughput_clients: int = 4
    listed_containers: int = 500
    stages: int = 50


TINY = Sizes(
    context_mib=2,
    context_files=40,
    layer_mib=4,
    pull_layers=5,
    pull_layer_mib=1,
    run_d=3,
    cost_containers=3,
    throughput_runs=4,
    listed_containers=5,
    stages=3,
)

ROW_A = 'FROM bench-base\nRUN echo one > /one\nCOPY f.txt /f.txt\nCMD ["cat", "/one"]\n'
ROW_C = """\
FROM bench-base
ENV A=1 B=2
WORKDIR /app
COPY src/ /app/src/
RUN ls -R /app > /listing
ARG V=1
RUN echo $V > /v
LABEL bench=c
COPY f.txt /app/f.txt
RUN cat /app/f.txt /v > /both
USER daemon
RUN id > /tmp/id
CMD ["cat", "/listing"]
"""
ROW_F = "FROM bench-base\nCOPY . /ctx/\n"


def row_e(mib: int) -> str:
    return f"FROM bench-base\nRUN dd if=/dev/urandom of=/big bs=1M count={mib} 2>/dev/null\n"


def stages(n: int) -> str:
    """n independent stages, each one RUN, and a final stage that copies from every one (so
    no builder may skip a stage)."""
    out = [f"FROM bench-base AS s{i}\nRUN echo {i} > /out\n" for i in range(n)]
    out.append("FROM bench-base\n")
    out += [f"COPY --from=s{i} /out /out{i}\n" for i in range(n)]
    return "".join(out)


@dataclass(frozen=True)
class Contexts:
    a: Path
    c: Path
    e: Path
    f_master: Path
    stages: Path


def make_contexts(base: Path, sizes: Sizes) -> Contexts:
    a = write_context(base / "a", ROW_A, {"f.txt": "f\n"})
    c = write_context(
        base / "c", ROW_C, {"f.txt": "f\n", **{f"src/f{i}.txt": f"{i}\n" for i in range(50)}}
    )
    e = write_context(base / "e", row_e(sizes.layer_mib))
    f = base / "f-master"
    make_big_context(f, sizes.context_mib, sizes.context_files)
    st = write_context(base / "stages", stages(sizes.stages))
    return Contexts(a, c, e, f, st)


def make_big_context(root: Path, mib: int, files: int, dockerfile: str = ROW_F) -> None:
    """`files` files of random bytes, `mib` MiB in all, 100 to a directory, and a Dockerfile."""
    size = (mib << 20) // files
    for i in range(files):
        d = root / f"d{i // 100:03}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:05}.bin").write_bytes(os.urandom(size))
    (root / "Dockerfile").write_text(dockerfile)


def pull_image(sizes: Sizes) -> RegImage:
    """The pull row's image: `pull_layers` layers of `pull_layer_mib` MiB each, hex text (it
    compresses about 2:1, as real layers do, so gunzip has work to do)."""
    layers = []
    for i in range(sizes.pull_layers):
        data = os.urandom((sizes.pull_layer_mib << 20) // 2).hex().encode()
        layers.append(layer_tar({f"layer{i}/data": data}))
    return make_image(layers, cmd=["/bin/sh"])
