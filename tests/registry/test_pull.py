"""Pulls from a real docker-registry into a real Engine: manifests, indexes, progress, skips."""

from __future__ import annotations

import asyncio
import os
from collections import Counter

import pytest

from dockyard.errors import DigestMismatch, NotFound
from dockyard.registry.auth import Credentials
from dockyard.registry.client import RegistryUnavailable
from tests.registry.conftest import EngineRunner
from tests.registry.support import (
    BreakingProxy,
    Registry,
    index_of,
    layer_tar,
    make_image,
    sha,
)

pytestmark = pytest.mark.root


def _pull(r: EngineRunner, name: str, tag: str = "", platform: str = "") -> str:
    d = r.engine.distribution
    res = r.run(lambda: d.pull(name, tag, platform, Credentials(), r.emit))
    return res.image_id


def test_pull_two_layers_progress_and_repo_digest(
    engine_runner: EngineRunner, registry: Registry
) -> None:
    img = make_image([layer_tar({"a.txt": b"A" * 3000}), layer_tar({"b.txt": os.urandom(200_000)})])
    digest = registry.put_image("team/app", "v1", img)
    image_id = _pull(engine_runner, f"{registry.host}/team/app:v1")
    assert image_id == img.image_id
    eng = engine_runner.engine
    assert eng.images.resolve(f"{registry.host}/team/app:v1") == image_id
    assert eng.images.config(image_id).diff_ids == img.diff_ids
    assert eng.images.repo_digests(image_id) == [f"{registry.host}/team/app@{digest}"]
    st = engine_runner.statuses()
    assert st[0] == "Pulling from team/app"
    for word in (
        "Pulling fs layer",
        "Downloading",
        "Verifying Checksum",
        "Download complete",
        "Extracting",
        "Pull complete",
    ):
        assert word in st, (word, st)
    assert f"Digest: {digest}" in st
    assert st[-1] == f"Status: Downloaded newer image for {registry.host}/team/app:v1"
    ids = {m.get("id") for m in engine_runner.messages if m.get("status") == "Pull complete"}
    assert ids == {d.removeprefix("sha256:")[:12] for d, _ in img.blobs}
    dl = [m for m in engine_runner.messages if m.get("status") == "Downloading"]
    assert dl[-1]["progressDetail"]["total"] == len(img.blobs[-1][1]) or dl

    # Second pull: nothing downloaded, the tag is up to date.
    engine_runner.messages.clear()
    _pull(engine_runner, f"{registry.host}/team/app", "v1")
    st = engine_runner.statuses()
    assert "Downloading" not in st and st.count("Already exists") == 2
    assert st[-1] == f"Status: Image is up to date for {registry.host}/team/app:v1"


def test_shared_base_layer_is_skipped(engine_runner: EngineRunner, registry: Registry) -> None:
    base = layer_tar({"base": b"base" * 1000})
    registry.put_image("one", "latest", make_image([base]))
    registry.put_image("two", "latest", make_image([base, layer_tar({"top": b"t"})]))
    _pull(engine_runner, f"{registry.host}/one")
    engine_runner.messages.clear()
    _pull(engine_runner, f"{registry.host}/two")
    st = engine_runner.statuses()
    assert st.count("Already exists") == 1 and st.count("Pull complete") == 1


def test_index_platform_selection_and_zstd(engine_runner: EngineRunner, registry: Registry) -> None:
    amd = make_image([layer_tar({"arch": b"amd64"})], compress="zstd", arch="amd64")
    arm = make_image([layer_tar({"arch": b"arm64"})], arch="arm64", oci=True)
    registry.put_image("multi", "amd", amd)
    registry.put_image("multi", "arm", arm)
    raw, mt = index_of([(arm, "linux", "arm64"), (amd, "linux", "amd64")])
    index_digest = registry.put_raw_manifest("multi", "latest", raw, mt)
    name = f"{registry.host}/multi:latest"
    host_id = _pull(engine_runner, name)
    assert host_id == amd.image_id  # this VM is amd64
    assert engine_runner.engine.images.repo_digests(host_id) == [
        f"{registry.host}/multi@{index_digest}"
    ]
    arm_id = _pull(engine_runner, name, platform="linux/arm64")
    assert arm_id == arm.image_id
    with pytest.raises(NotFound, match="no matching manifest for linux/s390x"):
        _pull(engine_runner, name, platform="linux/s390x")


def test_pull_by_digest_does_not_tag(engine_runner: EngineRunner, registry: Registry) -> None:
    img = make_image([layer_tar({"d": b"digest"})])
    digest = registry.put_image("bydigest", "t", img)
    image_id = _pull(engine_runner, f"{registry.host}/bydigest@{digest}")
    assert image_id == img.image_id
    assert engine_runner.engine.meta.tags_of(image_id) == []
    # The digest reference names the image from now on (docker run x@sha256:…).
    assert engine_runner.engine.images.resolve(f"{registry.host}/bydigest@{digest}") == image_id
    assert engine_runner.engine.images.inspect(image_id)["RepoDigests"] == [
        f"{registry.host}/bydigest@{digest}"
    ]
    with pytest.raises(NotFound, match="manifest unknown"):
        _pull(engine_runner, f"{registry.host}/bydigest:nope")


def _store_state(r: EngineRunner) -> tuple[set[str], int, list[str]]:
    eng = r.engine
    blobs = {p.name for p in eng.content.blobs_dir.iterdir()}
    ingest = list(eng.content.ingest_dir.iterdir())
    return blobs, len(eng.meta.layers()), [str(p) for p in ingest]


