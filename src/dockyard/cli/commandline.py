"""The `dockyard` command line through argparse: every command's parser, `--help`, and
docker CLI 28's usage rules and errors. cli/main.py comes here for what its lean parser
(cli/lean.py) does not take; each command module is imported on demand.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence

from dockyard import __version__
from dockyard.cli import flags
from dockyard.cli.flags import add_bool

TYPE_CHECKING = False  # typing itself costs ~1.5 ms of start-up; mypy honours this name

if TYPE_CHECKING:
    from typing import Any, NoReturn


class _Formatter(argparse.HelpFormatter):
    """argparse's formatter with the terminal's width found without `shutil`: argparse makes
    one for every add_argument (to check the metavar), and its `import shutil` (with zlib,
    bz2 and lzma) cost ~3 ms of every command's start."""

    def __init__(self, prog: str, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("width") is None:
            kwargs["width"] = _columns() - 2  # as HelpFormatter computes it
        super().__init__(prog, *args, **kwargs)


def _columns() -> int:
    """shutil.get_terminal_size().columns: $COLUMNS, else the terminal's, else 80."""
    try:
        return int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        pass
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns or 80  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):
        return 80


class _Parser(argparse.ArgumentParser):
    """argparse with pflag's rules: no abbreviated flags, and docker CLI 28's usage errors
    (cli/usage.py, loaded only when a command line is wrong)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)  # pflag: `--form` is not `--format`
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        from dockyard.cli import usage

        if message.startswith("the following arguments are required: COMMAND"):
            path = self.prog.split()[1:]
            word = usage.first_unknown_flag(self, usage.after(path, _ARGV))
            if word is not None:
                raise usage.unknown_flag(path, word)
            self.print_help(sys.stderr)  # a bare management command: its help, status 0
            raise SystemExit(0)

        raise usage.translate(self, message, _ARGV, _arity(self))


_ARGV: list[str] = []  # the command line being parsed (usage errors name the flag typed)

# Where docker's argument rule (cli/required.go) is not what the parser's positionals say.
_ARITY: dict[str, tuple[int, int | None]] = {
    "exec": (2, None),
    "container exec": (2, None),
    "import": (1, None),
    "image import": (1, None),
    "context export": (1, 2),
    "context import": (2, 2),
}


def _arity(parser: argparse.ArgumentParser) -> tuple[int, int | None]:
    """(at least, at most) positional arguments the command takes; at most None: any."""
    key = " ".join(parser.prog.split()[1:])
    if key in _ARITY:
        return _ARITY[key]
    low = 0
    high: int | None = 0
    for action in parser._actions:
        if action.option_strings or isinstance(action, argparse._SubParsersAction):
            continue
        if action.nargs is None:
            low, high = low + 1, (None if high is None else high + 1)
        elif action.nargs == "+":
            low, high = low + 1, None
        elif action.nargs == "?":
            high = None if high is None else high + 1
        else:  # "*", REMAINDER
            high = None
    return low, high


def _given(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    count = 0
    for action in parser._actions:
        if action.option_strings or isinstance(action, argparse._SubParsersAction):
            continue
        value = getattr(args, action.dest, None)
        count += len(value) if isinstance(value, list) else int(value is not None)
    return count


def _leaf(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.ArgumentParser:
    """The (sub)command parser the words of argv lead to."""
    for word in argv:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            break
        if word in subs[0].choices:
            parser = subs[0].choices[word]
    return parser


def _go_bools(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """pflag takes `--rm=true`, `-d=false` for any boolean flag: spelled as argparse's."""
    out = []
    for word in argv:
        name, eq, value = word.partition("=")
        action = parser._option_string_actions.get(name) if eq and name[:1] == "-" else None
        if isinstance(action, argparse._StoreTrueAction) and value in flags.GO_BOOLS:
            if flags.GO_BOOLS[value]:
                out.append(name)
            continue  # false: the flag's default (store_true defaults to False)
        out.append(word)
    return out


def _multi(p: argparse.ArgumentParser, *names: str, help: str, metavar: str = "") -> None:
    p.add_argument(*names, action="append", default=[], help=help, metavar=metavar or None)


