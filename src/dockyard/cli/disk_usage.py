"""`system df` output from the daemon's `GET /system/df`, as docker CLI 28 prints it.

cli/command/formatter/disk_usage.go: without `--verbose`, one summary row per kind (Images,
Containers, Local Volumes, Build Cache); with it, four tables written one after the other,
each through its own tabwriter, under "Images space usage:", "Containers space usage:",
"Local Volumes space usage:" and "Build cache usage: SIZE". A `--format` other than `table`
with `--verbose` runs once on the whole document (`.Images`, `.Containers`, `.Volumes`,
`.BuildCache`, each a list of the rows' contexts), with no newline added.
"""

from __future__ import annotations

import time
from typing import Any

from dockyard.cli import formatter
from dockyard.cli.context import CommandError
from dockyard.cli.contexts import (
    CONTAINER_HEADER,
    IMAGE_HEADER,
    VOLUME_HEADER,
    ContainerContext,
    ImageContext,
    VolumeContext,
)
from dockyard.cli.gotemplate import Context, TemplateError
from dockyard.cli.output import human_duration, human_size, parse_rfc3339, truncate_id

SUMMARY_HEADER = {
    "Type": "TYPE",
    "TotalCount": "TOTAL",
    "Active": "ACTIVE",
    "Size": "SIZE",
    "Reclaimable": "RECLAIMABLE",
}
SUMMARY_TABLE = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"

IMAGE_TABLE = (
    "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t{{.SharedSize}}"
    "\t{{.UniqueSize}}\t{{.Containers}}"
)
CONTAINER_TABLE = (
    "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t{{.RunningFor}}"
    "\t{{.Status}}\t{{.Names}}"
)
VOLUME_TABLE = "table {{.Name}}\t{{.Links}}\t{{.Size}}"
CACHE_TABLE = (
    "table {{.ID}}\t{{.CacheType}}\t{{.Size}}\t{{.CreatedSince}}\t{{.LastUsedSince}}"
    "\t{{.UsageCount}}\t{{.Shared}}"
)
CACHE_HEADER = {
    "ID": "CACHE ID",
    "Parent": "PARENT",
    "CacheType": "CACHE TYPE",
    "Size": "SIZE",
    "CreatedSince": "CREATED",
    "LastUsedSince": "LAST USED",
    "UsageCount": "USAGE",
    "InUse": "IN USE",
    "Shared": "SHARED",
    "Description": "DESCRIPTION",
}


class SummaryRow(Context):
    """One row of the summary table (diskUsage{Images,Containers,Volumes,Builder}Context)."""

    def __init__(self, kind: str, total: int, active: int, size: float, reclaimable: str) -> None:
        self.kind = kind
        self.total = total
        self.active = active
        self.size = size
        self.reclaimable = reclaimable

    def Type(self) -> str:
        return self.kind

    def TotalCount(self) -> str:
        return str(self.total)

    def Active(self) -> str:
        return str(self.active)

    def Size(self) -> str:
        return human_size(self.size, 4)

    def Reclaimable(self) -> str:
        return self.reclaimable


def _num(value: Any) -> float:
    return float(value or 0)


def summary_rows(doc: dict[str, Any]) -> list[SummaryRow]:
    def reclaim(size: float, total: float) -> str:
        # HumanSize (4 digits) and an integer percentage of the total
        text = human_size(size, 4)
        return f"{text} ({int(size * 100 // total)}%)" if total else text

    images = doc.get("Images") or []
    containers = doc.get("Containers") or []
    volumes = doc.get("Volumes") or []
    cache = doc.get("BuildCache") or []
    img_total = _num(doc.get("LayersSize"))
    img_active = [i for i in images if (i.get("Containers") or 0) > 0]
    img_used = sum(_num(i.get("Size")) - _num(i.get("SharedSize")) for i in img_active)
    c_total = sum(_num(c.get("SizeRw")) for c in containers)
    c_active = [c for c in containers if _active(c)]
    c_reclaim = c_total - sum(_num(c.get("SizeRw")) for c in c_active)
    v_total = sum(_num((v.get("UsageData") or {}).get("Size")) for v in volumes)
    v_active = [v for v in volumes if ((v.get("UsageData") or {}).get("RefCount") or 0) > 0]
    v_reclaim = v_total - sum(_num((v.get("UsageData") or {}).get("Size")) for v in v_active)
    b_total = builder_size(cache)
    b_active = [b for b in cache if b.get("InUse")]
    b_reclaim = b_total - sum(_num(b.get("Size")) for b in b_active if not b.get("Shared"))
    return [
        SummaryRow(
            "Images",
            len(images),
            len(img_active),
            img_total,
            reclaim(img_total - img_used, img_total),
        ),
        SummaryRow(
            "Containers", len(containers), len(c_active), c_total, reclaim(c_reclaim, c_total)
        ),
        SummaryRow(
            "Local Volumes", len(volumes), len(v_active), v_total, reclaim(v_reclaim, v_total)
        ),
        # diskUsageBuilderContext.Reclaimable: the size alone, no percentage
        SummaryRow("Build Cache", len(cache), len(b_active), b_total, human_size(b_reclaim, 4)),
    ]


