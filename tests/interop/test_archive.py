"""docker-archive save/load on real stores (content store, SQLite, overlay snapshot dirs)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dockyard.content.store import ContentStore
from dockyard.errors import DigestMismatch, InvalidArgument, NotFound, UnsafeArchive
from dockyard.image.config import HistoryEntry, build_image_config
from dockyard.metadata.store import MetadataStore
from dockyard.snapshot.overlay import OverlaySnapshotter
from dockyard.store.archive import (
    load_archive,
    resolve_save_names,
    unpack_archive,
    write_archive,
)
from dockyard.store.images import ImageStore
from dockyard.store.layers import LayerStore

pytestmark = pytest.mark.root  # layer extraction sets owners and makes device whiteouts


@dataclass
class Stores:
    root: Path
    content: ContentStore
    meta: MetadataStore
    layers: LayerStore
    images: ImageStore

    def state(self) -> tuple[Any, ...]:
        """Everything a load may change: images, tags, layers, snapshots, blobs."""
        blobs = sorted(p.name for p in self.content.blobs_dir.iterdir())
        tags = sorted((t, i) for i in self.meta.image_ids() for t in self.meta.tags_of(i))
        snaps = sorted(p.name for p in (self.root / "overlay").iterdir() if p.name != "init")
        return (
            sorted(self.meta.image_ids()),
            tags,
            sorted(layer.chain_id for layer in self.meta.layers()),
            self.meta.snapshots(),
            snaps,
            blobs,
        )


def make_stores(root: Path) -> Stores:
    content = ContentStore(root / "content")
    meta = MetadataStore(root / "metadata.db")
    snaps = OverlaySnapshotter(root / "overlay")
    return Stores(root, content, meta, LayerStore(content, meta, snaps), ImageStore(content, meta))


@pytest.fixture
def stores(tmp_path: Path) -> Stores:
    s = make_stores(tmp_path / "a")
    yield s
    s.meta.close()


@pytest.fixture
def other(tmp_path: Path) -> Stores:
    s = make_stores(tmp_path / "b")
    yield s
    s.meta.close()


def layer_tar(files: dict[str, bytes], *, links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mode = 0o640
            ti.uid, ti.gid = 1, 2
            ti.mtime = 1_600_000_000
            tar.addfile(ti, io.BytesIO(data))
        for name, target in (links or {}).items():
            ti = tarfile.TarInfo(name)
            ti.type = tarfile.SYMTYPE
            ti.linkname = target
            tar.addfile(ti)
    return buf.getvalue()


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def make_image(s: Stores, layers: list[bytes], tags: list[str], cmd: str = "x") -> str:
    diff_ids: list[str] = []
    for data in layers:
        rec = s.layers.apply(io.BytesIO(data), list(diff_ids))
        diff_ids.append(rec.diff_id)
    raw = build_image_config(
        container_config={"Cmd": [cmd], "Env": ["A=1"]},
        diff_ids=diff_ids,
        history=[
            HistoryEntry("2024-01-01T00:00:00Z", f"layer {i}").to_json() for i in range(len(layers))
        ],
        created="2024-01-01T00:00:00Z",
    )
    return s.images.put(raw, tags=tags)


def save(s: Stores, names: list[str]) -> bytes:
    out = io.BytesIO()
    write_archive(s.content, resolve_save_names(s.images, names), out)
    return out.getvalue()


def load(s: Stores, data: bytes, tmp: Path) -> list[str]:
    msgs: list[dict[str, Any]] = []
    scratch = tmp / f"scratch{len(list(tmp.iterdir()))}"
    scratch.mkdir()
    arch = unpack_archive(io.BytesIO(data), scratch)
    load_archive(arch, s.layers, s.images, msgs.append)
    return [m["stream"] for m in msgs]


def members(data: bytes) -> dict[str, bytes]:
    out = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for m in tar:
            f = tar.extractfile(m) if m.isreg() else None
            out[m.name] = f.read() if f else b""
    return out


L1 = layer_tar({"etc/hello": b"hello\n", "bin/tool": b"#!/bin/sh\n"}, links={"bin/t": "tool"})
L2 = layer_tar({"data/x": b"x" * 5000})


def test_save_writes_docker25_layout(stores: Stores) -> None:
    image_id = make_image(stores, [L1, L2], ["app:1", "app:2", "registry.local:5000/ns/app:v"])
    data = save(stores, ["app"])  # a bare repository name saves all its tags, as Docker does
    files = members(data)
    names = list(files)
    assert names[:2] == ["blobs", "blobs/sha256"]
    assert names[-4:] == ["index.json", "manifest.json", "oci-layout", "repositories"]
    assert names[2:-4] == sorted(names[2:-4])
    manifest = json.loads(files["manifest.json"])
    hexid = image_id.removeprefix("sha256:")
    assert manifest == [
        {
            "Config": f"blobs/sha256/{hexid}",
            "RepoTags": ["app:1", "app:2"],
            "Layers": [f"blobs/sha256/{sha(L1)[7:]}", f"blobs/sha256/{sha(L2)[7:]}"],
        }
    ]
    assert files["manifest.json"].endswith(b"]\n")
    # Layers travel as stored: the blob bytes are the layer tars themselves.
    assert files[f"blobs/sha256/{sha(L1)[7:]}"] == L1
    assert files[f"blobs/sha256/{hexid}"] == stores.content.read_bytes(image_id)
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    assert json.loads(files["repositories"]) == {"app": {"1": sha(L2)[7:], "2": sha(L2)[7:]}}
    index = json.loads(files["index.json"])
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert [m["annotations"] for m in index["manifests"]] == [
        {
            "io.containerd.image.name": "docker.io/library/app:1",
            "org.opencontainers.image.ref.name": "1",
        },
        {
            "io.containerd.image.name": "docker.io/library/app:2",
            "org.opencontainers.image.ref.name": "2",
        },
    ]
    desc = index["manifests"][0]
    oci_manifest = files[f"blobs/sha256/{desc['digest'][7:]}"]
    assert sha(oci_manifest) == desc["digest"] and len(oci_manifest) == desc["size"]
    m = json.loads(oci_manifest)
    assert m["config"]["digest"] == image_id
    assert [(ly["digest"], ly["size"]) for ly in m["layers"]] == [
        (sha(L1), len(L1)),
        (sha(L2), len(L2)),
    ]
    assert m["layers"][0]["mediaType"] == "application/vnd.oci.image.layer.v1.tar"
    # Same images, same bytes: the archive is reproducible.
    assert save(stores, ["app"]) == data


def test_save_by_id_and_shared_layers(stores: Stores) -> None:
    a = make_image(stores, [L1], ["a:1"], cmd="a")
    b = make_image(stores, [L1, L2], ["b:1"], cmd="b")
    files = members(save(stores, [a[7:19], "b:1"]))
    manifest = json.loads(files["manifest.json"])
    assert manifest[0]["RepoTags"] is None  # saved by ID: untagged, as Docker writes it
    assert manifest[1]["RepoTags"] == ["b:1"]
    assert sum(1 for n in files if n == f"blobs/sha256/{sha(L1)[7:]}") == 1
    assert json.loads(files["repositories"]) == {"b": {"1": sha(L2)[7:]}}
    del b


def test_save_unknown_image(stores: Stores) -> None:
    with pytest.raises(NotFound):
        resolve_save_names(stores.images, ["nope:1"])


def test_round_trip_keeps_ids_tags_and_files(stores: Stores, other: Stores, tmp_path: Path) -> None:
    image_id = make_image(stores, [L1, L2], ["app:1"])
    msgs = load(other, save(stores, ["app:1"]), tmp_path)
    assert msgs == ["Loaded image: app:1\n"]
    assert other.images.resolve("app:1") == image_id
    assert other.content.read_bytes(image_id) == stores.content.read_bytes(image_id)
    chain = other.layers.chain_for(other.images.config(image_id).diff_ids)
    top = other.layers.snapshots.fs(chain.snapshots[0])
    st = os.lstat(top / "etc/hello")
    assert (top / "etc/hello").read_bytes() == b"hello\n"
    assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o640, 1, 2)
    assert os.readlink(top / "bin/t") == "tool"
    # Loading again changes nothing and says so the same way.
    before = other.state()
    assert load(other, save(stores, ["app:1"]), tmp_path) == ["Loaded image: app:1\n"]
    assert other.state() == before


def test_load_untagged_prints_ids(stores: Stores, other: Stores, tmp_path: Path) -> None:
    image_id = make_image(stores, [L1], [])
    assert load(other, save(stores, [image_id]), tmp_path) == [f"Loaded image ID: {image_id}\n"]


def test_load_retag_message(stores: Stores, other: Stores, tmp_path: Path) -> None:
    make_image(other, [L2], ["app:1"], cmd="old")
    old = other.images.resolve("app:1")
    new = make_image(stores, [L1], ["app:1"], cmd="new")
    msgs = load(other, save(stores, ["app:1"]), tmp_path)
    assert msgs == [
        f"The image app:1 already exists, renaming the old one with ID {old} to empty string\n",
        "Loaded image: app:1\n",
    ]
    assert other.images.resolve("app:1") == new


def docker2010_archive(
    config: bytes,
    layers: list[bytes],
    tags: list[str],
    *,
    gz: bool = False,
    dup_symlink: bool = False,
) -> bytes:
    """The layout Docker 20.10's `docker save` writes (<v1 id>/layer.tar, <id>.json)."""
    buf = io.BytesIO()
    paths: list[str] = []
    with tarfile.open(fileobj=buf, mode="w") as tar:

        def add(name: str, data: bytes) -> None:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))

        for i, data in enumerate(layers):
            v1 = hashlib.sha256(f"v1-{i}".encode()).hexdigest()
            d = tarfile.TarInfo(v1)
            d.type = tarfile.DIRTYPE
            tar.addfile(d)
            if dup_symlink and i > 0 and data == layers[0]:
                ln = tarfile.TarInfo(f"{v1}/layer.tar")
                ln.type = tarfile.SYMTYPE
                ln.linkname = f"../{paths[0].split('/')[0]}/layer.tar"
                tar.addfile(ln)
            else:
                add(f"{v1}/layer.tar", gzip.compress(data) if gz else data)
            add(f"{v1}/VERSION", b"1.0")
            paths.append(f"{v1}/layer.tar")
        cfg_name = hashlib.sha256(config).hexdigest() + ".json"
        add(cfg_name, config)
        add(
            "manifest.json",
            json.dumps([{"Config": cfg_name, "RepoTags": tags, "Layers": paths}]).encode(),
        )
    return buf.getvalue()


