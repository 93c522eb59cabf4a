"""`context create|ls|inspect|rm|use|show|update`: docker CLI contexts (docker/cli
cli/command/context), in the docker CLI's store (cli/contextstore.py)."""

from __future__ import annotations

import argparse
import os

from dockyard.cli import contextstore as store
from dockyard.cli.context import CommandError, Context

TYPE_CHECKING = False  # typing costs start-up time (this module is loaded for --help)

if TYPE_CHECKING:
    from typing import Any

    from dockyard.cli.contexts import ContextRow

_HOST_WARNING = (
    "Warning: DOCKER_HOST environment variable overrides the active context. To use {what}, "
    "either set the global --context flag, or unset DOCKER_HOST environment variable."
)


def add_context(p: argparse.ArgumentParser) -> None:
    from dockyard.cli.flags import add_bool

    sub = p.add_subparsers(dest="action", metavar="COMMAND", required=True)
    c = sub.add_parser("create", help="Create a context")
    c.add_argument("--description", default="", help="Description of the context")
    c.add_argument("--docker", default=None, help="set the docker endpoint")
    c.add_argument("--from", dest="from_", default=None, help="create context from a named context")
    c.add_argument("name", metavar="CONTEXT")
    u = sub.add_parser("update", help="Update a context")
    u.add_argument("--description", default=None, help="Description of the context")
    u.add_argument("--docker", default=None, help="set the docker endpoint")
    u.add_argument("name", metavar="CONTEXT")
    ls = sub.add_parser("ls", aliases=["list"], help="List contexts")
    ls.add_argument("--format", help="Format output using a custom template")
    add_bool(ls, "-q", "--quiet", help="Only show context names")
    ins = sub.add_parser("inspect", help="Display detailed information on one or more contexts")
    ins.add_argument("-f", "--format", help="Format output using a custom template")
    ins.add_argument("names", nargs="*", metavar="CONTEXT")
    rm = sub.add_parser("rm", aliases=["remove"], help="Remove one or more contexts")
    add_bool(rm, "-f", "--force", help="Force the removal of a context in use")
    rm.add_argument("names", nargs="+", metavar="CONTEXT")
    use = sub.add_parser("use", help="Set the current docker context")
    use.add_argument("name", metavar="CONTEXT")
    sub.add_parser("show", help="Print the name of the current context")
    for name in ("export", "import"):
        sub.add_parser(name, help=f"{name} is not supported").add_argument("rest", nargs="*")


def cmd_context(ctx: Context, args: argparse.Namespace) -> int:
    action = {"list": "ls", "remove": "rm"}.get(args.action, args.action)
    if action in ("export", "import"):
        raise CommandError(f"dockyard context {action} is not supported")
    try:
        handler = _HANDLERS[action]
        return handler(ctx, args)
    except store.ContextError as exc:
        raise CommandError(str(exc)) from None


def _endpoint_spec(ctx: Context, spec: str | None, base: dict[str, Any]) -> dict[str, Any]:
    """`--docker host=…,ca=…,cert=…,key=…,skip-tls-verify=…` (docker/cli context/options.go)."""
    if spec is None:
        return base
    import csv

    fields: dict[str, str] = {}
    for item in next(csv.reader([spec])) if spec else []:
        key, sep, value = item.partition("=")
        if not sep:
            raise CommandError(f"unable to parse docker endpoint: invalid field {item!r}")
        if key not in ("host", "ca", "cert", "key", "skip-tls-verify", "from"):
            raise CommandError(
                f"unable to create docker endpoint config: unrecognized config key: {key}"
            )
        fields[key] = value
    if "from" in fields:
        return _stored_endpoint(ctx, fields["from"])
    for key in ("ca", "cert", "key"):
        if key in fields and not os.path.isfile(fields[key]):
            raise CommandError(
                f"unable to create docker endpoint config: open {fields[key]}: no such file or "
                "directory"
            )
    return {
        "Host": fields.get("host") or ctx.host,
        "SkipTLSVerify": fields.get("skip-tls-verify", "false").lower() in ("1", "t", "true"),
        "_tls": {k: fields[k] for k in ("ca", "cert", "key") if k in fields},
    }


def _stored_endpoint(ctx: Context, name: str) -> dict[str, Any]:
    if name == store.DEFAULT:
        return {"Host": _default_host(ctx), "SkipTLSVerify": False, "_tls": {}}
    host, skip, files = store.endpoint(name)
    return {"Host": host, "SkipTLSVerify": skip, "_tls": files}


def _default_host(ctx: Context) -> str:
    from dockyard.cli.client import DEFAULT_HOST

    env = os.environ
    return env.get("DOCKYARD_HOST") or env.get("DOCKER_HOST") or DEFAULT_HOST


