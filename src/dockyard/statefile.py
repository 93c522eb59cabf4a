"""Small state files (network and volume records, bundles, exit records) written atomically.

Every writer goes through `write_atomic`: the bytes go to a temp file with a name of its own
beside the target (so two writers never share one, as the fixed `.ID.tmp` name of old did:
one writer's rename took the other's file away, and the other's `FileNotFoundError` wedged a
container's exit), are fsynced, and are renamed over the target, after which the directory is
fsynced too. A reader sees the old file or the new one, never a part. Read-modify-write is the
owner's business: hold its lock around the read and the write.

The file is created 0600 (mkstemp) and given `mode` before the rename, so a record is never
readable by other users even for a moment.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_atomic(path: Path, data: bytes | str, *, mode: int = 0o600, durable: bool = True) -> None:
    """`durable=False` skips both fsyncs, for a file made again from the records whenever it
    is needed (a container's bundle, written on every start): still atomic, not crash-proof."""
    body = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(body)
            f.flush()
            if mode != 0o600:
                os.fchmod(f.fileno(), mode)
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_dir(path.parent)


def write_json(
    path: Path,
    body: Any,
    *,
    mode: int = 0o600,
    indent: int | None = None,
    durable: bool = True,
) -> None:
    write_atomic(path, json.dumps(body, indent=indent), mode=mode, durable=durable)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