def _active(c: dict[str, Any]) -> bool:
    return c.get("State") in ("running", "paused", "restarting")


def builder_size(cache: list[dict[str, Any]]) -> float:
    """df.go's BuilderSize: the records not shared with another, summed by the CLI."""
    return sum(_num(b.get("Size")) for b in cache if not b.get("Shared"))


def go_time_string(text: str) -> str:
    """time.Time.String() of an RFC 3339 UTC time: "2006-01-02 15:04:05.999999999 +0000 UTC"
    (the fraction's trailing zeros dropped), as the build cache's CreatedAt prints."""
    ts = parse_rfc3339(text)
    if ts is None:
        return text
    from datetime import UTC, datetime

    head = datetime.fromtimestamp(int(ts), UTC).strftime("%Y-%m-%d %H:%M:%S")
    frac = text.partition(".")[2].rstrip("Z").split("+")[0].split("-")[0] if "." in text else ""
    frac = frac.rstrip("0")
    return f"{head}{'.' + frac if frac else ''} +0000 UTC"


class BuildCacheContext(Context):
    """formatter/buildcache.go's buildCacheContext: one build cache record."""

    def __init__(self, rec: dict[str, Any], trunc: bool, now: float) -> None:
        self.v = rec
        self.trunc = trunc
        self.now = now

    def ID(self) -> str:
        ident = str(self.v.get("ID") or "")
        ident = truncate_id(ident) if self.trunc else ident
        return ident + "*" if self.v.get("InUse") else ident  # an asterisk marks one in use

    def Parent(self) -> str:
        parents = self.v.get("Parents") or []
        parent = ", ".join(parents) if parents else str(self.v.get("Parent") or "")
        return truncate_id(parent) if self.trunc else parent

    def CacheType(self) -> str:
        return str(self.v.get("Type") or "")

    def Description(self) -> str:
        return str(self.v.get("Description") or "")

    def Size(self) -> str:
        return human_size(_num(self.v.get("Size")), 3)

    def CreatedAt(self) -> str:
        return go_time_string(str(self.v.get("CreatedAt") or ""))

    def CreatedSince(self) -> str:
        return self._since(self.v.get("CreatedAt"))

    def LastUsedAt(self) -> str:
        last = self.v.get("LastUsedAt")
        return go_time_string(str(last)) if last else ""

    def LastUsedSince(self) -> str:
        return self._since(self.v.get("LastUsedAt")) if self.v.get("LastUsedAt") else ""

    def UsageCount(self) -> str:
        return str(int(self.v.get("UsageCount") or 0))

    def InUse(self) -> str:
        return "true" if self.v.get("InUse") else "false"

    def Shared(self) -> str:
        return "true" if self.v.get("Shared") else "false"

    def _since(self, text: Any) -> str:
        ts = parse_rfc3339(str(text or ""))
        return human_duration(self.now - (ts or 0.0)) + " ago"


