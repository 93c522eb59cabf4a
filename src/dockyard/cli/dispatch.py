"""Running a parsed command line (from cli/lean.py or cli/commandline.py): the context the
global flags name, the command's handler, and its failures worded as docker's."""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing itself costs ~1.5 ms of start-up; mypy honours this name

if TYPE_CHECKING:
    from typing import Any

# Commands whose daemon failure exits 125 (docker run/create); the rest exit 1.
_DAEMON_FAILURE_STATUS = {"run": 125, "create": 125}


def execute(args: Any, target: str) -> int:
    """Run a parsed command: its handler ("module:function" under cli/commands/) with the
    context the global flags name, and the failures worded as docker's."""
    from dockyard.cli.client import APIError, DaemonPermissionDenied, DaemonUnreachable, TLSError
    from dockyard.cli.context import CommandError, Context, TLSFlags

    tls = TLSFlags(args.tls, args.tlsverify, args.tlscacert, args.tlscert, args.tlskey)
    try:
        ctx = Context.from_env(args.host, args.root, tls, args.context)
    except CommandError as exc:
        sys.stderr.write(exc.message + "\n")
        return exc.code
    status = _DAEMON_FAILURE_STATUS.get(args.cmd, 1)
    try:
        module, function = target.split(":")
        handler = getattr(__import__(f"dockyard.cli.commands.{module}", fromlist=["_"]), function)
        result: int = handler(ctx, args)
        return result
    except CommandError as exc:
        ctx.warn(exc.message)
        return exc.code
    except APIError as exc:
        ctx.warn(f"Error response from daemon: {exc.message}")
        return status
    except DaemonPermissionDenied as exc:
        # docker's wording, so scripts and users recognise it (measured with docker CLI 28).
        ctx.warn(
            "permission denied while trying to connect to the dockyard daemon socket at "
            f"{ctx.host}: {exc}"
        )
        return status
    except TLSError as exc:
        ctx.warn(f"error during connect: {ctx.host}: {exc}")
        return status
    except DaemonUnreachable:
        ctx.warn(
            f"Cannot connect to the dockyard daemon at {ctx.host}. Is the dockyard daemon running?"
        )
        return status
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # Output piped into `head`: exit quietly like Go programs do on EPIPE.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
