"""Images: configs in the content store, rows and tags in metadata, and Docker's rules for them.

Name resolution follows Docker: a full or short (≥ 1 hex char, unambiguous) image ID, or a
reference normalised as `docker.io/library/x:latest`. Deletion follows Docker's conflict rules
(untag first; refuse while a container uses the image unless forced, and always while a running
one does; refuse to delete by ID an image with several names unless forced, or one with
children; then remove untagged, childless parents the builder left behind).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dockyard.content.store import ContentStore
from dockyard.errors import Conflict, InvalidArgument, NotFound
from dockyard.image.config import ImageConfig, chain_ids
from dockyard.image.reference import Reference, parse_reference
from dockyard.metadata.leases import Kind
from dockyard.metadata.store import MetadataStore

_HEX = set("0123456789abcdef")
# dockerd 20.10's ContainerConfig of an image no container made (measured: `docker import`)
_EMPTY_CONTAINER_CONFIG: dict[str, Any] = {
    "Hostname": "",
    "Domainname": "",
    "User": "",
    "AttachStdin": False,
    "AttachStdout": False,
    "AttachStderr": False,
    "Tty": False,
    "OpenStdin": False,
    "StdinOnce": False,
    "Env": None,
    "Cmd": None,
    "Image": "",
    "Volumes": None,
    "WorkingDir": "",
    "Entrypoint": None,
    "OnBuild": None,
    "Labels": None,
}


@dataclass(frozen=True)
class Image:
    id: str
    config: ImageConfig
    tags: list[str]


def familiar(name: str) -> str:
    return parse_reference(name).familiar()


def created_unix(created: str) -> int:
    """Seconds since the epoch of an RFC 3339 time (Go writes up to nanoseconds)."""
    try:
        return int(datetime.fromisoformat(created[:19] + "+00:00").timestamp())
    except ValueError:
        return 0


class ImageStore:
    def __init__(self, content: ContentStore, meta: MetadataStore) -> None:
        self.content = content
        self.meta = meta

    def repo_digests(self, image_id: str) -> list[str]:
        """`name@sha256:…` (familiar) for every manifest the image was pulled or pushed as."""
        return [
            parse_reference(f"{repo}@{digest}").familiar()
            for repo, digest in self.meta.distribution.repo_digests(image_id)
        ]

    def image_for_repo_digest(self, repository: str, digest: str) -> str | None:
        """The image a `repository@digest` reference names, if it was pulled or pushed here."""
        image_id = self.meta.distribution.image_for_repo_digest(repository, digest)
        return image_id if image_id is not None and self.meta.has_image(image_id) else None

    # lookup ------------------------------------------------------------------------------
    def resolve(self, name: str) -> str:
        """Image ID for a name, ID or ID prefix; NotFound as Docker words it."""
        image_id = self.try_resolve(name)
        if image_id is None:
            raise NotFound(f"No such image: {self._shown(name)}")
        return image_id

    @staticmethod
    def _shown(name: str) -> str:
        """Docker's wording (ErrImageDoesNotExist): an ID as given, a name in its familiar
        form with its default tag (`x` → `x:latest`)."""
        bare = name.removeprefix("sha256:")
        if name.startswith("sha256:") or (bare and set(bare) <= _HEX and len(bare) == 64):
            return name
        try:
            return parse_reference(name).familiar()
        except InvalidArgument:
            return name

    def try_resolve(self, name: str) -> str | None:
        bare = name.removeprefix("sha256:")
        if bare and set(bare) <= _HEX:
            if len(bare) == 64 and self.meta.has_image(f"sha256:{bare}"):
                return f"sha256:{bare}"
            matches = self.meta.find_images_by_prefix(f"sha256:{bare}")
            if len(matches) == 1 and (name.startswith("sha256:") or not self._is_tag(name)):
                return matches[0]
            if len(matches) > 1 and not self._is_tag(name):
                raise InvalidArgument(f"short ID {name} is ambiguous")
        try:
            ref = parse_reference(name)
        except InvalidArgument:
            if name.startswith("sha256:"):
                return None
            raise
        if ref.digest and ref.tag is None:
            return self.image_for_repo_digest(ref.repository, ref.digest)
        return self.meta.resolve_tag(str(ref))

    def _is_tag(self, name: str) -> bool:
        try:
            return self.meta.resolve_tag(str(parse_reference(name))) is not None
        except InvalidArgument:
            return False

    def get(self, name_or_id: str) -> Image:
        """The image a name resolves to; an operation under a lease holds it (a build's base
        keeps its layers while the build stands on them, even if it is untagged meanwhile)."""
        image_id = self.resolve(name_or_id)
        self.meta.hold(Kind.IMAGE, [image_id])
        raw = self.content.read_bytes(image_id)
        return Image(image_id, ImageConfig.from_bytes(raw), self.meta.tags_of(image_id))

    def parent_of(self, image_id: str) -> str | None:
        return self.meta.image_parent(image_id)

    def config(self, image_id: str) -> ImageConfig:
        """An image's config; held under the current lease, as `get` (a build's cache hit)."""
        self.meta.hold(Kind.IMAGE, [image_id])
        return ImageConfig.from_bytes(self.content.read_bytes(image_id))

    # create ------------------------------------------------------------------------------
    def put(
        self,
        raw_config: bytes,
        *,
        parent: str | None = None,
        tags: list[str] | None = None,
        cache_key: str | None = None,
        link_key: str | None = None,
    ) -> str:
        self.meta.hold(Kind.CONTENT, [digest_of(raw_config)])
        info = self.content.ingest_bytes(raw_config)
        cfg = ImageConfig.from_bytes(raw_config)
        self.meta.put_image(
            info.digest,
            cfg.created,
            parent,
            [self.normalize_tag(t) for t in tags or []],
            cache_key,
            link_key,
        )
        return info.digest

    @staticmethod
    def normalize_tag(name: str) -> str:
        ref = parse_reference(name)
        if ref.digest:
            raise InvalidArgument(f"refusing to create a tag with a digest reference: {name}")
        return str(ref)

    def tag(self, source: str, target: str) -> None:
        self.meta.tag(self.normalize_tag(target), self.resolve(source))

    # delete ------------------------------------------------------------------------------
    def references(self, image_id: str) -> list[Reference]:
        """Every tag and `repo@digest` naming the image, in Docker's order (lexical by the
        full name: reference/store.go lexicalRefs)."""
        refs = [parse_reference(t) for t in self.meta.tags_of(image_id)]
        refs += [parse_reference(d) for d in self.repo_digests(image_id)]
        return sorted(refs, key=str)

    def _remove_reference(self, ref: Reference) -> None:
        if ref.digest and ref.tag is None:
            self.meta.distribution.remove_repo_digest(ref.repository, ref.digest)
        else:
            self.meta.untag(str(Reference(ref.domain, ref.path, ref.tag)))

    def delete(
        self,
        name: str,
        *,
        force: bool,
        prune: bool,
        users: Callable[[str], list[tuple[str, bool]]],
    ) -> list[dict[str, str]]:
        """Docker's `DELETE /images/{name}` (moby daemon/images/image_delete.go);
        `users(image_id)` lists (container ID, running)."""
        image_id = self.resolve(name)
        refs = self.references(image_id)
        report: list[dict[str, str]] = []
        using = users(image_id)
        short = image_id.removeprefix("sha256:")[:12]
        quiet = False
        if self._named_by_tag(name, image_id):
            # A reference was named: remove it (a container using the image keeps its last
            # name unless forced), then, if no tag of that repository is left, its digest
            # references too; the image goes only when nothing names it any more.
            if using and not force and _single_reference(refs):
                cid = using[0][0][:12]
                raise Conflict(
                    f'conflict: unable to remove repository reference "{name}" (must force) '
                    f"- container {cid} is using its referenced image {short}"
                )
            ref = parse_reference(name)
            if ref.digest and ref.tag is not None:
                ref = Reference(ref.domain, ref.path, None, ref.digest)
            self._remove_reference(ref)
            report.append({"Untagged": ref.familiar()})
            refs = [r for r in refs if r != ref]
            if ref.digest is None and not any(
                r.digest is None and r.repository == ref.repository for r in refs
            ):
                for other in [r for r in refs if r.repository == ref.repository]:
                    self._remove_reference(other)
                    report.append({"Untagged": other.familiar()})
                    refs.remove(other)
            if refs:
                return report
            quiet = True
        elif _single_reference(refs):
            # By ID, with one tag (and digests of its repository) naming it: untag all.
            self._check_conflicts(image_id, using, hard=True, stopped=not force, named=False)
            for ref in refs:
                self._remove_reference(ref)
                report.append({"Untagged": ref.familiar()})
        try:
            self._check_conflicts(image_id, using, hard=True, stopped=not force, named=not force)
        except Conflict:
            # After its last name went, a conflict only keeps the image (quietly) when it
            # is still used or has children; a dangling, unused image is reported.
            if quiet:
                return report
            raise
        for ref in self.references(image_id):
            self._remove_reference(ref)
            report.append({"Untagged": ref.familiar()})
        self._delete_chain(image_id, prune, users, report)
        return report

    def _check_conflicts(
        self,
        image_id: str,
        using: list[tuple[str, bool]],
        *,
        hard: bool,
        stopped: bool,
        named: bool,
    ) -> None:
        """moby's checkImageDeleteConflict, in its order: children, running containers,
        other names, stopped containers."""
        short = image_id.removeprefix("sha256:")[:12]
        if hard and self.meta.image_children(image_id):
            raise Conflict(
                f"conflict: unable to delete {short} (cannot be forced) - image has "
                "dependent child images"
            )
        running = [c for c, up in using if up]
        if hard and running:
            raise Conflict(
                f"conflict: unable to delete {short} (cannot be forced) - image is being "
                f"used by running container {running[0][:12]}"
            )
        if named and self.references(image_id):
            raise Conflict(
                f"conflict: unable to delete {short} (must be forced) - image is referenced "
                "in multiple repositories"
            )
        if stopped and using:
            raise Conflict(
                f"conflict: unable to delete {short} (must be forced) - image is being used "
                f"by stopped container {using[0][0][:12]}"
            )

    def _named_by_tag(self, name: str, image_id: str) -> bool:
        """Whether `name` refers to the image through a tag rather than (a prefix of) its ID."""
        bare = name.removeprefix("sha256:")
        by_id = name.startswith("sha256:") or (
            set(bare) <= _HEX and image_id.startswith(f"sha256:{bare}") and not self._is_tag(name)
        )
        return not by_id

    def _delete_chain(
        self,
        image_id: str,
        prune: bool,
        users: Callable[[str], list[tuple[str, bool]]],
        report: list[dict[str, str]],
    ) -> None:
        current: str | None = image_id
        while current:
            parent = self.meta.image_parent(current)
            self.meta.delete_image(current)
            if not any(d.get("Deleted") == current for d in report):
                report.append({"Deleted": current})
            if not prune or parent is None:
                break
            if self.meta.tags_of(parent) or self.meta.image_children(parent) or users(parent):
                break
            current = parent

    # views -------------------------------------------------------------------------------
    def size(self, cfg: ImageConfig) -> int:
        total = 0
        for chain_id in chain_ids(cfg.diff_ids):
            layer = self.meta.get_layer(chain_id)
            if layer:
                total += layer.size
        return total

    def summary(self, image_id: str) -> dict[str, Any]:
        cfg = self.config(image_id)
        tags = self.meta.tags_of(image_id)
        size = self.size(cfg)
        return {
            "Containers": -1,
            "Created": created_unix(cfg.created),
            "Id": image_id,
            "Labels": cfg.container_config.get("Labels"),
            "ParentId": self.meta.image_parent(image_id) or "",
            "RepoDigests": self.repo_digests(image_id),
            "RepoTags": [familiar(t) for t in tags],
            "SharedSize": -1,
            "Size": size,
            "VirtualSize": size,
        }

    def inspect(self, image_id: str) -> dict[str, Any]:
        cfg = self.config(image_id)
        size = self.size(cfg)
        return {
            "Id": image_id,
            "RepoTags": [familiar(t) for t in self.meta.tags_of(image_id)],
            "RepoDigests": self.repo_digests(image_id),
            "Parent": self.meta.image_parent(image_id) or "",
            "Comment": cfg.doc.get("comment", ""),
            "Created": cfg.created,
            # Docker's legacy fields, in every answer below API 1.45 (all of ours): the
            # config of the container that made the image, or an empty one. Compose v1
            # reads ContainerConfig.Volumes when it recreates a container.
            "Container": cfg.doc.get("container", ""),
            "ContainerConfig": cfg.doc.get("container_config") or dict(_EMPTY_CONTAINER_CONFIG),
            "DockerVersion": cfg.doc.get("docker_version", ""),
            "Author": cfg.doc.get("author", ""),
            "Config": cfg.container_config,
            "Architecture": cfg.doc.get("architecture", ""),
            "Os": cfg.doc.get("os", ""),
            "Size": size,
            "VirtualSize": size,
            "GraphDriver": {"Data": None, "Name": "overlay2"},
            "RootFS": {"Type": "layers", "Layers": cfg.diff_ids},
            "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
        }


def _single_reference(refs: list[Reference]) -> bool:
    """moby's isSingleReference: at most one tag, and every name in one repository."""
    if len(refs) <= 1:
        return len(refs) == 1
    tags = [r for r in refs if r.digest is None or r.tag is not None]
    if len(tags) > 1:
        return False
    single = tags[0] if tags else refs[0]
    repos = {r.repository for r in refs if r not in tags}
    return repos == {single.repository}


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


__all__ = ["Image", "ImageStore", "Reference", "digest_of"]
