"""`run`, `create` and `start -a`: docker/cli's create → attach → wait → start sequence.

The order matters to the daemon (anchors §2.1, pitfalls "The Engine API"): the attach
stream (its own connection, hijacked) and the wait request (`next-exit`, or `removed` with
`--rm`) are both open before `start`; the exit status comes from wait, never the stream.
"""

from __future__ import annotations

import os

from dockyard.cli import cjson
from dockyard.cli.attach import Attachment, escape_keys, join
from dockyard.cli.client import APIError, Client, quote_name
from dockyard.cli.context import CommandError, Context
from dockyard.cli.refs import normalize_image_ref
from dockyard.cli.runconfig import RunFlags, UsageError, build_create_body
from dockyard.cli.streams import StreamError, iter_messages, response_chunks
from dockyard.threadlite import Event, Thread

TYPE_CHECKING = False  # typing itself costs ~1.5 ms of start-up; mypy honours this name

if TYPE_CHECKING:
    import signal
else:  # the C module: `signal` builds its enums at import (imports enum, ~2 ms)
    import _signal as signal

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable
    from typing import Any


# Signals the CLI proxies to the container (docker/cli signals.go skips SIGCHLD, SIGPIPE,
# SIGURG and handles SIGWINCH as a resize).
PROXIED_SIGNALS = ("SIGHUP", "SIGINT", "SIGQUIT", "SIGTERM", "SIGUSR1", "SIGUSR2", "SIGALRM")


def start_error_status(message: str) -> int:
    """docker/cli run.go runStartContainerErr: 127 not found, 126 cannot invoke, else 125."""
    msg = message.removeprefix("Error response from daemon: ")
    if (
        "executable file not found" in msg
        or "no such file or directory" in msg
        or "system cannot find the file specified" in msg
    ):
        return 127
    if "permission denied" in msg or "is a directory" in msg:
        return 126
    return 125


def report_error(ctx: Context, command: str, message: str) -> None:
    """docker CLI 28's withHelp (container/run.go): `docker: <err>`, a blank line and a pointer
    to --help; run reports every failure so, create its flag errors."""
    ctx.warn(f"dockyard: {message}\n\nRun 'dockyard {command} --help' for more information")


def flags_from_args(args: argparse.Namespace) -> RunFlags:
    init: bool | None = True if args.init else None
    return RunFlags(
        image=args.image,
        args=tuple(args.command),
        detach=getattr(args, "detach", False),
        interactive=args.interactive,
        tty=args.tty,
        auto_remove=args.rm,
        env=tuple(args.env),
        env_files=tuple(args.env_file),
        workdir=args.workdir or "",
        user=args.user or "",
        entrypoint=args.entrypoint,
        network=args.network or "default",
        volumes=tuple(args.volume),
        publish=tuple(args.publish),
        expose=tuple(args.expose),
        hostname=args.hostname or "",
        labels=(*_label_files(args.label_file), *args.label),
        memory=args.memory or "",
        cpus=args.cpus or "",
        pids_limit=args.pids_limit,
        read_only=args.read_only,
        cap_add=tuple(args.cap_add),
        cap_drop=tuple(args.cap_drop),
        init=init,
        privileged=args.privileged,
        stop_signal=args.stop_signal or "",
        tmpfs=tuple(args.tmpfs),
        extra=_extra(args),
    )


def _label_files(paths: list[str]) -> list[str]:
    """--label-file: opts.ReadKVStrings, one label a line, `#` comments and blanks skipped."""
    out: list[str] = []
    for path in paths:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as exc:
            raise UsageError(f"open {path}: {exc.strerror}") from None
        for line in text.splitlines():
            line = line.lstrip()
            if line and not line.startswith("#"):
                out.append(line)
    return out


def _check_client_flags(args: argparse.Namespace) -> None:
    """Flags the CLI itself acts on; what it cannot do it refuses by name. A daemon-platform
    refusal is a plain error (status 1); the rest are usage errors (UsageError: 125, with
    help)."""
    from dockyard.cli.runflags import check_platform_flags

    check_platform_flags(args)


