"""Container commands that are one request per name: ps, logs, stop, kill, wait, rm."""

from __future__ import annotations

import os
import sys
import time

from dockyard.cli import cjson
from dockyard.cli.client import APIError, quote_name
from dockyard.cli.context import CommandError, Context
from dockyard.cli.output import ps_table, truncate_id

TYPE_CHECKING = False  # typing itself costs ~1.5 ms of start-up; mypy honours this name

if TYPE_CHECKING:
    import argparse


def parse_filters(items: list[str]) -> str | None:
    """`--filter k=v` (repeatable) → the `filters` JSON map of lists."""
    if not items:
        return None
    filters: dict[str, list[str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise CommandError(f"bad format of filter (expected name=value): {item}")
        filters.setdefault(key.strip().lower(), []).append(value)
    return cjson.dumps(filters)


def cmd_ps(ctx: Context, args: argparse.Namespace) -> int:
    query: dict[str, str] = {}
    if args.all:
        query["all"] = "1"
    filters = parse_filters(args.filter)
    if filters:
        query["filters"] = filters
    last = args.last if args.last is not None else -1
    if args.latest and last == -1:
        last = 1
    if last != -1:
        query["limit"] = str(last)
    fmt = args.format or ""
    size = bool(args.size)
    if fmt:
        if args.quiet:
            ctx.warn("WARNING: Ignoring custom format, because both --format and --quiet are set.")
        from dockyard.cli import formatter
        from dockyard.cli.contexts import ContainerContext

        probe = ContainerContext({})
        formatter.validate(fmt, probe)
        # list.go: a template that uses .Size asks for sizes, unless --size=false was given
        if not args.quiet and not size and args.size is None and probe.size_used:
            size = True
    if size:
        query["size"] = "1"
    containers = ctx.client.get_json("/containers/json", query) or []
    if args.quiet and fmt != "raw":  # NewContainerFormat: quiet means {{.ID}}
        ids = [str(c["Id"]) for c in containers]
        ctx.write("".join((i if args.no_trunc else truncate_id(i)) + "\n" for i in ids))
        return 0
    if fmt in ("", "table") and not size:
        ctx.write(ps_table(containers, time.time(), trunc=not args.no_trunc))
        return 0
    from dockyard.cli import formatter
    from dockyard.cli.contexts import CONTAINER_HEADER, CONTAINER_TABLE, ContainerContext

    if fmt in ("", "table"):
        fmt = CONTAINER_TABLE + ("\\t{{.Size}}" if size else "")
    elif fmt == "raw":
        fmt = PS_RAW_QUIET if args.quiet else PS_RAW + ("size: {{.Size}}\\n" if size else "")
    now = time.time()
    items = [ContainerContext(c, trunc=not args.no_trunc, now=now) for c in containers]
    ctx.write(formatter.write(fmt, items, CONTAINER_HEADER))
    return 0


PS_RAW_QUIET = "container_id: {{.ID}}"
PS_RAW = """container_id: {{.ID}}
image: {{.Image}}
command: {{.Command}}
created_at: {{.CreatedAt}}
state: {{- pad .State 1 0}}
status: {{- pad .Status 1 0}}
names: {{.Names}}
labels: {{- pad .Labels 1 0}}
ports: {{- pad .Ports 1 0}}
"""


def _for_each(
    ctx: Context,
    names: list[str],
    method: str,
    suffix: str,
    query: dict[str, str] | None,
    missing_ok: bool = False,
) -> int:
    """One request per container, print the name on success (stop, kill, rm, …)."""
    errors = []
    failed = False
    for name in names:
        path = f"/containers/{quote_name(name)}{suffix}"
        try:
            ctx.client.call(method, path, query)
        except APIError as exc:
            errors.append(exc.message)
            failed = failed or not (missing_ok and exc.status == 404)
            continue
        ctx.write(name + "\n")
    for message in errors:
        ctx.warn(f"Error response from daemon: {message}")
    return 1 if failed else 0


def cmd_stop(ctx: Context, args: argparse.Namespace) -> int:
    query = {"t": str(args.time)} if args.time is not None else None
    if args.signal:
        query = {**(query or {}), "signal": args.signal}
    return _for_each(ctx, args.containers, "POST", "/stop", query)


def cmd_kill(ctx: Context, args: argparse.Namespace) -> int:
    query = {"signal": args.signal} if args.signal else None
    return _for_each(ctx, args.containers, "POST", "/kill", query)


def cmd_rm(ctx: Context, args: argparse.Namespace) -> int:
    query: dict[str, str] = {}
    if args.link:
        query["link"] = "1"  # sent as docker sends it: the daemon answers for links
    if args.force:
        query["force"] = "1"
    if args.volumes:
        query["v"] = "1"
    # rm.go: with -f a container that does not exist is reported, not a failure
    return _for_each(ctx, args.containers, "DELETE", "", query or None, missing_ok=args.force)


def cmd_wait(ctx: Context, args: argparse.Namespace) -> int:
    failed = False
    for name in args.containers:
        try:
            doc = ctx.client.post_json(f"/containers/{quote_name(name)}/wait")
        except APIError as exc:
            ctx.warn(f"Error response from daemon: {exc.message}")
            failed = True
            continue
        ctx.write(f"{doc.get('StatusCode', '')}\n")
    return 1 if failed else 0


def _write_fd(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def cmd_logs(ctx: Context, args: argparse.Namespace) -> int:
    from dockyard.cli.streams import STDERR, SYSTEMERR, Demuxer, response_chunks

    # The container's Tty decides whether the stream is multiplexed (logs.go).
    info = ctx.client.get_json(f"/containers/{quote_name(args.container)}/json")
    tty = bool((info.get("Config") or {}).get("Tty"))
    query = {"stdout": "1", "stderr": "1", "tail": args.tail or "all"}
    if args.follow:
        query["follow"] = "1"
    if args.timestamps:
        query["timestamps"] = "1"
    if args.details:
        query["details"] = "1"
    if args.since:
        query["since"] = args.since
    if args.until:
        query["until"] = args.until
    resp = ctx.client.request("GET", f"/containers/{quote_name(args.container)}/logs", query)
    sys.stdout.flush()
    demux = None if tty else Demuxer()
    try:
        for chunk in response_chunks(resp):
            if demux is None:
                _write_fd(1, chunk)
                continue
            for kind, payload in demux.feed(chunk):
                if kind == SYSTEMERR:
                    raise CommandError(
                        "error from daemon in stream: " + payload.decode("utf-8", "replace")
                    )
                _write_fd(2 if kind == STDERR else 1, payload)
    except KeyboardInterrupt:
        return 130
    finally:
        resp.close()
    return 0
