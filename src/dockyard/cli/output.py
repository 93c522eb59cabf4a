"""Table and value formatting, matching the docker CLI's output byte for byte where we can.

References: docker/go-units (`HumanDuration`, `HumanSizeWithPrecision`), docker/cli
`cli/command/formatter` (tabwriter settings, `Ellipsis`, `DisplayablePorts`), moby
`pkg/stringid.TruncateID`.
"""

from __future__ import annotations

from dockyard.cli import cjson

TYPE_CHECKING = False  # typing itself costs ~1.5 ms of start-up; mypy honours this name

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from typing import Any

_DECIMAL_UNITS = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"]


def human_duration(seconds: float) -> str:
    """go-units HumanDuration: "Less than a second", "3 seconds", "About an hour", …"""
    secs = int(seconds)
    if secs < 1:
        return "Less than a second"
    if secs == 1:
        return "1 second"
    if secs < 60:
        return f"{secs} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


def human_size(size: float, precision: int = 3) -> str:
    """go-units HumanSizeWithPrecision (decimal units, Go's %.*g)."""
    i = 0
    while size >= 1000.0 and i < len(_DECIMAL_UNITS) - 1:
        size /= 1000.0
        i += 1
    return f"{size:.{precision}g}{_DECIMAL_UNITS[i]}"


def ago(created: float | int | str, now: float) -> str:
    """A CREATED column: Unix seconds (ps, images) or RFC 3339 (history) → "… ago"."""
    if isinstance(created, str):
        ts = parse_rfc3339(created)
        if ts is None:
            return created
        created = ts
    if not created or created <= 0:
        return "N/A"
    return human_duration(now - float(created)) + " ago"


def parse_rfc3339(text: str) -> float | None:
    """Go's RFC 3339 with nanoseconds → Unix seconds (Python parses only microseconds)."""
    s = text.strip()
    if s.endswith("Z"):
        s = s[:-1] + "+00:00"
    if "." in s:
        head, frac = s.split(".", 1)
        digits = ""
        while frac and frac[0].isdigit():
            digits, frac = digits + frac[0], frac[1:]
        s = f"{head}.{(digits + '000000')[:6]}{frac}"
    from datetime import datetime

    try:
        return datetime.fromisoformat(s).timestamp()
    except ValueError:
        return None


def truncate_id(ident: str) -> str:
    """stringid.TruncateID: drop an `algo:` prefix, keep 12 characters."""
    if ":" in ident:
        ident = ident.split(":", 1)[1]
    return ident[:12]


def ellipsis(text: str, width: int) -> str:
    """formatter.Ellipsis for ASCII/one-column text: cut to width-1 chars plus "…"."""
    if width <= 0:
        return ""
    if len(text) <= width:
        return text
    if width == 1:
        return text[0]
    return text[: width - 1] + "…"


def go_quote(text: str) -> str:
    """strconv.Quote, close enough: a JSON string keeps printable Unicode and escapes the rest."""
    return cjson.encode_basestring(text)  # what json.dumps(text, ensure_ascii=False) returns


def go_json(value: Any, indent: int | None = None) -> str:
    """encoding/json output: Go escapes <, > and & (HTML-safe) and keeps the rest as UTF-8."""
    if indent is None:
        text = cjson.dumps_compact_utf8(value)
    else:
        text = cjson.dumps_indented_utf8(value, indent)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """tabwriter.NewWriter(out, 10, 1, 3, ' ', 0): cells padded by 3, at least 10 wide.

    The last column is not padded (it ends the line, not a tab-terminated cell); an empty
    last column leaves the padding of the one before it, as Go's tabwriter does.
    """
    table = [list(header), *(list(r) for r in rows)]
    ncols = len(header)
    widths = [0] * ncols
    for row in table:
        for i, cell in enumerate(row[:-1]):
            widths[i] = max(widths[i], len(cell) + 3, 10)
    lines = []
    for row in table:
        parts = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])]
        parts.append(row[-1])
        lines.append("".join(parts))
    return "".join(line + "\n" for line in lines)


def _join_host_port(ip: str, port: str) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _form_group(key: str, first: int, last: int) -> str:
    ip, _, proto = key.rpartition("/")
    group = str(first) if first == last else f"{first}-{last}"
    if ip:
        group = f"{_join_host_port(ip, group)}->{group}"
    return f"{group}/{proto}"


