"""Container operations beyond run/ps/logs: exec, restart, pause, rename, top, port, diff,
export, commit, cp, stats, update, and the `network` and `volume` command groups.

Each follows the docker CLI's request sequence (anchors.md §2.1 for exec: create, hijacked
start, resize on a terminal, then the exit code from `GET /exec/{id}/json`). Parsers are
added lazily by cli/main.py, so importing this module costs nothing for other commands.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from dockyard.cli.client import APIError, quote_name
from dockyard.cli.context import CommandError, Context
from dockyard.cli.output import render_table, truncate_id
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
    p.add_argument("-d", "--detach", action="store_true", help="Run in the background")
    p.add_argument("-e", "--env", action="append", default=[], help="Set environment variables")
    p.add_argument("-w", "--workdir", help="Working directory inside the container")
    p.add_argument("-u", "--user", help="Username or UID (name|uid[:group|gid])")
    p.add_argument("--privileged", action="store_true", help="Extended privileges")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND")


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
        "Env": list(args.env),
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
    stream = client.hijack(f"/exec/{eid}/start")
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
    p.add_argument("-t", "--time", "--timeout", type=int, help="Seconds to wait before killing")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")


def cmd_restart(ctx: Context, args: argparse.Namespace) -> int:
    query = {"t": str(args.time)} if args.time is not None else None
    return _each(ctx, args.containers, "POST", "/restart", query)


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
            host = f"{b['HostIp']}:{b['HostPort']}"
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
def add_cp(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--archive", action="store_true", help="Archive mode (copy UID/GID)")
    p.add_argument("src", metavar="SRC_PATH")
    p.add_argument("dest", metavar="DEST_PATH")


def _split(arg: str) -> tuple[str | None, str]:
    if ":" in arg and not arg.startswith(("/", ".")):
        name, _, path = arg.partition(":")
        return name, path
    return None, arg


def cmd_cp(ctx: Context, args: argparse.Namespace) -> int:
    import io
    import tarfile

    src_c, src = _split(args.src)
    dst_c, dst = _split(args.dest)
    if (src_c is None) == (dst_c is None):
        raise CommandError(
            "copying between containers or between two local paths is not "
            "supported; one side must be CONTAINER:PATH"
        )
    if src_c is not None:
        resp = ctx.client.request("GET", _c(src_c) + "/archive", {"path": src})
        data = resp.read()
        resp.close()
        target = os.path.abspath(dst)
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            members = tar.getmembers()
            top = os.path.basename(src.rstrip("/")) or "."
            dest_is_dir = os.path.isdir(target)
            for m in members:
                rel = m.name
                if not dest_is_dir:
                    # Copy to a new name: the archive's top entry becomes `target`.
                    rel = rel[len(top) :].lstrip("/") if rel.startswith(top) else rel
                    m.name = (
                        os.path.join(os.path.basename(target), rel)
                        if rel
                        else (os.path.basename(target))
                    )
            base = target if dest_is_dir else os.path.dirname(target)
            tar.extractall(base, members=members, filter="tar")
        return 0
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(src, arcname=os.path.basename(os.path.abspath(src)))
    query = {"path": dst}
    if args.archive:
        query["copyUIDGID"] = "1"
    assert dst_c is not None
    ctx.client.call(
        "PUT",
        _c(dst_c) + "/archive",
        query,
        body=buf.getvalue(),
        headers={"Content-Type": "application/x-tar"},
    )
    return 0


# stats / update ---------------------------------------------------------------------------
def add_stats(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-stream", action="store_true", help="Print one snapshot (the default)")
    p.add_argument("containers", nargs="*", metavar="CONTAINER")


def cmd_stats(ctx: Context, args: argparse.Namespace) -> int:
    from dockyard.cli.output import human_size

    names = args.containers or [c["Id"] for c in ctx.client.get_json("/containers/json")]
    rows = []
    for name in names:
        s = ctx.client.get_json(_c(name) + "/stats", {"stream": "0"})
        cpu, pre = s["cpu_stats"], s["precpu_stats"]
        dc = cpu["cpu_usage"]["total_usage"] - pre["cpu_usage"].get("total_usage", 0)
        ds = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
        pct = dc / ds * cpu.get("online_cpus", 1) * 100 if ds > 0 else 0.0
        mem = s.get("memory_stats") or {}
        usage, limit = mem.get("usage", 0), mem.get("limit", 0) or 1
        rows.append(
            [
                truncate_id(s["id"]),
                s["name"].lstrip("/"),
                f"{pct:.2f}%",
                f"{human_size(usage)} / {human_size(limit)}",
                f"{usage / limit * 100:.2f}%",
                str((s.get("pids_stats") or {}).get("current", 0)),
            ]
        )
    header = ["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "PIDS"]
    ctx.write(render_table(header, rows))
    return 0


def add_update(p: argparse.ArgumentParser) -> None:
    p.add_argument("-m", "--memory", help="Memory limit")
    p.add_argument("--memory-swap", help="Swap limit (-1 = unlimited)")
    p.add_argument("--cpus", help="Number of CPUs")
    p.add_argument("--cpu-shares", type=int, help="CPU shares")
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
    sub = p.add_subparsers(dest="action", metavar="COMMAND", required=True)
    c = sub.add_parser("create", help="Create a network")
    c.add_argument("--subnet", default="")
    c.add_argument("--gateway", default="")
    c.add_argument("--internal", action="store_true")
    c.add_argument("-d", "--driver", default="bridge")
    c.add_argument("--label", action="append", default=[])
    c.add_argument("name")
    ls = sub.add_parser("ls", help="List networks")
    ls.add_argument("-q", "--quiet", action="store_true")
    for verb in ("rm", "inspect"):
        sub.add_parser(verb).add_argument("names", nargs="+")
    for verb in ("connect", "disconnect"):
        v = sub.add_parser(verb)
        v.add_argument("network")
        v.add_argument("container")
        if verb == "connect":
            v.add_argument("--alias", action="append", default=[])
        else:
            v.add_argument("-f", "--force", action="store_true")
    pr = sub.add_parser("prune")
    pr.add_argument("-f", "--force", action="store_true")


def _labels(items: list[str]) -> dict[str, str]:
    return {k: v for k, _, v in (i.partition("=") for i in items)}


def cmd_network(ctx: Context, args: argparse.Namespace) -> int:
    client = ctx.client
    if args.action == "create":
        ipam = {"Config": [{"Subnet": args.subnet, "Gateway": args.gateway}]} if args.subnet else {}
        doc = client.post_json(
            "/networks/create",
            body={
                "Name": args.name,
                "Driver": args.driver,
                "Internal": args.internal,
                "Labels": _labels(args.label),
                "IPAM": ipam,
                "CheckDuplicate": True,
            },
        )
        ctx.write(doc["Id"] + "\n")
    elif args.action == "ls":
        nets = client.get_json("/networks")
        if args.quiet:
            ctx.write("".join(n["Id"][:12] + "\n" for n in nets))
        else:
            rows = [[n["Id"][:12], n["Name"], n["Driver"], n["Scope"]] for n in nets]
            ctx.write(render_table(["NETWORK ID", "NAME", "DRIVER", "SCOPE"], rows))
    elif args.action == "rm":
        failed = False
        for name in args.names:
            try:
                client.call("DELETE", f"/networks/{quote_name(name)}")
                ctx.write(name + "\n")
            except APIError as exc:
                ctx.warn(f"Error response from daemon: {exc.message}")
                failed = True
        return 1 if failed else 0
    elif args.action == "inspect":
        docs = [client.get_json(f"/networks/{quote_name(n)}") for n in args.names]
        ctx.write(json.dumps(docs, indent=4) + "\n")
    elif args.action == "connect":
        client.post_json(
            f"/networks/{quote_name(args.network)}/connect",
            body={"Container": args.container, "EndpointConfig": {"Aliases": args.alias}},
        )
    elif args.action == "disconnect":
        client.post_json(
            f"/networks/{quote_name(args.network)}/disconnect",
            body={"Container": args.container, "Force": args.force},
        )
    elif args.action == "prune":
        doc = client.post_json("/networks/prune")
        removed = doc.get("NetworksDeleted") or []
        if removed:
            ctx.write("Deleted Networks:\n" + "".join(n + "\n" for n in removed))
    return 0


def add_volume(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="COMMAND", required=True)
    c = sub.add_parser("create", help="Create a volume")
    c.add_argument("--label", action="append", default=[])
    c.add_argument("-d", "--driver", default="local")
    c.add_argument("name", nargs="?", default="")
    ls = sub.add_parser("ls", help="List volumes")
    ls.add_argument("-q", "--quiet", action="store_true")
    for verb in ("inspect",):
        sub.add_parser(verb).add_argument("names", nargs="+")
    rm = sub.add_parser("rm")
    rm.add_argument("-f", "--force", action="store_true")
    rm.add_argument("names", nargs="+")
    pr = sub.add_parser("prune")
    pr.add_argument("-f", "--force", action="store_true")
    pr.add_argument("-a", "--all", action="store_true")


def cmd_volume(ctx: Context, args: argparse.Namespace) -> int:
    client = ctx.client
    if args.action == "create":
        doc = client.post_json(
            "/volumes/create",
            body={"Name": args.name, "Driver": args.driver, "Labels": _labels(args.label)},
        )
        ctx.write(doc["Name"] + "\n")
    elif args.action == "ls":
        vols = client.get_json("/volumes")["Volumes"] or []
        if args.quiet:
            ctx.write("".join(v["Name"] + "\n" for v in vols))
        else:
            ctx.write(
                render_table(["DRIVER", "VOLUME NAME"], [[v["Driver"], v["Name"]] for v in vols])
            )
    elif args.action == "inspect":
        docs = [client.get_json(f"/volumes/{quote_name(n)}") for n in args.names]
        ctx.write(json.dumps(docs, indent=4) + "\n")
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
        query = {"filters": json.dumps({"all": ["true"]})} if args.all else None
        doc = client.post_json("/volumes/prune", query)
        removed = doc.get("VolumesDeleted") or []
        if removed:
            ctx.write("Deleted Volumes:\n" + "".join(n + "\n" for n in removed))
        ctx.write(f"\nTotal reclaimed space: {doc.get('SpaceReclaimed', 0)}B\n")
    sys.stdout.flush()
    return 0


# attach ------------------------------------------------------------------------------------
def add_attach(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-stdin", action="store_true", help="Do not attach STDIN")
    p.add_argument("--detach-keys", default="", help="Override the key sequence for detaching")
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
    attachment.run()
    if attachment.detached:
        # As the docker CLI: the escape ends attach with an error status.
        ctx.warn("read escape sequence")
        return 1
    state = client.get_json(_c(args.container) + "/json")["State"]
    return 0 if state.get("Running") else int(state.get("ExitCode", 0))
