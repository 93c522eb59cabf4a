"""Nothing blocks the event loop: `/_ping` is answered while a multi-GiB image is being deleted.

The deletion of the image's big file (its snapshot copy and its tar blob, found by inode, so
the test does not care which code deletes them or where they were moved) is held at the
`unlink` until the test has had its `/_ping` answer: an ordering, not a timing. Were the
deletion done on the event loop, the held `unlink` would hold the loop and the ping would
never be answered.
"""

from __future__ import annotations

import asyncio
import os
import tarfile
import threading
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from dockyard.api.server import create_app
from dockyard.engine.engine import Engine

pytestmark = [pytest.mark.root, pytest.mark.slow]

GIB = 1 << 30
SIZE = int(float(os.environ.get("DOCKYARD_TEST_BIG_IMAGE_GIB", "2")) * GIB)


class _BigTar:
    """A layer tar of one file of `size` zero bytes, produced as it is read."""

    def __init__(self, size: int) -> None:
        info = tarfile.TarInfo("big")
        info.size = size
        info.mode = 0o644
        self._parts = [
            (info.tobuf(format=tarfile.PAX_FORMAT), 1),
            (b"\0" * (1 << 20), size >> 20),
            (b"\0" * (size & ((1 << 20) - 1)), 1),
            (b"\0" * ((-size) % 512 + 1024), 1),
        ]
        self._buf = b""

    def read(self, n: int = -1) -> bytes:
        while self._parts and (n < 0 or len(self._buf) < n):
            chunk, count = self._parts[0]
            self._buf += chunk
            if count == 1:
                self._parts.pop(0)
            else:
                self._parts[0] = (chunk, count - 1)
        out, self._buf = (self._buf, b"") if n < 0 else (self._buf[:n], self._buf[n:])
        return out

    def readable(self) -> bool:
        return True


def test_ping_is_answered_while_a_multi_gib_image_is_deleted(
    engine_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = Engine(engine_root)
    held = threading.Event()  # the big file's unlink has begun ...
    release = threading.Event()
    passed = threading.Event()  # ... and has been let through (by the test, or a time-out)
    inodes: set[int] = set()
    real_unlink = os.unlink

    def unlink(path: Any, *, dir_fd: int | None = None) -> None:
        try:
            ino = os.stat(path, dir_fd=dir_fd, follow_symlinks=False).st_ino
        except OSError:
            ino = -1
        if ino in inodes:
            held.set()
            release.wait(60)
            passed.set()
        real_unlink(path, dir_fd=dir_fd)

    async def main() -> None:
        image_id = await engine.import_image(_BigTar(SIZE), repo="big")  # type: ignore[arg-type]
        diff_id = engine.images.config(image_id).diff_ids[0]
        [layer] = engine.meta.layers()
        big_files = [engine.snapshots.fs(layer.snapshot) / "big", engine.content.path(diff_id)]
        assert all(p.stat().st_size >= SIZE for p in big_files)
        inodes.update(p.stat().st_ino for p in big_files)
        monkeypatch.setattr(os, "unlink", unlink)

        sock = str(engine_root.parent / "api.sock")
        runner = web.AppRunner(create_app(engine))
        await runner.setup()
        await web.UnixSite(runner, sock).start()
        try:
            async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(sock)) as http:
                rmi = asyncio.create_task(http.delete("http://d/images/big"))
                try:
                    assert await asyncio.to_thread(held.wait, 120), "the big file was never deleted"
                    # The image's data is being deleted (held at its unlink) ...
                    async with asyncio.timeout(30):
                        async with http.get("http://d/_ping") as ping:
                            assert ping.status == 200 and await ping.text() == "OK"
                    assert not passed.is_set(), "/_ping waited for the deletion"
                    # ... and the rmi itself was answered without waiting for it.
                    async with asyncio.timeout(30):
                        resp = await rmi
                    assert resp.status == 200
                    report = await resp.json()
                    assert {"Untagged": "big:latest"} in report
                    assert {"Deleted": image_id} in report
                    assert not passed.is_set(), "the rmi waited for the deletion"
                finally:
                    release.set()
                    if not rmi.done():
                        await rmi
        finally:
            await runner.cleanup()
        assert await asyncio.to_thread(engine.snapshots.trash.wait_empty, 120)
        assert await asyncio.to_thread(engine.content.trash.wait_empty, 120)
        assert not any(p.exists() for p in big_files)
        assert not any(engine.snapshots.trash.dir.iterdir())
        assert not any(engine.content.trash.dir.iterdir())
        await engine.close()

    asyncio.run(main())