def test_tampered_blob_is_rejected_and_nothing_stored(
    engine_runner: EngineRunner, registry: Registry
) -> None:
    img = make_image([layer_tar({"x": os.urandom(50_000)})])
    registry.put_image("tampered", "latest", img)
    blob_digest, data = img.blobs[0]
    path = registry.blob_file(blob_digest)
    os.chmod(path, 0o644)
    bad = bytearray(data)
    bad[len(bad) // 2] ^= 0xFF
    path.write_bytes(bytes(bad))
    before = _store_state(engine_runner)
    with pytest.raises(DigestMismatch, match=f"verification failed for digest {blob_digest}"):
        _pull(engine_runner, f"{registry.host}/tampered")
    assert _store_state(engine_runner) == before
    assert engine_runner.engine.meta.image_ids() == []
    assert not engine_runner.engine.content.exists(blob_digest)


def test_broken_download_resumes_with_range(
    engine_runner: EngineRunner, registry: Registry
) -> None:
    big = os.urandom(3 << 20)
    img = make_image([layer_tar({"big": big})])
    registry.put_image("resume", "latest", img)
    proxy = BreakingProxy(registry.port, cut=1 << 20, breaks=1)
    try:
        engine_runner.engine.distribution.retry_delay = 0.05
        image_id = _pull(engine_runner, f"{proxy.host}/resume")
    finally:
        proxy.close()
    assert image_id == img.image_id
    assert proxy.ranges and proxy.ranges[0].startswith("bytes=")
    assert int(proxy.ranges[0][6:].rstrip("-")) >= 1 << 20 - 1
    assert any(s.startswith("Retrying in") for s in engine_runner.statuses())


def test_interrupted_pull_leaves_consistent_store(
    engine_runner: EngineRunner, registry: Registry
) -> None:
    small = layer_tar({"small": b"s" * 100})
    img = make_image([small, layer_tar({"big": os.urandom(2 << 20)})])
    registry.put_image("killed", "latest", img)
    proxy = BreakingProxy(registry.port, cut=512 << 10, breaks=1, kill=True)
    engine_runner.engine.distribution.retry_delay = 0.01
    try:
        with pytest.raises(RegistryUnavailable, match="blobs/sha256:"):
            _pull(engine_runner, f"{proxy.host}/killed")
    finally:
        proxy.close()
    eng = engine_runner.engine
    assert eng.meta.image_ids() == []
    assert list(eng.content.ingest_dir.iterdir()) == []
    # Whatever layer was stored is complete: its blob hashes to its name.
    for layer in eng.meta.layers():
        assert sha(eng.content.read_bytes(layer.diff_id)) == layer.diff_id
    for blob in eng.content.blobs_dir.iterdir():
        assert sha(blob.read_bytes()) == "sha256:" + blob.name
    # The registry is back (no proxy in the way): the next pull succeeds.
    image_id = _pull(engine_runner, f"{registry.host}/killed")
    assert image_id == img.image_id


def test_pull_all_tags(engine_runner: EngineRunner, registry: Registry) -> None:
    one, two = make_image([layer_tar({"1": b"1"})]), make_image([layer_tar({"2": b"2"})])
    registry.put_image("tags", "one", one)
    registry.put_image("tags", "two", two)
    d = engine_runner.engine.distribution
    engine_runner.run(
        lambda: d.pull(
            f"{registry.host}/tags", "", "", Credentials(), engine_runner.emit, all_tags=True
        )
    )
    images = engine_runner.engine.images
    assert images.resolve(f"{registry.host}/tags:one") == one.image_id
    assert images.resolve(f"{registry.host}/tags:two") == two.image_id


def test_parallel_pulls_fetch_each_shared_layer_once(
    engine_runner: EngineRunner, registry: Registry
) -> None:
    base = layer_tar({"base": os.urandom(2 << 20)})
    mid = layer_tar({"mid": os.urandom(1 << 20)})
    images = [make_image([base, mid, layer_tar({"top": str(i).encode() * 1000})]) for i in range(4)]
    for i, img in enumerate(images):
        registry.put_image(f"shared{i}", "latest", img)
    proxy = BreakingProxy(registry.port, cut=0, breaks=0)
    d = engine_runner.engine.distribution

    async def pull_all() -> list[str]:
        results = await asyncio.gather(
            *(
                d.pull(f"{proxy.host}/shared{i}", "", "", Credentials(), engine_runner.emit)
                for i in range(len(images))
            )
        )
        return [r.image_id for r in results]

    try:
        ids = engine_runner.run(pull_all)
    finally:
        proxy.close()
    assert ids == [img.image_id for img in images]
    fetched = Counter(
        path.rsplit("/", 1)[-1] for m, path in proxy.requests if "/blobs/" in path and m == "GET"
    )
    shared = {digest for digest, _ in images[0].blobs[:2]}
    print("blob GETs:", {k[:19]: v for k, v in fetched.items()})
    assert all(fetched[digest] == 1 for digest in shared), fetched
    eng = engine_runner.engine
    assert len(eng.meta.layers()) == 2 + len(images)  # no duplicate layer
    for img in images:
        assert eng.images.config(img.image_id).diff_ids == img.diff_ids
    assert list(eng.content.ingest_dir.iterdir()) == []