def _write(name: str, description: str, ep: dict[str, Any]) -> None:
    import json
    import shutil

    meta = store.meta_dir(name)
    os.makedirs(meta, mode=0o755, exist_ok=True)
    doc = {
        "Name": name,
        "Metadata": {"Description": description} if description else {},
        "Endpoints": {"docker": {"Host": ep["Host"], "SkipTLSVerify": ep["SkipTLSVerify"]}},
    }
    tmp = os.path.join(meta, "meta.json.tmp")
    with open(tmp, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
    os.replace(tmp, os.path.join(meta, "meta.json"))
    tls = ep.get("_tls") or {}
    if tls:
        target = os.path.join(store.tls_dir(name), "docker")
        os.makedirs(target, mode=0o700, exist_ok=True)
        for key, path in tls.items():
            shutil.copyfile(path, os.path.join(target, f"{key}.pem"))


def _check_name(name: str) -> None:
    if name == store.DEFAULT:
        raise CommandError('"default" is a reserved context name')
    if not store.NAME_RULE.match(name):
        raise CommandError(
            f'context name "{name}" is invalid, names are validated against regexp '
            f'"{store.NAME_RULE.pattern}"'
        )


def _create(ctx: Context, args: argparse.Namespace) -> int:
    _check_name(args.name)
    if args.name in store.names():
        raise CommandError(f'context "{args.name}" already exists')
    if args.from_ is not None and args.docker is not None:
        # create.go: --from copies every endpoint; endpoint flags go with it only via from=
        raise CommandError("cannot use --docker flag when --from is set")
    source = args.from_ if args.from_ is not None else ctx.context_name
    base = _stored_endpoint(ctx, source) if args.docker is None else {}
    _write(args.name, args.description, _endpoint_spec(ctx, args.docker, base))
    ctx.write(args.name + "\n")
    ctx.warn(f'Successfully created context "{args.name}"')
    return 0


def _update(ctx: Context, args: argparse.Namespace) -> int:
    _check_name(args.name)
    doc = store.load(args.name)
    description = (doc.get("Metadata") or {}).get("Description") or ""
    if args.description is not None:
        description = args.description
    current = _stored_endpoint(ctx, args.name)
    _write(args.name, description, _endpoint_spec(ctx, args.docker, current))
    ctx.write(args.name + "\n")
    ctx.warn(f'Successfully updated context "{args.name}"')
    return 0


_LS_HEADER = {
    "Name": "NAME",
    "Description": "DESCRIPTION",
    "DockerEndpoint": "DOCKER ENDPOINT",
    "Error": "ERROR",
    "Current": "CURRENT",
}
_LS_TABLE = "table {{.Name}}\t{{.Description}}\t{{.DockerEndpoint}}\t{{.Error}}"


def _rows(ctx: Context) -> list[ContextRow]:
    from dockyard.cli.contexts import ContextRow

    current = ctx.context_name
    rows = [ContextRow(store.DEFAULT, store.DEFAULT_DESCRIPTION, _default_host(ctx), False)]
    for name in store.names():
        doc = store.load(name)
        ep = ((doc.get("Endpoints") or {}).get("docker")) or {}
        desc = (doc.get("Metadata") or {}).get("Description") or ""
        rows.append(ContextRow(name, str(desc), str(ep.get("Host") or ""), False))
    for row in rows:
        row.current = row.name == current
    return rows


def _ls(ctx: Context, args: argparse.Namespace) -> int:
    from dockyard.cli import formatter

    rows = _rows(ctx)
    if args.quiet:
        ctx.write("".join(r.name + "\n" for r in rows))
    else:
        fmt = args.format or "table"
        if fmt == "table":
            fmt = _LS_TABLE
        # ls.go: the table marks the current context's name with " *"
        for row in rows:
            row._table = fmt.startswith("table")
        ctx.write(formatter.write(fmt, rows, _LS_HEADER))
    if os.environ.get("DOCKER_HOST"):
        ctx.warn(_HOST_WARNING.format(what="a context"))
    return 0


def _inspect_doc(ctx: Context, name: str) -> dict[str, Any]:
    if name == store.DEFAULT:
        return {
            "Name": store.DEFAULT,
            "Metadata": {},
            "Endpoints": {"docker": {"Host": _default_host(ctx), "SkipTLSVerify": False}},
            "TLSMaterial": {},
            "Storage": {"MetadataPath": "<IN MEMORY>", "TLSPath": "<IN MEMORY>"},
        }
    doc = store.load(name)
    host, skip, files = store.endpoint(name)
    return {
        "Name": doc.get("Name", name),
        "Metadata": doc.get("Metadata") or {},
        "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": skip}},
        "TLSMaterial": {"docker": sorted(f"{k}.pem" for k in files)} if files else {},
        "Storage": {"MetadataPath": store.meta_dir(name), "TLSPath": store.tls_dir(name)},
    }


def _inspect(ctx: Context, args: argparse.Namespace) -> int:
    from dockyard.cli.commands.system import write_inspect

    names = args.names or [ctx.context_name]
    docs, errors = [], []
    for name in names:
        try:
            docs.append(_inspect_doc(ctx, name))
        except store.ContextError as exc:
            errors.append(str(exc))
    return write_inspect(ctx, docs, args.format, errors)


def _rm(ctx: Context, args: argparse.Namespace) -> int:
    import shutil

    errors = []
    for name in args.names:
        if name == store.DEFAULT:
            errors.append('default: context "default" cannot be removed')
            continue
        if name not in store.names():
            if not args.force:
                errors.append(f'context "{name}" does not exist')
                continue
        else:
            shutil.rmtree(store.meta_dir(name), ignore_errors=True)
            shutil.rmtree(store.tls_dir(name), ignore_errors=True)
            if name == ctx.context_name and store.configured_current() == name:
                store.set_current(store.DEFAULT)
        ctx.write(name + "\n")
    if errors:
        raise CommandError("\n".join(errors))
    return 0


def _use(ctx: Context, args: argparse.Namespace) -> int:
    if args.name != store.DEFAULT:
        store.load(args.name)
    store.set_current(args.name)
    ctx.write(args.name + "\n")
    ctx.warn(f'Current context is now "{args.name}"')
    if os.environ.get("DOCKER_HOST") and args.name != store.DEFAULT:
        ctx.warn(_HOST_WARNING.format(what=f'"{args.name}"'))
    return 0


def _show(ctx: Context, args: argparse.Namespace) -> int:
    ctx.write(ctx.context_name + "\n")
    return 0


_HANDLERS = {
    "create": _create,
    "update": _update,
    "ls": _ls,
    "inspect": _inspect,
    "rm": _rm,
    "use": _use,
    "show": _show,
}
