"""docker-archive: the tarball `docker save` writes and `docker load` reads.

Writing follows Docker 25+ (moby image/tarexport/save.go) so old and new Docker both read it:
  blobs/sha256/<hex>   image configs, one OCI manifest per image, and the uncompressed layer
                       tars named by their diff IDs (streamed from the content store as stored)
  index.json           OCI index; one descriptor per tag with `io.containerd.image.name` (full
                       reference) and `org.opencontainers.image.ref.name` (the tag)
  manifest.json        legacy list of {"Config", "RepoTags", "Layers"} with paths into blobs/
  oci-layout           {"imageLayoutVersion": "1.0.0"}
  repositories         legacy {"repo": {"tag": "<hex of the top layer>"}}
Entries come in the lexical order of Docker's directory walk; times are fixed so that saving the
same images twice writes the same bytes.

Reading accepts any archive `docker load` accepts through manifest.json: Docker 20.10's layout
(`<v1 id>/layer.tar`, possibly a symlink to another layer's tar, and `<id>.json` configs),
Docker 25+'s, and gzip/zstd/xz-compressed layer files; without manifest.json, an OCI image
layout (index.json, as podman and skopeo write it), whose blobs are checked against their
digests and whose names come from the `io.containerd.image.name` / full `ref.name` annotation. The outer tar is unpacked into a scratch
directory without ever creating a symlink there: archive symlinks and hardlinks are resolved in
memory, inside the archive, and one that leaves it (absolute or climbing out) is refused. Every
layer is hashed before anything is stored, so a bad archive leaves the store unchanged; a layer
that fails while being applied rolls back the layers this load created.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import posixpath
import tarfile
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from dockyard.content.store import ContentStore, validate_digest
from dockyard.diff.compression import Compression, detect, open_decompressed
from dockyard.errors import DigestMismatch, InvalidArgument, NotFound, UnsafeArchive
from dockyard.image.config import ImageConfig, chain_ids
from dockyard.image.reference import Reference, parse_reference
from dockyard.store.images import ImageStore, familiar
from dockyard.store.layers import LayerStore

MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar"
ANNOTATION_IMAGE_NAME = "io.containerd.image.name"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
OCI_LAYOUT = b'{"imageLayoutVersion": "1.0.0"}'

_CHUNK = 4 << 20
_BLOCK = 512
_MAX_JSON = 64 << 20
_MAX_LINK_HOPS = 255


def _json(doc: Any) -> bytes:
    """Go's json.Marshal: compact, no HTML escaping differences that matter for our content."""
    return json.dumps(doc, separators=(",", ":")).encode()


# --- save ------------------------------------------------------------------------------------


@dataclass
class SaveImage:
    """One image to save and the tags (normalised references) it is saved under."""

    image_id: str
    config: ImageConfig
    refs: list[Reference] = field(default_factory=list)
    parent: str | None = None  # the builder's parent image, written when it is saved too


def resolve_save_names(images: ImageStore, names: list[str]) -> list[SaveImage]:
    """Docker's parseNames: `repo` saves every tag of repo, `repo:tag` that tag, an ID (full or
    short) the image untagged. Order follows the names given; each image appears once."""
    if not names:
        raise InvalidArgument("no image names given to save")
    out: dict[str, SaveImage] = {}

    def add(image_id: str, ref: Reference | None) -> None:
        item = out.get(image_id)
        if item is None:
            item = out[image_id] = SaveImage(
                image_id, images.config(image_id), parent=images.meta.image_parent(image_id)
            )
        if ref is not None and all(str(r) != str(ref) for r in item.refs):
            item.refs.append(ref)

    for name in names:
        bare = name.removeprefix("sha256:")
        if name.startswith("sha256:") or (len(bare) == 64 and set(bare) <= set("0123456789abcdef")):
            add(images.resolve(name), None)
            continue
        ref = parse_reference(name, default_tag=False)
        if ref.digest:
            add(images.resolve(name), None)
            continue
        if ref.tag is None:
            repo_tags = _tags_of_repository(images, ref.repository)
            if repo_tags:
                for tagged in repo_tags:
                    add(images.resolve(str(tagged)), tagged)
                continue
            image_id = images.try_resolve(name)
            if image_id is None:
                # Docker's save names a bare repository as given, without a default tag
                raise NotFound(f"No such image: {name}")
            add(image_id, None)
            continue
        image_id = images.try_resolve(str(ref))
        if image_id is None:
            raise NotFound(f"No such image: {familiar(str(ref))}")
        add(image_id, ref)
    return list(out.values())