def config_for(layers: list[bytes]) -> bytes:
    return build_image_config(
        container_config={"Cmd": ["sh"]},
        diff_ids=[sha(x) for x in layers],
        history=[HistoryEntry("2024-01-01T00:00:00Z", "x").to_json() for _ in layers],
        created="2024-01-01T00:00:00Z",
    )


@pytest.mark.parametrize("gz", [False, True])
def test_load_docker2010_layout(other: Stores, tmp_path: Path, gz: bool) -> None:
    layers = [L1, L2, L1]  # the third layer repeats the first: 20.10 writes a symlink
    cfg = config_for(layers)
    data = docker2010_archive(cfg, layers, ["old:1"], gz=gz, dup_symlink=True)
    assert load(other, data, tmp_path) == ["Loaded image: old:1\n"]
    image_id = other.images.resolve("old:1")
    assert image_id == sha(cfg)
    assert len(other.layers.chain_for([sha(x) for x in layers]).snapshots) == 3
    # Stored layers are the uncompressed tars, whatever the archive carried.
    assert other.content.read_bytes(sha(L1)) == L1


def hostile(members_: list[tarfile.TarInfo | tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for m in members_:
            if isinstance(m, tuple):
                ti = tarfile.TarInfo(m[0])
                ti.size = len(m[1])
                tar.addfile(ti, io.BytesIO(m[1]))
            else:
                tar.addfile(m)
    return buf.getvalue()


def symlink(name: str, target: str) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type = tarfile.SYMTYPE
    ti.linkname = target
    return ti


def manifest_for(cfg_name: str, layer_paths: list[str]) -> tuple[str, bytes]:
    return (
        "manifest.json",
        json.dumps([{"Config": cfg_name, "RepoTags": ["evil:1"], "Layers": layer_paths}]).encode(),
    )


@pytest.mark.parametrize(
    "case",
    [
        "dotdot-member",
        "absolute-symlink",
        "climbing-symlink",
        "symlinked-manifest-out",
        "bad-diffid",
        "truncated-layer",
        "not-a-tar",
        "no-manifest",
        "bad-layer-in-second-image",
        "unsafe-layer-after-good-one",
    ],
)
def test_hostile_archives_leave_store_unchanged(
    stores: Stores, other: Stores, tmp_path: Path, case: str
) -> None:
    make_image(other, [L2], ["keep:1"])
    before = other.state()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "layer.tar").write_bytes(L1)
    cfg = config_for([L1])
    cfg_entry = ("c.json", cfg)
    rel_out = os.path.relpath(outside / "layer.tar", tmp_path / "x" / "y")
    if case == "dotdot-member":
        data = hostile(
            [("../../escaped", b"boom"), cfg_entry, manifest_for("c.json", ["../../escaped"])]
        )
        expected: type[Exception] = UnsafeArchive
    elif case == "absolute-symlink":
        data = hostile(
            [
                symlink("l/layer.tar", str(outside / "layer.tar")),
                cfg_entry,
                manifest_for("c.json", ["l/layer.tar"]),
            ]
        )
        expected = UnsafeArchive
    elif case == "climbing-symlink":
        data = hostile(
            [
                symlink("l/layer.tar", "../" * 12 + rel_out),
                cfg_entry,
                manifest_for("c.json", ["l/layer.tar"]),
            ]
        )
        expected = UnsafeArchive
    elif case == "symlinked-manifest-out":
        data = hostile([symlink("manifest.json", "/etc/passwd")])
        expected = UnsafeArchive
    elif case == "bad-diffid":
        data = hostile([("l/layer.tar", L2), cfg_entry, manifest_for("c.json", ["l/layer.tar"])])
        expected = DigestMismatch
    elif case == "truncated-layer":
        data = hostile(
            [
                ("l/layer.tar", gzip.compress(L1)[:-40]),
                cfg_entry,
                manifest_for("c.json", ["l/layer.tar"]),
            ]
        )
        expected = InvalidArgument
    elif case == "not-a-tar":
        data = b"this is not a tar archive" * 100
        expected = InvalidArgument
    elif case == "no-manifest":
        data = hostile([("l/layer.tar", L1)])
        expected = InvalidArgument
    elif case == "unsafe-layer-after-good-one":
        # The digests match, but the second layer escapes its root: the applier refuses it
        # after the first layer was stored, and the load must take that one back.
        evil = hostile([("../../evil", b"boom")])
        cfg2 = config_for([L1, evil])
        data = hostile(
            [
                ("a/layer.tar", L1),
                ("b/layer.tar", evil),
                ("c.json", cfg2),
                manifest_for("c.json", ["a/layer.tar", "b/layer.tar"]),
            ]
        )
        expected = UnsafeArchive
    else:
        # The first image is fine; the second's layer does not match its diff ID: nothing of
        # either may be stored.
        good_cfg = config_for([L1])
        bad_cfg = config_for([L1, L2])
        data = hostile(
            [
                ("a/layer.tar", L1),
                ("b/layer.tar", L1),
                ("good.json", good_cfg),
                ("bad.json", bad_cfg),
                (
                    "manifest.json",
                    json.dumps(
                        [
                            {"Config": "good.json", "RepoTags": ["g:1"], "Layers": ["a/layer.tar"]},
                            {
                                "Config": "bad.json",
                                "RepoTags": ["b:1"],
                                "Layers": ["a/layer.tar", "b/layer.tar"],
                            },
                        ]
                    ).encode(),
                ),
            ]
        )
        expected = DigestMismatch
    with pytest.raises(expected):
        load(other, data, tmp_path)
    assert other.state() == before
    assert (outside / "layer.tar").read_bytes() == L1
    assert not (tmp_path / "escaped").exists()


def oci_archive(layers: list[bytes], name: str, *, nested: bool, tamper: bool = False) -> bytes:
    """An OCI image layout as podman/skopeo write it: gzip layers, maybe a nested index."""
    blobs: dict[str, bytes] = {}

    def put(data: bytes) -> dict[str, Any]:
        blobs[sha(data)[7:]] = data
        return {"digest": sha(data), "size": len(data)}

    cfg = config_for(layers)
    gz = [gzip.compress(x, mtime=0) for x in layers]
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **put(cfg)},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **put(g)} for g in gz
        ],
    }
    desc = {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        **put(json.dumps(manifest).encode()),
        "platform": {"os": "linux", "architecture": "amd64"},
    }
    if nested:
        other = {
            **desc,
            "platform": {"os": "linux", "architecture": "s390x"},
            "digest": "sha256:" + "1" * 64,
        }
        inner = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [other, desc],
        }
        desc = {
            "mediaType": "application/vnd.oci.image.index.v1+json",
            **put(json.dumps(inner).encode()),
        }
    desc["annotations"] = {"org.opencontainers.image.ref.name": name}
    if tamper:
        blobs[sha(gz[0])[7:]] = gzip.compress(layers[0] + b"\0" * 512, mtime=0)
    files = [
        ("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
        ("index.json", json.dumps({"schemaVersion": 2, "manifests": [desc]}).encode()),
        *((f"blobs/sha256/{h}", d) for h, d in blobs.items()),
    ]
    return hostile(list(files))


@pytest.mark.parametrize("nested", [False, True])
def test_load_oci_layout(other: Stores, tmp_path: Path, nested: bool) -> None:
    data = oci_archive([L1, L2], "example.com/ns/oci:1", nested=nested)
    assert load(other, data, tmp_path) == ["Loaded image: example.com/ns/oci:1\n"]
    image_id = other.images.resolve("example.com/ns/oci:1")
    assert image_id == sha(config_for([L1, L2]))
    assert other.content.read_bytes(sha(L2)) == L2  # stored uncompressed, under its diff ID


def test_load_oci_layout_checks_blob_digests(other: Stores, tmp_path: Path) -> None:
    before = other.state()
    with pytest.raises(DigestMismatch):
        load(other, oci_archive([L1], "oci:bad", nested=False, tamper=True), tmp_path)
    assert other.state() == before


def test_parent_link_travels_when_both_images_do(
    stores: Stores, other: Stores, tmp_path: Path
) -> None:
    parent = make_image(stores, [L1], ["base:1"], cmd="p")
    raw = build_image_config(
        container_config={"Cmd": ["child"]},
        diff_ids=[sha(L1)],
        history=[HistoryEntry("2024-01-01T00:00:00Z", "x").to_json()],
        created="2024-01-02T00:00:00Z",
    )
    child = stores.images.put(raw, parent=parent, tags=["child:1"])
    alone = json.loads(members(save(stores, ["child:1"]))["manifest.json"])
    assert "Parent" not in alone[0]
    data = save(stores, ["child:1", "base:1"])
    manifest = json.loads(members(data)["manifest.json"])
    assert manifest[0]["Parent"] == parent and "Parent" not in manifest[1]
    load(other, data, tmp_path)
    assert other.meta.image_parent(child) == parent
