"""Container operations beyond run/ps/logs: exec, restart, pause, rename, top, port, diff,
export, commit, cp, stats, update, and the `network` and `volume` command groups.

Each follows the docker CLI's request sequence (anchors.md §2.1 for exec: create, hijacked
start, resize on a terminal, then the exit code from `GET /exec/{id}/json`). Parsers are
added lazily by cli/commandline.py, so importing this module costs nothing for other commands.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from dockyard.cli.client import APIError, quote_name
from dockyard.cli.context import CommandError, Context
from dockyard.cli.output import render_table
from dockyard.cli.runflags import parse_size

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def _c(name: str) -> str:
    return f"/containers/{quote_name(name)}"


def _each(ctx: Context, names: list[str], method: str, suffix: str, query: Any = None) -> int:
    failed = False
    for name in names:
        try:
            ctx.client.call(method, _c(name) + suffix, query)
        except APIError as exc:
            ctx.warn(f"Error response from daemon: {exc.message}")
            failed = True
            continue
        ctx.write(name + "\n")
    return 1 if failed else 0


# exec ------------------------------------------------------------------------------------
def add_exec(p: argparse.ArgumentParser) -> None:
    p.add_argument("-i", "--interactive", action="store_true", help="Keep STDIN open")
    p.add_argument("-t", "--tty", action="store_true", help="Allocate a pseudo-TTY")
    p.add_argument(
        "-d", "--detach", action="store_true", help="Detached mode: run command in the background"
    )
    p.add_argument(
        "--detach-keys", default="", help="Override the key sequence for detaching a container"
    )
    p.add_argument("-e", "--env", action="append", default=[], help="Set environment variables")
    p.add_argument(
        "--env-file", action="append", default=[], help="Read in a file of environment variables"
    )
    p.add_argument("-w", "--workdir", help="Working directory inside the container")
    p.add_argument("-u", "--user", help="Username or UID (name|uid[:group|gid])")
    p.add_argument("--privileged", action="store_true", help="Extended privileges")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND")


def _exec_env(args: argparse.Namespace) -> list[str]:
    """--env-file then -e, each as docker run reads them (opts.ParseEnvFile, ValidateEnv)."""
    from dockyard.cli.runconfig import UsageError, parse_env_file, resolve_env

    env: list[str] = []
    try:
        for name in args.env_file:
            with open(name, encoding="utf-8") as f:
                env.extend(parse_env_file(f.read(), name, os.environ))
        env.extend(resolve_env(e, os.environ) for e in args.env)
    except (OSError, UsageError) as exc:
        raise CommandError(str(exc)) from None
    return env


def cmd_exec(ctx: Context, args: argparse.Namespace) -> int:
    from dockyard.cli.attach import Attachment, escape_keys

    if not args.command:
        raise CommandError('"dockyard exec" requires at least 2 arguments.')
    client = ctx.client
    body = {
        "User": args.user or "",
        "Privileged": args.privileged,
        "Tty": bool(args.tty),
        "AttachStdin": bool(args.interactive) and not args.detach,
        "AttachStdout": not args.detach,
        "AttachStderr": not args.detach,
        "Detach": bool(args.detach),
        "DetachKeys": args.detach_keys,
        "Env": _exec_env(args),
        "WorkingDir": args.workdir or "",
        "Cmd": list(args.command),
    }
    if args.tty:
        try:
            size = os.get_terminal_size(1)
            body["ConsoleSize"] = [size.lines, size.columns]
        except OSError:
            pass
    try:
        eid = client.post_json(_c(args.container) + "/exec", body=body)["Id"]
    except APIError as exc:
        raise CommandError(f"Error response from daemon: {exc.message}", 1) from None
    if args.detach:
        client.call(
            "POST",
            f"/exec/{eid}/start",
            body=json.dumps({"Detach": True}).encode(),
            headers={"Content-Type": "application/json"},
        )
        return 0
    # The start request's Tty decides the stream's framing (moby's exec router), as the
    # docker CLI sends it.
    stream = client.hijack(f"/exec/{eid}/start", json_body={"Detach": False, "Tty": bool(args.tty)})
    attachment = Attachment(
        client,
        stream,
        tty=bool(args.tty),
        stdin=bool(args.interactive),
        resize_path=f"/exec/{eid}/resize",
        detach_keys=escape_keys(getattr(args, "detach_keys", "") or "", ctx.warn),
    )
    error = attachment.run()
    if error:
        ctx.warn(f"Error: error from daemon in stream: {error}")
    if attachment.detached:
        # exec.go returns the escape as an error, as attach does.
        raise CommandError("read escape sequence", 1)
    info = client.get_json(f"/exec/{eid}/json")
    code = info.get("ExitCode")
    return int(code) if code is not None else 0


# simple per-container verbs --------------------------------------------------------------
def add_restart(p: argparse.ArgumentParser) -> None:
    p.add_argument("-s", "--signal", help="Signal to send to the container")
    p.add_argument("-t", "--time", "--timeout", type=int, help="Seconds to wait before killing")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")


def cmd_restart(ctx: Context, args: argparse.Namespace) -> int:
    query = {"t": str(args.time)} if args.time is not None else {}
    if args.signal:
        # the daemon's restart does not take a signal yet: refused rather than ignored
        raise CommandError("dockyard restart: --signal is not supported yet")
    return _each(ctx, args.containers, "POST", "/restart", query or None)


def add_containers(p: argparse.ArgumentParser) -> None:
    p.add_argument("containers", nargs="+", metavar="CONTAINER")


def cmd_pause(ctx: Context, args: argparse.Namespace) -> int:
    return _each(ctx, args.containers, "POST", "/pause")


def cmd_unpause(ctx: Context, args: argparse.Namespace) -> int:
    return _each(ctx, args.containers, "POST", "/unpause")


def add_rename(p: argparse.ArgumentParser) -> None:
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("new_name", metavar="NEW_NAME")


def cmd_rename(ctx: Context, args: argparse.Namespace) -> int:
    ctx.client.call("POST", _c(args.container) + "/rename", {"name": args.new_name})
    return 0


def add_top(p: argparse.ArgumentParser) -> None:
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("ps_args", nargs=argparse.REMAINDER, metavar="[ps OPTIONS]")


def cmd_top(ctx: Context, args: argparse.Namespace) -> int:
    query = {"ps_args": " ".join(args.ps_args)} if args.ps_args else None
    doc = ctx.client.get_json(_c(args.container) + "/top", query)
    ctx.write(render_table(doc["Titles"], doc["Processes"] or []))
    return 0


def add_port(p: argparse.ArgumentParser) -> None:
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("port", nargs="?", metavar="PRIVATE_PORT[/PROTO]")


def cmd_port(ctx: Context, args: argparse.Namespace) -> int:
    info = ctx.client.get_json(_c(args.container) + "/json")
    ports = (info.get("NetworkSettings") or {}).get("Ports") or {}
    want = args.port
    if want and "/" not in want:
        want += "/tcp"
    lines = []
    for key in sorted(ports):
        if want and key != want:
            continue
        for b in ports[key] or []:
            ip = b["HostIp"]
            # port.go joins with net.JoinHostPort: an IPv6 address goes in brackets
            host = f"[{ip}]:{b['HostPort']}" if ":" in ip else f"{ip}:{b['HostPort']}"
            lines.append(host if want else f"{key} -> {host}")
    if want and not lines:
        raise CommandError(f"Error: No public port '{want}' published for {args.container}")
    ctx.write("".join(line + "\n" for line in lines))
    return 0


def add_one(p: argparse.ArgumentParser) -> None:
    p.add_argument("container", metavar="CONTAINER")


def cmd_diff(ctx: Context, args: argparse.Namespace) -> int:
    kinds = {0: "C", 1: "A", 2: "D"}
    changes = ctx.client.get_json(_c(args.container) + "/changes") or []
    ctx.write("".join(f"{kinds.get(c['Kind'], '?')} {c['Path']}\n" for c in changes))
    return 0


def add_export(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", help="Write to a file, instead of STDOUT")
    p.add_argument("container", metavar="CONTAINER")


def _copy_response(ctx: Context, path: str, query: Any, output: str | None) -> None:
    from dockyard.cli.streams import response_chunks

    if output is None and os.isatty(1):
        raise CommandError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    resp = ctx.client.request("GET", path, query)
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644) if output else 1
    try:
        for chunk in response_chunks(resp):
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view) :]
    finally:
        resp.close()
        if output:
            os.close(fd)


def cmd_export(ctx: Context, args: argparse.Namespace) -> int:
    _copy_response(ctx, _c(args.container) + "/export", None, args.output)
    return 0


def add_commit(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--author", default="", help="Author")
    p.add_argument("-c", "--change", action="append", default=[], help="Dockerfile instruction")
    p.add_argument("-m", "--message", default="", help="Commit message")
    p.add_argument("-p", "--pause", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("reference", nargs="?", metavar="[REPOSITORY[:TAG]]")


def cmd_commit(ctx: Context, args: argparse.Namespace) -> int:
    query: list[tuple[str, str]] = [
        ("container", args.container),
        ("comment", args.message),
        ("author", args.author),
        ("pause", "1" if args.pause else "0"),
    ]
    if args.reference:
        repo, tag = args.reference, ""
        slash = repo.rfind("/")
        colon = repo.rfind(":")
        if colon > slash:
            repo, tag = repo[:colon], repo[colon + 1 :]
        query += [("repo", repo), ("tag", tag)]
    query += [("changes", c) for c in args.change]
    doc = ctx.client.post_json("/commit", query, body={})
    ctx.write(doc["Id"] + "\n")
    return 0


# cp --------------------------------------------------------------------------------------
# stats / update ---------------------------------------------------------------------------
def add_stats(p: argparse.ArgumentParser) -> None:
    from dockyard.cli.flags import add_bool

    add_bool(p, "-a", "--all", help="Show all containers (default shows just running)")
    p.add_argument("--format", help="Format output using a custom template")
    add_bool(p, "--no-stream", help="Disable streaming stats and only pull the first result")
    add_bool(p, "--no-trunc", help="Do not truncate output")
    p.add_argument("containers", nargs="*", metavar="CONTAINER")


def cmd_stats(ctx: Context, args: argparse.Namespace) -> int:
    """docker stats: a table per round; --no-stream prints one (stats.go)."""
    import time as time_module

    from dockyard.cli import formatter
    from dockyard.cli.contexts import STATS_HEADER, STATS_TABLE, StatsContext

    fmt = args.format or STATS_TABLE
    if fmt == "table":
        fmt = STATS_TABLE
    formatter.parse(formatter.prepare(fmt)[0])
    explicit = list(args.containers)
    clear = not args.no_stream and os.isatty(1)
    while True:
        if explicit:
            names = explicit
        else:
            query = {"all": "1"} if args.all else None
            names = [c["Id"] for c in ctx.client.get_json("/containers/json", query)]
        items = []
        failed = []
        for name in names:
            try:
                doc = ctx.client.get_json(_c(name) + "/stats", {"stream": "0"})
            except APIError as exc:
                if explicit:
                    failed.append(exc.message)
                continue
            items.append(StatsContext(name, doc, trunc=not args.no_trunc))
        if failed:
            raise CommandError("Error response from daemon: " + "; ".join(failed))
        text = formatter.write(fmt, items, STATS_HEADER)
        ctx.write(("\033[2J\033[H" if clear else "") + text)
        if args.no_stream:
            return 0
        time_module.sleep(1)


# update.go's resource flags with an integer value: flag → UpdateConfig field
_UPDATE_INTS = {
    "--blkio-weight": "BlkioWeight",
    "--cpu-period": "CpuPeriod",
    "--cpu-quota": "CpuQuota",
    "--cpu-rt-period": "CpuRealtimePeriod",
    "--cpu-rt-runtime": "CpuRealtimeRuntime",
}


def add_update(p: argparse.ArgumentParser) -> None:
    p.add_argument("-m", "--memory", help="Memory limit")
    p.add_argument("--memory-swap", help="Swap limit (-1 = unlimited)")
    p.add_argument("--memory-reservation", help="Memory soft limit")
    p.add_argument("--cpus", help="Number of CPUs")
    p.add_argument("-c", "--cpu-shares", type=int, help="CPU shares (relative weight)")
    p.add_argument("--cpuset-cpus", help="CPUs in which to allow execution (0-3, 0,1)")
    p.add_argument("--cpuset-mems", help="MEMs in which to allow execution (0-3, 0,1)")
    for flag in _UPDATE_INTS:
        p.add_argument(flag, type=int, help=f"{_UPDATE_INTS[flag]} of the container")
    p.add_argument("--pids-limit", type=int, help="Tune container pids limit")
    p.add_argument("--restart", help="Restart policy")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")


def cmd_update(ctx: Context, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {}
    if args.memory:
        body["Memory"] = parse_size(args.memory)
    if args.memory_swap:
        body["MemorySwap"] = -1 if args.memory_swap == "-1" else parse_size(args.memory_swap)
    if args.cpus:
        body["NanoCpus"] = int(float(args.cpus) * 1e9)
    if args.cpu_shares is not None:
        body["CpuShares"] = args.cpu_shares
    if args.pids_limit is not None:
        body["PidsLimit"] = args.pids_limit
    if args.memory_reservation:
        body["MemoryReservation"] = parse_size(args.memory_reservation)
    for key, value in (("CpusetCpus", args.cpuset_cpus), ("CpusetMems", args.cpuset_mems)):
        if value:
            body[key] = value
    for flag, key in _UPDATE_INTS.items():
        value = getattr(args, flag[2:].replace("-", "_"))
        if value is not None:
            body[key] = value
    if args.restart:
        name, _, count = args.restart.partition(":")
        body["RestartPolicy"] = {"Name": name, "MaximumRetryCount": int(count or 0)}
    failed = False
    for name in args.containers:
        try:
            ctx.client.post_json(_c(name) + "/update", body=body)
        except APIError as exc:
            ctx.warn(f"Error response from daemon: {exc.message}")
            failed = True
            continue
        ctx.write(name + "\n")
    return 1 if failed else 0


# network / volume groups -----------------------------------------------------------------
def add_network(p: argparse.ArgumentParser) -> None:
    from dockyard.cli.flags import add_bool

    sub = p.add_subparsers(dest="action", metavar="COMMAND", required=True)
    c = sub.add_parser("create", help="Create a network")
    add_bool(c, "--attachable", help="Enable manual container attachment")
    c.add_argument(
        "--aux-address",
        action="append",
        default=[],
        help="Auxiliary IPv4 or IPv6 addresses used by Network driver",
    )
    c.add_argument(
        "--config-from", default="", help="The network from which to copy the configuration"
    )
    add_bool(c, "--config-only", help="Create a configuration only network")
    c.add_argument("-d", "--driver", default="bridge", help="Driver to manage the Network")
    c.add_argument(
        "--gateway", action="append", default=[], help="IPv4 or IPv6 Gateway for the master subnet"
    )
    add_bool(c, "--ingress", help="Create swarm routing-mesh network")
    add_bool(c, "--internal", help="Restrict external access to the network")
    c.add_argument(
        "--ip-range", action="append", default=[], help="Allocate container ip from a sub-range"
    )
    c.add_argument("--ipam-driver", default="default", help="IP Address Management Driver")
    c.add_argument(
        "--ipam-opt", action="append", default=[], help="Set IPAM driver specific options"
    )
    add_bool(c, "--ipv4", default=None, help="Enable or disable IPv4 address assignment")
    add_bool(c, "--ipv6", default=None, help="Enable or disable IPv6 address assignment")
    c.add_argument("--label", action="append", default=[], help="Set metadata on a network")
    c.add_argument("-o", "--opt", action="append", default=[], help="Set driver specific options")
    c.add_argument("--scope", default="", help="Control the network's scope")
    c.add_argument(
        "--subnet",
        action="append",
        default=[],
        help="Subnet in CIDR format that represents a network segment",
    )
    c.add_argument("name")
    ls = sub.add_parser("ls", help="List networks")
    ls.add_argument(
        "-f",
        "--filter",
        action="append",
        default=[],
        help='Provide filter values (e.g. "driver=bridge")',
    )
    ls.add_argument("--format", help="Format output using a custom template")
    add_bool(ls, "--no-trunc", help="Do not truncate the output")
    add_bool(ls, "-q", "--quiet", help="Only display network IDs")
    rm = sub.add_parser("rm", help="Remove one or more networks")
    add_bool(rm, "-f", "--force", help="Do not error if the network does not exist")
    rm.add_argument("names", nargs="+")
    ins = sub.add_parser("inspect", help="Display detailed information on one or more networks")
    ins.add_argument("-f", "--format", help="Format output using a custom template")
    add_bool(ins, "-v", "--verbose", help="Verbose output for diagnostics")
    ins.add_argument("names", nargs="+")
    con = sub.add_parser("connect", help="Connect a container to a network")
    con.add_argument(
        "--alias", action="append", default=[], help="Add network-scoped alias for the container"
    )
    con.add_argument(
        "--driver-opt", action="append", default=[], help="driver options for the network"
    )
    con.add_argument(
        "--gw-priority",
        type=int,
        default=0,
        help="Highest gw-priority provides the default gateway",
    )
    con.add_argument("--ip", default="", help="IPv4 address (e.g., 172.30.100.104)")
    con.add_argument("--ip6", default="", help="IPv6 address (e.g., 2001:db8::33)")
    con.add_argument("--link", action="append", default=[], help="Add link to another container")
    con.add_argument(
        "--link-local-ip",
        action="append",
        default=[],
        help="Add a link-local address for the container",
    )
    con.add_argument("network")
    con.add_argument("container")
    dis = sub.add_parser("disconnect", help="Disconnect a container from a network")
    add_bool(dis, "-f", "--force", help="Force the container to disconnect from a network")
    dis.add_argument("network")
    dis.add_argument("container")
    pr = sub.add_parser("prune", help="Remove all unused networks")
    pr.add_argument(
        "--filter",
        action="append",
        default=[],
        help='Provide filter values (e.g. "until=<timestamp>")',
    )
    add_bool(pr, "-f", "--force", help="Do not prompt for confirmation")


def _inspect_with(ctx: Context, docs: list[Any], fmt: str | None) -> None:
    """`network|volume inspect`: indented JSON, or the template per object (inspect.go)."""
    from dockyard.cli.output import go_json

    if not fmt or fmt == "json":
        ctx.write(go_json(docs, indent=4) + "\n")
        return
    from dockyard.cli.gotemplate import Template, TemplateError

    try:
        tmpl = Template(fmt)
    except TemplateError as exc:
        raise CommandError(f"template parsing error: {exc}", 64) from None
    try:
        ctx.write("".join(tmpl.execute(d, missing_key_error=True) + "\n" for d in docs) or "\n")
    except TemplateError as exc:
        raise CommandError(f"template parsing error: {exc}") from None


def _prune_filters(items: list[str]) -> Any:
    from dockyard.cli.commands.containers import parse_filters

    filters = parse_filters(items)
    return {"filters": filters} if filters else None


def _labels(items: list[str]) -> dict[str, str]:
    return {k: v for k, _, v in (i.partition("=") for i in items)}


def confirm_prompt(ctx: Context, warning: str) -> bool:
    """prune's prompt (command.PromptForConfirmation): only y/Y goes on; no terminal, no."""
    ctx.out.write(f"{warning}\nAre you sure you want to continue? [y/N] ")
    ctx.out.flush()
    answer = sys.stdin.readline().strip().lower() if not sys.stdin.closed else ""
    if answer not in ("y", "yes"):
        ctx.write("\n" if not answer else "")
        return False
    return True