def _tags_of_repository(images: ImageStore, repository: str) -> list[Reference]:
    found: list[Reference] = []
    for image_id in images.meta.image_ids():
        for tag in images.meta.tags_of(image_id):
            ref = parse_reference(tag)
            if ref.repository == repository and ref.tag:
                found.append(ref)
    return sorted(found, key=str)


def _tar_header(name: str, size: int, *, mtime: int, directory: bool = False) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = 0 if directory else size
    info.mtime = mtime
    info.mode = 0o755 if directory else 0o644
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info.tobuf(format=tarfile.USTAR_FORMAT)


def _padding(size: int) -> bytes:
    return bytes(-size % _BLOCK)


@dataclass(frozen=True)
class _Entry:
    name: str
    size: int
    mtime: int
    data: bytes | None = None  # small generated file
    blob: str | None = None  # digest of a content-store blob to stream


def _created_epoch(cfg: ImageConfig) -> int:
    from dockyard.store.images import created_unix

    return max(created_unix(cfg.created), 0)


def plan_archive(content: ContentStore, items: list[SaveImage]) -> list[_Entry]:
    """Every file of the archive, in order, with sizes known before a byte is written."""
    blobs: dict[str, _Entry] = {}
    manifest_items: list[dict[str, Any]] = []
    saved_ids = {item.image_id for item in items}
    index_manifests: list[dict[str, Any]] = []
    repositories: dict[str, dict[str, str]] = {}
    for item in items:
        cfg = item.config
        diff_ids = cfg.diff_ids
        created = _created_epoch(cfg)
        config_hex = validate_digest(item.image_id)
        blobs[config_hex] = _Entry(
            f"blobs/sha256/{config_hex}", len(cfg.raw), created, data=cfg.raw
        )
        layer_descs: list[dict[str, Any]] = []
        for diff_id in diff_ids:
            hexd = validate_digest(diff_id)
            try:
                size = content.size(diff_id)
            except NotFound:
                raise NotFound(
                    f"layer {diff_id} of image {item.image_id} has no tar in the content store"
                ) from None
            layer_descs.append({"mediaType": MEDIA_LAYER, "digest": diff_id, "size": size})
            blobs.setdefault(hexd, _Entry(f"blobs/sha256/{hexd}", size, created, blob=diff_id))
        platform: dict[str, Any] = {
            "architecture": cfg.doc.get("architecture") or "amd64",
            "os": cfg.doc.get("os") or "linux",
        }
        if cfg.doc.get("variant"):
            platform["variant"] = cfg.doc["variant"]
        manifest = _json(
            {
                "schemaVersion": 2,
                "mediaType": MEDIA_MANIFEST,
                "config": {
                    "mediaType": MEDIA_CONFIG,
                    "digest": item.image_id,
                    "size": len(cfg.raw),
                    "platform": platform,
                },
                "layers": layer_descs,
            }
        )
        manifest_hex = hashlib.sha256(manifest).hexdigest()
        blobs[manifest_hex] = _Entry(f"blobs/sha256/{manifest_hex}", len(manifest), 0, manifest)
        manifest_desc = {
            "mediaType": MEDIA_MANIFEST,
            "digest": f"sha256:{manifest_hex}",
            "size": len(manifest),
        }
        repo_tags: list[str] | None = None
        for ref in item.refs:
            assert ref.tag
            if diff_ids:
                repositories.setdefault(ref.familiar_repository, {})[ref.tag] = validate_digest(
                    diff_ids[-1]
                )
            repo_tags = [*(repo_tags or []), ref.familiar()]
            index_manifests.append(
                {
                    **manifest_desc,
                    "annotations": {
                        ANNOTATION_IMAGE_NAME: str(ref),
                        ANNOTATION_REF_NAME: ref.tag,
                    },
                    "platform": platform,
                }
            )
        if not item.refs:
            # An image saved by ID has no name; OCI readers still find it through the index.
            index_manifests.append({**manifest_desc, "platform": platform})
        manifest_item: dict[str, Any] = {
            "Config": f"blobs/sha256/{config_hex}",
            "RepoTags": repo_tags,
            "Layers": [f"blobs/sha256/{validate_digest(d)}" for d in diff_ids],
        }
        # Docker links an image to its parent only when both travel in the same archive
        # (tarexport validatedParentLinks), so `docker load` restores the build lineage.
        if item.parent and item.parent != item.image_id and item.parent in saved_ids:
            manifest_item["Parent"] = item.parent
        manifest_items.append(manifest_item)
    files: list[_Entry] = [
        _Entry("blobs/", 0, 0),
        _Entry("blobs/sha256/", 0, 0),
        *(blobs[h] for h in sorted(blobs)),
    ]
    index = _json({"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": index_manifests})
    files.append(_Entry("index.json", len(index), 0, index))
    # manifest.json and repositories come from Go's json.Encoder, which ends with a newline.
    manifest_json = _json(manifest_items) + b"\n"
    files.append(_Entry("manifest.json", len(manifest_json), 0, manifest_json))
    files.append(_Entry("oci-layout", len(OCI_LAYOUT), 0, OCI_LAYOUT))
    if repositories:
        repos = _json({k: dict(sorted(v.items())) for k, v in sorted(repositories.items())}) + b"\n"
        files.append(_Entry("repositories", len(repos), 0, repos))
    return files


