"""Engine-level `save` and `load`: docker-archive tarballs in and out of the engine's stores.

Names are resolved before anything is streamed, so a missing image is a plain 404 and not a
broken download. Loading unpacks into a scratch directory under the engine's tmp/ (same
filesystem as the stores) and runs in a worker thread; the event loop never blocks on tar work.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from dockyard.store.archive import (
    Emit,
    SaveImage,
    archive_chunks,
    load_archive,
    plan_archive,
    resolve_save_names,
    unpack_archive,
)

if TYPE_CHECKING:
    from dockyard.engine.engine import Engine


def prepare_save(engine: Engine, names: list[str]) -> list[SaveImage]:
    """Resolve the names `docker save` was given (NotFound / InvalidArgument up front)."""
    return resolve_save_names(engine.images, names)


def save_stream(engine: Engine, items: list[SaveImage]) -> Generator[bytes, None, None]:
    """The archive's bytes, chunk by chunk (call `next` from a worker thread)."""
    return archive_chunks(engine.content, plan_archive(engine.content, items))


def save_to_file(engine: Engine, names: list[str], out: BinaryIO) -> None:
    for chunk in save_stream(engine, prepare_save(engine, names)):
        out.write(chunk)


def load_sync(engine: Engine, stream: BinaryIO, emit: Emit, *, quiet: bool = True) -> list[str]:
    """Unpack and store an archive; returns the loaded image IDs. Blocking."""
    scratch = Path(tempfile.mkdtemp(prefix="load-", dir=engine.tmp_dir))
    try:
        arch = unpack_archive(stream, scratch)
        return load_archive(arch, engine.layers, engine.images, emit, quiet=quiet)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


async def load(engine: Engine, stream: BinaryIO, emit: Emit, *, quiet: bool = True) -> list[str]:
    """`docker load`: the same as `load_sync`, in a worker thread; `emit` may be called from it,
    so it is wrapped to hand messages back to the event loop."""
    loop = asyncio.get_running_loop()

    def threadsafe_emit(msg: dict[str, object]) -> None:
        loop.call_soon_threadsafe(emit, msg)

    # Under a lease: layers are applied before the images that reference them are recorded.
    with engine.lease():
        ids = await asyncio.to_thread(load_sync, engine, stream, threadsafe_emit, quiet=quiet)
    for image_id in ids:
        engine.image_event(image_id, image_id, "load")
    return ids
