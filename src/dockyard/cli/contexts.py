"""The objects a `--format` template sees for each list command (docker/cli cli/command/formatter).

Each method is a field of docker's context with the same name and text (`.ID` truncated unless
`--no-trunc`, `.Command` quoted, `.RunningFor` "… ago", `.Label "k"`); `{{json .}}` marshals
every argument-less method into a sorted map, as docker's formatter.MarshalJSON does.
"""

from __future__ import annotations

import time
from typing import Any

from dockyard.cli.gotemplate import Context
from dockyard.cli.output import (
    container_image,
    container_names,
    displayable_ports,
    ellipsis,
    go_quote,
    human_size,
    truncate_id,
)


def go_time(created: float) -> str:
    """time.Unix(created, 0).String(): "2006-01-02 15:04:05 -0700 MST" in local time."""
    from datetime import datetime

    return datetime.fromtimestamp(int(created)).astimezone().strftime("%Y-%m-%d %H:%M:%S %z %Z")


def go_human_size(size: float) -> str:
    """go-units HumanSize: HumanSizeWithPrecision(size, 4)."""
    return human_size(size, 4)


def _labels(labels: dict[str, str] | None) -> str:
    return ",".join(sorted(f"{k}={v}" for k, v in (labels or {}).items()))


CONTAINER_HEADER = {
    "ID": "CONTAINER ID",
    "Names": "NAMES",
    "Image": "IMAGE",
    "Command": "COMMAND",
    "CreatedAt": "CREATED AT",
    "RunningFor": "CREATED",
    "Ports": "PORTS",
    "State": "STATE",
    "Status": "STATUS",
    "Size": "SIZE",
    "Labels": "LABELS",
    "Mounts": "MOUNTS",
    "LocalVolumes": "LOCAL VOLUMES",
    "Networks": "NETWORKS",
    "Platform": "PLATFORM",
}
CONTAINER_TABLE = (
    "table {{.ID}}\\t{{.Image}}\\t{{.Command}}\\t{{.RunningFor}}\\t{{.Status}}\\t{{.Ports}}"
    "\\t{{.Names}}"
)


class ContainerContext(Context):
    """formatter.ContainerContext over one `GET /containers/json` entry."""

    def __init__(self, c: dict[str, Any], trunc: bool = True, now: float | None = None) -> None:
        self.c = c
        self.trunc = trunc
        self.now = time.time() if now is None else now
        self.size_used = False

    def ID(self) -> str:
        cid = str(self.c.get("Id", ""))
        return truncate_id(cid) if self.trunc else cid

    def Names(self) -> str:
        return container_names(self.c.get("Names") or [], self.trunc)

    def Image(self) -> str:
        if not self.c:
            return "<no image>"
        return container_image(
            str(self.c.get("Image") or ""), str(self.c.get("ImageID") or ""), self.trunc
        )

    def Command(self) -> str:
        command = str(self.c.get("Command") or "")
        return go_quote(ellipsis(command, 20) if self.trunc else command)

    def CreatedAt(self) -> str:
        return go_time(float(self.c.get("Created") or 0))

    def RunningFor(self) -> str:
        from dockyard.cli.output import human_duration

        return human_duration(self.now - float(self.c.get("Created") or 0)) + " ago"

    def Platform(self) -> Any:
        desc = self.c.get("ImageManifestDescriptor") or {}
        return desc.get("platform")

    def Ports(self) -> str:
        return displayable_ports(self.c.get("Ports") or [])

    def State(self) -> str:
        return str(self.c.get("State") or "")

    def Status(self) -> str:
        return str(self.c.get("Status") or "")

    def Size(self) -> str:
        self.size_used = True
        srw = human_size(float(self.c.get("SizeRw") or 0))
        rootfs = float(self.c.get("SizeRootFs") or 0)
        return f"{srw} (virtual {human_size(rootfs)})" if rootfs > 0 else srw

    def Labels(self) -> str:
        return _labels(self.c.get("Labels"))

    def Label(self, name: str) -> str:
        return str((self.c.get("Labels") or {}).get(name, ""))

    def Mounts(self) -> str:
        names = []
        for m in self.c.get("Mounts") or []:
            name = str(m.get("Name") or m.get("Source") or "")
            names.append(ellipsis(name, 15) if self.trunc else name)
        return ",".join(names)

    def LocalVolumes(self) -> str:
        return str(sum(1 for m in self.c.get("Mounts") or [] if m.get("Driver") == "local"))

    def Networks(self) -> str:
        nets = (self.c.get("NetworkSettings") or {}).get("Networks") or {}
        return ",".join(nets)