def archive_chunks(content: ContentStore, entries: list[_Entry]) -> Generator[bytes, None, None]:
    """The archive as a stream of chunks; layer blobs are read as stored, never rebuilt."""
    for entry in entries:
        if entry.name.endswith("/"):
            yield _tar_header(entry.name, 0, mtime=entry.mtime, directory=True)
            continue
        header = _tar_header(entry.name, entry.size, mtime=entry.mtime)
        if entry.data is not None:
            yield header + entry.data + _padding(entry.size)
            continue
        assert entry.blob is not None
        yield header
        remaining = entry.size
        with content.open(entry.blob) as f:
            while remaining > 0:
                chunk = f.read(min(_CHUNK, remaining))
                if not chunk:
                    raise NotFound(f"blob {entry.blob} is shorter than recorded")
                remaining -= len(chunk)
                yield chunk
        yield _padding(entry.size)
    yield bytes(2 * _BLOCK)


def write_archive(content: ContentStore, items: list[SaveImage], out: BinaryIO) -> int:
    """Write the archive to a file; returns the number of bytes written."""
    total = 0
    for chunk in archive_chunks(content, plan_archive(content, items)):
        out.write(chunk)
        total += len(chunk)
    return total


# --- load: unpacking the outer tar -----------------------------------------------------------


