"""Flag helpers shared by the command parsers (pflag's conventions on argparse)."""

from __future__ import annotations

import argparse

# strconv.ParseBool's spellings: pflag takes `--flag=false` for a boolean flag, never a
# separate word (`--rm busybox` is not `--rm=busybox`).
_GO_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_GO_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def add_bool(
    p: argparse.ArgumentParser, *names: str, help: str, default: bool | None = False
) -> None:
    """A pflag boolean: `--x` and `--x=true|false`; default None tells "not given" apart."""
    action = p.add_argument(*names, action="store_true", default=default, help=help)
    for name in names:
        if not name.startswith("--"):
            continue
        for values, const in ((_GO_TRUE, True), (_GO_FALSE, False)):
            p.add_argument(
                *(f"{name}={v}" for v in values),
                action="store_const",
                const=const,
                dest=action.dest,
                help=argparse.SUPPRESS,
            )


def check_native_platform(command: str, platforms: list[str] | str | None) -> None:
    """`--platform` on save/load/rmi/push picks a variant of a multi-platform image; dockyard's
    images have one platform, so only that one can be named (anything else is refused)."""
    import platform as host

    from dockyard.cli.context import CommandError

    machine = {"x86_64": "amd64", "aarch64": "arm64"}.get(host.machine(), host.machine())
    wanted = [platforms] if isinstance(platforms, str) else list(platforms or [])
    for value in wanted:
        if value.split("/")[:2] != ["linux", machine]:
            raise CommandError(
                f"dockyard {command}: --platform {value} is not supported: images here are "
                f"single-platform (linux/{machine})"
            )