def _check_options(args: argparse.Namespace) -> None:
    """opts.parse and validatePullOpt's checks, which docker reports with its --help pointer."""
    pull = getattr(args, "pull", None) or "missing"
    if pull not in ("always", "missing", "never"):
        raise UsageError(
            f'invalid pull option: \'{pull}\': must be one of "always", "missing" or "never"'
        )
    for stream in getattr(args, "attach", None) or []:
        if stream.lower() not in ("stdin", "stdout", "stderr"):
            raise UsageError(
                f'invalid argument {stream!r} for "-a, --attach" flag: valid streams are STDIN, STDOUT and STDERR'
            )
    if getattr(args, "attach", None) and getattr(args, "detach", False):
        raise UsageError("Conflicting options: -a and -d")
    restart = (getattr(args, "restart", None) or "").partition(":")[0]
    if args.rm and restart not in ("", "no"):
        # opts.go: AutoRemove with any policy but "no"
        raise UsageError("conflicting options: cannot specify both --restart and --rm")
    cidfile = getattr(args, "cidfile", None)
    if cidfile and os.path.exists(cidfile):
        raise CommandError(
            f"container ID file found, make sure the other container isn't running or delete {cidfile}",
            125,
        )


def _extra(args: argparse.Namespace) -> dict[str, Any]:
    from dockyard.cli.runflags import extra_run_flags

    return extra_run_flags(args)


def pull_image(ctx: Context, image: str, out: Callable[[str], None]) -> None:
    """`POST /images/create?fromImage=&tag=`; progress lines go to `out`."""
    from dockyard.cli.commands.registry import auth_headers
    from dockyard.cli.streams import format_message

    repo, tag = normalize_image_ref(image)
    resp = ctx.client.request(
        "POST",
        "/images/create",
        {"fromImage": repo, "tag": tag},
        headers=auth_headers(repo),  # credentials from config.json / helpers, as docker's
    )
    try:
        for msg in iter_messages(response_chunks(resp)):
            if (msg.get("progressDetail") or {}).get("total"):
                continue  # progress updates stay off a non-terminal, as docker's do
            text = format_message(msg)
            if text:
                out(text)
    finally:
        resp.close()


def create_container(
    ctx: Context,
    body: dict[str, Any],
    name: str | None,
    *,
    platform: str = "",
    pull: str = "missing",
    quiet: bool = False,
) -> str:
    """create; on 404 print "Unable to find image", pull, and create again (create.go).

    `pull` is --pull: "always" pulls first, "never" does not pull a missing image.
    """
    query = {"name": name} if name else {}
    if platform:
        query["platform"] = platform
    out = (lambda _text: None) if quiet else ctx.warn
    if pull == "always":
        pull_image(ctx, body["Image"], out)
    try:
        resp = ctx.client.post_json("/containers/create", query or None, body)
    except APIError as exc:
        if exc.status != 404 or pull != "missing":
            raise
        repo, tag = normalize_image_ref(body["Image"])
        sep = "@" if tag.startswith("sha256:") else ":"
        ctx.warn(f"Unable to find image '{repo}{sep}{tag}' locally")
        pull_image(ctx, body["Image"], out)
        resp = ctx.client.post_json("/containers/create", query or None, body)
    for warning in (resp or {}).get("Warnings") or []:
        ctx.warn(f"WARNING: {warning}")
    return str(resp["Id"])


def _create(ctx: Context, args: argparse.Namespace, body: dict[str, Any]) -> str:
    cid = create_container(
        ctx,
        body,
        args.name,
        platform=getattr(args, "platform", None) or "",
        pull=getattr(args, "pull", None) or "missing",
        quiet=bool(getattr(args, "quiet", False)),
    )
    if getattr(args, "cidfile", None):
        with open(args.cidfile, "w") as f:  # create.go writes it once the container exists
            f.write(cid)
    return cid


def _api_socket(ctx: Context, body: dict[str, Any]) -> None:
    """--use-api-socket: bind-mount the daemon's socket at /var/run/docker.sock (create.go)."""
    from dockyard.cli.client import parse_host

    host = parse_host(ctx.host)
    if not host.is_unix:
        raise CommandError("--use-api-socket needs a daemon on a unix socket", 125)
    mounts = body["HostConfig"].setdefault("Mounts", []) or []
    mounts.append(
        {
            "Type": "bind",
            "Source": host.address,
            "Target": "/var/run/docker.sock",
            "BindOptions": {},
        }
    )
    body["HostConfig"]["Mounts"] = mounts


def _apply_attach(body: dict[str, Any], streams: list[str]) -> None:
    """-a/--attach: attach only the named streams (run.go/opts.go)."""
    if not streams:
        return
    wanted = {s.lower() for s in streams}
    body["AttachStdin"] = "stdin" in wanted
    body["AttachStdout"] = "stdout" in wanted
    body["AttachStderr"] = "stderr" in wanted
    if "stdin" in wanted:
        body["OpenStdin"] = body["StdinOnce"] = True


