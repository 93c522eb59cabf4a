"""`dockyard system check`: the whole store verified, and `--repair` removing what nothing uses.

What is checked (issue 10 §1):
- every blob hashes to its name;
- every image's config blob is there and parses, and every layer of its chain has a row;
- every layer row's snapshot directory, parent row and tar blob are there;
- every container's snapshot is there;
- nothing is an orphan: no layer row no image reaches, no snapshot (row or directory), blob,
  ingest file, mount, or build/step/temp directory that nothing references.

Live is what garbage collection keeps (engine/gc.py), marked the same way: the image rows, the
images of containers and what live leases hold (metadata/leases.py) are the roots; their chains
are live layers; a layer row references its snapshot and its tar blob, the compressed copies
distribution recorded for it (`dist_blobs`) and, being a row, its parent. A container
references its snapshot. An operation in flight holds what it made under its lease before
anything references it (a blob is held before it becomes visible), so a check while a pull or
build runs finds its files held, not orphans. Two things leases do not name: files in
`content/ingest/` (the content store knows its open writers) and the entries of `builds/`,
`steps/` and `tmp/` (only those made before this daemon started are a dead daemon's; every
start removes them, so one found later means the removal failed). Mounts under `containers/`
of a container not running are orphans only at start: meanwhile a `cp` or `export` of a stopped
container mounts its root there (engine/container_fs.py).

The mark and the removals happen under the metadata store's lock, as a collection's do, so no
lease takes a hold in between. `--repair` removes the orphans and the blobs whose bytes do not
match their digest (a pull or build writes them anew). What it cannot bring back (a row naming
a file that is gone) it reports, naming the image to pull or build again.

Daemon start runs `sweep` (the orphans' repair without hashing blobs, every scratch entry
counted as a dead daemon's) after the stray step containers are gone (engine/strays.py): a
crash at any moment leaves nothing behind once the daemon is back.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import shutil
import stat
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

from dockyard.content.store import ContentStore
from dockyard.engine import gc
from dockyard.engine.container_record import Container
from dockyard.errors import NotFound
from dockyard.image.config import ImageConfig, chain_ids
from dockyard.metadata.store import LayerRecord, MetadataStore
from dockyard.snapshot.mountinfo import mounts_under
from dockyard.snapshot.overlay import OverlaySnapshotter

log = logging.getLogger("dockyard.fsck")

_CHUNK = 1 << 20
_AGAIN = "pull or build it again"
SCRATCH_DIRS = ("builds", "steps", "tmp")


@dataclass(frozen=True)
class Problem:
    kind: str  # e.g. "corrupt blob", "orphan snapshot", "image without a layer"
    subject: str  # what it is about (a digest, a path, an image ID)
    detail: str = ""
    repairable: bool = False
    size: int = 0  # bytes it takes on disk, when it is a file or a tree

    def text(self) -> str:
        return f"{self.kind}: {self.subject}" + (f" ({self.detail})" if self.detail else "")

    def as_json(self) -> dict[str, object]:
        return {
            "Kind": self.kind,
            "Subject": self.subject,
            "Detail": self.detail,
            "Repairable": self.repairable,
            "Size": self.size,
        }


@dataclass
class Report:
    problems: list[Problem] = field(default_factory=list)
    repaired: list[Problem] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, object]:
        return {
            "Problems": [p.as_json() for p in self.problems],
            "Repaired": [p.as_json() for p in self.repaired],
            "Checked": self.checked,
        }


@dataclass(frozen=True)
class Store:
    """The pieces of a dockyard root the check reads."""

    root: Path
    content: ContentStore
    meta: MetadataStore
    snapshots: OverlaySnapshotter
    containers: Callable[[], Iterable[Container]]
    # time.time() of this daemon's start: scratch entries older than it are a dead daemon's
    started: float


def check(store: Store, *, repair: bool, hash_blobs: bool = True) -> Report:
    """Verify `store`; with `repair`, remove what can be removed (blocking: a worker thread's
    job, as a collection is)."""
    report = Report()
    corrupt = _corrupt_blobs(store.content, report) if hash_blobs else []
    if repair:
        # Layer rows no image reaches go first, children first, with their snapshots and
        # blobs (an rmi killed half-way left them): the collector's own order and lock.
        for chain in gc.collect(store.meta, store.content, store.snapshots):
            report.repaired.append(Problem("orphan layer", chain, "no image reaches it", True))
    with store.meta.exclusive():
        refs = _mark(store)
        _integrity(store, refs, report)
        orphans = _orphans(store, refs, starting=store.started == math.inf)
        report.problems.extend(p for p, _ in orphans)
        # a corrupt blob nothing references is an orphan blob: reported (and removed) once
        orphan_blobs = {p.subject for p, _ in orphans if p.kind == "orphan blob"}
        corrupt = [p for p in corrupt if p.subject not in orphan_blobs]
        report.problems.extend(corrupt)
        if not repair:
            return report
        for problem, fix in orphans:
            try:
                fix()
            except (OSError, NotFound) as e:
                log.warning("system check: could not remove %s: %s", problem.text(), e)
                continue
            report.repaired.append(problem)
    for problem in corrupt:
        with contextlib.suppress(NotFound):
            store.content.delete(problem.subject)
        report.repaired.append(problem)
    done = {(p.kind, p.subject) for p in report.repaired}
    report.problems = [p for p in report.problems if (p.kind, p.subject) not in done]
    return report


def sweep(store: Store) -> Report:
    """Daemon start, before anything is served: remove what a dead daemon's operations left
    (every scratch entry is then a dead daemon's; no blob is hashed)."""
    report = check(replace(store, started=math.inf), repair=True, hash_blobs=False)
    for p in report.repaired:
        log.info("start-up: removed %s, %d bytes", p.text(), p.size)
    for p in report.problems:
        log.warning("start-up: %s", p.text())
    return report


# mark ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Refs:
    images: set[str]  # image rows
    roots: dict[str, ImageConfig | None]  # image rows, containers' and leases' images
    layers: dict[str, LayerRecord]
    live_chains: set[str]
    blobs: set[str]
    snapshots: set[int]
    containers: list[Container]


def _config(content: ContentStore, image_id: str) -> ImageConfig | None:
    try:
        return ImageConfig.from_bytes(content.read_bytes(image_id))
    except (NotFound, ValueError, OSError):
        return None


def _mark(store: Store) -> _Refs:
    meta, content = store.meta, store.content
    held = meta.held()
    containers = list(store.containers())
    images = set(meta.image_ids())
    roots = images | {c.image_id for c in containers} | set(held.images)
    layers = {layer.chain_id: layer for layer in meta.layers()}
    diff_ids = {x.diff_id for x in layers.values()}
    compressed = {
        b.digest for diff_id in sorted(diff_ids) for b in meta.distribution.compressed(diff_id)
    }
    return _Refs(
        images=images,
        roots={i: _config(content, i) for i in roots},
        layers=layers,
        live_chains=gc.live_chains(meta, content, held),
        blobs=roots | diff_ids | compressed | set(held.content),
        snapshots={x.snapshot for x in layers.values()}
        | {c.snapshot for c in containers}
        | set(held.snapshots),
        containers=containers,
    )


# integrity -------------------------------------------------------------------------------
def _hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def _corrupt_blobs(content: ContentStore, report: Report) -> list[Problem]:
    """Every blob hashed (outside the lock: this is the slow part; a blob never changes)."""
    out = []
    blobs = sorted(content.blobs_dir.iterdir())
    report.checked["blobs"] = len(blobs)
    for p in blobs:
        digest = "sha256:" + p.name
        try:
            got = _hash(p)
        except FileNotFoundError:
            continue  # deleted meanwhile
        if got != digest:
            size = p.stat().st_size
            out.append(Problem("corrupt blob", digest, f"its bytes hash to {got}", True, size))
    return out


def _integrity(store: Store, refs: _Refs, report: Report) -> None:
    content, snapshots = store.content, store.snapshots
    report.checked["images"] = len(refs.roots)
    for image_id, cfg in sorted(refs.roots.items()):
        who = "image" if image_id in refs.images else "image of a container or lease"
        if cfg is None:
            report.problems.append(Problem(f"{who} without its config", image_id, _AGAIN))
            continue
        for chain in chain_ids(cfg.diff_ids):
            if chain not in refs.layers:
                report.problems.append(
                    Problem(f"{who} without a layer", image_id, f"{chain} is missing; {_AGAIN}")
                )
                break
    report.checked["layers"] = len(refs.layers)
    for layer in refs.layers.values():
        if not snapshots.fs(layer.snapshot).is_dir():
            report.problems.append(
                Problem("layer without its snapshot", layer.chain_id, f"snapshot {layer.snapshot}")
            )
        if layer.parent is not None and layer.parent not in refs.layers:
            report.problems.append(
                Problem("layer without its parent", layer.chain_id, f"parent {layer.parent}")
            )
        if not content.exists(layer.diff_id):
            report.problems.append(
                Problem("layer without its tar blob", layer.chain_id, layer.diff_id)
            )
    report.checked["containers"] = len(refs.containers)
    for c in refs.containers:
        if not snapshots.fs(c.snapshot).is_dir():
            report.problems.append(
                Problem("container without its snapshot", c.id, c.name.lstrip("/"))
            )


# orphans ---------------------------------------------------------------------------------
def _size(path: Path) -> int:
    """Bytes of the files of `path`, not counting what is mounted below it."""
    try:
        top = path.lstat()
        if not stat.S_ISDIR(top.st_mode):
            return top.st_size
        total = 0
        for dirpath, dirs, files in os.walk(path):
            dirs[:] = [d for d in dirs if _same_fs(os.path.join(dirpath, d), top.st_dev)]
            for name in files:
                with contextlib.suppress(OSError):
                    total += os.lstat(os.path.join(dirpath, name)).st_size
        return total
    except OSError:
        return 0


def _same_fs(path: str, dev: int) -> bool:
    try:
        return os.lstat(path).st_dev == dev
    except OSError:
        return False


def _umount(path: str) -> None:
    # Lazy: a process of a dead daemon's step may still hold it (strays are killed first).
    proc = subprocess.run(["umount", "-l", path], capture_output=True, text=True)
    if proc.returncode != 0:
        raise OSError(proc.stderr.strip() or f"umount {path} failed")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _remove_snapshot(store: Store, sid: int) -> None:
    # The row first, as store/layers.py drops one: a crash in between leaves a directory.
    store.meta.delete_snapshot(sid)
    store.snapshots.remove(sid)


def _remove_blob(content: ContentStore, digest: str) -> None:
    with contextlib.suppress(NotFound):
        content.delete(digest)


def _nothing() -> None:
    pass


def _dead_daemons(store: Store) -> list[Path]:
    """Entries of builds/, steps/ and tmp/ made before this daemon started."""
    out = []
    for name in SCRATCH_DIRS:
        base = store.root / name
        for entry in sorted(base.iterdir()) if base.is_dir() else []:
            with contextlib.suppress(FileNotFoundError):
                if entry.lstat().st_mtime < store.started:
                    out.append(entry)
    return out


def _orphans(
    store: Store, refs: _Refs, *, starting: bool
) -> list[tuple[Problem, Callable[[], object]]]:
    content = store.content
    out: list[tuple[Problem, Callable[[], object]]] = []
    root = store.root.resolve()
    scratch = _dead_daemons(store)
    # Mounts first, deepest first: a directory with a mount in it cannot be removed.
    alive = {c.id for c in refs.containers if c.state.alive}
    dead_scratch = {p.resolve() for p in scratch}
    for mnt in sorted(mounts_under(root), key=len, reverse=True):
        rel = Path(mnt).relative_to(root).parts
        if rel[:1] == ("containers",) and len(rel) > 1 and (rel[1] in alive or not starting):
            # A running container's root, volumes and netns; while the daemon runs, also a
            # stopped one's root mounted for a `cp` or `export` in flight (container_fs.py).
            continue
        in_scratch = rel[:1] in (("builds",), ("steps",)) and len(rel) > 1
        if in_scratch and root / rel[0] / rel[1] not in dead_scratch:
            continue  # a build of this daemon's, in flight
        out.append((Problem("orphan mount", mnt, "", True), partial(_umount, mnt)))
    for entry in scratch:
        out.append(
            (
                Problem("orphan temp", str(entry), "a dead daemon's", True, _size(entry)),
                partial(_remove, entry),
            )
        )
    open_now = content.open_ingests.copy()
    for entry in sorted(content.ingest_dir.iterdir()):
        if entry.name in open_now:
            continue
        size = _size(entry)
        out.append(
            (
                Problem("orphan ingest", entry.name, "a partial blob", True, size),
                partial(_remove, entry),
            )
        )
    # (with --repair the collection above took them: what is left here a lease holds)
    for chain in sorted(set(refs.layers) - refs.live_chains):
        out.append((Problem("orphan layer", chain, "no image reaches it", True), _nothing))
    rows = {sid for sid, _ in store.meta.snapshots()}
    dirs = {int(p.name) for p in store.snapshots.root.iterdir() if p.name.isdigit()}
    for sid in sorted((rows | dirs) - refs.snapshots):
        what = "no layer or container uses it"
        out.append(
            (
                Problem(
                    "orphan snapshot", str(sid), what, True, _size(store.snapshots.root / str(sid))
                ),
                partial(_remove_snapshot, store, sid),
            )
        )
    for p in sorted(content.blobs_dir.iterdir()):
        digest = "sha256:" + p.name
        if digest not in refs.blobs:
            out.append(
                (
                    Problem("orphan blob", digest, "nothing references it", True, _size(p)),
                    partial(_remove_blob, content, digest),
                )
            )
    return out
