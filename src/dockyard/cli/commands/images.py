"""Image commands: images, build, tag, rmi, import, history, save, load, pull, push."""

from __future__ import annotations

import os
import sys
import time

from dockyard.cli import cjson
from dockyard.cli.client import APIError, quote_name
from dockyard.cli.context import CommandError, Context
from dockyard.cli.output import history_table, human_size, images_table, truncate_id
from dockyard.cli.refs import normalize_image_ref

TYPE_CHECKING = False  # typing itself costs ~1.5 ms of start-up; mypy honours this name

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Iterator
    from typing import IO, Any


_REGISTRY_AUTH = {"X-Registry-Auth": "e30="}  # base64url("{}"): anonymous, as the CLI sends


def cmd_images(ctx: Context, args: argparse.Namespace) -> int:
    from dockyard.cli.commands.containers import parse_filters

    query: dict[str, str] = {}
    if args.all:
        query["all"] = "1"
    filters = parse_filters(args.filter)
    if args.repository:
        # `docker images REPO[:TAG]` is the `reference` filter.
        doc = cjson.loads(filters) if filters else {}
        doc.setdefault("reference", []).append(args.repository)
        filters = cjson.dumps(doc)
    if filters:
        query["filters"] = filters
    if args.tree:
        from dockyard.cli.flags import require_api

        require_api(ctx, '"--tree"', "1.47")
        raise CommandError("dockyard images: --tree is not supported (no multi-platform images)")
    fmt = args.format or ""
    if fmt and args.quiet:
        ctx.warn("WARNING: Ignoring custom format, because both --format and --quiet are set.")
    images = ctx.client.get_json("/images/json", query) or []
    if args.quiet and fmt != "raw":
        seen: list[str] = []
        for img in sorted(images, key=lambda i: int(i.get("Created") or 0), reverse=True):
            iid = str(img.get("Id", ""))
            shown = iid if args.no_trunc else truncate_id(iid)
            if shown not in seen:
                seen.append(shown)
        ctx.write("".join(i + "\n" for i in seen))
        return 0
    if fmt in ("", "table") and not args.digests:
        ctx.write(images_table(images, time.time(), trunc=not args.no_trunc))
        return 0
    from dockyard.cli import contexts as cx
    from dockyard.cli import formatter

    if fmt in ("", "table"):
        fmt = cx.IMAGE_TABLE_DIGEST if args.digests else cx.IMAGE_TABLE
    elif fmt == "raw":
        fmt = IMAGES_RAW_QUIET if args.quiet else IMAGES_RAW
    elif fmt.startswith("table") and args.digests and "{{.Digest}}" not in fmt:
        fmt += "\\t{{.Digest}}"
    digests = args.digests or "{{.Digest}}" in fmt
    rows = cx.image_contexts(images, not args.no_trunc, digests, time.time())
    ctx.write(formatter.write(fmt, rows, cx.IMAGE_HEADER))
    return 0


IMAGES_RAW_QUIET = "image_id: {{.ID}}"
IMAGES_RAW = """repository: {{ .Repository }}
tag: {{.Tag}}
image_id: {{.ID}}
created_at: {{.CreatedAt}}
virtual_size: {{.Size}}
"""


def _kv_map(items: list[str], from_env: bool) -> dict[str, str | None]:
    """--build-arg / --label: `K=V`; a bare `K` takes the environment's value (or null)."""
    out: dict[str, str | None] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if sep:
            out[key] = value
        elif from_env:
            out[key] = os.environ.get(key)
        else:
            out[key] = ""
    return out


def _build_query(args: argparse.Namespace, dockerfile: str) -> list[tuple[str, str]]:
    query: list[tuple[str, str]] = [("t", t) for t in args.tag]
    query.append(("dockerfile", dockerfile))
    if args.quiet:
        query.append(("q", "1"))
    if args.no_cache:
        query.append(("nocache", "1"))
    if args.pull:
        query.append(("pull", "1"))
    query.append(("rm", "0" if args.rm is False else "1"))
    if args.force_rm:
        query.append(("forcerm", "1"))
    if args.build_arg:
        query.append(("buildargs", cjson.dumps(_kv_map(args.build_arg, True))))
    if args.label:
        query.append(("labels", cjson.dumps(_kv_map(args.label, False))))
    if args.target:
        query.append(("target", args.target))
    if args.network:
        query.append(("networkmode", args.network))
    if args.platform:
        query.append(("platform", args.platform))
    for host in args.add_host:
        query.append(("extrahosts", host))
    if getattr(args, "explain_cache", False):
        query.append(("explaincache", "1"))
    for entitlement in getattr(args, "allow", None) or []:
        query.append(("allow", entitlement))
    query += _resource_query(args)
    query.append(("version", "1"))
    return query