class _Waiter(Thread):
    """`POST /containers/{id}/wait?condition=…`, kept open on its own connection."""

    def __init__(self, client: Client, cid: str, condition: str) -> None:
        super().__init__(self._wait)
        self.client = client
        self.cid = cid
        self.condition = condition
        self.sent = Event()
        self.status = 125
        self.error = ""

    def _wait(self) -> None:
        try:
            self._run()
        except Exception as exc:  # reported by the caller; never kills the CLI
            self.error = exc.message if isinstance(exc, APIError) else str(exc)
            self.status = 125
        finally:
            self.sent.set()

    def _run(self) -> None:
        from dockyard.cli.client import error_message

        path = f"/containers/{quote_name(self.cid)}/wait"
        exchange = self.client.send("POST", path, {"condition": self.condition})
        # The daemon answers the header once the waiter is registered (as dockerd does), so
        # waiting for it before `start` means even an instant exit cannot be missed.
        resp = exchange.response()
        self.sent.set()
        data = resp.read()
        resp.close()
        if resp.status >= 400:
            raise APIError(resp.status, error_message(resp.status, data))
        doc = cjson.loads(data)
        err = doc.get("Error")
        if err and err.get("Message"):
            self.error = f"Error waiting for container: {err['Message']}"
            self.status = 125
            return
        self.status = int(doc.get("StatusCode", 125))


class SignalProxy:
    """Forward the signals we receive to `POST /containers/{id}/kill?signal=NAME`."""

    def __init__(self, client: Client, cid: str) -> None:
        self.client = client
        self.cid = cid
        self.saved: dict[int, Any] = {}

    def _forward(self, signum: int, _frame: Any) -> None:
        # docker sends moby's SignalMap names, which lack the SIG prefix ("INT").
        import signal as named

        name = named.Signals(signum).name.removeprefix("SIG")

        def send() -> None:
            import contextlib

            with contextlib.suppress(Exception):
                self.client.call(
                    "POST", f"/containers/{quote_name(self.cid)}/kill", {"signal": name}
                )

        Thread(target=send).start()

    def install(self) -> None:
        for name in PROXIED_SIGNALS:
            sig = getattr(signal, name)
            self.saved[sig] = signal.signal(sig, self._forward)

    def restore(self) -> None:
        for sig, handler in self.saved.items():
            signal.signal(sig, handler)
        self.saved.clear()


def attach_start_wait(
    ctx: Context,
    cid: str,
    *,
    tty: bool,
    stdin: bool,
    auto_remove: bool,
    sig_proxy: bool,
    command: str,
    detach_keys: str = "",
    streams: tuple[bool, bool] = (True, True),
) -> int:
    """attach → wait → start → copy streams → exit status (run.go runContainer)."""
    client = ctx.client
    proxy = SignalProxy(client, cid) if sig_proxy else None
    if proxy:
        proxy.install()
    try:
        query = [("stream", "1")]
        query += [(n, "1") for n, on in zip(("stdout", "stderr"), streams, strict=True) if on]
        if stdin:
            query.append(("stdin", "1"))
        if detach_keys:
            query.append(("detachKeys", detach_keys))
        # The wait and the attach on their own connections at once, both before the start
        # (as docker's run.go orders them), so neither waits for the other's round trip.
        waiter = _Waiter(client, cid, "removed" if auto_remove else "next-exit")
        waiter.start()
        stream = client.hijack(f"/containers/{quote_name(cid)}/attach", query)
        waiter.sent.wait()
        try:
            client.call("POST", f"/containers/{quote_name(cid)}/start")
        except APIError as exc:
            stream.close()
            if auto_remove:
                join(waiter)
            if command != "run":
                # start.go returns the daemon's error as it is: status 1
                ctx.warn(f"Error response from daemon: {exc.message}")
                return 1
            report_error(ctx, command, f"Error response from daemon: {exc.message}")
            return start_error_status(exc.message)
        attachment = Attachment(
            client,
            stream,
            tty=tty,
            stdin=stdin,
            resize_path=f"/containers/{quote_name(cid)}/resize",
            detach_keys=escape_keys(detach_keys, ctx.warn),
        )
        error = attachment.run()
        if error:
            ctx.warn(f"Error: error from daemon in stream: {error}")
        if attachment.detached:
            return 0  # run.go: the escape sequence is not an error for run/start
        join(waiter)
        if waiter.error:
            ctx.warn(waiter.error)
        return waiter.status
    finally:
        if proxy:
            proxy.restore()