def _network_body(args: argparse.Namespace) -> dict[str, Any]:
    """network create.go: subnets pair with gateways, ranges and aux addresses in order."""
    if len(args.gateway) > len(args.subnet) or len(args.ip_range) > len(args.subnet):
        raise CommandError("every ip-range or gateway must have a corresponding subnet")
    configs = []
    for i, subnet in enumerate(args.subnet):
        cfg: dict[str, Any] = {"Subnet": subnet}
        if i < len(args.ip_range):
            cfg["IPRange"] = args.ip_range[i]
        if i < len(args.gateway):
            cfg["Gateway"] = args.gateway[i]
        configs.append(cfg)
    if args.aux_address:
        if not configs:
            raise CommandError("no matching subnet for aux-address")
        configs[0]["AuxiliaryAddresses"] = _labels(args.aux_address)
    body: dict[str, Any] = {
        "Name": args.name,
        "Driver": args.driver,
        "Internal": args.internal,
        "Attachable": args.attachable,
        "Labels": _labels(args.label),
        "Options": _labels(args.opt),
        "IPAM": {"Driver": args.ipam_driver, "Config": configs, "Options": _labels(args.ipam_opt)},
        "CheckDuplicate": True,
    }
    # the swarm settings go to the daemon as docker sends them; it refuses them by name
    if args.ingress:
        body["Ingress"] = True
    if args.config_only:
        body["ConfigOnly"] = True
    if args.config_from:
        body["ConfigFrom"] = {"Network": args.config_from}
    if args.scope:
        body["Scope"] = args.scope
    if args.ipv6 is not None:
        body["EnableIPv6"] = args.ipv6
    if args.ipv4 is not None:
        body["EnableIPv4"] = args.ipv4
    return body