def _gzip_chunks(chunks: Any) -> Iterator[bytes]:
    import zlib

    z = zlib.compressobj(6, zlib.DEFLATED, 31)
    for chunk in chunks:
        out = z.compress(chunk)
        if out:
            yield out
    yield z.flush()


def _resource_query(args: argparse.Namespace) -> list[tuple[str, str]]:
    """The legacy builder's resource flags as moby's client/image_build.go sends them."""
    from dockyard.cli.runflags import ram_in_bytes

    if getattr(args, "security_opt", None):
        # docker's CLI takes the flag but its client never sends it to /build: refuse it
        # rather than drop it silently.
        raise CommandError("dockyard build: --security-opt is not supported by the legacy builder")
    out: list[tuple[str, str]] = []
    if getattr(args, "squash", False):
        out.append(("squash", "1"))
    for flag, key in (("isolation", "isolation"), ("cpuset_cpus", "cpusetcpus"),
                      ("cpuset_mems", "cpusetmems"), ("cgroup_parent", "cgroupparent")):  # fmt: skip
        if getattr(args, flag, None):
            out.append((key, str(getattr(args, flag))))
    for flag, key in (
        ("cpu_shares", "cpushares"),
        ("cpu_quota", "cpuquota"),
        ("cpu_period", "cpuperiod"),
    ):
        if getattr(args, flag, None):
            out.append((key, str(getattr(args, flag))))
    if getattr(args, "memory", None):
        out.append(("memory", str(ram_in_bytes(args.memory))))
    if getattr(args, "memory_swap", None):
        swap = -1 if args.memory_swap == "-1" else ram_in_bytes(args.memory_swap)
        out.append(("memswap", str(swap)))
    if getattr(args, "shm_size", None):
        out.append(("shmsize", str(ram_in_bytes(args.shm_size))))
    ulimits = []
    for u in getattr(args, "ulimit", None) or []:
        name, _, values = u.partition("=")
        soft, _, hard = values.partition(":")
        try:
            ulimits.append({"Name": name, "Hard": int(hard or soft), "Soft": int(soft)})
        except ValueError:
            raise CommandError(f'invalid argument "{u}" for "--ulimit" flag') from None
    if ulimits:
        out.append(("ulimits", cjson.dumps(ulimits)))
    if getattr(args, "cache_from", None):
        out.append(("cachefrom", cjson.dumps(list(args.cache_from))))
    return out