def _add_run_flags(p: argparse.ArgumentParser, run: bool) -> None:
    p.add_argument("--help", action="help", help="Print usage")
    if run:
        p.add_argument("-d", "--detach", action="store_true", help="Run in the background")
        add_bool(
            p,
            "--sig-proxy",
            default=True,
            help="Proxy received signals to the process (default true)",
        )
    p.add_argument("-i", "--interactive", action="store_true", help="Keep STDIN open")
    p.add_argument("-t", "--tty", action="store_true", help="Allocate a pseudo-TTY")
    p.add_argument("--rm", action="store_true", help="Remove the container when it exits")
    p.add_argument("--name", help="Assign a name to the container")
    _multi(p, "-e", "--env", help="Set environment variables")
    _multi(p, "--env-file", help="Read in a file of environment variables")
    p.add_argument("-w", "--workdir", help="Working directory inside the container")
    p.add_argument("-u", "--user", help="Username or UID (format: <name|uid>[:<group|gid>])")
    p.add_argument("--entrypoint", help="Overwrite the default ENTRYPOINT of the image")
    p.add_argument("--network", "--net", help="Connect a container to a network")
    _multi(p, "-v", "--volume", help="Bind mount a volume")
    _multi(p, "-p", "--publish", help="Publish a container's port(s) to the host")
    _multi(p, "--expose", help="Expose a port or a range of ports")
    p.add_argument("-h", "--hostname", help="Container host name")
    _multi(p, "-l", "--label", help="Set meta data on a container")
    p.add_argument("-m", "--memory", help="Memory limit")
    p.add_argument("--cpus", help="Number of CPUs")
    p.add_argument("--pids-limit", type=int, help="Tune container pids limit")
    p.add_argument("--read-only", action="store_true", help="Mount the root filesystem read-only")
    _multi(p, "--cap-add", help="Add Linux capabilities")
    _multi(p, "--cap-drop", help="Drop Linux capabilities")
    p.add_argument("--init", action="store_true", help="Run an init inside the container")
    p.add_argument("--privileged", action="store_true", help="Give extended privileges")
    p.add_argument("--stop-signal", help="Signal to stop the container")
    _multi(p, "--tmpfs", help="Mount a tmpfs directory")
    add_extra_run_flags(p, run)
    p.add_argument("image", help="IMAGE")
    p.add_argument("command", nargs=argparse.REMAINDER, help="COMMAND [ARG...]")


def add_extra_run_flags(p: argparse.ArgumentParser, run: bool) -> None:
    from dockyard.cli.runflags import add_extra_run_flags as add

    add(p, run)


def _adder(module: str, name: str) -> Callable[[argparse.ArgumentParser], None]:
    """A parser adder from commands/MODULE.py, imported only when that command is parsed."""

    def add(p: argparse.ArgumentParser) -> None:
        getattr(importlib.import_module(f"dockyard.cli.commands.{module}"), name)(p)

    return add


def _ops(name: str) -> Callable[[argparse.ArgumentParser], None]:
    """A parser adder from commands/ops.py, imported only when that command is parsed."""

    def add(p: argparse.ArgumentParser) -> None:
        from dockyard.cli.commands import ops

        getattr(ops, name)(p)

    return add


def _sys(name: str) -> Callable[[argparse.ArgumentParser], None]:
    """A parser adder from commands/system.py, imported only when that command is parsed."""

    def add(p: argparse.ArgumentParser) -> None:
        from dockyard.cli.commands import system

        getattr(system, name)(p)

    return add


