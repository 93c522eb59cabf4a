"""What every command gets: the daemon client (autostarting on first use) and stdio."""

from __future__ import annotations

import os
import sys

from dockyard.cli.client import DEFAULT_HOST, DEFAULT_ROOT, Client, TLSSettings, parse_host

TYPE_CHECKING = False  # typing itself costs ~1.5 ms of start-up; mypy honours this name

if TYPE_CHECKING:
    from typing import IO


class CommandError(Exception):
    """A failure already worded for the user; `code` is the exit status."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class TLSFlags:
    """The global --tls, --tlsverify, --tlscacert, --tlscert, --tlskey flags as given."""

    def __init__(
        self,
        tls: bool = False,
        verify: bool = False,
        ca: str | None = None,
        cert: str | None = None,
        key: str | None = None,
    ) -> None:
        self.tls = tls
        self.verify = verify
        self.ca = ca
        self.cert = cert
        self.key = key


def tls_settings(flags: TLSFlags) -> TLSSettings | None:
    """The docker CLI's rules: --tlsverify or a non-empty DOCKER_TLS_VERIFY verifies the
    daemon, --tls (or DOCKER_TLS) only encrypts; the files default to DOCKER_CERT_PATH's (else
    ~/.docker's) ca.pem, cert.pem and key.pem. None when TLS is off."""
    env = os.environ
    verify = flags.verify or bool(env.get("DOCKER_TLS_VERIFY"))
    if not (verify or flags.tls or env.get("DOCKER_TLS")):
        return None
    base = env.get("DOCKER_CERT_PATH") or os.path.join(os.path.expanduser("~"), ".docker")
    return TLSSettings(
        verify,
        flags.ca or os.path.join(base, "ca.pem"),
        flags.cert or os.path.join(base, "cert.pem"),
        flags.key or os.path.join(base, "key.pem"),
    )


def _from_context(
    flag: str | None, tls: TLSSettings | None
) -> tuple[str | None, str, TLSSettings | None]:
    """(host, context name, TLS) of the docker CLI context in use; no host for `default`."""
    from dockyard.cli import contextstore as store

    name = store.current_name(flag)
    if name == store.DEFAULT:
        return None, name, tls
    try:
        host, skip, files = store.endpoint(name)
    except store.ContextError as exc:
        raise CommandError(
            f"Failed to initialize: unable to resolve docker endpoint: {exc}"
        ) from None
    if files:
        if not skip and "ca" not in files:
            raise CommandError(
                f'context "{name}": TLS without a CA file (system roots) is not supported'
            )
        tls = TLSSettings(
            not skip, files.get("ca", ""), files.get("cert", ""), files.get("key", "")
        )
    return host, name, tls


class Context:
    """Per-invocation state (a plain class: see client.Host on dataclasses and start-up)."""

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        root: str = DEFAULT_ROOT,
        autostart: bool = True,
        out: IO[str] | None = None,
        err: IO[str] | None = None,
    ) -> None:
        self.host = host
        self.root = root
        self.autostart = autostart
        self.out: IO[str] = out if out is not None else sys.stdout
        self.err: IO[str] = err if err is not None else sys.stderr
        self._client: Client | None = None
        self.tls: TLSSettings | None = None
        self.context_name = "default"  # the docker CLI context in use (cli/contextstore.py)

    @classmethod
    def from_env(
        cls,
        host: str | None,
        root: str | None,
        tls_flags: TLSFlags | None = None,
        context: str | None = None,
    ) -> Context:
        """--host, else the docker CLI context (--context, DOCKER_CONTEXT, `context use`) when
        DOCKER_HOST is not set, else DOCKYARD_HOST, else DOCKER_HOST (as the docker CLI reads
        it), else the default socket; TLS from the --tls* flags and DOCKER_TLS_VERIFY /
        DOCKER_CERT_PATH, or from the context's TLS files."""
        env = os.environ
        if host and context:
            raise CommandError("conflicting options: cannot specify both --host and --context")
        name = "default"
        tls = tls_settings(tls_flags or TLSFlags())
        if not host and (context or not (env.get("DOCKYARD_HOST") or env.get("DOCKER_HOST"))):
            host, name, tls = _from_context(context, tls)
        # A daemon is started on first use only for dockyard's own settings (the default
        # socket, DOCKYARD_HOST, --host): a socket named by DOCKER_HOST or a docker context
        # is docker's setting, and the docker CLI never starts a daemon for it.
        docker_named = name != "default" or (
            not (host or env.get("DOCKYARD_HOST")) and bool(env.get("DOCKER_HOST"))
        )
        resolved = host or env.get("DOCKYARD_HOST") or env.get("DOCKER_HOST") or DEFAULT_HOST
        root = root or env.get("DOCKYARD_ROOT")
        # A socket of one's own with no root named: the default root belongs to the default
        # socket's daemon, and starting a second daemon on it (its records, bridges and
        # iptables chains) from a mistyped or stopped DOCKYARD_HOST once did real harm. Such
        # a command says it cannot connect, as the docker CLI does.
        own_socket_without_root = resolved != DEFAULT_HOST and not root
        ctx = cls(
            host=resolved,
            root=root or DEFAULT_ROOT,
            autostart=not (docker_named or own_socket_without_root),
        )
        ctx.tls = tls
        ctx.context_name = name
        return ctx

    @property
    def client(self) -> Client:
        if self._client is None:
            try:
                parsed = parse_host(self.host)
            except ValueError as exc:
                raise CommandError(str(exc)) from None
            hook = self._autostart if self.autostart and parsed.is_unix else None
            self._client = Client(parsed, on_unreachable=hook, tls=self.tls)
        return self._client

    def _autostart(self) -> bool:
        from dockyard.cli.autostart import AutostartFailed, start_daemon
        from dockyard.cli.client import DaemonPermissionDenied

        if os.geteuid() != 0:
            # The daemon needs root (runc, mounts, bridges): starting one from here could
            # only fail half-way, leaving its pid and lock files behind.
            raise DaemonPermissionDenied(
                "no daemon is running, and starting one needs root privileges"
            )

        try:
            start_daemon(self.host, parse_host(self.host), self.root)
        except AutostartFailed as exc:
            raise CommandError(str(exc), 125) from None
        return True

    def write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def warn(self, text: str) -> None:
        self.err.write(text if text.endswith("\n") else text + "\n")
        self.err.flush()