def cmd_network(ctx: Context, args: argparse.Namespace) -> int:
    client = ctx.client
    if args.action == "create":
        ctx.write(client.post_json("/networks/create", body=_network_body(args))["Id"] + "\n")
    elif args.action == "ls":
        from dockyard.cli.commands.containers import parse_filters

        filters = parse_filters(args.filter)
        nets = client.get_json("/networks", {"filters": filters} if filters else None)
        nets = sorted(nets, key=lambda n: str(n.get("Name", "")))  # list.go sorts by name
        if args.quiet and args.format != "raw":
            ctx.write("".join((n["Id"] if args.no_trunc else n["Id"][:12]) + "\n" for n in nets))
        elif not args.format and not args.no_trunc:
            rows = [[n["Id"][:12], n["Name"], n["Driver"], n["Scope"]] for n in nets]
            ctx.write(render_table(["NETWORK ID", "NAME", "DRIVER", "SCOPE"], rows))
        else:
            from dockyard.cli import formatter
            from dockyard.cli.contexts import NETWORK_HEADER, NETWORK_TABLE, NetworkContext

            fmt = NETWORK_TABLE if args.format in (None, "", "table") else args.format
            items = [NetworkContext(n, trunc=not args.no_trunc) for n in nets]
            ctx.write(formatter.write(fmt, items, NETWORK_HEADER))
    elif args.action == "rm":
        failed = False
        for name in args.names:
            try:
                client.call("DELETE", f"/networks/{quote_name(name)}")
                ctx.write(name + "\n")
            except APIError as exc:
                if args.force and exc.status == 404:
                    continue  # remove.go: -f ignores a network that does not exist
                ctx.warn(f"Error response from daemon: {exc.message}")
                failed = True
        if failed:
            # network/remove.go ends with a StatusError whose text is "exit status 1"
            raise CommandError("exit status 1")
        return 0
    elif args.action == "inspect":
        query = {"verbose": "true"} if args.verbose else None
        docs = [client.get_json(f"/networks/{quote_name(n)}", query) for n in args.names]
        _inspect_with(ctx, docs, args.format)
    elif args.action == "connect":
        endpoint: dict[str, Any] = {"Aliases": args.alias or None}
        ipam = {
            k: v
            for k, v in (
                ("IPv4Address", args.ip),
                ("IPv6Address", args.ip6),
                ("LinkLocalIPs", args.link_local_ip or None),
            )
            if v
        }
        if ipam:
            endpoint["IPAMConfig"] = ipam
        if args.link:
            endpoint["Links"] = args.link
        if args.driver_opt:
            endpoint["DriverOpts"] = _labels(args.driver_opt)
        if args.gw_priority:
            endpoint["GwPriority"] = args.gw_priority
        client.post_json(
            f"/networks/{quote_name(args.network)}/connect",
            body={"Container": args.container, "EndpointConfig": endpoint},
        )
    elif args.action == "disconnect":
        client.post_json(
            f"/networks/{quote_name(args.network)}/disconnect",
            body={"Container": args.container, "Force": args.force},
        )
    elif args.action == "prune":
        if not args.force and not confirm_prompt(
            ctx, "WARNING! This will remove all custom networks not used by at least one container."
        ):
            return 0
        doc = client.post_json("/networks/prune", _prune_filters(args.filter))
        removed = doc.get("NetworksDeleted") or []
        if removed:
            # network/prune.go: Fprintln of the list, so a blank line ends it; no total
            ctx.write("Deleted Networks:\n" + "".join(n + "\n" for n in removed) + "\n")
    return 0