def _add_build(p: argparse.ArgumentParser) -> None:
    _multi(p, "-t", "--tag", help="Name and optionally a tag (name:tag)")
    p.add_argument("-f", "--file", help="Name of the Dockerfile (default: PATH/Dockerfile)")
    p.add_argument("-q", "--quiet", action="store_true", help="Print only the image ID")
    p.add_argument("--no-cache", action="store_true", help="Do not use cache")
    _multi(p, "--build-arg", help="Set build-time variables")
    p.add_argument("--target", help="Set the target build stage to build")
    _multi(p, "--label", help="Set metadata for an image")
    p.add_argument("--pull", action="store_true", help="Always attempt to pull a newer base")
    add_bool(
        p,
        "--rm",
        default=True,
        help="Remove intermediate containers after a successful build (default true)",
    )
    p.add_argument("--force-rm", action="store_true", help="Always remove intermediates")
    p.add_argument("--network", help="Networking mode for RUN instructions")
    p.add_argument(
        "--explain-cache",
        action="store_true",
        help="Say for each step whether the cache hit and, on a miss, which input changed",
    )
    _multi(p, "--allow", help="Extra privileged entitlement (security.insecure)")
    _multi(
        p,
        "--secret",
        help="Secret to expose to RUN --mount=type=secret (id=NAME[,src=PATH|,env=VAR])",
    )
    _multi(
        p,
        "--ssh",
        help="SSH agent socket for RUN --mount=type=ssh (default[=SOCKET]|ID=SOCKET)",
    )
    p.add_argument("--platform", help="Set platform")
    _multi(p, "--add-host", help="Add a custom host-to-IP mapping (host:ip)")
    # the legacy builder's resource and cache flags (docker/cli image/build.go)
    _multi(p, "--cache-from", help="Images to consider as cache sources")
    p.add_argument(
        "--cgroup-parent", help='Set the parent cgroup for the "RUN" instructions during build'
    )
    add_bool(p, "--compress", help="Compress the build context using gzip")
    p.add_argument(
        "--cpu-period", type=int, help="Limit the CPU CFS (Completely Fair Scheduler) period"
    )
    p.add_argument(
        "--cpu-quota", type=int, help="Limit the CPU CFS (Completely Fair Scheduler) quota"
    )
    p.add_argument("-c", "--cpu-shares", type=int, help="CPU shares (relative weight)")
    p.add_argument("--cpuset-cpus", help="CPUs in which to allow execution (0-3, 0,1)")
    p.add_argument("--cpuset-mems", help="MEMs in which to allow execution (0-3, 0,1)")
    add_bool(
        p, "--disable-content-trust", default=True, help="Skip image verification (default true)"
    )
    p.add_argument("--iidfile", help="Write the image ID to the file")
    p.add_argument("--isolation", help="Container isolation technology")
    p.add_argument("-m", "--memory", help="Memory limit")
    p.add_argument(
        "--memory-swap", help="Swap limit equal to memory plus swap: -1 to enable unlimited swap"
    )
    _multi(p, "--security-opt", help="Security options")
    p.add_argument("--shm-size", help='Size of "/dev/shm"')
    add_bool(p, "--squash", help="Squash newly built layers into a single new layer")
    _multi(p, "--ulimit", help="Ulimit options")
    p.add_argument("path", metavar="PATH", help="Context directory, or - for stdin")


def _add_ps(p: argparse.ArgumentParser) -> None:
    add_bool(p, "-a", "--all", help="Show all containers (default shows just running)")
    _multi(p, "-f", "--filter", help="Filter output based on conditions provided")
    p.add_argument("--format", help="Format output using a custom template")
    p.add_argument("-n", "--last", type=int, default=-1, help="Show n last created containers")
    add_bool(p, "-l", "--latest", help="Show the latest created container (includes all states)")
    add_bool(p, "--no-trunc", help="Don't truncate output")
    add_bool(p, "-q", "--quiet", help="Only display container IDs")
    add_bool(p, "-s", "--size", default=None, help="Display total file sizes")


def _add_images(p: argparse.ArgumentParser) -> None:
    add_bool(p, "-a", "--all", help="Show all images (default hides intermediate images)")
    add_bool(p, "--digests", help="Show digests")
    _multi(p, "-f", "--filter", help="Filter output based on conditions provided")
    p.add_argument("--format", help="Format output using a custom template")
    add_bool(p, "--no-trunc", help="Don't truncate output")
    add_bool(p, "-q", "--quiet", help="Only show image IDs")
    add_bool(p, "--tree", help="List multi-platform images as a tree (EXPERIMENTAL)")
    p.add_argument("repository", nargs="?", help="REPOSITORY[:TAG]")


def _add_inspect(p: argparse.ArgumentParser) -> None:
    add_bool(p, "-s", "--size", help="Display total file sizes if the type is container")
    p.add_argument("--type", choices=["container", "image"], help="Only this type")
    p.add_argument("-f", "--format", help="Format output using a Go template")
    p.add_argument("names", nargs="+", metavar="NAME")


