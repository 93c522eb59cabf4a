"""Deleting without waiting: a path is renamed into a trash directory and removed in the background.

Removing a multi-GiB layer (a blob, a snapshot tree) takes seconds; the caller must not wait
for it, least of all on the daemon's event loop. As containerd's snapshotters do, removal is a
rename into `<dir>` — one system call, atomic — and a reaper thread deletes what the trash
holds. The engine keeps one trash per store under `<root>/trash/`, on the stores' filesystem;
should a store live on another one, the rename fails with EXDEV and the path is deleted in
place. A crash loses nothing: whatever is still in the trash at the next start goes then.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
import shutil
import threading
from pathlib import Path

log = logging.getLogger("dockyard.trash")


class Trash:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._cond = threading.Condition()
        self._pending = False  # something was put since the reaper last looked
        self._busy = False
        self._closing = False
        self._thread: threading.Thread | None = None
        if any(directory.iterdir()):
            self._poke()  # left by a crash

    def put(self, path: Path) -> bool:
        """Move `path` (a file or a tree) out of view; False if it does not exist."""
        try:
            os.rename(path, self.dir / f"{secrets.token_hex(8)}-{path.name}")
        except FileNotFoundError:
            return False
        except OSError as e:
            if e.errno != errno.EXDEV:
                raise
            _delete(path)
            return True
        self._poke()
        return True

    def empty(self) -> None:
        """Delete everything in the trash now (blocking: a worker thread's job)."""
        for entry in list(self.dir.iterdir()):
            try:
                _delete(entry)
            except OSError as e:  # keep going; the next start tries again
                log.warning("emptying the trash: %s: %s", entry, e)

    def wait_empty(self, timeout: float | None = None) -> bool:
        """Block until the reaper has nothing left to do (tests, shutdown)."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending and not self._busy, timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Stop the reaper after the work in hand; what is left goes at the next start."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def _poke(self) -> None:
        with self._cond:
            self._pending = True
            if self._thread is None and not self._closing:
                self._thread = threading.Thread(
                    target=self._reap, name=f"trash:{self.dir}", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()

    def _reap(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending or self._closing)
                if not self._pending:
                    return
                self._pending = False
                self._busy = True
            with contextlib.suppress(FileNotFoundError):
                self.empty()
            with self._cond:
                self._busy = False
                self._cond.notify_all()


def _delete(path: Path) -> None:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    except FileNotFoundError:
        pass