def add_volume(p: argparse.ArgumentParser) -> None:
    from dockyard.cli.flags import add_bool

    sub = p.add_subparsers(dest="action", metavar="COMMAND", required=True)
    c = sub.add_parser("create", help="Create a volume")
    c.add_argument("-d", "--driver", default="local", help="Specify volume driver name")
    c.add_argument("--label", action="append", default=[], help="Set metadata for a volume")
    c.add_argument("-o", "--opt", action="append", default=[], help="Set driver specific options")
    # cluster (CSI) volumes: swarm only
    for flag, help_text in (
        ("--availability", "Cluster Volume availability (active, pause, drain)"),
        ("--group", "Cluster Volume group (cluster volumes)"),
        ("--limit-bytes", "Minimum size of the Cluster Volume in bytes"),
        ("--required-bytes", "Maximum size of the Cluster Volume in bytes"),
        ("--scope", "Cluster Volume access scope (single, multi)"),
        ("--sharing", "Cluster Volume access sharing (none, readonly, onewriter, all)"),
        ("--type", "Cluster Volume access type (mount, block)"),
    ):
        c.add_argument(flag, default=None, help=help_text)
    for flag, help_text in (
        ("--secret", "Cluster Volume secrets"),
        ("--topology-preferred", "A topology that the Cluster Volume would be preferred in"),
        ("--topology-required", "A topology that the Cluster Volume must be accessible from"),
    ):
        c.add_argument(flag, action="append", default=[], help=help_text)
    c.add_argument("name", nargs="?", default="")
    ls = sub.add_parser("ls", help="List volumes")
    add_bool(
        ls, "--cluster", help="Display only cluster volumes, and use cluster volume list formatting"
    )
    ls.add_argument(
        "-f",
        "--filter",
        action="append",
        default=[],
        help='Provide filter values (e.g. "dangling=true")',
    )
    ls.add_argument("--format", help="Format output using a custom template")
    add_bool(ls, "-q", "--quiet", help="Only display volume names")
    ins = sub.add_parser("inspect", help="Display detailed information on one or more volumes")
    ins.add_argument("-f", "--format", help="Format output using a custom template")
    ins.add_argument("names", nargs="+")
    rm = sub.add_parser("rm", help="Remove one or more volumes")
    add_bool(rm, "-f", "--force", help="Force the removal of one or more volumes")
    rm.add_argument("names", nargs="+")
    pr = sub.add_parser("prune", help="Remove unused local volumes")
    add_bool(pr, "-a", "--all", help="Remove all unused volumes, not just anonymous ones")
    pr.add_argument(
        "--filter", action="append", default=[], help='Provide filter values (e.g. "label=<label>")'
    )
    add_bool(pr, "-f", "--force", help="Do not prompt for confirmation")


