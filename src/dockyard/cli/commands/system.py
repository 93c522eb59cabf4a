"""version, info, inspect, login."""

from __future__ import annotations

import os
import sys

from dockyard import __version__
from dockyard.cli.client import API_VERSION, APIError, quote_name
from dockyard.cli.context import CommandError, Context
from dockyard.cli.output import go_json

TYPE_CHECKING = False  # typing itself costs ~1.5 ms of start-up; mypy honours this name

if TYPE_CHECKING:
    import argparse
    from typing import Any


def _arch() -> str:
    # platform.machine() is os.uname().machine; `platform` imports re (~5 ms of `version`)
    machine = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def _python_version() -> str:
    """platform.python_version() ("3.11.7", a pre-release "3.13.0rc1") without `platform`:
    the first word of sys.version, as platform's parser takes it, with a missing patch
    level as 0."""
    version = sys.version.split(" ", 1)[0]
    return version + ".0" if version.count(".") == 1 else version


def _kv_block(pairs: list[tuple[str, Any]], indent: str) -> str:
    """Aligned `Key:  value` lines as docker's version template renders them."""
    width = max(len(k) for k, _ in pairs) + 2
    return "".join(f"{indent}{(k + ':').ljust(width)}{v}\n" for k, v in pairs)


def cmd_version(ctx: Context, args: argparse.Namespace) -> int:
    client_pairs: list[tuple[str, Any]] = [
        ("Version", __version__),
        ("API version", API_VERSION),
        ("Python version", _python_version()),
        ("OS/Arch", f"linux/{_arch()}"),
    ]
    text = "Client:\n" + _kv_block(client_pairs, " ")
    try:
        server = ctx.client.get_json("/version")
    except APIError as exc:
        ctx.write(text)
        raise CommandError(f"Error response from daemon: {exc.message}") from None
    if args.format:
        from dockyard.cli.gotemplate import TemplateError, render

        # Go templates see docker's struct field names: APIVersion, Os, Arch (the JSON says
        # ApiVersion), so `--format '{{.Server.APIVersion}}'` works as with docker
        client = {
            "Version": __version__,
            "APIVersion": API_VERSION,
            "DefaultAPIVersion": API_VERSION,
            "GoVersion": f"python{_python_version()}",
            "Os": "linux",
            "Arch": _arch(),
        }
        doc = {"Client": client, "Server": {**server, "APIVersion": server.get("ApiVersion", "")}}
        try:
            ctx.write(render(args.format, doc) + "\n")
        except TemplateError as exc:
            raise CommandError(f"template: {exc}") from None
        return 0
    text += "\nServer:"
    name = (
        server.get("Platform", {}).get("Name") if isinstance(server.get("Platform"), dict) else ""
    )
    text += f" {name}\n" if name else "\n"
    components = server.get("Components") or [
        {"Name": "Engine", "Version": server.get("Version", ""), "Details": {}}
    ]
    for comp in components:
        text += f" {comp.get('Name', '')}:\n"
        details = comp.get("Details") or {}
        if comp.get("Name") == "Engine":
            api = server.get("ApiVersion", "")
            if server.get("MinAPIVersion"):
                api = f"{api} (minimum version {server['MinAPIVersion']})"
            pairs: list[tuple[str, Any]] = [
                ("Version", server.get("Version", comp.get("Version", ""))),
                ("API version", api),
                ("Go version", server.get("GoVersion", "")),
                ("Git commit", server.get("GitCommit", "")),
                ("Built", server.get("BuildTime", "")),
                ("OS/Arch", f"{server.get('Os', '')}/{server.get('Arch', '')}"),
                ("Experimental", str(bool(server.get("Experimental"))).lower()),
            ]
        else:
            pairs = [("Version", comp.get("Version", ""))]
            pairs += [(k, v) for k, v in details.items()]
        text += _kv_block(pairs, "  ")
    ctx.write(text)
    return 0