class _Counted:
    """Counts bytes of the context as they are sent (for the "Sending" line)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks
        self.total = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.chunks:
            self.total += len(chunk)
            yield chunk


def _parse_secret(spec: str) -> tuple[str, bytes]:
    """`docker buildx build --secret`: id=NAME[,type=file|env][,src=PATH][,env=VAR]."""
    ident = src = env = ""
    kind = "file"
    for field in spec.split(","):
        key, sep, value = field.partition("=")
        key = key.strip().lower()
        if not sep:
            raise CommandError(f"invalid secret {spec!r}: expected KEY=VALUE in {field!r}")
        if key == "id":
            ident = value
        elif key == "type":
            if value not in ("file", "env"):
                raise CommandError(f"invalid secret {spec!r}: type must be file or env")
            kind = value
        elif key in ("src", "source"):
            src = value
        elif key == "env":
            env = value
        else:
            raise CommandError(f"invalid secret {spec!r}: unexpected key {key!r}")
    if kind == "env" and not env:
        env, src = src or ident, ""
    ident = ident or os.path.basename(src) or env
    if not ident:
        raise CommandError(f"invalid secret {spec!r}: id= is required")
    if not src and not env:
        # buildx: with neither, an environment variable named like the id, else a file
        if ident in os.environ:
            env = ident
        else:
            src = ident
    if env:
        env_value = os.environ.get(env)
        if env_value is None:
            raise CommandError(f"secret {ident}: environment variable {env} is not set")
        return ident, env_value.encode()
    try:
        with open(src, "rb") as f:
            return ident, f.read()
    except OSError as exc:
        raise CommandError(f"secret {ident}: cannot read {src}: {exc.strerror}") from None


def _parse_ssh(spec: str) -> tuple[str, str]:
    """`--ssh default[=SOCKET]|ID=SOCKET`; without a socket, $SSH_AUTH_SOCK."""
    import stat

    ident, sep, path = spec.partition("=")
    if "," in path:
        raise CommandError(f"invalid ssh {spec!r}: only one agent socket per id is supported")
    if not ident:
        raise CommandError(f"invalid ssh {spec!r}: an id is required (default[=SOCKET])")
    if not sep:
        path = os.environ.get("SSH_AUTH_SOCK", "")
        if not path:
            raise CommandError(f"ssh {ident}: no socket given and SSH_AUTH_SOCK is not set")
    path = os.path.abspath(os.path.expanduser(path))
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise CommandError(f"ssh {ident}: {path}: {exc.strerror}") from None
    if not stat.S_ISSOCK(mode):
        raise CommandError(f"ssh {ident}: {path} is not a Unix socket (an ssh agent)")
    return ident, path


def _mounts(args: argparse.Namespace) -> tuple[dict[str, bytes], dict[str, str]]:
    """`--secret` contents and `--ssh` agent sockets, served on the build's session."""
    from dockyard.session.attachables import MAX_SECRET_SIZE

    secrets = dict(_parse_secret(s) for s in getattr(args, "secret", None) or [])
    for ident, data in secrets.items():
        if len(data) > MAX_SECRET_SIZE:
            raise CommandError(
                f"secret {ident} too large: {len(data)} bytes, the limit is {MAX_SECRET_SIZE}"
            )
    agents = dict(_parse_ssh(s) for s in getattr(args, "ssh", None) or [])
    return secrets, agents