def _add_tag(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", metavar="SOURCE_IMAGE")
    p.add_argument("target", metavar="TARGET_IMAGE")


def _add_rmi(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--platform", action="append", default=[], help="Remove only the given platform variant"
    )
    p.add_argument("-f", "--force", action="store_true", help="Force removal")
    p.add_argument("--no-prune", action="store_true", help="Keep untagged parents")
    p.add_argument("images", nargs="+", metavar="IMAGE")


def _add_rm(p: argparse.ArgumentParser) -> None:
    add_bool(p, "-l", "--link", help="Remove the specified link")
    p.add_argument("-f", "--force", action="store_true", help="Kill a running container first")
    p.add_argument("-v", "--volumes", action="store_true", help="Remove anonymous volumes")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")


def _add_logs(p: argparse.ArgumentParser) -> None:
    add_bool(p, "--details", help="Show extra details provided to logs")
    p.add_argument("-f", "--follow", action="store_true", help="Follow log output")
    p.add_argument("-n", "--tail", help='Lines to show from the end (default "all")')
    p.add_argument("-t", "--timestamps", action="store_true", help="Show timestamps")
    p.add_argument("--since", help="Logs since timestamp or relative (42m)")
    p.add_argument("--until", help="Logs before timestamp or relative")
    p.add_argument("container", metavar="CONTAINER")


def _add_stop(p: argparse.ArgumentParser) -> None:
    p.add_argument("-t", "--time", "--timeout", type=int, help="Seconds to wait before killing")
    p.add_argument("-s", "--signal", help="Signal to send to the container")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")


def _add_kill(p: argparse.ArgumentParser) -> None:
    p.add_argument("-s", "--signal", help="Signal to send to the container")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")


def _add_start(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--attach", action="store_true", help="Attach STDOUT/STDERR")
    p.add_argument("--checkpoint", help="Restore from this checkpoint (not supported)")
    p.add_argument("--checkpoint-dir", help="Use a custom checkpoint storage directory")
    p.add_argument("--detach-keys", default="", help="Override the key sequence for detaching")
    p.add_argument("-i", "--interactive", action="store_true", help="Attach STDIN")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")


def _add_containers(p: argparse.ArgumentParser) -> None:
    p.add_argument("containers", nargs="+", metavar="CONTAINER")


def _add_import(p: argparse.ArgumentParser) -> None:
    p.add_argument("-m", "--message", help="Set commit message for imported image")
    p.add_argument("--platform", help="Set platform if server is multi-platform capable")
    _multi(p, "-c", "--change", help="Apply Dockerfile instruction to the created image")
    p.add_argument("file", metavar="file|-")
    p.add_argument("reference", nargs="?", metavar="REPOSITORY[:TAG]")


def _add_history(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", help="Format output using a custom template")
    add_bool(
        p, "-H", "--human", default=True, help="Print sizes and dates in human readable format"
    )
    p.add_argument("--no-trunc", action="store_true", help="Don't truncate output")
    p.add_argument("--platform", help="Show history for the given platform")
    p.add_argument("-q", "--quiet", action="store_true", help="Only show image IDs")
    p.add_argument("image", metavar="IMAGE")


def _add_save(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--platform", action="append", default=[], help="Save only the given platform variant"
    )
    p.add_argument("-o", "--output", help="Write to a file, instead of STDOUT")
    p.add_argument("images", nargs="+", metavar="IMAGE")


def _add_load(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--platform", action="append", default=[], help="Load only the given platform variant"
    )
    p.add_argument("-i", "--input", help="Read from tar archive file, instead of STDIN")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress the load output")


def _add_pull(p: argparse.ArgumentParser) -> None:
    add_bool(p, "-a", "--all-tags", help="Download all tagged images in the repository")
    add_bool(
        p, "--disable-content-trust", default=True, help="Skip image verification (default true)"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress verbose output")
    p.add_argument("--platform", help="Set platform")
    p.add_argument("image", metavar="NAME[:TAG|@DIGEST]")


def _add_push(p: argparse.ArgumentParser) -> None:
    add_bool(p, "-a", "--all-tags", help="Push all tags of an image to the repository")
    add_bool(p, "--disable-content-trust", default=True, help="Skip image signing (default true)")
    p.add_argument(
        "--platform",
        default=None,
        help="Push a platform-specific manifest as a single-platform image",
    )
    add_bool(p, "-q", "--quiet", help="Suppress verbose output")
    p.add_argument("image", metavar="NAME[:TAG]")


def _add_logout(p: argparse.ArgumentParser) -> None:
    p.add_argument("server", nargs="?", metavar="SERVER")


def _add_login(p: argparse.ArgumentParser) -> None:
    p.add_argument("-u", "--username", help="Username")
    p.add_argument("-p", "--password", help="Password")
    p.add_argument("--password-stdin", action="store_true", help="Take the password from stdin")
    p.add_argument("server", nargs="?", metavar="SERVER")


def _add_format(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--format", help="Format output using a Go template")


def _add_nothing(p: argparse.ArgumentParser) -> None:
    pass


def _add_prune(p: argparse.ArgumentParser) -> None:
    _multi(p, "--filter", help='Provide filter values (e.g. "until=<timestamp>")')
    add_bool(p, "-f", "--force", help="Do not prompt for confirmation")


def _add_image_prune(p: argparse.ArgumentParser) -> None:
    add_bool(p, "-a", "--all", help="Remove all unused images, not just dangling ones")
    _add_prune(p)


# name → (help, argument adder, "module:function" under dockyard.cli.commands)
_SPECS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], str]] = {
    "build": ("Build an image from a Dockerfile", _add_build, "images:cmd_build"),
    "run": ("Create and run a new container", lambda p: _add_run_flags(p, True), "run:cmd_run"),
    "create": ("Create a new container", lambda p: _add_run_flags(p, False), "run:cmd_create"),
    "ps": ("List containers", _add_ps, "containers:cmd_ps"),
    "images": ("List images", _add_images, "images:cmd_images"),
    "inspect": ("Return low-level information on objects", _add_inspect, "system:cmd_inspect"),
    "tag": ("Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE", _add_tag, "images:cmd_tag"),
    "rmi": ("Remove one or more images", _add_rmi, "images:cmd_rmi"),
    "rm": ("Remove one or more containers", _add_rm, "containers:cmd_rm"),
    "logs": ("Fetch the logs of a container", _add_logs, "containers:cmd_logs"),
    "stop": ("Stop one or more running containers", _add_stop, "containers:cmd_stop"),
    "kill": ("Kill one or more running containers", _add_kill, "containers:cmd_kill"),
    "start": ("Start one or more stopped containers", _add_start, "run:cmd_start"),
    "wait": (
        "Block until containers stop, then print their exit codes",
        _add_containers,
        "containers:cmd_wait",
    ),
    "exec": ("Execute a command in a running container", _ops("add_exec"), "ops:cmd_exec"),
    "attach": ("Attach to a running container", _ops("add_attach"), "ops:cmd_attach"),
    "restart": ("Restart one or more containers", _ops("add_restart"), "ops:cmd_restart"),
    "pause": ("Pause all processes within containers", _ops("add_containers"), "ops:cmd_pause"),
    "unpause": ("Unpause containers", _ops("add_containers"), "ops:cmd_unpause"),
    "rename": ("Rename a container", _ops("add_rename"), "ops:cmd_rename"),
    "top": ("Display the running processes of a container", _ops("add_top"), "ops:cmd_top"),
    "port": ("List port mappings of a container", _ops("add_port"), "ops:cmd_port"),
    "diff": (
        "Inspect changes to files on a container's filesystem",
        _ops("add_one"),
        "ops:cmd_diff",
    ),
    "export": (
        "Export a container's filesystem as a tar archive",
        _ops("add_export"),
        "ops:cmd_export",
    ),
    "commit": (
        "Create a new image from a container's changes",
        _ops("add_commit"),
        "ops:cmd_commit",
    ),
    "cp": (
        "Copy files between a container and the local filesystem",
        _adder("cp", "add_cp"),
        "cp:cmd_cp",
    ),
    "stats": (
        "Display container resource usage (one snapshot)",
        _ops("add_stats"),
        "ops:cmd_stats",
    ),
    "update": ("Update configuration of containers", _ops("add_update"), "ops:cmd_update"),
    "network": ("Manage networks", _ops("add_network"), "ops:cmd_network"),
    "volume": ("Manage volumes", _ops("add_volume"), "ops:cmd_volume"),
    "import": ("Create an image from a tarball", _add_import, "images:cmd_import"),
    "history": ("Show the history of an image", _add_history, "images:cmd_history"),
    "save": ("Save one or more images to a tar archive", _add_save, "images:cmd_save"),
    "load": ("Load an image from a tar archive or STDIN", _add_load, "images:cmd_load"),
    "pull": ("Download an image from a registry", _add_pull, "registry:cmd_pull"),
    "push": ("Upload an image to a registry", _add_push, "registry:cmd_push"),
    "login": ("Log in to a registry", _add_login, "registry:cmd_login"),
    "logout": ("Log out from a registry", _add_logout, "registry:cmd_logout"),
    "version": ("Show the dockyard version information", _add_format, "system:cmd_version"),
    "info": ("Display system-wide information", _add_format, "system:cmd_info"),
    "events": ("Get real time events from the server", _sys("add_events"), "system:cmd_events"),
    "system": ("Manage Docker", _sys("add_system"), "system:cmd_system"),
    "daemon": ("Run the dockyard daemon in the foreground (dockerd's flags)", _add_nothing, ""),
    "context": (
        "Manage contexts",
        _adder("dockercontext", "add_context"),
        "dockercontext:cmd_context",
    ),
}
# Commands only a management group reaches (`container prune`, `image inspect`, …).
_GROUP_ONLY: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], str]] = {
    "container-inspect": (
        "Display detailed information on one or more containers",
        lambda p: _add_typed_inspect(p, "container"),
        "system:cmd_inspect",
    ),
    "image-inspect": (
        "Display detailed information on one or more images",
        lambda p: _add_typed_inspect(p, "image"),
        "system:cmd_inspect",
    ),
    "container-prune": ("Remove all stopped containers", _add_prune, "system:cmd_prune"),
    "image-prune": ("Remove unused images", _add_image_prune, "system:cmd_prune"),
}
# docker's management commands: group → {subcommand: command it runs} (docker/cli
# cli/command/container/cmd.go, image/cmd.go; ls/rm aliases as cobra's).
_GROUPS: dict[str, tuple[str, dict[str, str]]] = {
    "container": (
        "Manage containers",
        {
            **{
                n: n
                for n in [
                    "attach",
                    "commit",
                    "cp",
                    "create",
                    "diff",
                    "exec",
                    "export",
                    "kill",
                    "logs",
                    "pause",
                    "port",
                    "rename",
                    "restart",
                    "run",
                    "start",
                    "stats",
                    "stop",
                    "top",
                    "unpause",
                    "update",
                    "wait",
                ]
            },
            "inspect": "container-inspect",
            "ls": "ps",
            "list": "ps",
            "ps": "ps",
            "prune": "container-prune",
            "rm": "rm",
            "remove": "rm",
        },
    ),
    "image": (
        "Manage images",
        {
            **{n: n for n in ["build", "history", "import", "load", "pull", "push", "save", "tag"]},
            "inspect": "image-inspect",
            "ls": "images",
            "list": "images",
            "prune": "image-prune",
            "rm": "rmi",
            "remove": "rmi",
        },
    ),
}
_NO_DASH_H = {"run", "create"}  # docker run has no -h for help: -h is --hostname