def cmd_info(ctx: Context, args: argparse.Namespace) -> int:
    info = ctx.client.get_json("/info")
    if args.format:
        from dockyard.cli.gotemplate import TemplateError, render

        try:
            ctx.write(render(args.format, info) + "\n")
        except TemplateError as exc:
            raise CommandError(f"template: {exc}") from None
        return 0
    out, warnings = info_text(info, ctx.context_name)
    ctx.write(out)
    for warning in warnings:
        ctx.warn(warning)
    return 0


def _go(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def info_text(info: dict[str, Any], context: str) -> tuple[str, list[str]]:
    """docker CLI 28's `docker info` (cli/command/system/info.go prettyPrintInfo): the lines
    it prints for each field, Println-spaced, empty strings skipped where it skips them; the
    daemon's warnings go to stderr."""
    lines: list[str] = []

    def line(label: str, value: Any) -> None:
        lines.append(f"{label} {_go(value)}")

    def nonempty(label: str, value: Any) -> None:
        if value not in ("", None):
            line(label, value)

    lines.append("Client:")
    line(" Version:   ", __version__)
    line(" Context:   ", context)
    line(" Debug Mode:", False)
    lines += ["", "Server:"]
    line(" Containers:", info.get("Containers", 0))
    line("  Running:", info.get("ContainersRunning", 0))
    line("  Paused:", info.get("ContainersPaused", 0))
    line("  Stopped:", info.get("ContainersStopped", 0))
    line(" Images:", info.get("Images", 0))
    nonempty(" Server Version:", info.get("ServerVersion", ""))
    nonempty(" Storage Driver:", info.get("Driver", ""))
    for pair in info.get("DriverStatus") or []:
        lines.append(f"  {pair[0]}: {pair[1]}")
    for pair in info.get("SystemStatus") or []:
        lines.append(f" {pair[0]}: {pair[1]}")
    nonempty(" Logging Driver:", info.get("LoggingDriver", ""))
    nonempty(" Cgroup Driver:", info.get("CgroupDriver", ""))
    nonempty(" Cgroup Version:", info.get("CgroupVersion", ""))
    plugins = info.get("Plugins") or {}
    lines.append(" Plugins:")
    line("  Volume:", " ".join(plugins.get("Volume") or []))
    line("  Network:", " ".join(plugins.get("Network") or []))
    if plugins.get("Authorization"):
        line("  Authorization:", " ".join(plugins["Authorization"]))
    line("  Log:", " ".join(plugins.get("Log") or []))
    if info.get("CDISpecDirs"):
        lines.append(" CDI spec directories:")
        lines += [f"  {d}" for d in info["CDISpecDirs"]]
    line(" Swarm:", (info.get("Swarm") or {}).get("LocalNodeState", ""))
    runtimes = info.get("Runtimes") or {}
    if runtimes:
        line(" Runtimes:", " ".join(sorted(runtimes)))
        line(" Default Runtime:", info.get("DefaultRuntime", ""))
    if info.get("OSType") == "linux":
        line(" Init Binary:", info.get("InitBinary", ""))
        for name, key in (
            ("containerd", "ContainerdCommit"),
            ("runc", "RuncCommit"),
            ("init", "InitCommit"),
        ):
            lines.append(f" {name} version: {(info.get(key) or {}).get('ID', '')}")
        options = info.get("SecurityOptions") or []
        if options:
            lines.append(" Security Options:")
            for option in options:
                fields = dict(f.partition("=")[::2] for f in str(option).split(","))
                lines.append("  " + fields.get("name", option))
                if fields.get("profile"):
                    line("   Profile:", fields["profile"])
    if info.get("OSType") == "windows":
        line(" Default Isolation:", info.get("Isolation", ""))
    nonempty(" Kernel Version:", info.get("KernelVersion", ""))
    nonempty(" Operating System:", info.get("OperatingSystem", ""))
    nonempty(" OSType:", info.get("OSType", ""))
    nonempty(" Architecture:", info.get("Architecture", ""))
    line(" CPUs:", info.get("NCPU", 0))
    line(" Total Memory:", _binary_size(float(info.get("MemTotal") or 0)))
    nonempty(" Name:", info.get("Name", ""))
    nonempty(" ID:", info.get("ID", ""))
    line(" Docker Root Dir:", info.get("DockerRootDir", ""))
    line(" Debug Mode:", bool(info.get("Debug")))
    if info.get("Debug"):
        line("  File Descriptors:", info.get("NFd", 0))
        line("  Goroutines:", info.get("NGoroutines", 0))
        line("  System Time:", info.get("SystemTime", ""))
        line("  EventsListeners:", info.get("NEventsListener", 0))
    nonempty(" HTTP Proxy:", info.get("HttpProxy", ""))
    nonempty(" HTTPS Proxy:", info.get("HttpsProxy", ""))
    nonempty(" No Proxy:", info.get("NoProxy", ""))
    nonempty(" Username:", info.get("Username", ""))
    if info.get("Labels"):
        lines.append(" Labels:")
        lines += ["  " + label for label in info["Labels"]]
    line(" Experimental:", bool(info.get("ExperimentalBuild")))
    registry = info.get("RegistryConfig") or {}
    indexes = registry.get("IndexConfigs") or {}
    cidrs = registry.get("InsecureRegistryCIDRs") or []
    if indexes or cidrs:
        lines.append(" Insecure Registries:")
        lines += [f"  {name}" for name, cfg in sorted(indexes.items()) if not cfg.get("Secure")]
        lines += [f"  {cidr}" for cidr in cidrs]
    if registry.get("Mirrors"):
        lines.append(" Registry Mirrors:")
        lines += [f"  {m}" for m in registry["Mirrors"]]
    line(" Live Restore Enabled:", bool(info.get("LiveRestoreEnabled")))
    if info.get("ProductLicense"):
        line(" Product License:", info["ProductLicense"])
    pools = info.get("DefaultAddressPools") or []
    if pools:
        lines.append(" Default Address Pools:")
        lines += [f"   Base: {p.get('Base')}, Size: {p.get('Size')}" for p in pools]
    return "\n".join(lines) + "\n\n", list(info.get("Warnings") or [])


def _binary_size(size: float) -> str:
    """go-units BytesSize ("7.6GiB"), used by `docker info` for memory."""
    units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
    i = 0
    while size >= 1024 and i < len(units) - 1:
        size /= 1024
        i += 1
    return f"{size:.4g}{units[i]}"


def cmd_inspect(ctx: Context, args: argparse.Namespace) -> int:
    """Containers first, then images (docker's inspect order), or only `--type`."""
    if getattr(args, "typed_inspect", "") == "image":
        from dockyard.cli.flags import require_platform_api

        require_platform_api(ctx, "image inspect", args.platform)
    kinds = [args.type] if args.type else ["container", "image"]
    found: list[Any] = []
    missing: list[str] = []
    for name in args.names:
        refusal = ""
        for kind in kinds:
            try:
                query = {"size": "1"} if kind == "container" and args.size else None
                found.append(ctx.client.get_json(f"/{kind}s/{quote_name(name)}/json", query))
                break
            except APIError as exc:
                if exc.status != 404:
                    raise
                refusal = exc.message
        else:
            # with a type docker shows the daemon's own words ("No such image: x:latest")
            missing.append(
                f"Error response from daemon: {refusal}"
                if args.type
                else f"Error: No such object: {name}"
            )
    for doc in found:
        _typed_durations(doc)
    return write_inspect(ctx, found, args.format, missing)


def write_inspect(ctx: Context, found: list[Any], fmt: str | None, missing: list[str]) -> int:
    """inspect.go's output: indented JSON (`[]` when nothing was found) or the template per
    object; then each miss and each template failure on stderr, status 1."""
    errors: list[str] = []
    if fmt and fmt != "json":
        from dockyard.cli.gotemplate import Template, TemplateError

        try:
            tmpl = Template(fmt)
        except TemplateError as exc:
            # inspect.go: a template that does not parse is status 64
            raise CommandError(f"template parsing error: {exc}", 64) from None
        out = []
        for doc in found:
            try:
                # The typed struct has every field docker knows; our decoded JSON only what the
                # daemon sent, so a key missing from it is docker's raw fallback's error.
                out.append(tmpl.execute(doc, missing_key_error=True) + "\n")
            except TemplateError as exc:
                errors.append(f"template parsing error: {exc}")
        ctx.write("".join(out) or "\n")
    else:
        ctx.write(go_json(found, indent=4) + "\n")
    if missing or errors:
        for line in missing:
            ctx.warn(line)
        for line in errors:
            ctx.warn(line)
        return 1
    return 0


def _typed_durations(doc: Any) -> None:
    """Healthcheck times are time.Duration in docker's typed structs: `{{.Config.Healthcheck
    .Interval}}` prints "1s", not the nanoseconds of the JSON."""
    for section in (doc.get("Config") or {}, doc.get("ContainerConfig") or {}):
        health = section.get("Healthcheck") if isinstance(section, dict) else None
        if isinstance(health, dict):
            for key in ("Interval", "Timeout", "StartPeriod", "StartInterval"):
                if isinstance(health.get(key), int):
                    # imported only here: gotemplate imports re (~5 ms of every inspect)
                    from dockyard.cli.gotemplate import GoDuration

                    health[key] = GoDuration(health[key])


def add_events(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-f",
        "--filter",
        action="append",
        default=[],
        help="Filter output based on conditions provided",
    )
    p.add_argument("--format", help="Format output using a custom template")
    p.add_argument("--since", help="Show all events created since timestamp")
    p.add_argument("--until", help="Stream events until this timestamp")


def get_timestamp(value: str, now: float) -> str:
    """moby's timetypes.GetTimestamp: a duration counts back from now, an RFC 3339 date or a
    Unix time passes as seconds[.nanoseconds]."""
    import re

    if re.fullmatch(r"\d+(\.\d+)?", value):
        return value
    if re.fullmatch(r"(\d+(\.\d*)?(ns|us|µs|ms|s|m|h))+", value):
        from dockyard.cli.runflags import parse_duration

        t = now - parse_duration(value) / 1e9
        return f"{int(t)}.{round((t - int(t)) * 1e9):09d}"
    from dockyard.cli.output import parse_rfc3339

    text = value if ("Z" in value or "+" in value[10:] or value.count("-") > 2) else value + "Z"
    if "T" not in text and len(value) == 10:
        text = value + "T00:00:00Z"
    ts = parse_rfc3339(text)
    if ts is None:
        raise CommandError(f'invalid value for since/until: "{value}"')
    return f"{int(ts)}.{round((ts - int(ts)) * 1e9):09d}"


def event_line(ev: dict[str, Any]) -> str:
    """events.go printOutput: time, type, action, actor ID, then (sorted attributes)."""
    import datetime

    nanos = int(ev.get("timeNano") or int(ev.get("time") or 0) * 10**9)
    t = datetime.datetime.fromtimestamp(nanos // 10**9).astimezone()
    stamp = (
        t.strftime("%Y-%m-%dT%H:%M:%S")
        + f".{nanos % 10**9:09d}"
        + (t.strftime("%z")[:3] + ":" + t.strftime("%z")[3:] if t.utcoffset() else "Z")
    )
    actor = ev.get("Actor") or {}
    line = f"{stamp} {ev.get('Type', '')} {ev.get('Action', '')} {actor.get('ID', '')}"
    attrs = actor.get("Attributes") or {}
    if attrs:
        line += " (" + ", ".join(f"{k}={attrs[k]}" for k in sorted(attrs)) + ")"
    return line + "\n"


def cmd_events(ctx: Context, args: argparse.Namespace) -> int:
    import time

    from dockyard.cli.commands.containers import parse_filters
    from dockyard.cli.streams import iter_messages, response_chunks

    tmpl = None
    if args.format:
        from dockyard.cli import formatter

        text, _table = formatter.prepare(args.format)
        tmpl = formatter.parse(text)
    query: dict[str, str] = {}
    now = time.time()
    if args.since:
        query["since"] = get_timestamp(args.since, now)
    if args.until:
        query["until"] = get_timestamp(args.until, now)
    filters = parse_filters(args.filter)
    if filters:
        query["filters"] = filters
    resp = ctx.client.request("GET", "/events", query or None)
    if resp.status >= 400:
        from dockyard.cli.client import error_message

        message = error_message(resp.status, resp.read())
        resp.close()
        raise CommandError(f"Error response from daemon: {message}")
    try:
        for ev in iter_messages(response_chunks(resp)):
            if tmpl is None:
                ctx.write(event_line(ev))
                continue
            from dockyard.cli.gotemplate import TemplateError

            try:
                ctx.write(tmpl.execute(ev) + "\n")
            except TemplateError as exc:
                raise CommandError(f"template parsing error: {exc}") from None
    except KeyboardInterrupt:
        return 0
    finally:
        resp.close()
    return 0


# system ---------------------------------------------------------------------------------------
def add_system(p: argparse.ArgumentParser) -> None:
    from dockyard.cli.flags import add_bool

    sub = p.add_subparsers(dest="action", metavar="COMMAND", required=True)
    df = sub.add_parser("df", help="Show docker disk usage")
    df.add_argument("--format", help="Format output using a custom template")
    add_bool(df, "-v", "--verbose", help="Show detailed information on space usage")
    add_events(sub.add_parser("events", help="Get real time events from the server"))
    info = sub.add_parser("info", help="Display system-wide information")
    info.add_argument("-f", "--format", help="Format output using a custom template")
    pr = sub.add_parser("prune", help="Remove unused data")
    add_bool(pr, "-a", "--all", help="Remove all unused images not just dangling ones")
    pr.add_argument(
        "--filter",
        action="append",
        default=[],
        help='Provide filter values (e.g. "label=<key>=<value>")',
    )
    add_bool(pr, "-f", "--force", help="Do not prompt for confirmation")
    add_bool(pr, "--volumes", help="Prune anonymous volumes")
    ck = sub.add_parser("check", help="Verify the store (dockyard only)")
    add_bool(ck, "--repair", help="Remove orphans and corrupt blobs")
    ck.add_argument("--format", help='"json": the report as the daemon gives it')


def cmd_system(ctx: Context, args: argparse.Namespace) -> int:
    if args.action == "info":
        return cmd_info(ctx, args)
    if args.action == "events":
        return cmd_events(ctx, args)
    if args.action == "check":
        return _system_check(ctx, args)
    if args.action == "df":
        from dockyard.cli.disk_usage import render

        doc = ctx.client.get_json("/system/df")  # docker asks first, then prints
        ctx.write(render(doc, args.format, args.verbose))
        return 0
    return _system_prune(ctx, args)


def _system_check(ctx: Context, args: argparse.Namespace) -> int:
    """`dockyard system check [--repair]`: one line per problem (and per repair); exit 1
    while problems remain (engine/fsck.py)."""
    from dockyard.cli.output import human_size

    doc = ctx.client.post_json("/dockyard/system/check", {"repair": "1" if args.repair else "0"})
    if args.format == "json":
        ctx.write(go_json(doc) + "\n")
        return 1 if doc["Problems"] else 0

    def line(p: dict[str, Any]) -> str:
        detail = p["Detail"] + (", " if p["Detail"] and p["Size"] else "")
        detail += human_size(p["Size"]) if p["Size"] else ""
        return f"{p['Kind']}: {p['Subject']}" + (f" ({detail})" if detail else "")

    out = [f"repaired {line(p)}" for p in doc["Repaired"]] + [line(p) for p in doc["Problems"]]
    checked = ", ".join(f"{n} {what}" for what, n in doc["Checked"].items())
    freed = sum(p["Size"] for p in doc["Repaired"])
    summary = f"checked {checked}: {len(doc['Problems'])} problem(s)"
    if doc["Repaired"]:
        summary += f", {len(doc['Repaired'])} repaired ({human_size(freed)} freed)"
    ctx.write("".join(x + "\n" for x in out) + summary + "\n")
    return 1 if doc["Problems"] else 0


def _system_prune(ctx: Context, args: argparse.Namespace) -> int:
    """system/prune.go: containers, networks, [volumes], images, build cache, in that order."""
    import json as json_module

    from dockyard.cli.commands.containers import parse_filters
    from dockyard.cli.output import human_size

    filters = json_module.loads(parse_filters(args.filter) or "{}")
    if args.volumes and "until" in filters:
        raise CommandError('ERROR: The "until" filter is not supported with "--volumes"')
    if not args.force:
        lines = [
            "WARNING! This will remove:",
            "  - all stopped containers",
            "  - all networks not used by at least one container",
        ]
        if args.volumes:
            lines.append("  - all anonymous volumes not used by at least one container")
        if args.all:
            lines += [
                "  - all images without at least one container associated to them",
                "  - all build cache",
            ]
        else:
            lines += ["  - all dangling images", "  - unused build cache"]
        ctx.out.write("\n".join(lines) + "\n\nAre you sure you want to continue? [y/N] ")
        ctx.out.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            raise CommandError("system prune has been cancelled")
    query = {"filters": json_module.dumps(filters)} if filters else None
    reclaimed = 0
    steps: list[tuple[str, str, str]] = [
        ("/containers/prune", "ContainersDeleted", "Deleted Containers:"),
        ("/networks/prune", "NetworksDeleted", "Deleted Networks:"),
    ]
    if args.volumes:
        steps.append(("/volumes/prune", "VolumesDeleted", "Deleted Volumes:"))
    steps.append(("/images/prune", "ImagesDeleted", "Deleted Images:"))
    steps.append(("/build/prune", "CachesDeleted", "Deleted build cache objects:"))
    for path, key, title in steps:
        q = dict(query or {})
        if path == "/images/prune":
            img_filters = dict(filters, dangling=["false" if args.all else "true"])
            q["filters"] = json_module.dumps(img_filters)
        if path == "/build/prune" and args.all:
            q["all"] = "1"
        doc = ctx.client.post_json(path, q or None) or {}
        reclaimed += int(doc.get("SpaceReclaimed") or 0)
        items = doc.get(key) or []
        if not items:
            continue
        out = title + "\n"
        for item in items:
            if isinstance(item, dict):
                out += "".join(f"{k.lower()}: {v}\n" for k, v in item.items() if v)
            else:
                out += f"{item}\n"
        ctx.write(out + "\n")
    ctx.write(f"Total reclaimed space: {human_size(float(reclaimed), 4)}\n")
    return 0


# container prune / image prune (docker/cli container/prune.go, image/prune.go) ------------
_PRUNE_WARNINGS = {
    "container-prune": "WARNING! This will remove all stopped containers.",
    "image-prune": "WARNING! This will remove all dangling images.",
}
_ALL_IMAGES_WARNING = (
    "WARNING! This will remove all images without at least one container associated to them."
)


def cmd_prune(ctx: Context, args: argparse.Namespace) -> int:
    import json as json_module

    from dockyard.cli.commands.containers import parse_filters
    from dockyard.cli.commands.ops import confirm_prompt
    from dockyard.cli.output import human_size

    images = args.cmd == "image-prune"
    warning = _ALL_IMAGES_WARNING if images and args.all else _PRUNE_WARNINGS[args.cmd]
    if not args.force and not confirm_prompt(ctx, warning):
        return 0
    filters = json_module.loads(parse_filters(args.filter) or "{}")
    if images:
        filters["dangling"] = ["false" if args.all else "true"]
    query = {"filters": json_module.dumps(filters)} if filters else None
    path = "/images/prune" if images else "/containers/prune"
    doc = ctx.client.post_json(path, query) or {}
    output = ""
    if images and doc.get("ImagesDeleted"):
        output = "Deleted Images:\n"
        for item in doc["ImagesDeleted"]:
            if item.get("Untagged"):
                output += f"untagged: {item['Untagged']}\n"
            if item.get("Deleted"):
                output += f"deleted: {item['Deleted']}\n"
    elif not images and doc.get("ContainersDeleted"):
        output = "Deleted Containers:\n" + "".join(c + "\n" for c in doc["ContainersDeleted"])
    if output:
        ctx.write(output + "\n")
    # prune.go: the reclaimed space counts only when something was deleted
    reclaimed = float(doc.get("SpaceReclaimed") or 0) if output else 0.0
    ctx.write(f"Total reclaimed space: {human_size(reclaimed, 4)}\n")
    return 0
