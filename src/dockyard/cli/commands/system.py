"""version, info, inspect, login."""

from __future__ import annotations

import argparse
import getpass
import platform
import sys
from typing import Any

from dockyard import __version__
from dockyard.cli.client import API_VERSION, APIError, quote_name
from dockyard.cli.context import CommandError, Context
from dockyard.cli.output import go_json


def _arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def _kv_block(pairs: list[tuple[str, Any]], indent: str) -> str:
    """Aligned `Key:  value` lines as docker's version template renders them."""
    width = max(len(k) for k, _ in pairs) + 2
    return "".join(f"{indent}{(k + ':').ljust(width)}{v}\n" for k, v in pairs)


def cmd_version(ctx: Context, args: argparse.Namespace) -> int:
    client_pairs: list[tuple[str, Any]] = [
        ("Version", __version__),
        ("API version", API_VERSION),
        ("Python version", platform.python_version()),
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
            "GoVersion": f"python{platform.python_version()}",
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
    lines = [
        "Client:",
        f" Version:    {__version__}",
        " Context:    default",
        "",
        "Server:",
        f" Containers: {info.get('Containers', 0)}",
        f"  Running: {info.get('ContainersRunning', 0)}",
        f"  Paused: {info.get('ContainersPaused', 0)}",
        f"  Stopped: {info.get('ContainersStopped', 0)}",
        f" Images: {info.get('Images', 0)}",
        f" Server Version: {info.get('ServerVersion', '')}",
        f" Storage Driver: {info.get('Driver', '')}",
        f" Logging Driver: {info.get('LoggingDriver', '')}",
        f" Cgroup Driver: {info.get('CgroupDriver', '')}",
        f" Cgroup Version: {info.get('CgroupVersion', '')}",
        f" Kernel Version: {info.get('KernelVersion', '')}",
        f" Operating System: {info.get('OperatingSystem', '')}",
        f" OSType: {info.get('OSType', '')}",
        f" Architecture: {info.get('Architecture', '')}",
        f" CPUs: {info.get('NCPU', 0)}",
        f" Total Memory: {_binary_size(float(info.get('MemTotal') or 0))}",
        f" Name: {info.get('Name', '')}",
        f" ID: {info.get('ID', '')}",
        f" Docker Root Dir: {info.get('DockerRootDir', '')}",
    ]
    for warning in info.get("Warnings") or []:
        lines.append(warning)
    ctx.write("\n".join(lines) + "\n")
    return 0


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
    kinds = [args.type] if args.type else ["container", "image"]
    found: list[Any] = []
    missing: list[str] = []
    for name in args.names:
        for kind in kinds:
            try:
                query = {"size": "1"} if kind == "container" and args.size else None
                found.append(ctx.client.get_json(f"/{kind}s/{quote_name(name)}/json", query))
                break
            except APIError as exc:
                if exc.status != 404:
                    raise
        else:
            label = args.type if args.type else "object"
            missing.append(f"Error: No such {label}: {name}")
    errors: list[str] = []
    if args.format and args.format != "json":
        from dockyard.cli.gotemplate import Template, TemplateError

        try:
            tmpl = Template(args.format)
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


def cmd_login(ctx: Context, args: argparse.Namespace) -> int:
    username = args.username or input("Username: ")
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = args.password or getpass.getpass("Password: ")
    body = {"username": username, "password": password, "serveraddress": args.server or ""}
    doc = ctx.client.post_json("/auth", None, body) or {}
    ctx.write(f"{doc.get('Status') or 'Login Succeeded'}\n")
    return 0