class UnpackedArchive:
    """An archive's regular files under `root`; links live in memory and resolve inside it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files: set[str] = set()
        self.dirs: set[str] = {""}
        self.symlinks: dict[str, str] = {}
        self.hardlinks: dict[str, str] = {}
        # Hashed while unpacking: a plain layer tar's digest is its diff ID, so it is not read
        # a second time to be checked.
        self.plain_digests: dict[str, str] = {}

    @staticmethod
    def clean(name: str) -> str:
        """A member name relative to the archive root; `..` anywhere is refused."""
        parts = [p for p in name.split("/") if p not in ("", ".")]
        if any(p == ".." for p in parts):
            raise UnsafeArchive(f"archive member {name!r} points outside the archive")
        if any("\0" in p for p in parts):
            raise UnsafeArchive(f"archive member {name!r} has a NUL byte in its name")
        return "/".join(parts)

    def resolve(self, path: str) -> str:
        """Follow archive symlinks and hardlinks in `path`; never leaves the archive."""
        pending = [p for p in path.split("/") if p not in ("", ".")]
        done: list[str] = []
        hops = 0
        while pending:
            part = pending.pop(0)
            if part == "..":
                if not done:
                    raise UnsafeArchive(f"archive path {path!r} points outside the archive")
                done.pop()
                continue
            current = "/".join([*done, part])
            link = self.symlinks.get(current)
            if link is None and not pending:
                link_target = self.hardlinks.get(current)
                if link_target is not None:
                    hops += 1
                    if hops > _MAX_LINK_HOPS:
                        raise UnsafeArchive(f"too many links resolving {path!r}")
                    done, pending = [], [*link_target.split("/"), *pending]
                    continue
            if link is None:
                done.append(part)
                continue
            hops += 1
            if hops > _MAX_LINK_HOPS:
                raise UnsafeArchive(f"too many links resolving {path!r}")
            if link.startswith("/"):
                raise UnsafeArchive(
                    f"archive symlink {current!r} -> {link!r} points outside the archive"
                )
            pending = [p for p in link.split("/") if p not in ("", ".")] + pending
        return "/".join(done)

    def open(self, path: str) -> BinaryIO:
        rel = self.resolve(self.clean(path))
        if rel not in self.files:
            raise InvalidArgument(f"invalid archive: {path} is missing or not a regular file")
        fd = os.open(self.root / rel, os.O_RDONLY | os.O_NOFOLLOW)
        return os.fdopen(fd, "rb")

    def read_json(self, path: str) -> tuple[bytes, Any]:
        with self.open(path) as f:
            raw = f.read(_MAX_JSON + 1)
        if len(raw) > _MAX_JSON:
            raise InvalidArgument(f"invalid archive: {path} is too large")
        try:
            return raw, json.loads(raw)
        except ValueError as e:
            raise InvalidArgument(f"invalid archive: {path} is not valid JSON: {e}") from None

    def exists(self, path: str) -> bool:
        return self.resolve(self.clean(path)) in self.files


def unpack_archive(stream: BinaryIO, root: Path) -> UnpackedArchive:
    """Unpack regular files of a (possibly compressed) archive under `root` (an empty dir)."""
    out = UnpackedArchive(root)
    plain = open_decompressed(stream)
    try:
        tar = tarfile.open(fileobj=plain, mode="r|")
    except tarfile.TarError as e:
        raise InvalidArgument(f"invalid archive: not a tar file ({e})") from None
    try:
        for member in tar:
            name = out.clean(member.name)
            if not name:
                continue
            if member.isdir():
                _mkdirs(out, name)
            elif member.isreg():
                _mkdirs(out, posixpath.dirname(name))
                if name in out.files or name in out.symlinks or name in out.hardlinks:
                    raise UnsafeArchive(f"archive member {name!r} appears twice")
                src = tar.extractfile(member)
                assert src is not None
                fd = os.open(
                    root / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600
                )
                digest = hashlib.sha256()
                head = b""
                with os.fdopen(fd, "wb") as dst:
                    while chunk := src.read(_CHUNK):
                        if not head:
                            head = chunk[:8]
                        digest.update(chunk)
                        dst.write(chunk)
                out.files.add(name)
                if detect(head) is Compression.NONE:
                    out.plain_digests[name] = "sha256:" + digest.hexdigest()
            elif member.issym():
                out.symlinks[name] = member.linkname
            elif member.islnk():
                target = out.clean(member.linkname)
                if not target:
                    raise UnsafeArchive(f"archive hardlink {name!r} points at the root")
                out.hardlinks[name] = target
            # devices, fifos: nothing in a docker archive needs them
    except tarfile.TarError as e:
        raise InvalidArgument(f"invalid archive: {e}") from None
    except (EOFError, OSError) as e:
        if isinstance(e, FileExistsError):
            raise UnsafeArchive(f"archive member clashes with another: {e}") from None
        raise InvalidArgument(f"invalid archive: truncated or unreadable ({e})") from None
    finally:
        tar.close()
    return out


def _mkdirs(out: UnpackedArchive, rel: str) -> None:
    if rel in out.dirs:
        return
    parts = rel.split("/")
    for i in range(1, len(parts) + 1):
        sub = "/".join(parts[:i])
        if sub in out.dirs:
            continue
        if sub in out.files or sub in out.symlinks or sub in out.hardlinks:
            raise UnsafeArchive(f"archive member {sub!r} is both a file and a directory")
        os.mkdir(out.root / sub, 0o700)
        out.dirs.add(sub)


# --- load: checking and storing ---------------------------------------------------------------


@dataclass
class _LoadItem:
    config: ImageConfig
    image_id: str
    layer_paths: list[str]
    tags: list[Reference]
    parent: str | None
    # OCI layouts name layers by the digest of the blob as stored (often compressed): checked too.
    blob_digests: list[str] = field(default_factory=list)


Emit = Callable[[dict[str, Any]], None]


class _HashingReader:
    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.hash = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self.hash.update(data)
        return data

    def readable(self) -> bool:
        return True


def _digests_of(f: BinaryIO) -> tuple[str, str]:
    """(digest of the bytes as stored, digest of the uncompressed tar = diff ID)."""
    stored = _HashingReader(f)
    h = hashlib.sha256()
    plain = open_decompressed(stored)  # type: ignore[arg-type]
    try:
        while chunk := plain.read(_CHUNK):
            h.update(chunk)
        while stored.read(_CHUNK):  # trailing bytes after the compressed stream count too
            pass
    except (OSError, EOFError) as e:
        raise InvalidArgument(f"invalid archive: a layer is corrupt or truncated ({e})") from None
    return f"sha256:{stored.hash.hexdigest()}", f"sha256:{h.hexdigest()}"


_MEDIA_MANIFESTS = (MEDIA_MANIFEST, "application/vnd.docker.distribution.manifest.v2+json")
_MEDIA_INDEXES = (MEDIA_INDEX, "application/vnd.docker.distribution.manifest.list.v2+json")


def _blob_path(digest: Any) -> str:
    if not isinstance(digest, str):
        raise InvalidArgument("invalid archive: a descriptor has no digest")
    return f"blobs/sha256/{validate_digest(digest)}"


def _read_blob_json(arch: UnpackedArchive, desc: Any) -> tuple[bytes, Any]:
    if not isinstance(desc, dict):
        raise InvalidArgument("invalid archive: a descriptor is not an object")
    raw, doc = arch.read_json(_blob_path(desc.get("digest")))
    if "sha256:" + hashlib.sha256(raw).hexdigest() != desc["digest"]:
        raise DigestMismatch(f"invalid archive: blob {desc['digest']} does not match its digest")
    return raw, doc


def _oci_name(desc: dict[str, Any]) -> Reference | None:
    """The image name an OCI index gives a manifest: containerd's full-name annotation, or a
    ref.name that is itself a full reference (a bare tag names no repository)."""
    notes = desc.get("annotations") or {}
    for key in (ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME):
        value = notes.get(key)
        if not isinstance(value, str) or (
            key == ANNOTATION_REF_NAME and "/" not in value and ":" not in value
        ):
            continue
        try:
            ref = parse_reference(value)
        except InvalidArgument:
            continue
        if ref.tag and not ref.digest:
            return ref
    return None


def _read_oci_items(arch: UnpackedArchive) -> list[_LoadItem]:
    """An OCI image layout (index.json, no manifest.json), as podman and skopeo write it."""
    from dockyard.image.config import go_arch

    _, index = arch.read_json("index.json")
    by_manifest: dict[str, _LoadItem] = {}
    pending: list[tuple[Any, Reference | None]] = []
    if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
        raise InvalidArgument("invalid archive: index.json has no manifests")
    pending = [(d, _oci_name(d) if isinstance(d, dict) else None) for d in index["manifests"]]
    depth = 0
    while pending:
        depth += 1
        if depth > 1000:
            raise InvalidArgument("invalid archive: index.json nests too deeply")
        desc, name = pending.pop(0)
        _raw, doc = _read_blob_json(arch, desc)
        media = desc.get("mediaType") or (doc.get("mediaType") if isinstance(doc, dict) else "")
        if media in _MEDIA_INDEXES:
            for sub in doc.get("manifests") or []:
                plat = (sub.get("platform") or {}) if isinstance(sub, dict) else {}
                if plat and (plat.get("os"), plat.get("architecture")) != ("linux", go_arch()):
                    continue
                pending.append((sub, name))
            continue
        if media not in _MEDIA_MANIFESTS or not isinstance(doc, dict):
            continue  # attestations and other artifacts are not images
        digest = desc["digest"]
        item = by_manifest.get(digest)
        if item is None:
            cfg_raw, _ = _read_blob_json(arch, doc.get("config"))
            cfg = _parse_config(cfg_raw)
            layer_descs = doc.get("layers") or []
            if len(layer_descs) != len(cfg.diff_ids):
                raise InvalidArgument(
                    f"invalid manifest, layers length mismatch: expected {len(layer_descs)}, "
                    f"got {len(cfg.diff_ids)}"
                )
            paths = [
                _blob_path(d.get("digest") if isinstance(d, dict) else None) for d in layer_descs
            ]
            item = _LoadItem(
                cfg,
                "sha256:" + hashlib.sha256(cfg_raw).hexdigest(),
                paths,
                [],
                None,
                [d["digest"] for d in layer_descs],
            )
            by_manifest[digest] = item
        if name is not None and all(str(t) != str(name) for t in item.tags):
            item.tags.append(name)
    return list(by_manifest.values())


def _parse_config(raw: bytes) -> ImageConfig:
    try:
        cfg = ImageConfig.from_bytes(raw)
    except ValueError as e:
        raise InvalidArgument(f"invalid archive: bad image config: {e}") from None
    os_name = cfg.doc.get("os") or "linux"
    if os_name != "linux":
        raise InvalidArgument(f"cannot load {os_name} image on linux")
    for d in cfg.diff_ids:
        validate_digest(d)
    return cfg


def _read_items(arch: UnpackedArchive) -> list[_LoadItem]:
    if not arch.exists("manifest.json"):
        if arch.exists("index.json") and arch.exists("oci-layout"):
            return _read_oci_items(arch)
        raise InvalidArgument(
            "invalid archive: manifest.json not found (is this a `docker save` archive?)"
        )
    _, manifest = arch.read_json("manifest.json")
    if manifest is None:
        raise InvalidArgument("invalid manifest, manifest cannot be null (but can be [])")
    if not isinstance(manifest, list):
        raise InvalidArgument("invalid archive: manifest.json is not a list")
    items: list[_LoadItem] = []
    for entry in manifest:
        if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str):
            raise InvalidArgument("invalid archive: a manifest.json entry has no Config")
        raw, _ = arch.read_json(entry["Config"])
        cfg = _parse_config(raw)
        layers = entry.get("Layers") or []
        if not isinstance(layers, list) or not all(isinstance(p, str) for p in layers):
            raise InvalidArgument("invalid archive: manifest.json Layers is not a list of paths")
        if len(layers) != len(cfg.diff_ids):
            raise InvalidArgument(
                f"invalid manifest, layers length mismatch: expected {len(layers)}, "
                f"got {len(cfg.diff_ids)}"
            )
        tags: list[Reference] = []
        for repo_tag in entry.get("RepoTags") or []:
            if not isinstance(repo_tag, str):
                raise InvalidArgument("invalid archive: RepoTags holds a non-string")
            ref = parse_reference(repo_tag, default_tag=False)
            if ref.tag is None or ref.digest:
                raise InvalidArgument(f'invalid tag "{repo_tag}"')
            tags.append(ref)
        parent = entry.get("Parent")
        image_id = "sha256:" + hashlib.sha256(raw).hexdigest()
        items.append(
            _LoadItem(cfg, image_id, layers, tags, parent if isinstance(parent, str) else None)
        )
    return items


def load_archive(
    arch: UnpackedArchive,
    layers: LayerStore,
    images: ImageStore,
    emit: Emit,
    *,
    quiet: bool = True,
) -> list[str]:
    """Store the images of an unpacked archive; emits Docker's messages, returns the image IDs."""
    items = _read_items(arch)
    meta = layers.meta
    # Phase 1: check every layer that is not already stored against its diff ID.
    verified: dict[str, tuple[str, str]] = {}
    for item in items:
        chains = chain_ids(item.config.diff_ids)
        for i, (diff_id, path) in enumerate(
            zip(item.config.diff_ids, item.layer_paths, strict=True)
        ):
            if meta.get_layer(chains[i]) is not None:
                continue
            resolved = arch.resolve(arch.clean(path))
            if resolved in arch.plain_digests:
                verified[resolved] = (arch.plain_digests[resolved],) * 2
            if resolved not in verified:
                with arch.open(path) as f:
                    verified[resolved] = _digests_of(f)
            stored, actual = verified[resolved]
            if item.blob_digests and item.blob_digests[i] != stored:
                raise DigestMismatch(
                    f"invalid archive: layer blob {item.blob_digests[i]} has digest {stored}"
                )
            if actual != diff_id:
                raise DigestMismatch(
                    f'invalid diffID for layer {i}: expected "{diff_id}", got "{actual}"'
                )
    # Phase 2: apply the missing layers; undo this load's layers if one fails.
    created: list[tuple[str, int, bool]] = []
    try:
        for item in items:
            diff_ids = item.config.diff_ids
            chains = chain_ids(diff_ids)
            for i, path in enumerate(item.layer_paths):
                if meta.get_layer(chains[i]) is not None:
                    continue
                had_blob = layers.content.exists(diff_ids[i])
                with arch.open(path) as f:
                    record = layers.apply(f, diff_ids[:i])
                if record.chain_id != chains[i]:
                    raise DigestMismatch(
                        f"layer {i} changed while loading: expected {diff_ids[i]}, "
                        f"got {record.diff_id}"
                    )
                created.append((record.chain_id, record.snapshot, had_blob))
                if not quiet:
                    short = diff_ids[i].removeprefix("sha256:")[:12]
                    emit({"status": "Loading layer", "progressDetail": {}, "id": short})
    except BaseException:
        for chain_id, snapshot, had_blob in reversed(created):
            rec = meta.get_layer(chain_id)
            meta.delete_layer(chain_id)
            layers.discard_active(snapshot)
            if rec is not None and not had_blob:
                with contextlib.suppress(NotFound):
                    layers.content.delete(rec.diff_id)
        raise
    # Phase 3: images and tags, as Docker prints them.
    loaded_ids = {item.image_id for item in items}
    ids_text = ""
    ref_count = 0
    out: list[str] = []
    for item in items:
        parent = item.parent if item.parent in loaded_ids and item.parent != item.image_id else None
        image_id = images.put(item.config.raw, parent=parent)
        out.append(image_id)
        ids_text += f"Loaded image ID: {image_id}\n"
        ref_count = 0
        for ref in item.tags:
            previous = meta.resolve_tag(str(ref))
            if previous is not None and previous != image_id:
                emit(
                    {
                        "stream": f"The image {ref.familiar()} already exists, renaming the old "
                        f"one with ID {previous} to empty string\n"
                    }
                )
            meta.tag(str(ref), image_id)
            emit({"stream": f"Loaded image: {ref.familiar()}\n"})
            ref_count += 1
    # Docker prints the IDs only when the last image carried no tag (moby tarexport/load.go).
    if ref_count == 0 and ids_text:
        emit({"stream": ids_text})
    return out