class VerboseDocument(Context):
    """disk_usage.go's diskUsageContext: the four lists a custom verbose `--format` sees. A Go
    struct without MarshalJSON: `json .` keeps its fields' order."""

    MARSHAL_SORTED = False

    def __init__(
        self,
        images: list[ImageContext],
        containers: list[ContainerContext],
        volumes: list[VolumeContext],
        cache: list[BuildCacheContext],
    ) -> None:
        self.images = images
        self.containers = containers
        self.volumes = volumes
        self.cache = cache

    def fields(self) -> list[str]:
        return ["Images", "Containers", "Volumes", "BuildCache"]

    def Images(self) -> list[ImageContext]:
        return self.images

    def Containers(self) -> list[ContainerContext]:
        return self.containers

    def Volumes(self) -> list[VolumeContext]:
        return self.volumes

    def BuildCache(self) -> list[BuildCacheContext]:
        return self.cache


def _familiar(ref: str) -> tuple[str, str]:
    """(repository, tag) of an image's first tag, as reference.FamiliarName shows it."""
    repo, _, tag = ref.rpartition(":")
    if "/" in tag or not repo:
        return "<none>", "<none>"  # a reference without a tag is not NamedTagged
    for prefix in ("docker.io/library/", "docker.io/"):
        if repo.startswith(prefix):
            repo = repo[len(prefix) :]
            break
    return repo, tag


def _dangling(img: dict[str, Any]) -> bool:
    tags = img.get("RepoTags") or []
    digests = img.get("RepoDigests") or []
    if not tags and not digests:
        return True
    return tags == ["<none>:<none>"] and digests == ["<none>@<none>"]


def verbose_document(doc: dict[str, Any], trunc: bool, now: float | None = None) -> VerboseDocument:
    """verboseWrite's rows: images in the daemon's order under their first tag, containers
    without their virtual size, the build cache sorted by last use (then ID)."""
    now = time.time() if now is None else now
    images = []
    for img in doc.get("Images") or []:
        repo = tag = "<none>"
        tags = img.get("RepoTags") or []
        if tags and not _dangling(img):
            repo, tag = _familiar(str(tags[0]))
        images.append(ImageContext(img, repo, tag, "", trunc, now))
    containers = [
        ContainerContext(dict(c, SizeRootFs=0), trunc, now) for c in doc.get("Containers") or []
    ]
    volumes = [VolumeContext(v) for v in doc.get("Volumes") or []]

    def last_used(rec: dict[str, Any]) -> tuple[int, float, str]:
        # buildCacheSort: records never used first, then by LastUsedAt, ties by ID
        ts = parse_rfc3339(str(rec.get("LastUsedAt") or "")) if rec.get("LastUsedAt") else None
        return (0 if ts is None else 1, ts or 0.0, str(rec.get("ID") or ""))

    cache = [
        BuildCacheContext(r, trunc, now) for r in sorted(doc.get("BuildCache") or [], key=last_used)
    ]
    return VerboseDocument(images, containers, volumes, cache)


def render(doc: dict[str, Any], fmt: str | None, verbose: bool, now: float | None = None) -> str:
    """The whole output of `system df [--verbose] [--format FMT]`."""
    fmt = fmt or "table"
    if not verbose:
        return formatter.write(
            SUMMARY_TABLE if fmt == "table" else fmt, summary_rows(doc), SUMMARY_HEADER
        )
    if fmt != "table":
        # NewDiskUsageFormat(source, true): the user's template, run once on the document;
        # IDs are truncated for a `table …` template (Format.IsTable) and whole otherwise
        text, table = formatter.prepare(fmt)
        tmpl = formatter.parse(text)
        try:
            return tmpl.execute(verbose_document(doc, trunc=table, now=now))
        except TemplateError as exc:
            raise CommandError(f"template parsing error: {exc}") from None
    duc = verbose_document(doc, trunc=True, now=now)
    size = human_size(builder_size(doc.get("BuildCache") or []), 4)
    return "".join(
        (
            "Images space usage:\n\n",
            formatter.write(IMAGE_TABLE, duc.images, IMAGE_HEADER),
            "\nContainers space usage:\n\n",
            formatter.write(CONTAINER_TABLE, duc.containers, CONTAINER_HEADER),
            "\nLocal Volumes space usage:\n\n",
            formatter.write(VOLUME_TABLE, duc.volumes, VOLUME_HEADER),
            f"\nBuild cache usage: {size}\n\n",
            formatter.write(CACHE_TABLE, duc.cache, CACHE_HEADER),
        )
    )