_CLUSTER_TABLE = "table {{.Name}}\t{{.Group}}\t{{.Driver}}\t{{.Availability}}\t{{.Status}}"
_CLUSTER_HEADER = {
    "Name": "VOLUME NAME",
    "Group": "GROUP",
    "Driver": "DRIVER",
    "Availability": "AVAILABILITY",
    "Status": "STATUS",
}


def cmd_volume(ctx: Context, args: argparse.Namespace) -> int:
    client = ctx.client
    if args.action == "create":
        cluster = [f for f in ("availability", "group", "limit_bytes", "required_bytes", "scope",
                               "sharing", "type", "secret", "topology_preferred",
                               "topology_required") if getattr(args, f)]  # fmt: skip
        body: dict[str, Any] = {
            "Name": args.name,
            "Driver": args.driver,
            "DriverOpts": _labels(args.opt),
            "Labels": _labels(args.label),
        }
        if cluster:
            # create.go sends a ClusterVolumeSpec for any cluster flag; the daemon (no swarm)
            # refuses it by name
            body["ClusterVolumeSpec"] = {
                "Group": args.group or "",
                "AccessMode": {"Scope": args.scope or "single", "Sharing": args.sharing or "none"},
                "Availability": args.availability or "active",
            }
        doc = client.post_json("/volumes/create", body=body)
        ctx.write(doc["Name"] + "\n")
    elif args.action == "ls":
        if args.cluster:
            # ls.go --cluster lists cluster volumes only: there are none without a swarm
            if not args.quiet:
                from dockyard.cli import formatter

                ctx.write(formatter.write(_CLUSTER_TABLE, [], _CLUSTER_HEADER))
            return 0
        from dockyard.cli.commands.containers import parse_filters

        filters = parse_filters(args.filter)
        vols = (
            client.get_json("/volumes", {"filters": filters} if filters else None)["Volumes"] or []
        )
        vols = sorted(vols, key=lambda v: str(v.get("Name", "")))  # list.go sorts by name
        if args.quiet and args.format != "raw":
            ctx.write("".join(v["Name"] + "\n" for v in vols))
        elif not args.format:
            ctx.write(
                render_table(["DRIVER", "VOLUME NAME"], [[v["Driver"], v["Name"]] for v in vols])
            )
        else:
            from dockyard.cli import formatter
            from dockyard.cli.contexts import VOLUME_HEADER, VOLUME_TABLE, VolumeContext

            fmt = VOLUME_TABLE if args.format == "table" else args.format
            ctx.write(formatter.write(fmt, [VolumeContext(v) for v in vols], VOLUME_HEADER))
    elif args.action == "inspect":
        docs = [client.get_json(f"/volumes/{quote_name(n)}") for n in args.names]
        _inspect_with(ctx, docs, args.format)
    elif args.action == "rm":
        failed = False
        for name in args.names:
            try:
                client.call(
                    "DELETE", f"/volumes/{quote_name(name)}", {"force": "1"} if args.force else None
                )
                ctx.write(name + "\n")
            except APIError as exc:
                ctx.warn(f"Error response from daemon: {exc.message}")
                failed = True
        return 1 if failed else 0
    elif args.action == "prune":
        warning = (
            "WARNING! This will remove all local volumes not used by at least one container."
            if not args.all
            else "WARNING! This will remove all unused volumes, not just anonymous ones."
        )
        if not args.force and not confirm_prompt(ctx, warning):
            return 0
        from dockyard.cli.commands.containers import parse_filters

        doc_filters = json.loads(parse_filters(args.filter) or "{}")
        if args.all:
            doc_filters["all"] = ["true"]
        query = {"filters": json.dumps(doc_filters)} if doc_filters else None
        doc = client.post_json("/volumes/prune", query)
        removed = doc.get("VolumesDeleted") or []
        reclaimed = 0.0
        if removed:
            # volume/prune.go: Fprintln of the list (a blank line), then the total
            ctx.write("Deleted Volumes:\n" + "".join(n + "\n" for n in removed) + "\n")
            reclaimed = float(doc.get("SpaceReclaimed") or 0)
        from dockyard.cli.output import human_size

        ctx.write(f"Total reclaimed space: {human_size(reclaimed, 4)}\n")
    sys.stdout.flush()
    return 0