IMAGE_HEADER = {
    "ID": "IMAGE ID",
    "Repository": "REPOSITORY",
    "Tag": "TAG",
    "Digest": "DIGEST",
    "CreatedSince": "CREATED",
    "CreatedAt": "CREATED AT",
    "Size": "SIZE",
    "Containers": "CONTAINERS",
    "VirtualSize": "SIZE",
    "SharedSize": "SHARED SIZE",
    "UniqueSize": "UNIQUE SIZE",
}
_CREATED = "{{if .CreatedSince }}{{.CreatedSince}}{{else}}N/A{{end}}"
IMAGE_TABLE = "table {{.Repository}}\\t{{.Tag}}\\t{{.ID}}\\t" + _CREATED + "\\t{{.Size}}"
IMAGE_TABLE_DIGEST = (
    "table {{.Repository}}\\t{{.Tag}}\\t{{.Digest}}\\t{{.ID}}\\t" + _CREATED + "\\t{{.Size}}"
)


class ImageContext(Context):
    """formatter.imageContext: one row of `docker images`."""

    def __init__(
        self,
        img: dict[str, Any],
        repo: str = "",
        tag: str = "",
        digest: str = "",
        trunc: bool = True,
        now: float | None = None,
    ) -> None:
        self.i = img
        self.repo = repo
        self.tag = tag
        self.digest = digest
        self.trunc = trunc
        self.now = time.time() if now is None else now

    def ID(self) -> str:
        iid = str(self.i.get("Id", ""))
        return truncate_id(iid) if self.trunc else iid

    def Repository(self) -> str:
        return self.repo

    def Tag(self) -> str:
        return self.tag

    def Digest(self) -> str:
        return self.digest

    def CreatedSince(self) -> str:
        from dockyard.cli.output import human_duration

        return human_duration(self.now - float(self.i.get("Created") or 0)) + " ago"

    def CreatedAt(self) -> str:
        return go_time(float(self.i.get("Created") or 0))

    def Size(self) -> str:
        return human_size(float(self.i.get("Size") or 0))

    def Containers(self) -> str:
        n = self.i.get("Containers", -1)
        return "N/A" if n in (-1, None) else str(n)

    def VirtualSize(self) -> str:
        return go_human_size(float(self.i.get("Size") or 0))

    def SharedSize(self) -> str:
        shared = self.i.get("SharedSize", -1)
        return "N/A" if shared in (-1, None) else go_human_size(float(shared))

    def UniqueSize(self) -> str:
        size, shared = self.i.get("Size", -1), self.i.get("SharedSize", -1)
        if size in (-1, None) or shared in (-1, None):
            return "N/A"
        return go_human_size(float(size) - float(shared))


def image_contexts(
    images: list[dict[str, Any]], trunc: bool, digests: bool, now: float
) -> list[ImageContext]:
    """formatter.imageFormat: a row per tag (and per digest with --digests), then digest-only rows."""
    rows: list[ImageContext] = []
    ordered = sorted(images, key=lambda i: int(i.get("Created") or 0), reverse=True)
    for img in ordered:
        tags = [t for t in img.get("RepoTags") or [] if t != "<none>:<none>"]
        refs = [d for d in img.get("RepoDigests") or [] if d != "<none>@<none>"]
        if not tags and not refs:
            rows.append(ImageContext(img, "<none>", "<none>", "<none>", trunc, now))
            continue
        by_repo: dict[str, list[str]] = {}
        for ref in refs:
            repo, _, digest = ref.partition("@")
            by_repo.setdefault(repo, []).append(digest)
        for tag_ref in tags:
            repo, _, tag = tag_ref.rpartition(":")
            repo_digests = by_repo.get(repo, []) if digests else []
            if not repo_digests:
                rows.append(ImageContext(img, repo, tag, "<none>", trunc, now))
            for digest in repo_digests:
                rows.append(ImageContext(img, repo, tag, digest, trunc, now))
        tagged = {t.rpartition(":")[0] for t in tags}
        for repo, repo_digests in by_repo.items():
            if repo in tagged:
                continue
            if digests:
                rows.extend(ImageContext(img, repo, "<none>", d, trunc, now) for d in repo_digests)
            else:
                rows.append(ImageContext(img, repo, "<none>", "", trunc, now))
    return rows
