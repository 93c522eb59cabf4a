"""`dockyard daemon`: run the engine and serve the Engine API in the foreground."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dockyard.registry.config import RegistryConfig

DEFAULT_ROOT = "/var/lib/dockyard"
DEFAULT_HOST = "unix:///run/dockyard/dockyard.sock"
DEFAULT_CONFIG = "/etc/dockyard/daemon.json"


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="dockyard daemon", description="Run the dockyard daemon")
    p.add_argument("--root", default=os.environ.get("DOCKYARD_ROOT", DEFAULT_ROOT))
    p.add_argument("-H", "--host", default=os.environ.get("DOCKYARD_HOST", DEFAULT_HOST))
    p.add_argument("--runtime", default="runc", help="OCI runtime binary (runc or crun)")
    p.add_argument("--debug", "-D", action="store_true")
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
    return p.parse_args(argv)


def registry_config(args: argparse.Namespace) -> RegistryConfig:
    """Flags over the configuration file; dockerd refuses a key given both ways, so do we."""
    from dockyard.registry.config import RegistryConfig

    base = RegistryConfig()
    path = Path(args.config_file) if args.config_file else Path(DEFAULT_CONFIG)
    doc: dict[str, object] = {}
    if args.config_file or path.exists():
        import json

        try:
            loaded = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise SystemExit(
                f"dockyard daemon: unable to read configuration {path}: {exc}"
            ) from None
        if not isinstance(loaded, dict):
            raise SystemExit(f"dockyard daemon: configuration {path} is not a JSON object")
        doc = loaded
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


async def serve(args: argparse.Namespace) -> None:
    from aiohttp import web

    from dockyard.api.server import create_app
    from dockyard.engine.engine import Engine

    reg_config = registry_config(args)
    if not args.host.startswith("unix://"):
        raise SystemExit(f"dockyard daemon: only unix:// hosts are supported, not {args.host}")
    sock_path = Path(args.host[len("unix://") :])
    sock_path.parent.mkdir(parents=True, exist_ok=True)
    probe = socket.socket(socket.AF_UNIX)
    try:
        probe.connect(str(sock_path))
        raise SystemExit(f"dockyard daemon: another daemon is listening on {sock_path}")
    except OSError:
        pass
    finally:
        probe.close()
    root = Path(args.root)
    root.mkdir(parents=True, exist_ok=True)
    # One daemon per root and per socket: a second one (an autostart racing a manual start)
    # must not unlink a live socket or share the store.
    locks = [_lock(root / "daemon.lock"), _lock(Path(f"{sock_path}.lock"))]
    sock_path.unlink(missing_ok=True)
    (root / "daemon.pid").write_text(f"{os.getpid()}\n")
    engine = await asyncio.to_thread(Engine, Path(args.root), runtime=args.runtime)
    engine.distribution.config = reg_config
    app = create_app(engine)
    # Cancel a handler when its client goes away (a detached `run` drops its wait stream),
    # and do not let open streams hold shutdown for long.
    runner = web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        handler_cancellation=True,
        shutdown_timeout=3,
    )
    await runner.setup()
    site = web.UnixSite(runner, str(sock_path))
    await site.start()
    os.chmod(sock_path, 0o660)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    logging.getLogger("dockyard").info("listening on %s", sock_path)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        await engine.close()
        with contextlib.suppress(OSError):
            sock_path.unlink()
        (root / "daemon.pid").unlink(missing_ok=True)
        for fd in locks:
            os.close(fd)


def _lock(path: Path) -> int:
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise SystemExit(f"dockyard daemon: another daemon holds {path}") from None
    return fd


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        asyncio.run(serve(args))
    except SystemExit as exc:
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
            return 1
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
