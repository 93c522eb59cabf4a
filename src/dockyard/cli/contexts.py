"""The objects a `--format` template sees for each list command (docker/cli cli/command/formatter).

Each method is a field of docker's context with the same name and text (`.ID` truncated unless
`--no-trunc`, `.Command` quoted, `.RunningFor` "… ago", `.Label "k"`); `{{json .}}` marshals
every argument-less method into a sorted map, as docker's formatter.MarshalJSON does.
"""

from __future__ import annotations

import time

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

TYPE_CHECKING = False  # typing itself costs ~1.5 ms of start-up; mypy honours this name

if TYPE_CHECKING:
    from typing import Any


def go_time(created: float) -> str:
    """time.Unix(created, 0).String(): "2006-01-02 15:04:05 -0700 MST" in local time."""
    from datetime import datetime

    return datetime.fromtimestamp(int(created)).astimezone().strftime("%Y-%m-%d %H:%M:%S %z %Z")


def rfc3339(created: int) -> str:
    """time.Unix(created, 0).Format(time.RFC3339) in local time: "Z" for UTC as Go writes it."""
    from datetime import datetime

    text = datetime.fromtimestamp(created).astimezone().isoformat()
    return text[: -len("+00:00")] + "Z" if text.endswith("+00:00") else text


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


def bytes_size(size: float) -> str:
    """go-units BytesSize: binary units with 4 significant digits ("1.5MiB")."""
    units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
    i = 0
    while size >= 1024 and i < len(units) - 1:
        size /= 1024
        i += 1
    return f"{size:.4g}{units[i]}"


STATS_HEADER = {
    "Container": "CONTAINER",
    "Name": "NAME",
    "ID": "CONTAINER ID",
    "CPUPerc": "CPU %",
    "MemUsage": "MEM USAGE / LIMIT",
    "MemPerc": "MEM %",
    "NetIO": "NET I/O",
    "BlockIO": "BLOCK I/O",
    "PIDs": "PIDS",
}
STATS_TABLE = (
    "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}"
    "\t{{.BlockIO}}\t{{.PIDs}}"
)