def _add_typed_inspect(p: argparse.ArgumentParser, kind: str) -> None:
    p.add_argument("-f", "--format", help="Format output using a custom template")
    if kind == "container":
        add_bool(p, "-s", "--size", help="Display total file sizes")
    else:
        p.add_argument("--platform", help="Inspect a specific platform of a multi-platform image")
    p.add_argument("names", nargs="+", metavar=kind.upper())
    p.set_defaults(typed_inspect=kind)
    p.set_defaults(type=kind, size=False)


def _build_parser(
    only: str | None = None, only_sub: str | None = None, help_only: bool = False
) -> _Parser:
    """The parser; with `only`, just that command's subparser (building all ~25 costs ~5 ms),
    and with `only_sub` just that member of a management group. With `help_only` (no command
    on the line: `dockyard --help`, `--version`) the subparsers get no arguments: the command
    list shows only their names and help texts (building them all: ~60 ms of `--help`)."""
    parser = _Parser(prog="dockyard", description="A Docker-compatible container engine")
    parser.add_argument(
        "-H", "--host", help="Daemon socket to connect to (env DOCKYARD_HOST, DOCKER_HOST)"
    )
    parser.add_argument("--tls", action="store_true", help="Use TLS; implied by --tlsverify")
    parser.add_argument(
        "--tlsverify",
        action="store_true",
        help="Use TLS and verify the remote (env DOCKER_TLS_VERIFY)",
    )
    parser.add_argument("--tlscacert", help="Trust certs signed only by this CA")
    parser.add_argument("--tlscert", help="Path to TLS certificate file")
    parser.add_argument("--tlskey", help="Path to TLS key file")
    parser.add_argument(
        "-c",
        "--context",
        help='Name of the context to use to connect to the daemon (overrides DOCKER_HOST env var and default context set with "docker context use")',
    )
    parser.add_argument("--root", help="Daemon root for an autostarted daemon (env DOCKYARD_ROOT)")
    parser.add_argument("-v", "--version", action="store_true", help="Print version and exit")
    sub = parser.add_subparsers(
        dest="cmd", metavar="COMMAND", parser_class=_Parser, prog="dockyard"
    )
    for name, (help_text, adder, _target) in _SPECS.items():
        if only is not None and name != only:
            continue
        p = sub.add_parser(
            name, help=help_text, description=help_text, add_help=name not in _NO_DASH_H
        )
        if not help_only:
            adder(p)
    for group, (help_text, members) in _GROUPS.items():
        if only is not None and group != only:
            continue
        g = sub.add_parser(group, help=help_text, description=help_text)
        if help_only:
            continue
        gsub = g.add_subparsers(
            dest="subcmd", metavar="COMMAND", parser_class=_Parser, prog=f"dockyard {group}"
        )
        for word, target in members.items():
            if only_sub is not None and word != only_sub:
                continue
            target_help, adder, _ = _SPECS.get(target) or _GROUP_ONLY[target]
            p = gsub.add_parser(
                word, help=target_help, description=target_help, add_help=target not in _NO_DASH_H
            )
            adder(p)
    return parser