def displayable_ports(ports: Sequence[dict[str, Any]]) -> str:
    """formatter.DisplayablePorts: group consecutive ports, then list host mappings."""

    def key(p: dict[str, Any]) -> tuple[int, str, int, str]:
        return (
            int(p.get("PrivatePort") or 0),
            str(p.get("IP") or ""),
            int(p.get("PublicPort") or 0),
            str(p.get("Type") or ""),
        )

    groups: dict[str, list[int]] = {}
    result: list[str] = []
    host_mappings: list[str] = []
    for port in sorted(ports, key=key):
        private, ip, public, proto = key(port)
        port_key = proto
        if ip:
            if public != private:
                hp = _join_host_port(ip, str(public))
                host_mappings.append(f"{hp}->{private}/{proto}")
                continue
            port_key = f"{ip}/{proto}"
        group = groups.get(port_key)
        if group is None:
            groups[port_key] = [private, private]
            continue
        if private == group[1] + 1:
            group[1] = private
            continue
        result.append(_form_group(port_key, group[0], group[1]))
        # Re-inserting keeps Go's order: keys in order of first creation.
        groups[port_key] = [private, private]
    for port_key, (first, last) in groups.items():
        result.append(_form_group(port_key, first, last))
    result.extend(host_mappings)
    return ", ".join(result)


def container_names(names: Sequence[str], trunc: bool) -> str:
    """ps NAMES: leading "/" dropped; truncated output hides link names ("a/b")."""
    out = []
    for name in names or []:
        stripped = name[1:] if name.startswith("/") else name
        if trunc and "/" in stripped:
            continue
        out.append(stripped)
    return ",".join(out)


def container_image(image: str, image_id: str, trunc: bool) -> str:
    """ps IMAGE: an ID-like image is shortened; a digest is dropped from a reference."""
    if not image:
        return "<no image>"
    if trunc:
        if image_id and truncate_id(image_id) == truncate_id(image):
            return truncate_id(image)
        if "@" in image:
            return image.split("@", 1)[0]
    return image


def ps_table(containers: Sequence[dict[str, Any]], now: float, trunc: bool = True) -> str:
    rows = []
    for c in containers:
        cid = str(c.get("Id", ""))
        command = str(c.get("Command") or "")
        if trunc:
            cid = truncate_id(cid)
            command = ellipsis(command, 20)
        rows.append(
            [
                cid,
                container_image(str(c.get("Image") or ""), str(c.get("ImageID") or ""), trunc),
                go_quote(command),
                ago(c.get("Created") or 0, now),
                str(c.get("Status") or ""),
                displayable_ports(c.get("Ports") or []),
                container_names(c.get("Names") or [], trunc),
            ]
        )
    header = ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    return render_table(header, rows)


def image_rows(images: Sequence[dict[str, Any]]) -> list[tuple[str, str, dict[str, Any]]]:
    """(repository, tag, image) per row: one per RepoTag, digests-only, or `<none>`."""
    rows: list[tuple[str, str, dict[str, Any]]] = []
    ordered = sorted(images, key=lambda i: int(i.get("Created") or 0), reverse=True)
    for img in ordered:
        tags = [t for t in img.get("RepoTags") or [] if t != "<none>:<none>"]
        digests = [d for d in img.get("RepoDigests") or [] if d != "<none>@<none>"]
        if tags:
            for tag in tags:
                repo, _, name = tag.rpartition(":")
                rows.append((repo, name, img))
        elif digests:
            for digest in digests:
                rows.append((digest.split("@", 1)[0], "<none>", img))
        else:
            rows.append(("<none>", "<none>", img))
    return rows


def images_table(images: Sequence[dict[str, Any]], now: float, trunc: bool = True) -> str:
    rows = []
    for repo, tag, img in image_rows(images):
        iid = str(img.get("Id", ""))
        rows.append(
            [
                repo,
                tag,
                truncate_id(iid) if trunc else iid,
                ago(img.get("Created") or 0, now),
                human_size(float(img.get("Size") or 0)),
            ]
        )
    return render_table(["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"], rows)


def history_table(entries: Sequence[dict[str, Any]], now: float, trunc: bool = True) -> str:
    rows = []
    for h in entries:
        hid = str(h.get("Id") or "")
        shown = "<missing>" if hid in ("", "<missing>") else (truncate_id(hid) if trunc else hid)
        created_by = str(h.get("CreatedBy") or "").replace("\t", " ")
        if trunc:
            created_by = ellipsis(created_by, 45)
        rows.append(
            [
                shown,
                ago(h.get("Created") or 0, now),
                created_by,
                human_size(float(h.get("Size") or 0)),
                str(h.get("Comment") or ""),
            ]
        )
    return render_table(["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"], rows)