class StatsContext(Context):
    """container/formatter_stats.go over one `GET /containers/{id}/stats?stream=0` answer,
    with docker's stats_helpers.go arithmetic (memory without the inactive file cache)."""

    def __init__(self, asked: str, s: dict[str, Any], trunc: bool = True) -> None:
        self.asked = asked
        self.s = s
        self.trunc = trunc
        cpu, pre = s.get("cpu_stats") or {}, s.get("precpu_stats") or {}
        cpu_delta = float((cpu.get("cpu_usage") or {}).get("total_usage", 0)) - float(
            (pre.get("cpu_usage") or {}).get("total_usage", 0)
        )
        sys_delta = float(cpu.get("system_cpu_usage", 0)) - float(pre.get("system_cpu_usage", 0))
        online = float(
            cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or [])
        )
        self.cpu = cpu_delta / sys_delta * online * 100 if sys_delta > 0 and cpu_delta > 0 else 0.0
        mem = s.get("memory_stats") or {}
        usage, stats = float(mem.get("usage", 0)), mem.get("stats") or {}
        inactive = stats.get("total_inactive_file", stats.get("inactive_file"))
        self.mem = usage - inactive if inactive is not None and inactive < usage else usage
        self.limit = float(mem.get("limit", 0))
        nets = (s.get("networks") or {}).values()
        self.rx = sum(float(n.get("rx_bytes", 0)) for n in nets)
        self.tx = sum(float(n.get("tx_bytes", 0)) for n in nets)
        self.read = self.write = 0.0
        for entry in (s.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []:
            op = str(entry.get("op", ""))[:1].lower()
            if op == "r":
                self.read += float(entry.get("value", 0))
            elif op == "w":
                self.write += float(entry.get("value", 0))

    def Container(self) -> str:
        return self.asked

    def Name(self) -> str:
        name = str(self.s.get("name") or "")
        return name[1:] if len(name) > 1 else "--"

    def ID(self) -> str:
        ident = str(self.s.get("id") or "")
        return truncate_id(ident) if self.trunc else ident

    def CPUPerc(self) -> str:
        return f"{self.cpu:.2f}%"

    def MemUsage(self) -> str:
        return f"{bytes_size(self.mem)} / {bytes_size(self.limit)}"

    def MemPerc(self) -> str:
        return f"{(self.mem / self.limit * 100 if self.limit else 0.0):.2f}%"

    def NetIO(self) -> str:
        return f"{human_size(self.rx)} / {human_size(self.tx)}"

    def BlockIO(self) -> str:
        return f"{human_size(self.read)} / {human_size(self.write)}"

    def PIDs(self) -> str:
        return str((self.s.get("pids_stats") or {}).get("current", 0))


NETWORK_HEADER = {
    "ID": "NETWORK ID",
    "Name": "NAME",
    "Driver": "DRIVER",
    "Scope": "SCOPE",
    "IPv4": "IPV4",
    "IPv6": "IPV6",
    "Internal": "INTERNAL",
    "Labels": "LABELS",
    "CreatedAt": "CREATED AT",
}
NETWORK_TABLE = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"


class NetworkContext(Context):
    """network/formatter.go: one row of `docker network ls`."""

    def __init__(self, n: dict[str, Any], trunc: bool = True) -> None:
        self.n = n
        self.trunc = trunc

    def ID(self) -> str:
        ident = str(self.n.get("Id", ""))
        return truncate_id(ident) if self.trunc else ident

    def Name(self) -> str:
        return str(self.n.get("Name", ""))

    def Driver(self) -> str:
        return str(self.n.get("Driver", ""))

    def Scope(self) -> str:
        return str(self.n.get("Scope", ""))

    def IPv4(self) -> str:
        return "true" if self.n.get("EnableIPv4", True) else "false"

    def IPv6(self) -> str:
        return "true" if self.n.get("EnableIPv6") else "false"

    def Internal(self) -> str:
        return "true" if self.n.get("Internal") else "false"

    def Labels(self) -> str:
        return _labels(self.n.get("Labels"))

    def Label(self, name: str) -> str:
        return str((self.n.get("Labels") or {}).get(name, ""))

    def CreatedAt(self) -> str:
        from dockyard.cli.output import parse_rfc3339

        ts = parse_rfc3339(str(self.n.get("Created") or ""))
        return go_time(ts) if ts is not None else ""


VOLUME_HEADER = {
    "Name": "VOLUME NAME",
    "Driver": "DRIVER",
    "Scope": "SCOPE",
    "Mountpoint": "MOUNTPOINT",
    "Labels": "LABELS",
    "Links": "LINKS",
    "Size": "SIZE",
    "Group": "GROUP",
    "Availability": "AVAILABILITY",
    "Status": "STATUS",
}
VOLUME_TABLE = "table {{.Driver}}\t{{.Name}}"


class VolumeContext(Context):
    """formatter/volume.go: one row of `docker volume ls`."""

    def __init__(self, v: dict[str, Any]) -> None:
        self.v = v

    def Name(self) -> str:
        return str(self.v.get("Name", ""))

    def Driver(self) -> str:
        return str(self.v.get("Driver", ""))

    def Scope(self) -> str:
        return str(self.v.get("Scope", ""))

    def Mountpoint(self) -> str:
        return str(self.v.get("Mountpoint", ""))

    def Labels(self) -> str:
        return _labels(self.v.get("Labels"))

    def Label(self, name: str) -> str:
        return str((self.v.get("Labels") or {}).get(name, ""))

    def Links(self) -> str:
        usage = self.v.get("UsageData")
        return str(usage.get("RefCount", "N/A")) if usage else "N/A"

    def Size(self) -> str:
        usage = self.v.get("UsageData")
        return human_size(float(usage.get("Size", 0))) if usage else "N/A"

    # the cluster volume fields: "N/A" for a local volume (ClusterVolume is nil)
    def Group(self) -> str:
        return "N/A"

    def Availability(self) -> str:
        return "N/A"

    def Status(self) -> str:
        return "N/A"


HISTORY_HEADER = {
    "ID": "IMAGE",
    "CreatedSince": "CREATED",
    "CreatedAt": "CREATED AT",
    "CreatedBy": "CREATED BY",
    "Size": "SIZE",
    "Comment": "COMMENT",
}
HISTORY_TABLE = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"


class HistoryContext(Context):
    """formatter.historyContext: one layer of `docker history` (`-H=false` gives RFC 3339 times
    and byte counts)."""

    def __init__(self, h: dict[str, Any], trunc: bool, human: bool, now: float) -> None:
        self.h = h
        self.trunc = trunc
        self.human = human
        self.now = now

    def ID(self) -> str:
        hid = str(self.h.get("Id") or "<missing>")
        return truncate_id(hid) if self.trunc else hid

    def CreatedAt(self) -> str:
        return rfc3339(int(self.h.get("Created") or 0))

    def CreatedSince(self) -> str:
        if not self.human:
            return self.CreatedAt()
        from dockyard.cli.output import human_duration

        return human_duration(self.now - float(self.h.get("Created") or 0)) + " ago"

    def CreatedBy(self) -> str:
        created_by = str(self.h.get("CreatedBy") or "").replace("\t", " ")
        return ellipsis(created_by, 45) if self.trunc else created_by

    def Size(self) -> str:
        size = int(self.h.get("Size") or 0)
        return human_size(float(size), 3) if self.human else str(size)

    def Comment(self) -> str:
        return str(self.h.get("Comment") or "")


class ContextRow(Context):
    """formatter.ClientContext: one row of `docker context ls`."""

    def __init__(self, name: str, description: str, endpoint: str, current: bool) -> None:
        self.name = name
        self.description = description
        self.endpoint = endpoint
        self.current = current

    def Name(self) -> str:
        return self.name + (" *" if self.current and self._table else "")

    def Current(self) -> bool:
        return self.current

    def Description(self) -> str:
        return self.description

    def DockerEndpoint(self) -> str:
        return self.endpoint

    def Error(self) -> str:
        return ""

    _table = False