def _check_arguments(
    leaf: argparse.ArgumentParser, args: argparse.Namespace, extra: list[str]
) -> None:
    """What pflag and docker's argument rules refuse that argparse let through: an unknown
    flag anywhere, then too few or too many arguments for the command."""
    low, high = _arity(leaf)
    count = _given(leaf, args) + len(extra)
    fits = count >= low and (high is None or count <= high)
    if fits and not any(w.startswith("-") and w != "-" for w in extra):
        return  # (arguments beyond the parser's: docker's command too takes and ignores them)
    from dockyard.cli import usage

    path = leaf.prog.split()[1:]
    word = usage.first_unknown_flag(leaf, extra)
    if word is not None:
        before_command = path and _ARGV.index(word) < _ARGV.index(path[0])
        raise usage.unknown_flag([] if before_command else path, word)
    if extra and not path:
        raise usage.unknown_command(path, extra[0])
    if not fits:
        raise usage.arity_error(path, low, high, count)


def _find_command(argv: Sequence[str]) -> int | None:
    """Index of the command word in argv, skipping the global options."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in (
            "-H",
            "--host",
            "-c",
            "--context",
            "--root",
            "--tlscacert",
            "--tlscert",
            "--tlskey",
        ):
            i += 2
            continue
        if arg.startswith("-"):
            i += 1
            continue
        return i
    return None


def target(name: str) -> str:
    """The handler of a command (or group member) as "module:function" under commands/."""
    return (_SPECS.get(name) or _GROUP_ONLY[name])[2]


def main(argv: list[str] | None = None) -> int:
    """The whole command line through argparse: every command, `--help`, every usage error."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    index = _find_command(args_list)
    command = args_list[index] if index is not None else None
    if index is not None and command == "daemon":
        daemon_args = args_list[index + 1 :]
        try:
            daemon = importlib.import_module("dockyard.api.daemon")
        except ImportError as exc:
            sys.stderr.write(f"dockyard: the daemon is not available: {exc}\n")
            return 1
        return int(daemon.run(daemon_args))
    parsed = parse(args_list, index)
    if isinstance(parsed, int):
        return parsed
    from dockyard.cli.dispatch import execute

    return execute(parsed, target(parsed.cmd))