def cmd_run(ctx: Context, args: argparse.Namespace) -> int:
    _check_client_flags(args)
    try:
        _check_options(args)
        flags = flags_from_args(args)
        body = build_create_body(flags, os.environ, os.getcwd())
    except (UsageError, OSError) as exc:
        report_error(ctx, "run", str(exc))
        return 125
    _apply_attach(body, args.attach)
    if args.use_api_socket:
        _api_socket(ctx, body)
    if not flags.detach and flags.interactive and flags.tty and not os.isatty(0):
        raise CommandError("the input device is not a TTY", 1)
    try:
        cid = _create(ctx, args, body)
    except APIError as exc:
        report_error(ctx, "run", f"Error response from daemon: {exc.message}")
        return start_error_status(exc.message)
    except StreamError as exc:
        report_error(ctx, "run", str(exc))
        return 125
    if flags.detach:
        return _run_detached(ctx, cid, flags.auto_remove)
    return attach_start_wait(
        ctx,
        cid,
        tty=flags.tty,
        stdin=bool(body.get("AttachStdin")),
        auto_remove=flags.auto_remove,
        sig_proxy=args.sig_proxy,
        command="run",
        detach_keys=args.detach_keys,
        streams=(bool(body.get("AttachStdout")), bool(body.get("AttachStderr"))),
    )


def _run_detached(ctx: Context, cid: str, auto_remove: bool) -> int:
    # docker opens the wait stream even for -d, then drops it once the ID is printed.
    waiter = _Waiter(ctx.client, cid, "removed" if auto_remove else "next-exit")
    waiter.start()
    waiter.sent.wait()
    try:
        ctx.client.call("POST", f"/containers/{quote_name(cid)}/start")
    except APIError as exc:
        report_error(ctx, "run", f"Error response from daemon: {exc.message}")
        return start_error_status(exc.message)
    ctx.write(cid + "\n")
    return 0


def cmd_create(ctx: Context, args: argparse.Namespace) -> int:
    _check_client_flags(args)
    try:
        _check_options(args)
        args.detach = True
        flags = flags_from_args(args)
        body = build_create_body(flags, os.environ, os.getcwd())
    except (UsageError, OSError) as exc:
        report_error(ctx, "create", str(exc))
        return 125
    # create keeps the attach flags docker would use on a later `start -a`.
    body["AttachStdout"] = body["AttachStderr"] = True
    if args.interactive:
        body["AttachStdin"] = body["StdinOnce"] = True
    _apply_attach(body, args.attach)
    if args.use_api_socket:
        _api_socket(ctx, body)
    try:
        cid = _create(ctx, args, body)
    except APIError as exc:
        # create.go returns the daemon's error as it is: status 1, no pointer to --help
        ctx.warn(f"Error response from daemon: {exc.message}")
        return 1
    ctx.write(cid + "\n")
    return 0


def cmd_start(ctx: Context, args: argparse.Namespace) -> int:
    if args.checkpoint or args.checkpoint_dir:
        raise CommandError("dockyard start: --checkpoint is not supported (no checkpoints)")
    if args.attach or args.interactive:
        if len(args.containers) > 1:
            raise CommandError("you cannot start and attach multiple containers at once")
        name = args.containers[0]
        info = ctx.client.get_json(f"/containers/{quote_name(name)}/json")
        config = info.get("Config") or {}
        return attach_start_wait(
            ctx,
            str(info["Id"]),
            tty=bool(config.get("Tty")),
            stdin=bool(args.interactive and config.get("OpenStdin")),
            auto_remove=bool((info.get("HostConfig") or {}).get("AutoRemove")),
            sig_proxy=True,
            command="start",
            detach_keys=args.detach_keys,
        )
    failed: list[str] = []
    for name in args.containers:
        try:
            ctx.client.call("POST", f"/containers/{quote_name(name)}/start")
            ctx.write(name + "\n")
        except APIError as exc:
            ctx.warn(f"Error response from daemon: {exc.message}")
            failed.append(name)
    if failed:
        # start.go names only the containers that failed, with its own "Error: " prefix
        raise CommandError("Error: failed to start containers: " + ", ".join(failed))
    return 0
