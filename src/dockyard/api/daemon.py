"""`dockyard daemon`: run the engine and serve the Engine API in the foreground."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import stat
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

from dockyard.rootperms import make_root
from dockyard.statefile import write_atomic

if TYPE_CHECKING:
    from dockyard.registry.config import RegistryConfig

DEFAULT_ROOT = "/var/lib/dockyard"
DEFAULT_HOST = "unix:///run/dockyard/dockyard.sock"
DEFAULT_CONFIG = "/etc/dockyard/daemon.json"


def parse_args(argv: list[str]) -> SimpleNamespace:
    """The daemon's options, in an object of no argparse class: main() unloads argparse
    once they are parsed (unload_argparse)."""
    import argparse

    p = argparse.ArgumentParser(prog="dockyard daemon", description="Run the dockyard daemon")
    p.add_argument("--root", default=os.environ.get("DOCKYARD_ROOT", DEFAULT_ROOT))
    p.add_argument(
        "-H",
        "--host",
        action="append",
        default=None,
        help="unix:///path or tcp://ADDRESS:PORT to serve (repeatable; default "
        f"$DOCKYARD_HOST or {DEFAULT_HOST})",
    )
    # dockerd's TLS flags for tcp:// hosts (api/listeners.py)
    p.add_argument("--tls", action="store_true", help="Use TLS; implied by --tlsverify")
    p.add_argument("--tlsverify", action="store_true", help="Use TLS and verify the remote")
    p.add_argument("--tlscacert", default=None, help="Trust certs signed only by this CA")
    p.add_argument("--tlscert", default=None, help="Path to TLS certificate file")
    p.add_argument("--tlskey", default=None, help="Path to TLS key file")
    p.add_argument("--runtime", default="runc", help="OCI runtime binary (runc or crun)")
    p.add_argument("--debug", "-D", action="store_true", help="Enable debug mode")
    p.add_argument(
        "-l",
        "--log-level",
        default=None,
        help='Set the logging level ("debug"|"info"|"warn"|"error"|"fatal") (default "info")',
    )
    # Registry settings, as dockerd takes them (flags, or keys of the --config-file JSON).
    p.add_argument(
        "--config-file",
        default=None,
        help=f"daemon configuration JSON as dockerd's daemon.json (default {DEFAULT_CONFIG} if present)",
    )
    p.add_argument(
        "--registry-mirror",
        action="append",
        default=[],
        metavar="URL",
        help="preferred Docker Hub mirror (repeatable)",
    )
    p.add_argument(
        "--insecure-registry",
        action="append",
        default=[],
        metavar="HOST:PORT|CIDR",
        help="registry reachable over plain HTTP or unverified TLS (repeatable)",
    )
    p.add_argument("--max-concurrent-downloads", type=int, default=None)
    p.add_argument("--max-concurrent-uploads", type=int, default=None)
    p.add_argument(
        "--registry-certs-dir",
        default=None,
        help="per-registry CA bundles as <dir>/<host:port>/ca.crt (default /etc/docker/certs.d)",
    )
    p.add_argument(
        "--context-cache-size",
        default=None,
        metavar="SIZE",
        help="disk kept for the last synced copy of each build context, least recently "
        "used evicted (default 2g; b/k/m/g suffixes)",
    )
    args = p.parse_args(argv)
    args.host = args.host or [os.environ.get("DOCKYARD_HOST") or DEFAULT_HOST]
    if args.context_cache_size is not None:
        args.context_cache_size = _size(args.context_cache_size, "--context-cache-size")
    return SimpleNamespace(**vars(args))


def _size(value: str, flag: str) -> int:
    units = {"b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    v = value.strip().lower().removesuffix("ib").removesuffix("b") or "x"
    try:
        n = int(float(v[:-1]) * units[v[-1]]) if v[-1] in units else int(v)
    except ValueError:
        n = -1
    if n < 0:
        raise SystemExit(f"dockyard daemon: invalid {flag} {value!r}: a size such as 2g")
    return n


def _config_doc(args: SimpleNamespace) -> dict[str, object]:
    """The --config-file JSON (dockerd's daemon.json), or {} when there is none."""
    path = Path(args.config_file) if args.config_file else Path(DEFAULT_CONFIG)
    if not (args.config_file or path.exists()):
        return {}
    import json

    try:
        loaded = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SystemExit(f"dockyard daemon: unable to read configuration {path}: {exc}") from None
    if not isinstance(loaded, dict):
        raise SystemExit(f"dockyard daemon: configuration {path} is not a JSON object")
    return loaded


def registry_config(args: SimpleNamespace) -> RegistryConfig:
    """Flags over the configuration file; dockerd refuses a key given both ways, so do we."""
    from dockyard.registry.config import RegistryConfig

    base = RegistryConfig()
    doc = _config_doc(args)
    flags = {
        "registry-mirrors": args.registry_mirror or None,
        "insecure-registries": args.insecure_registry or None,
        "max-concurrent-downloads": args.max_concurrent_downloads,
        "max-concurrent-uploads": args.max_concurrent_uploads,
        "registry-certs-dir": args.registry_certs_dir,
    }
    for key, value in flags.items():
        if value is None:
            continue
        if key in doc:
            raise SystemExit(
                "dockyard daemon: the following directives are specified both as a flag and "
                f"in the configuration file: {key}"
            )
        doc[key] = value
    from dockyard.errors import InvalidArgument

    try:
        return RegistryConfig.from_daemon_json(doc, base)
    except InvalidArgument as exc:
        raise SystemExit(f"dockyard daemon: {exc}") from None


async def serve(args: SimpleNamespace) -> None:
    from aiohttp import web

    from dockyard.api import listeners as lst
    from dockyard.api import memtrim
    from dockyard.api.server import create_app
    from dockyard.engine.engine import Engine

    reg_config = registry_config(args)
    try:
        hosts = lst.parse_hosts(args.host)
        tls = None
        if hosts.tcp:
            tls = lst.tls_files(
                tls=args.tls,
                verify=args.tlsverify,
                ca=args.tlscacert,
                cert=args.tlscert,
                key=args.tlskey,
            )
            lst.check_tcp(hosts, tls)
        ssl_context = lst.server_context(tls) if tls is not None else None
    except lst.ListenError as exc:
        raise SystemExit(f"dockyard daemon: {exc}") from None
    if os.geteuid() != 0:
        # dockerd's check, before anything is created: runc, overlay mounts and bridges need
        # root, and a half-started daemon would leave its pid and lock files behind.
        raise SystemExit(
            "dockyard daemon needs to be started with root privileges "
            "(dockyard has no rootless mode)"
        )
    sock_path = hosts.unix
    if sock_path is not None:
        _check_socket_path(sock_path)
        sock_path.parent.mkdir(parents=True, exist_ok=True)
    root = Path(args.root)
    make_root(root)  # 0710 root:root before anything lands in it (rootperms.py)
    # One daemon per root and per socket: a second one (an autostart racing a manual start)
    # must not unlink a live socket or share the store.
    locks = [_lock(root / "daemon.lock")]
    if sock_path is not None:
        locks.append(_lock(Path(f"{sock_path}.lock")))
    listener: socket.socket | None = None
    bound: tuple[int, int] = (0, 0)
    engine: Engine | None = None
    runner: web.AppRunner | None = None
    try:
        stale = sock_path is not None and _check_socket_path(sock_path)
        write_atomic(root / "daemon.pid", f"{os.getpid()}\n")
        # Where this daemon listens, for the Python API on this root (Dockyard.open: one
        # writer per root, so a script reaches the daemon that holds it)
        write_atomic(root / "daemon.host", f"unix://{sock_path}\n" if sock_path else "")
        engine = await asyncio.to_thread(
            Engine, Path(args.root), runtime=args.runtime, registry_config=reg_config
        )
        engine.context_cache_cap = args.context_cache_size
        # Cancel a handler when its client goes away (a detached `run` drops its wait
        # stream), and do not let open streams hold shutdown for long.
        app_runner = web.AppRunner(
            create_app(engine),
            access_log=None,
            handle_signals=False,
            handler_cancellation=True,
            shutdown_timeout=3,
        )
        # SIGTERM from the moment the socket exists is a clean shutdown: a client that sees
        # the socket may stop the daemon before its start-up work is done.
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        # Bound once the engine is up (a socket that answers is a daemon that serves), and
        # before the engine's start-up work runs: the umask of `_listen` must not meet other
        # writers. Clients that connect meanwhile wait in the listen backlog.
        if sock_path is not None:
            if stale:
                sock_path.unlink()
            listener = _listen(sock_path)
            st = sock_path.lstat()
            bound = (st.st_dev, st.st_ino)
        await engine.start()  # containers left running by an earlier daemon
        await app_runner.setup()
        runner = app_runner
        if listener is not None:
            await web.SockSite(runner, listener).start()
        for address, port in hosts.tcp:
            try:
                await web.TCPSite(runner, address, port, ssl_context=ssl_context).start()
            except OSError as exc:
                raise SystemExit(
                    f"dockyard daemon: cannot listen on {address}:{port}: {exc}"
                ) from None
        # start-up's imports and the engine's construction (in a worker thread, so in an
        # arena of its own) left free pages behind: 2.4 MiB of RSS (api/memtrim.py)
        memtrim.trim()
        log = logging.getLogger("dockyard")
        where = [str(sock_path)] if sock_path is not None else []
        where += [f"tcp://{a}:{p}{' (TLS)' if ssl_context else ''}" for a, p in hosts.tcp]
        log.info("listening on %s (root %s, log level %s)", ", ".join(where), root, _level_name())
        await stop.wait()
        log.info("shutting down: stopping the API, then the engine")
    finally:
        began = time.monotonic()
        if runner is not None:
            await runner.cleanup()
        api_done = time.monotonic()
        if engine is not None:
            await engine.close()
        logging.getLogger("dockyard").info(
            "shut down: the API in %.2f s, the engine in %.2f s",
            api_done - began,
            time.monotonic() - api_done,
        )
        if listener is not None and sock_path is not None:
            _unlink_own_socket(sock_path, bound)
            listener.close()
        (root / "daemon.pid").unlink(missing_ok=True)
        (root / "daemon.host").unlink(missing_ok=True)
        for fd in locks:
            os.close(fd)


def _check_socket_path(path: Path) -> bool:
    """True when `path` is a stale socket to replace, False when nothing is there.

    Anything else is refused: the daemon deletes only a socket nobody answers on (a
    `--host` naming a user's file must never cost the file).
    """
    try:
        st = path.lstat()
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise SystemExit(f"dockyard daemon: cannot use {path} as the socket: {exc}") from None
    if not stat.S_ISSOCK(st.st_mode):
        raise SystemExit(
            f"dockyard daemon: {path} exists and is not a socket; refusing to replace it "
            "(choose another --host or remove it yourself)"
        )
    probe = socket.socket(socket.AF_UNIX)
    try:
        probe.connect(str(path))
    except ConnectionRefusedError:
        return True  # a socket left by a daemon that is gone
    except OSError as exc:
        raise SystemExit(f"dockyard daemon: cannot probe the socket {path}: {exc}") from None
    else:
        raise SystemExit(f"dockyard daemon: another daemon is listening on {path}")
    finally:
        probe.close()


SOCKET_GROUP = "dockyard"


def socket_gid(name: str = SOCKET_GROUP, group_file: Path = Path("/etc/group")) -> int:
    """The gid of the socket's group (0 when there is none): the group file first, then
    `getent group` for the other databases nsswitch.conf names, as dockerd does (moby's
    idtools.LookupGroup). getent runs in a child: glibc's NSS modules, once loaded, stay
    mapped (libnss_systemd with libcap here, 0.36 MiB of the idle daemon's RSS)."""
    try:
        for line in group_file.read_text().splitlines():
            fields = line.split(":")
            if len(fields) >= 3 and fields[0] == name and fields[2].isdigit():
                return int(fields[2])
    except (OSError, UnicodeDecodeError):
        pass
    import subprocess

    try:
        out = subprocess.run(
            ["getent", "group", name], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return 0
    fields = out.stdout.strip().split(":")
    if out.returncode == 0 and len(fields) >= 3 and fields[2].isdigit():
        return int(fields[2])
    return 0


def _listen(path: Path) -> socket.socket:
    """Bind the API socket with mode 0660, owned by root and the `dockyard` group if any.

    As dockerd's socket belongs to the `docker` group: membership is what grants access.
    The umask covers the bind so the socket is never wider than 0600 before its chmod.
    """
    gid = socket_gid()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        old = os.umask(0o177)
        try:
            sock.bind(str(path))
        finally:
            os.umask(old)
        os.chown(path, 0, gid, follow_symlinks=False)
        os.chmod(path, 0o660)
        sock.listen(512)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _unlink_own_socket(path: Path, bound: tuple[int, int]) -> None:
    """Remove the socket at shutdown only if the path still names the one this daemon bound."""
    with contextlib.suppress(OSError):
        st = path.lstat()
        if (st.st_dev, st.st_ino) == bound and stat.S_ISSOCK(st.st_mode):
            path.unlink()


def _lock(path: Path) -> int:
    import fcntl

    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise SystemExit(f"dockyard daemon: cannot open the lock {path}: {exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise SystemExit(f"dockyard daemon: another daemon holds {path}") from None
    return fd


def _level_name() -> str:
    return logging.getLevelName(logging.getLogger().getEffectiveLevel()).lower()


def log_level(args: SimpleNamespace) -> int:
    """dockerd's rules: `--debug` (or `"debug": true` in the config file) means debug, else
    `--log-level` / `"log-level"`, info by default; a key given both ways is refused."""
    from dockyard.api.requestlog import parse_log_level

    doc = _config_doc(args)
    for key, value in (("debug", args.debug or None), ("log-level", args.log_level)):
        if value is not None and key in doc:
            raise SystemExit(
                "dockyard daemon: the following directives are specified both as a flag and "
                f"in the configuration file: {key}"
            )
    if args.debug or doc.get("debug") is True:
        return logging.DEBUG
    try:
        return parse_log_level(str(args.log_level or doc.get("log-level") or "info"))
    except ValueError as exc:
        raise SystemExit(f"dockyard daemon: {exc}") from None


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    from dockyard.api.leanload import import_aiohttp, unload_argparse

    unload_argparse()
    import_aiohttp()  # before log_level's import of the request log loads it (api/leanload.py)
    try:
        level = log_level(args)
    except SystemExit as exc:
        print(exc.code, file=sys.stderr)
        return 1
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # aiohttp's access logger is off (AppRunner access_log=None): api/requestlog.py writes
    # the request lines; its other loggers stay at warning so debug is ours, not its internals.
    logging.getLogger("aiohttp").setLevel(max(level, logging.WARNING))
    from dockyard.api import memtrim

    memtrim.limit_arenas()  # before asyncio's worker threads exist
    try:
        asyncio.run(serve(args))
    except SystemExit as exc:
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
            return 1
        raise
    return 0


def run(argv: list[str]) -> int:
    """main() as the process's own entry point (`python -m dockyard.api.daemon`, `dockyard
    daemon`): under -OO when its bytecode is at hand (api/optimized.py)."""
    from dockyard.api import optimized

    optimized.reexec(argv)
    optimized.forget_allocator(os.environ)
    return main(argv)


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
