"""Flag helpers shared by the command parsers (pflag's conventions on argparse)."""

from __future__ import annotations

import argparse

# strconv.ParseBool's spellings: pflag takes `--flag=false` for a boolean flag, never a
# separate word (`--rm busybox` is not `--rm=busybox`).
_GO_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_GO_FALSE = ("0", "f", "F", "FALSE", "false", "False")
GO_BOOLS = {**dict.fromkeys(_GO_TRUE, True), **dict.fromkeys(_GO_FALSE, False)}


def add_bool(
    p: argparse.ArgumentParser, *names: str, help: str, default: bool | None = False
) -> None:
    """A pflag boolean: `--x`, `--x=true|false` (and `-x=false`); default None tells "not
    given" apart."""
    action = p.add_argument(*names, action="store_true", default=default, help=help)
    for name in names:
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


# The API version docker CLI 28 needs before it sends `--platform` for these commands
# (cli/command/image/*.go: versions.LessThan checks); below it the CLI refuses the flag.
PLATFORM_API = {
    "history": "1.48",
    "save": "1.48",
    "load": "1.48",
    "rmi": "1.50",
    "push": "1.46",
    "image inspect": "1.49",
}


def require_platform_api(ctx: object, command: str, platforms: list[str] | str | None) -> None:
    """docker CLI 28 refuses `--platform` on a daemon too old for it, in these words; dockyard's
    API is such a daemon, so our CLI says the same (one ping, only when the flag is given)."""
    if not platforms:
        return
    require_api(ctx, '"--platform"', PLATFORM_API[command])
    check_native_platform(command, platforms)


def require_api(ctx: object, flag: str, needed: str) -> None:
    """docker CLI 28's check for a flag newer than the daemon's API version, in its words."""
    from dockyard.cli.context import CommandError, Context

    assert isinstance(ctx, Context)
    have = ctx.client.ping().get("api-version", "")

    def key(v: str) -> tuple[int, ...]:
        return tuple(int(p) for p in v.split(".") if p.isdigit())

    if have and key(have) < key(needed):
        raise CommandError(
            f"{flag} requires API version {needed}, but the Docker daemon API version is {have}"
        )