# attach ------------------------------------------------------------------------------------
def add_attach(p: argparse.ArgumentParser) -> None:
    from dockyard.cli.flags import add_bool

    p.add_argument("--no-stdin", action="store_true", help="Do not attach STDIN")
    p.add_argument("--detach-keys", default="", help="Override the key sequence for detaching")
    add_bool(p, "--sig-proxy", default=True, help="Proxy all received signals to the process")
    p.add_argument("container", metavar="CONTAINER")


def cmd_attach(ctx: Context, args: argparse.Namespace) -> int:
    from dockyard.cli.attach import Attachment, escape_keys

    client = ctx.client
    info = client.get_json(_c(args.container) + "/json")
    if not info["State"]["Running"]:
        raise CommandError("You cannot attach to a stopped container, start it first")
    cfg = info.get("Config") or {}
    tty = bool(cfg.get("Tty"))
    stdin = bool(cfg.get("OpenStdin")) and not args.no_stdin
    query = [("stream", "1"), ("stdout", "1"), ("stderr", "1")]
    if stdin:
        query.append(("stdin", "1"))
    if args.detach_keys:
        query.append(("detachKeys", args.detach_keys))
    stream = client.hijack(_c(args.container) + "/attach", query)
    attachment = Attachment(
        client,
        stream,
        tty=tty,
        stdin=stdin,
        resize_path=_c(info["Id"]) + "/resize",
        detach_keys=escape_keys(args.detach_keys, ctx.warn),
    )
    from dockyard.cli.commands.run import SignalProxy

    # attach.go: signals go to the container unless --sig-proxy=false (never with a TTY)
    proxy = SignalProxy(client, str(info["Id"])) if args.sig_proxy and not tty else None
    if proxy:
        proxy.install()
    try:
        attachment.run()
    finally:
        if proxy:
            proxy.restore()
    if attachment.detached:
        # As the docker CLI: the escape ends attach with an error status.
        ctx.warn("read escape sequence")
        return 1
    state = client.get_json(_c(args.container) + "/json")["State"]
    return 0 if state.get("Running") else int(state.get("ExitCode", 0))