def _session_extras(prepared: Any, scratch: str) -> dict[str, str]:
    """Files the legacy client adds to its tar, shown at the top of the served context: a
    Dockerfile from outside it (or stdin) under its generated name, and the .dockerignore
    that drops it (build_context.prepare_context)."""
    extras: dict[str, str] = {}
    name, content = prepared.injected
    files = {name: ("dockerfile", content)}
    if prepared.ignore_text is not None:
        files[".dockerignore"] = ("dockerignore", prepared.ignore_text)
    for shown, (file, data) in files.items():
        extras[shown] = os.path.join(scratch, file)
        fd = os.open(extras[shown], os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        with open(fd, "wb") as f:
            f.write(data)
    return extras


def cmd_build(ctx: Context, args: argparse.Namespace) -> int:
    from dockyard.cli import build_context as bc

    secrets, agents = _mounts(args)
    headers = {"X-Registry-Config": "e30="}
    if getattr(args, "iidfile", None):
        import contextlib

        with contextlib.suppress(FileNotFoundError):
            os.unlink(args.iidfile)  # build.go removes a stale ID file first
    if getattr(args, "squash", False):
        _require_experimental(ctx, '"--squash"')
    if args.path == "-":
        if args.file == "-":
            raise CommandError(
                "invalid argument: can't use stdin for both build context and dockerfile"
            )
        data = sys.stdin.buffer.read()
        if bc.is_archive(data[:1024]):
            body, dockerfile_name = data, args.file or "Dockerfile"
        else:
            if args.file:
                raise CommandError(
                    "ambiguous Dockerfile source: both stdin and flag correspond to Dockerfiles"
                )
            body, dockerfile_name = bc.single_dockerfile_tar(data), "Dockerfile"
        query = _build_query(args, dockerfile_name)
        headers["Content-Type"] = "application/x-tar"
        if getattr(args, "compress", False):
            body = b"".join(_gzip_chunks([body]))

        def post() -> Any:
            return ctx.client.request("POST", "/build", query, body=body, headers=headers)

        if not secrets and not agents:
            return _show_build(ctx, args, post, lambda: len(body))
        # the tar in the body, secrets and agents on a session of their own
        from dockyard.cli.build_session import BuildSession

        with BuildSession(ctx.client, None, secrets=secrets, agents=agents) as session:
            query.append(("session", session.id))
            return _show_build(ctx, args, post, lambda: len(body))
    stdin_df = sys.stdin.buffer.read() if args.file == "-" else None
    if getattr(args, "compress", False) and not secrets and not agents:
        # --compress asks for the legacy tar, gzipped; a session's sync sends files
        return _build_from_tar(ctx, args, headers, stdin_df)
    try:
        prepared, patterns, _matches = bc.prepare(
            args.path, None if stdin_df is not None else args.file, stdin_df
        )
    except bc.ContextError as exc:
        raise CommandError(f"unable to prepare context: {exc}") from None
    query = _build_query(args, prepared.dockerfile)
    if prepared.injected is None:
        extras: dict[str, str] = {}
        return _build_in_session(
            ctx, args, prepared, patterns, extras, query, headers, stdin_df, (secrets, agents)
        )
    import tempfile  # a Dockerfile from elsewhere is served from a scratch file

    with tempfile.TemporaryDirectory(prefix="dockyard-build-") as scratch:
        extras = _session_extras(prepared, scratch)
        return _build_in_session(
            ctx, args, prepared, patterns, extras, query, headers, stdin_df, (secrets, agents)
        )


def _build_in_session(
    ctx: Context,
    args: argparse.Namespace,
    prepared: Any,
    patterns: list[str],
    extras: dict[str, str],
    query: list[tuple[str, str]],
    headers: dict[str, str],
    stdin_df: bytes | None,
    mounts: tuple[dict[str, bytes], dict[str, str]],
) -> int:
    from dockyard.cli.build_session import BuildSession, SessionRefused

    secrets, agents = mounts
    try:
        with BuildSession(
            ctx.client,
            prepared.root,
            excludes=patterns,
            extras=extras,
            secrets=secrets,
            agents=agents,
        ) as session:
            # moby's legacy builder with a session-served context: only what changed
            # since the daemon's kept copy of this directory travels
            session_query = [*query, ("remote", "client-session"), ("session", session.id)]

            def post_session() -> Any:
                try:
                    return ctx.client.request("POST", "/build", session_query, headers=headers)
                except APIError as exc:
                    if exc.status != 400 or "session" not in exc.message or secrets or agents:
                        raise
                    raise SessionRefused(exc.message) from None

            # docker's line: the size of the tar it would have sent
            return _show_build(ctx, args, post_session, session.tar_size)
    except SessionRefused:
        if secrets or agents:
            raise CommandError(
                "--secret and --ssh need a daemon that serves build sessions"
            ) from None
    # a daemon without sessions for the legacy builder (dockerd's refuses them): the tar
    return _build_from_tar(ctx, args, headers, stdin_df)


def _build_from_tar(
    ctx: Context, args: argparse.Namespace, headers: dict[str, str], stdin_df: bytes | None
) -> int:
    from dockyard.cli import build_context as bc

    try:
        prepared, chunks = bc.pack(args.path, None if stdin_df is not None else args.file, stdin_df)
    except bc.ContextError as exc:
        raise CommandError(f"unable to prepare context: {exc}") from None
    counted = _Counted(chunks)
    if getattr(args, "compress", False):
        # --compress: the context travels gzipped (the daemon detects the compression); the
        # "Sending" line counts what is sent, as build.go's progress reader does.
        counted = _Counted(_gzip_chunks(counted.chunks))
    headers = {**headers, "Content-Type": "application/x-tar"}
    query = _build_query(args, prepared.dockerfile)

    def post() -> Any:
        try:
            return ctx.client.request("POST", "/build", query, body=counted, headers=headers)
        except bc.ContextError as exc:
            raise CommandError(f"error checking context: {exc}") from None

    return _show_build(ctx, args, post, lambda: counted.total)


def _show_build(
    ctx: Context, args: argparse.Namespace, post: Callable[[], Any], sent: Callable[[], int]
) -> int:
    """Send the build request (`post`) and print its stream as docker's legacy client;
    `sent` is the size the "Sending build context" line shows."""
    from dockyard.cli.streams import StreamError, format_message, iter_messages, response_chunks

    def sending() -> str:
        # streamformatter's raw progress line ends in "\r"; the last update adds a status
        # line "\r\n" (measured: docker CLI 28 writes "…  2.048kB\r\r\n" when not a terminal)
        return f"Sending build context to Docker daemon  {human_size(sent(), 4)}\r\r\n"

    try:
        resp = post()
    except APIError:
        if args.quiet:
            ctx.err.write(sending())  # build.go: -q shows its buffered progress on failure
        raise
    out = ctx.out if not args.quiet else None
    if out is not None:
        ctx.write(sending())
    quiet_buf: list[str] = [] if out is not None else [sending()]
    image_id = ""
    try:
        for msg in iter_messages(response_chunks(resp)):
            aux = msg.get("aux")
            if isinstance(aux, dict) and aux.get("ID"):
                image_id = str(aux["ID"])
            text = format_message(msg)
            if not text:
                continue
            if out is None:
                quiet_buf.append(text)
            else:
                ctx.write(text)
    except StreamError as exc:
        if quiet_buf:
            ctx.err.write("".join(quiet_buf))
        ctx.warn(str(exc))
        return exc.code or 1  # the failed step's status, as docker build exits with it
    finally:
        resp.close()
    if getattr(args, "iidfile", None) and image_id:
        with open(args.iidfile, "w") as f:  # build.go writes the ID once the build is done
            f.write(image_id)
    if args.quiet:
        # The daemon answers q=1 with just the ID as a stream line (anchors §2.1).
        ctx.write("".join(quiet_buf[1:]) if quiet_buf[1:] else image_id + "\n")
    return 0


def _require_experimental(ctx: Context, flag: str) -> None:
    """build.go: --squash needs a daemon with experimental features (the ping says)."""
    if ctx.client.ping().get("docker-experimental", "false") != "true":
        raise CommandError(
            f"{flag} is only supported on a Docker daemon with experimental features enabled"
        )


def cmd_tag(ctx: Context, args: argparse.Namespace) -> int:
    repo, tag = normalize_image_ref(args.target)
    if tag.startswith("sha256:"):
        raise CommandError(f"refusing to create a tag with a digest reference: {args.target}")
    ctx.client.call("POST", f"/images/{quote_name(args.source)}/tag", {"repo": repo, "tag": tag})
    return 0


def cmd_rmi(ctx: Context, args: argparse.Namespace) -> int:
    from dockyard.cli.flags import require_platform_api

    require_platform_api(ctx, "rmi", args.platform)
    query: dict[str, str] = {}
    if args.force:
        query["force"] = "1"
    if args.no_prune:
        query["noprune"] = "1"
    failed = False
    for name in args.images:
        try:
            data = ctx.client.call("DELETE", f"/images/{quote_name(name)}", query or None)
        except APIError as exc:
            ctx.warn(f"Error response from daemon: {exc.message}")
            failed = True
            continue
        for item in cjson.loads(data or b"[]") or []:
            if item.get("Untagged"):
                ctx.write(f"Untagged: {item['Untagged']}\n")
            if item.get("Deleted"):
                ctx.write(f"Deleted: {item['Deleted']}\n")
    return 1 if failed else 0


def _file_chunks(f: IO[bytes], size: int = 1 << 16) -> Iterator[bytes]:
    while True:
        data = f.read(size)
        if not data:
            return
        yield data


def _print_stream(ctx: Context, resp: Any, to_err: bool = False) -> dict[str, Any]:
    """Print a JSON-message stream as docker does off a terminal; return the last aux."""
    from dockyard.cli.streams import StreamError, format_message, iter_messages, response_chunks

    aux: dict[str, Any] = {}
    try:
        for msg in iter_messages(response_chunks(resp)):
            if isinstance(msg.get("aux"), dict):
                aux = msg["aux"]
            text = format_message(msg)
            if text:
                (ctx.warn if to_err else ctx.write)(text.rstrip("\n") if to_err else text)
    except StreamError as exc:
        raise CommandError(str(exc)) from None
    finally:
        resp.close()
    return aux


def _open_input(path: str) -> IO[bytes]:
    if path == "-":
        return sys.stdin.buffer
    try:
        return open(path, "rb")
    except OSError as exc:
        raise CommandError(f"open {path}: {exc.strerror}") from None


def _upload_tar(ctx: Context, path: str, endpoint: str, query: Any) -> None:
    """Stream a tarball (a file, or stdin for `-`) to `endpoint` and show its progress."""
    f = _open_input(path)
    try:
        resp = ctx.client.request(
            "POST",
            endpoint,
            query,
            body=_file_chunks(f),
            headers={"Content-Type": "application/x-tar"},
        )
        _print_stream(ctx, resp)
    finally:
        if f is not sys.stdin.buffer:
            f.close()


def cmd_import(ctx: Context, args: argparse.Namespace) -> int:
    query: list[tuple[str, str]] = [("fromSrc", "-")]
    if args.reference:
        repo, tag = normalize_image_ref(args.reference)
        query += [("repo", repo), ("tag", tag)]
    if args.message:
        query.append(("message", args.message))
    for change in args.change:
        query.append(("changes", change))
    if args.platform:
        from dockyard.cli.flags import check_native_platform

        # the daemon imports for its own platform only: that one is accepted, others refused
        check_native_platform("import", args.platform)
    _upload_tar(ctx, args.file, "/images/create", query)
    return 0


def cmd_history(ctx: Context, args: argparse.Namespace) -> int:
    from dockyard.cli.flags import require_platform_api

    require_platform_api(ctx, "history", args.platform)
    entries = ctx.client.get_json(f"/images/{quote_name(args.image)}/history") or []
    fmt = args.format or ""
    if args.quiet:
        fmt = "{{.ID}}"  # history.go: -q wins over --format
    if fmt in ("", "table") and args.human:
        ctx.write(history_table(entries, time.time(), trunc=not args.no_trunc))
        return 0
    from dockyard.cli import contexts as cx
    from dockyard.cli import formatter

    now = time.time()
    rows = [cx.HistoryContext(e, not args.no_trunc, args.human, now) for e in entries]
    # history.go: without -H the CREATED column holds CreatedAt, and its header says so
    header = cx.HISTORY_HEADER | ({} if args.human else {"CreatedSince": "CREATED AT"})
    ctx.write(formatter.write(fmt or cx.HISTORY_TABLE, rows, header))
    return 0


def cmd_save(ctx: Context, args: argparse.Namespace) -> int:
    from dockyard.cli.flags import require_platform_api
    from dockyard.cli.streams import response_chunks

    require_platform_api(ctx, "save", args.platform)
    if not args.output and os.isatty(1):
        raise CommandError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    query = [("names", n) for n in args.images]
    resp = ctx.client.request("GET", "/images/get", query)
    tmp = f"{args.output}.tmp-{os.getpid()}" if args.output else ""
    try:
        with open(tmp, "wb") if tmp else os.fdopen(os.dup(1), "wb") as f:
            for chunk in response_chunks(resp):
                f.write(chunk)
        if tmp:
            os.replace(tmp, args.output)
    except BaseException:
        if tmp and os.path.exists(tmp):
            os.unlink(tmp)
        raise
    finally:
        resp.close()
    return 0


def cmd_load(ctx: Context, args: argparse.Namespace) -> int:
    from dockyard.cli.flags import require_platform_api

    require_platform_api(ctx, "load", args.platform)
    path = args.input or "-"
    if path == "-" and os.isatty(0):
        raise CommandError(
            "requested load from stdin, but stdin is empty (use -i FILE or redirect)"
        )
    query = {"quiet": "1"} if args.quiet or not os.isatty(1) else None
    _upload_tar(ctx, path, "/images/load", query)
    return 0


def cmd_pull(ctx: Context, args: argparse.Namespace) -> int:
    repo, tag = normalize_image_ref(args.image)
    query = {"fromImage": repo, "tag": tag}
    if args.platform:
        query["platform"] = args.platform
    resp = ctx.client.request("POST", "/images/create", query, headers=_REGISTRY_AUTH)
    _print_stream(ctx, resp)
    sep = "@" if tag.startswith("sha256:") else ":"
    if not args.quiet:
        ctx.write(f"{repo}{sep}{tag}\n")
    return 0


def cmd_push(ctx: Context, args: argparse.Namespace) -> int:
    repo, tag = normalize_image_ref(args.image)
    query = {"tag": tag} if ":" in args.image.rsplit("/", 1)[-1] else {}
    resp = ctx.client.request(
        "POST", f"/images/{quote_name(repo)}/push", query or None, headers=_REGISTRY_AUTH
    )
    _print_stream(ctx, resp)
    return 0