def parse(args_list: list[str], index: int | None = None) -> argparse.Namespace | int:
    """The parsed command line (its `cmd` a command of _SPECS or _GROUP_ONLY), or the exit
    status after a usage error, a help text or `--version` was printed."""
    if index is None:
        index = _find_command(args_list)
    command = args_list[index] if index is not None else None
    only = command if command in _SPECS or command in _GROUPS else None
    only_sub = None
    if only in _GROUPS and index is not None:
        rest = args_list[index + 1 :]
        word = next((a for a in rest if not a.startswith("-")), None)
        only_sub = word if word in _GROUPS[only][1] else None
    parser = _build_parser(only, only_sub, help_only=command is None)
    leaf = _leaf(parser, args_list[index:] if index is not None else [])
    args_list = _go_bools(leaf, args_list)
    _ARGV[:] = args_list
    try:
        args, extra = parser.parse_known_args(args_list)
        _check_arguments(leaf, args, extra)
    except Exception as exc:
        from dockyard.cli.usage import UsageError

        if not isinstance(exc, UsageError):
            raise
        sys.stderr.write(exc.message + "\n")
        return exc.code
    if args.version:
        sys.stdout.write(f"Dockyard version {__version__}\n")
        return 0
    if not args.cmd:
        parser.print_help(sys.stderr)  # docker prints its help to stderr when given nothing
        return 0
    if args.cmd in _GROUPS:
        if not args.subcmd:
            leaf.print_help(sys.stderr)
            return 0
        args.cmd = _GROUPS[args.cmd][1][args.subcmd]
    return args


# The commands cli/lean.py parses without argparse (cli/leanspecs.py holds their tables,
# made by lean_specs() and checked against these parsers by tests/cli/test_lean.py).
LEAN_COMMANDS = (
    "build",
    "create",
    "history",
    "images",
    "info",
    "inspect",
    "kill",
    "logs",
    "ps",
    "rm",
    "rmi",
    "run",
    "start",
    "stop",
    "tag",
    "version",
    "wait",
)
_BOOLS = frozenset(flags.GO_BOOLS)


