from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from dockyard.content.store import BlobInfo, ContentStore
from dockyard.errors import DigestMismatch, InvalidArgument, NotFound


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def store(tmp_path: Path) -> ContentStore:
    return ContentStore(tmp_path / "content")


def _stored_files(store: ContentStore) -> list[Path]:
    return sorted(p for p in store.root.rglob("*") if p.is_file())


def test_ingest_read_delete_lifecycle(store: ContentStore) -> None:
    data = b"hello layer" * 1000
    info = store.ingest_bytes(data)
    assert info == BlobInfo(_digest(data), len(data))
    assert store.exists(info.digest)
    assert store.path(info.digest) == store.root / "blobs" / "sha256" / info.digest[7:]
    assert store.read_bytes(info.digest) == data
    assert store.size(info.digest) == len(data)
    with store.open(info.digest) as f:
        assert f.read(5) == b"hello"
    assert store.path(info.digest).stat().st_mode & 0o777 == 0o444
    store.delete(info.digest)
    assert not store.exists(info.digest)
    for call in (store.path, store.open, store.read_bytes, store.size, store.delete):
        with pytest.raises(NotFound):
            call(info.digest)
    assert store.trash.wait_empty(30)  # the bytes go in the background (content/trash.py)
    assert _stored_files(store) == []


def test_ingest_stream_with_expected_digest(store: ContentStore) -> None:
    data = bytes(range(256)) * 9000  # > 2 MiB, several chunks
    info = store.ingest(io.BytesIO(data), expected=_digest(data))
    assert info.size == len(data)
    assert store.read_bytes(info.digest) == data


def test_digest_mismatch_stores_nothing(store: ContentStore) -> None:
    wrong = _digest(b"something else")
    with pytest.raises(DigestMismatch, match="expected"):
        store.ingest_bytes(b"payload", expected=wrong)
    with pytest.raises(DigestMismatch):
        store.ingest(io.BytesIO(b"payload"), expected=wrong)
    assert not store.exists(wrong)
    assert not store.exists(_digest(b"payload"))
    assert _stored_files(store) == []


@pytest.mark.parametrize(
    "bad",
    [
        "sha256:" + "A" * 64,
        "sha256:" + "a" * 63,
        "sha512:" + "a" * 64,
        "sha256:../../../../etc/passwd",
        "a" * 64,
        "sha256:" + "a" * 64 + "/x",
    ],
)
def test_invalid_digests_are_refused(store: ContentStore, bad: str) -> None:
    for call in (store.exists, store.path, store.open, store.size, store.delete):
        with pytest.raises(InvalidArgument):
            call(bad)
    with pytest.raises(InvalidArgument):
        store.ingest_bytes(b"x", expected=bad)
    assert _stored_files(store) == []


def test_writer_aborts_on_exception_and_when_not_committed(store: ContentStore) -> None:
    with pytest.raises(RuntimeError), store.writer() as w:
        w.write(b"partial")
        raise RuntimeError("boom")
    with store.writer() as w:
        w.write(b"never committed")
    assert _stored_files(store) == []


def test_commit_is_idempotent_for_existing_blob(store: ContentStore) -> None:
    a = store.ingest_bytes(b"same")
    with store.writer() as w:
        assert w.write(memoryview(b"same")) == 4
        b = w.commit(expected=a.digest)
    assert a == b
    assert _stored_files(store) == [store.path(a.digest)]
    with pytest.raises(InvalidArgument):
        w.write(b"after commit")
