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

DEFAULT_ROOT = "/var/lib/dockyard"
DEFAULT_HOST = "unix:///run/dockyard/dockyard.sock"


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="dockyard daemon", description="Run the dockyard daemon")
    p.add_argument("--root", default=os.environ.get("DOCKYARD_ROOT", DEFAULT_ROOT))
    p.add_argument("-H", "--host", default=os.environ.get("DOCKYARD_HOST", DEFAULT_HOST))
    p.add_argument("--runtime", default="runc", help="OCI runtime binary (runc or crun)")
    p.add_argument("--debug", "-D", action="store_true")
    return p.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    from aiohttp import web

    from dockyard.api.server import create_app
    from dockyard.engine.engine import Engine

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