def _option_kind(action: argparse.Action) -> str:
    """How cli/lean.py takes an option: t (store_true), s (a string), i (an int), m (append),
    x (not at all: the command line goes to argparse)."""
    plain = action.nargs is None and action.choices is None and not action.required
    if isinstance(action, argparse._StoreTrueAction):
        return "t"
    if type(action) is argparse._StoreAction and plain:
        return {None: "s", int: "i"}.get(action.type, "x")  # type: ignore[arg-type]
    if type(action) is argparse._AppendAction and plain and action.type is None:
        return "m"
    return "x"


def _go_bool_variant(parser: argparse.ArgumentParser, action: argparse.Action) -> bool:
    """One of flags.add_bool's `--x=true` spellings (never reached: _go_bools rewrites them
    for the store_true flag of the same name first)."""
    if not isinstance(action, argparse._StoreConstAction) or not action.option_strings:
        return False
    for option in action.option_strings:
        name, eq, value = option.partition("=")
        base = parser._option_string_actions.get(name)
        if not (eq and value in _BOOLS and isinstance(base, argparse._StoreTrueAction)):
            return False
    return True


def _lean_spec(
    parser: argparse.ArgumentParser,
) -> tuple[dict[str, tuple[str, str]], dict[str, Any], tuple[tuple[str, str], ...]] | None:
    """(option string -> (dest, kind), dest -> default, positionals as (dest, nargs)) of one
    parser, as argparse would fill its namespace; None: its positionals are beyond lean.py."""
    options: dict[str, tuple[str, str]] = {}
    defaults: dict[str, Any] = {}
    positionals: list[tuple[str, str]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            continue
        if action.option_strings:
            if _go_bool_variant(parser, action):
                continue
            for option in action.option_strings:
                options[option] = (action.dest, _option_kind(action))
            if action.default is argparse.SUPPRESS:
                continue  # (--help: argparse sets nothing)
            if action.dest != argparse.SUPPRESS and action.dest not in defaults:
                default = action.default
                if isinstance(default, str) and action.type is not None:
                    default = parser._get_value(action, default)
                defaults[action.dest] = default
            continue
        if action.type is not None or action.choices is not None:
            return None
        nargs = {None: "1", "?": "?", "*": "*", "+": "+", argparse.REMAINDER: "..."}.get(
            action.nargs  # type: ignore[arg-type]
        )
        if nargs is None:
            return None
        positionals.append((action.dest, nargs))
        if nargs == "?":
            defaults[action.dest] = action.default
        elif nargs == "*":
            defaults[action.dest] = [] if action.default is None else action.default
        elif nargs == "...":
            defaults[action.dest] = []
    if any(n != "1" for _, n in positionals[:-1]):
        return None  # a variable positional before another: argparse's regex split
    for dest, value in parser._defaults.items():
        defaults.setdefault(dest, value)
    return options, defaults, tuple(positionals)


def lean_specs() -> dict[str, Any]:
    """The tables of cli/leanspecs.py: the global options' spec and each lean command's
    (target, spec). `python -m dockyard.cli.commandline --lean-specs` writes the module."""
    top = _build_parser(help_only=True)
    glob = _lean_spec(top)
    assert glob is not None
    commands: dict[str, Any] = {}
    for name in LEAN_COMMANDS:
        parser = _build_parser(name)
        leaf = _leaf(parser, [name])
        spec = _lean_spec(leaf)
        if spec is not None and name not in _ARITY:
            commands[name] = (target(name), *spec)
    return {"GLOBAL": glob, "COMMANDS": commands}


def write_lean_specs() -> str:
    """The text of cli/leanspecs.py."""
    import pprint

    specs = lean_specs()
    return (
        '"""Flag tables of the commands cli/lean.py parses: made from cli/commandline.py\'s\n'
        "argparse parsers by `python -m dockyard.cli.commandline --lean-specs`, checked\n"
        'against them by tests/cli/test_lean.py. Do not edit by hand."""\n\n'
        f"GLOBAL = {pprint.pformat(specs['GLOBAL'], width=100, sort_dicts=False)}\n\n"
        f"COMMANDS = {pprint.pformat(specs['COMMANDS'], width=100, sort_dicts=False)}\n"
    )


if __name__ == "__main__":
    if sys.argv[1:] == ["--lean-specs"]:
        sys.stdout.write(write_lean_specs())
        sys.exit(0)
    sys.exit(main())
