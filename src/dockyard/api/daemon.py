"""`dockyard daemon`: run the engine and serve the Engine API in the foreground."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
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
    from aiohttp import web

    from dockyard.api.handoff import Handoff
    from dockyard.api.idle_reexec import IdleReexec
    from dockyard.api.listeners import ListeningSockets
    from dockyard.engine.engine import Engine
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
    p.add_argument(
        "--idle-reexec-after",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="re-execute the daemon in place once it has been idle this long with its memory "
        "grown, to give that memory back (default 60; 0 never)",
    )
    p.add_argument(
        "--idle-reexec-growth",
        default="8m",
        metavar="SIZE",
        help="how far the daemon's RSS must have grown since its start for an idle re-exec "
        "(default 8m; b/k/m/g suffixes)",
    )
    args = p.parse_args(argv)
    if args.idle_reexec_after < 0:
        raise SystemExit(
            f"dockyard daemon: invalid --idle-reexec-after {args.idle_reexec_after:g}: "
            "seconds, 0 for never"
        )
    args.idle_reexec_growth = _size(args.idle_reexec_growth, "--idle-reexec-growth")
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


def config_text(args: SimpleNamespace) -> bytes | None:
    """The --config-file's bytes as they are now (None: no file), to tell whether it changed
    since the start: a re-exec in place must not apply a changed configuration, as a restart
    would (api/idle_reexec.py)."""
    path = Path(args.config_file) if args.config_file else Path(DEFAULT_CONFIG)
    try:
        return path.read_bytes()
    except OSError:
        return None


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


async def serve(args: SimpleNamespace, handoff: Handoff | None = None) -> Handoff | None:
    """Serve until SIGTERM or SIGINT (None), or until the daemon is idle enough to re-exec
    itself (api/idle_reexec.py): then what the next process takes over. `handoff` is what
    this process took over from the one before it (the same pid)."""
    from aiohttp import web

    from dockyard.api import listeners as lst
    from dockyard.api import memtrim
    from dockyard.api.handoff import STOP_SIGNALS, signals_held, stop_and_wake
    from dockyard.api.idle_reexec import HeldInMemory, IdleReexec
    from dockyard.api.server import create_app
    from dockyard.engine.engine import Engine

    configured = config_text(args)  # before it is read: a change after it holds a re-exec off
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
    # SIGTERM from here on is a clean shutdown (a client that sees the socket may stop the
    # daemon before its start-up work is done); one that came during a re-exec in place was
    # held for this process (_signals_held) and arrives now.
    stop = asyncio.Event()
    wake = asyncio.Event()  # what the main task waits for: a signal or the idle moment
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop_and_wake, stop, wake)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    sock_path = hosts.unix
    sockets = lst.ListeningSockets()
    # the socket the process before this one listened on, still bound: nothing to probe
    if handoff is not None and sock_path is not None:
        sockets.unix = handoff.unix_socket(sock_path)
        if sockets.unix is not None and handoff.unix is not None:
            sockets.bound = (handoff.unix.dev, handoff.unix.ino)
    if sock_path is not None and sockets.unix is None:
        _check_socket_path(sock_path)
        sock_path.parent.mkdir(parents=True, exist_ok=True)
    root = Path(args.root)
    make_root(root)  # 0710 root:root before anything lands in it (rootperms.py)
    # One daemon per root and per socket: a second one (an autostart racing a manual start)
    # must not unlink a live socket or share the store. A re-exec keeps its locks.
    lock_paths = [root / "daemon.lock"]
    if sock_path is not None:
        lock_paths.append(Path(f"{sock_path}.lock"))
    locks = {str(p): _lock(p, handoff.lock_fd(p) if handoff else None) for p in lock_paths}
    engine: Engine | None = None
    runner: web.AppRunner | None = None
    idle: IdleReexec | None = None
    reexec = False
    passing: Handoff | None = None
    try:
        stale = sock_path is not None and sockets.unix is None and _check_socket_path(sock_path)
        write_atomic(root / "daemon.pid", f"{os.getpid()}\n")
        # Where this daemon listens, for the Python API on this root (Dockyard.open: one
        # writer per root, so a script reaches the daemon that holds it)
        write_atomic(root / "daemon.host", f"unix://{sock_path}\n" if sock_path else "")
        engine = await asyncio.to_thread(
            Engine, Path(args.root), runtime=args.runtime, registry_config=reg_config
        )
        engine.context_cache_cap = args.context_cache_size
        if handoff is not None and handoff.events:
            _restore_events(engine, Path(handoff.events))
        if args.idle_reexec_after > 0:
            idle = IdleReexec(args.idle_reexec_after, args.idle_reexec_growth, wake.set)
        # Cancel a handler when its client goes away (a detached `run` drops its wait
        # stream), and do not let open streams hold shutdown for long.
        app_runner = web.AppRunner(
            create_app(engine, idle),
            access_log=None,
            handle_signals=False,
            handler_cancellation=True,
            shutdown_timeout=3,
        )
        # Bound once the engine is up (a socket that answers is a daemon that serves), and
        # before the engine's start-up work runs: the umask of `_listen` must not meet other
        # writers. Clients that connect meanwhile wait in the listen backlog.
        if sock_path is not None and sockets.unix is None:
            if stale:
                sock_path.unlink()
            sockets.unix = _listen(sock_path)
            st = sock_path.lstat()
            sockets.bound = (st.st_dev, st.st_ino)
        for address, port in hosts.tcp:
            kept = handoff.tcp_sockets(address, port) if handoff is not None else []
            try:
                made = kept or lst.listen_tcp(address, port)
            except OSError as exc:
                raise SystemExit(
                    f"dockyard daemon: cannot listen on {address}:{port}: {exc}"
                ) from None
            sockets.tcp += [(address, port, sock) for sock in made]
        await engine.start(resumed=handoff is not None)  # containers an earlier daemon left
        await app_runner.setup()
        runner = app_runner
        sites = await lst.start_sites(runner, sockets, ssl_context)
        # start-up's imports and the engine's construction (in a worker thread, so in an
        # arena of its own) left free pages behind: 2.4 MiB of RSS (api/memtrim.py)
        memtrim.trim()
        log = logging.getLogger("dockyard")
        where = [str(sock_path)] if sock_path is not None else []
        where += [f"tcp://{a}:{p}{' (TLS)' if ssl_context else ''}" for a, p in hosts.tcp]
        log.info(
            "listening on %s (root %s, log level %s)%s",
            ", ".join(where),
            root,
            _level_name(),
            ", re-executed in place" if handoff is not None else "",
        )
        if idle is not None:
            # the tasks of the daemon at rest: any other one is work in progress
            held = HeldInMemory(
                app_runner,
                engine,
                frozenset(asyncio.all_tasks()),
                lambda: config_text(args) != configured,
            )
            idle.arm(held)
        while True:
            await wake.wait()
            wake.clear()
            if stop.is_set() or idle is None:
                log.info("shutting down: stopping the API, then the engine")
                break
            for site in sites:
                await site.stop()  # no more accepts: clients wait in the backlog
            # a connection accepted just before (its task has yet to run) is served here
            await asyncio.sleep(0.01)
            why = held()
            if why is None:
                reexec = True
                break
            log.info("re-exec called off (%s): serving on", why)
            sites = await lst.start_sites(runner, sockets, ssl_context)
            idle.resume()
    finally:
        if idle is not None:
            idle.cancel()
        began = time.monotonic()
        if runner is not None:
            await runner.cleanup()
        api_done = time.monotonic()
        if engine is not None:
            await engine.close(resuming=reexec)
        engine_done = time.monotonic()
        reexec = reexec and engine is not None and await signals_held(stop)
        logging.getLogger("dockyard").info(
            "%s: the API in %.2f s, the engine in %.2f s",
            "stopped for the re-exec" if reexec else "shut down",
            api_done - began,
            engine_done - api_done,
        )
        if reexec and engine is not None:
            from dockyard.engine.events import dump_history

            passing = _handoff(root, sockets, locks)
            try:
                write_atomic(Path(passing.events), dump_history(engine.events.history()))
            except OSError as exc:  # a full disk costs the history, not the daemon
                logging.getLogger("dockyard").warning("the event history is lost: %s", exc)
                passing = dataclasses.replace(passing, events="")
        else:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
            if sockets.unix is not None and sock_path is not None:
                _unlink_own_socket(sock_path, sockets.bound)
            sockets.close()
            (root / "daemon.pid").unlink(missing_ok=True)
            (root / "daemon.host").unlink(missing_ok=True)
            for fd in locks.values():
                os.close(fd)
    return passing


def _handoff(root: Path, sockets: ListeningSockets, locks: dict[str, int]) -> Handoff:
    """The handoff of `sockets` (detached: their objects no longer close them) and `locks`."""
    from dockyard.api.handoff import Handoff, TcpListener, UnixListener

    unix = None
    if sockets.unix is not None:
        path = str(sockets.unix.getsockname())
        unix = UnixListener(path, sockets.unix.detach(), *sockets.bound)
        sockets.unix = None
    tcp = tuple(TcpListener(a, p, sock.detach()) for a, p, sock in sockets.tcp)
    sockets.tcp = []
    return Handoff(
        unix=unix,
        tcp=tcp,
        locks=dict(locks),
        events=str(root / "events.handoff"),
    )


def _restore_events(engine: Engine, path: Path) -> None:
    from dockyard.engine.events import load_history

    try:
        data = path.read_bytes()
    except OSError:
        return
    path.unlink(missing_ok=True)
    engine.events.restore(load_history(data))


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


def _lock(path: Path, inherited: int | None = None) -> int:
    """An exclusive flock on `path`, on a new open file or on `inherited`, the one the
    process before a re-exec held it on (a lock of the same open file: taken again at once)."""
    import fcntl

    if inherited is not None:
        fd = inherited
        os.set_inheritable(fd, False)
    else:
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


def main(argv: list[str], started_with: dict[str, str] | None = None) -> int:
    """The daemon, given its arguments and the environment it was started with (what a
    re-exec in place starts the next process with; this one's by default)."""
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
    from dockyard.api.handoff import Handoff

    handoff = Handoff.take(os.environ)
    environ = dict(os.environ) if started_with is None else started_with
    while True:
        try:
            handoff = asyncio.run(serve(args, handoff))
        except SystemExit as exc:
            if isinstance(exc.code, str):
                print(exc.code, file=sys.stderr)
                return 1
            raise
        if handoff is None or _reexec(handoff, environ, Path(args.root)):
            return 0
        # the execve failed: serve on, here


def _reexec(handoff: Handoff, environ: dict[str, str], root: Path) -> bool:
    """Replace this process with the daemon's own command line (api/idle_reexec.py);
    False when the execve failed (serve on, here), True when a stop signal came first and
    the daemon is now shut down."""
    from dockyard.api.handoff import StopSignal, pass_on

    if StopSignal.seen:
        _shut_down_after_handoff(handoff, root)
        return True
    pass_on(handoff.fds())
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(sys.executable, sys.orig_argv, handoff.environment(environ))
    except OSError as exc:
        logging.getLogger("dockyard").warning(
            "the re-exec in place failed (%s): serving on in this process", exc
        )
    return False


def _shut_down_after_handoff(handoff: Handoff, root: Path) -> None:
    """What serve's shutdown does, for a daemon whose serve had already handed off."""
    if handoff.unix is not None:
        _unlink_own_socket(Path(handoff.unix.path), (handoff.unix.dev, handoff.unix.ino))
    handoff.close()
    (root / "daemon.pid").unlink(missing_ok=True)
    (root / "daemon.host").unlink(missing_ok=True)
    (root / "events.handoff").unlink(missing_ok=True)
    logging.getLogger("dockyard").info("shut down: a stop signal came before the re-exec")


def run(argv: list[str]) -> int:
    """main() as the process's own entry point (`python -m dockyard.api.daemon`, `dockyard
    daemon`): under -OO when its bytecode is at hand (api/optimized.py)."""
    from dockyard.api import optimized

    optimized.reexec(argv)
    started_with = dict(os.environ)  # with the allocator chosen, for a re-exec when idle
    optimized.forget_allocator(os.environ)
    return main(argv, started_with)


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
