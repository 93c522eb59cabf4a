"""A kept context's digest index (builder/digests.py): what it keeps in memory and on disk."""

from __future__ import annotations

import hashlib
import json
import tracemalloc
from pathlib import Path

from dockyard.builder.digests import DigestIndex, compute


def _document(n: int) -> dict[str, list[object]]:
    return {
        f"src/pkg{i // 100}/module_{i}.py": [
            [10_000_000 + i, 4096 + i, 0o100644, 1_764_000_000_123_456_789 + i, -5 - i],
            "sha256:" + hashlib.sha256(str(i).encode()).hexdigest(),
        ]
        for i in range(n)
    }


def test_an_index_round_trips_exactly(tmp_path: Path) -> None:
    doc = _document(300)
    path = tmp_path / "digests.json"
    path.write_text(json.dumps(doc))
    index = DigestIndex(path)
    assert len(index) == 300
    assert index.document() == doc
    index._dirty = True  # written back as read
    index.save()
    assert json.loads(path.read_text()) == doc


def test_a_file_whose_identity_matches_is_not_hashed_again(tmp_path: Path) -> None:
    f = tmp_path / "a"
    f.write_bytes(b"one")
    index = DigestIndex(tmp_path / "digests.json")
    first = index.digest(f, "a")
    assert first == compute(f) and index.hashed == 1
    assert index.digest(f, "a") == first and index.hashed == 1
    index.save()
    again = DigestIndex(tmp_path / "digests.json")
    assert again.digest(f, "a") == first and again.hashed == 0
    f.write_bytes(b"two")  # a new size and ctime: hashed again
    assert again.digest(f, "a") == compute(f) != first and again.hashed == 1


def test_a_remembered_result_comes_back_as_given() -> None:
    index = DigestIndex(None)
    digests = {
        rel: "sha256:" + hashlib.sha256(rel.encode()).hexdigest() for rel in ("a", "b/c", ".")
    }
    index.keep_result(("key",), digests)
    assert index.result(("key",)) == digests
    odd = {"x": "sha512:abc"}  # not a sha256 digest: kept as it is
    index.keep_result(("odd",), odd)
    assert index.result(("odd",)) == odd
    index.tree_changed()
    assert index.result(("key",)) is None


def test_a_kept_5000_file_index_is_packed(tmp_path: Path) -> None:
    # an index stays in the daemon's memory while its context is kept (session/contexts.py):
    # a tuple of five ints and a 71-character digest string per file was 2.2 MiB for 5,000
    # files with their paths; one bytes object per file is under half of that
    path = tmp_path / "digests.json"
    path.write_text(json.dumps(_document(5000)))
    tracemalloc.start()
    try:
        index = DigestIndex(path)
        size = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(index) == 5000
    assert size < 1 << 20, size
