"""A layer's uncompressed tar is hashed once on its way into the store (issue 17 §5): the
content store's writer names the kept tar by the diff ID it hashes while writing, and the
applier, which reads the same bytes, hashes nothing itself."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import os
from pathlib import Path
from typing import Any

import pytest

from dockyard.engine.engine import Engine
from tests.engine.conftest import tar_of

pytestmark = pytest.mark.root


def test_an_unpacked_layer_is_hashed_once(engine_root: Path, monkeypatch: Any) -> None:
    raw = tar_of({"a": os.urandom(200_000), "d/b": os.urandom(50_000)})
    engine = Engine(engine_root)
    hashed = [0]
    real = hashlib.sha256

    class Counting:
        def __init__(self, data: bytes = b"") -> None:
            self._h = real(data)
            hashed[0] += len(data)

        def update(self, data: Any) -> None:
            hashed[0] += len(memoryview(data))
            self._h.update(data)

        def hexdigest(self) -> str:
            return self._h.hexdigest()

    try:
        monkeypatch.setattr(hashlib, "sha256", Counting)
        unpacked = engine.layers.unpack(io.BytesIO(gzip.compress(raw)))
        monkeypatch.undo()
        assert unpacked.diff_id == "sha256:" + real(raw).hexdigest()
        assert hashed[0] == len(raw)  # was 2 x: the writer and the applier each hashed it
        engine.layers.discard(unpacked)
    finally:
        asyncio.run(engine.close())
