"""Per-instruction rules of the Dockerfile: accepted flags, argument counts, Docker's messages.

A port of the checks in BuildKit's `frontend/dockerfile/instructions/parse.go` and
`bflag.go`. The parser calls `typed` for every instruction: it checks the instruction and
returns its typed form (commands.py), so the builder can rely on the shape of `args` (COPY
has at least two, FROM one or three) and reads parsed flags. Messages are Docker's own
wording; the parser prefixes them with `Dockerfile:LINE:`.

What is checked here is what makes a Dockerfile valid, before anything runs: flags and
their types, RUN's network and security modes, RUN --mount options and COPY/ADD --chmod
when they hold no variable, ADD --checksum with one source. What depends on the values of
variables, or on what dockyard can do (`RUN --device`, legacy `ADD --keep-git-dir`, the
security.insecure entitlement), is the builder's, when the step runs.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, fields
from enum import Enum
from typing import Any

from dockyard.errors import InvalidArgument
from dockyard.frontend import commands as c
from dockyard.frontend.chmod import Chmod, ChmodError, parse_chmod
from dockyard.frontend.mounts import parse_mount

KNOWN_KEYWORDS: frozenset[str] = frozenset(
    {
        "add",
        "arg",
        "cmd",
        "copy",
        "entrypoint",
        "env",
        "expose",
        "from",
        "healthcheck",
        "label",
        "maintainer",
        "onbuild",
        "run",
        "shell",
        "stopsignal",
        "user",
        "volume",
        "workdir",
    }
)


class InstructionError(InvalidArgument):
    """An instruction breaks one of Docker's rules; the parser adds the file and line."""


class FlagKind(Enum):
    BOOL = "bool"
    STRING = "string"
    STRINGS = "strings"  # may be repeated, e.g. RUN --mount


_S, _B, _M = FlagKind.STRING, FlagKind.BOOL, FlagKind.STRINGS

FLAG_SPECS: dict[str, dict[str, FlagKind]] = {
    "from": {"platform": _S},
    "run": {"mount": _M, "network": _S, "security": _S, "device": _M},
    "copy": {"chown": _S, "from": _S, "chmod": _S, "link": _B, "parents": _B, "exclude": _M},
    "add": {
        "chown": _S,
        "chmod": _S,
        "link": _B,
        "keep-git-dir": _B,
        "checksum": _S,
        "unpack": _B,
        "exclude": _M,
    },
    "healthcheck": {
        "interval": _S,
        "timeout": _S,
        "start-period": _S,
        "start-interval": _S,
        "retries": _S,
    },
}

_VALID_STAGE_NAME = re.compile(r"^[a-z][a-z0-9\-_.]*$")
_HEREDOC_WORD = re.compile(r"^(\d*)<<(-?)\s*([^<]*)$")


@dataclass(frozen=True)
class ParsedFlags:
    """Flag values after Docker's rules: bools as "true"/"false", repeatable ones as lists."""

    values: dict[str, str]
    multi: dict[str, list[str]]


def parse_flags(keyword: str, flags: tuple[tuple[str, str | None], ...]) -> ParsedFlags:
    """Check flags against the instruction's spec, as BuildKit's `BFlags.Parse`."""
    spec = FLAG_SPECS.get(keyword, {})
    values: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for name, value in flags:
        kind = spec.get(name)
        if kind is None:
            raise InstructionError(f"Unknown flag: {name}")  # moby 20.10 bflag's words
        if kind is not FlagKind.STRINGS and name in values:
            raise InstructionError(f"Duplicate flag specified: {name}")
        if kind is FlagKind.BOOL:
            if value == "":
                raise InstructionError(f"Missing a value on flag: {name}")
            lower = (value or "").lower()
            if lower == "":
                values[name] = "true"
            elif lower in ("true", "false"):
                values[name] = lower
            else:
                raise InstructionError(f"Expecting boolean value for flag {name}, not: {value}")
        elif value is None:
            raise InstructionError(f"Missing a value on flag: {name}")
        elif kind is FlagKind.STRING:
            values[name] = value
        else:
            multi.setdefault(name, []).append(value)
    return ParsedFlags(values, multi)


def go_duration_ns(text: str) -> int:
    """Parse a Go `time.ParseDuration` string (`1m30s`, `500ms`, `1.5h`) into nanoseconds."""
    units = {
        "ns": 1,
        "us": 1_000,
        "µs": 1_000,
        "μs": 1_000,
        "ms": 1_000_000,
        "s": 1_000_000_000,
        "m": 60_000_000_000,
        "h": 3_600_000_000_000,
    }
    s = text
    neg = False
    if s[:1] in ("-", "+"):
        neg = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        raise InstructionError(f'time: invalid duration "{text}"')
    total = 0.0
    for m in re.finditer(r"(\d*)(?:\.(\d*))?([^\d.]*)", s):
        if not m.group(0):
            continue
        whole, frac, unit = m.group(1), m.group(2), m.group(3)
        if not whole and not frac:
            raise InstructionError(f'time: invalid duration "{text}"')
        if not unit:
            raise InstructionError(f'time: missing unit in duration "{text}"')
        if unit not in units:
            raise InstructionError(f'time: unknown unit "{unit}" in duration "{text}"')
        total += float(f"{whole or '0'}.{frac or '0'}") * units[unit]
    return -int(total) if neg else int(total)


def _interval(flags: ParsedFlags, name: str) -> None:
    value = flags.values.get(name, "")
    if not value:
        return
    ns = go_duration_ns(value)
    if ns != 0 and ns < 1_000_000:
        raise InstructionError(f'Interval "{name}" cannot be less than 1ms')


def _validate_healthcheck(
    args: tuple[str, ...], flags: tuple[tuple[str, str | None], ...]
) -> ParsedFlags:
    if not args:
        raise InstructionError("HEALTHCHECK requires at least one argument")
    typ = args[0].upper()
    if typ == "NONE":
        if len(args) > 1:
            raise InstructionError("HEALTHCHECK NONE takes no arguments")
        # BuildKit declares the timing flags only for the CMD form.
        for name, _ in flags:
            raise InstructionError(f"Unknown flag: {name}")  # moby 20.10 bflag's words
        return ParsedFlags({}, {})
    parsed = parse_flags("healthcheck", flags)
    if typ != "CMD":
        raise InstructionError(f'Unknown type "{typ}" in HEALTHCHECK (try CMD)')
    if len(args) < 2:
        raise InstructionError("Missing command after HEALTHCHECK CMD")
    for name in ("interval", "timeout", "start-period", "start-interval"):
        _interval(parsed, name)
    retries = parsed.values.get("retries", "")
    if retries:
        try:
            n = int(retries, 10)
        except ValueError:
            raise InstructionError(
                f'strconv.ParseInt: parsing "{retries}": invalid syntax'
            ) from None
        if n < 0:
            raise InstructionError(f"--retries cannot be negative ({n})")
    return parsed


def _err_at_least_one(cmd: str) -> InstructionError:
    return InstructionError(f"{cmd} requires at least one argument")


def _err_exactly_one(cmd: str) -> InstructionError:
    return InstructionError(f"{cmd} requires exactly one argument")


def is_heredoc_word(word: str) -> bool:
    m = _HEREDOC_WORD.match(word)
    return bool(m and m.group(3))


def validate(
    keyword: str,
    args: tuple[str, ...],
    flags: tuple[tuple[str, str | None], ...],
    json_form: bool,
    written: str,
) -> ParsedFlags:
    """Raise InstructionError if the instruction is not one Docker would accept; return its
    flags, parsed.

    `written` is the keyword as it appears in the file (for the unknown-instruction message).
    ONBUILD triggers are checked by the caller, which knows the trigger keyword.
    """
    kw = keyword
    up = kw.upper()
    if kw not in KNOWN_KEYWORDS:
        raise InstructionError(f"unknown instruction: {written.upper()}")
    if kw == "healthcheck":
        return _validate_healthcheck(args, flags)
    if kw in ("maintainer", "workdir", "user", "stopsignal") and len(args) != 1:
        raise _err_exactly_one(up)
    if kw in ("add", "copy") and len(args) < 2:
        raise InstructionError(
            f"{up} requires at least two arguments, but only one was provided. "
            "Destination could not be determined"
        )
    if kw == "from" and not (len(args) == 3 and args[1].lower() == "as") and len(args) != 1:
        raise InstructionError("FROM requires either one or three arguments")
    if kw == "from" and len(args) == 3 and not _VALID_STAGE_NAME.match(args[2].lower()):
        raise InstructionError(
            f'invalid name for build stage: "{args[2]}", '
            "name can't start with a number or contain symbols"
        )
    if kw in ("env", "label") and not args:
        parse_flags(kw, flags)  # BuildKit checks their flags first
        raise _err_at_least_one(up)
    if kw in ("onbuild", "run", "expose", "volume", "arg") and not args:
        raise _err_at_least_one(up)
    parsed = parse_flags(kw, flags)
    if kw in ("add", "copy") and is_heredoc_word(args[-1]):
        raise InstructionError(f"{up} cannot accept a heredoc as a destination")
    if kw == "volume" and any(not a.strip() for a in args):
        raise InstructionError("VOLUME specified can not be an empty string")
    if kw == "arg" and any(a.startswith("=") for a in args):
        raise InstructionError("ARG names can not be blank")
    if kw == "shell" and not args:
        raise _err_at_least_one(up)
    if kw == "shell" and not json_form:
        raise InstructionError("SHELL requires the arguments to be in JSON form")
    return parsed


def validate_onbuild_trigger(trigger: str) -> None:
    t = trigger.strip().upper()
    if t == "ONBUILD":
        raise InstructionError("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if t in ("MAINTAINER", "FROM"):
        raise InstructionError(f"{t} isn't allowed as an ONBUILD trigger")


def check_chmod(value: str) -> Chmod:
    """--chmod: octal, or symbolic as BuildKit's dockerfile 1.14+ takes it (frontend/chmod.py)."""
    try:
        return parse_chmod(value)
    except ChmodError as e:
        raise InstructionError(str(e)) from None


# typed instructions -----------------------------------------------------------------------


def _base(ins: c.Instruction) -> dict[str, Any]:
    return {f.name: getattr(ins, f.name) for f in fields(c.Instruction)}


def _from(ins: c.Instruction, f: ParsedFlags) -> c.Instruction:
    name = ins.args[2].lower() if len(ins.args) == 3 else ""
    return c.FromInstruction(
        **_base(ins), base=ins.args[0], stage_name=name, platform=f.values.get("platform", "")
    )


def _run(ins: c.Instruction, f: ParsedFlags) -> c.Instruction:
    network = f.values.get("network", "")
    if network and network not in ("default", "none", "host"):
        raise InstructionError(f"unsupported network mode {network!r} (default, none, host)")
    security = f.values.get("security", "sandbox")
    if security not in ("sandbox", "insecure"):
        raise InstructionError(f"unsupported security mode {security!r}")
    mounts = tuple(f.multi.get("mount", []))
    for spec in mounts:
        if "$" not in spec:
            parse_mount(spec, "/")
    return c.RunInstruction(
        **_base(ins),
        mounts=mounts,
        network=network,
        security=security,
        devices=tuple(f.multi.get("device", [])),
    )


def _file_fields(ins: c.Instruction, f: ParsedFlags) -> dict[str, Any]:
    chmod = f.values.get("chmod", "")
    if chmod and "$" not in chmod:
        check_chmod(chmod)
    return {
        **_base(ins),
        "sources": ins.args[:-1],
        "dest": ins.args[-1],
        "chown": f.values.get("chown", ""),
        "chmod": chmod,
        "link": f.values.get("link") == "true",
        "excludes": tuple(f.multi.get("exclude", [])),
    }


def _copy(ins: c.Instruction, f: ParsedFlags) -> c.Instruction:
    return c.CopyInstruction(
        **_file_fields(ins, f),
        from_=f.values.get("from", ""),
        parents=f.values.get("parents") == "true",
    )


def _add(ins: c.Instruction, f: ParsedFlags) -> c.Instruction:
    checksum = f.values.get("checksum", "")
    if checksum and len(ins.args) != 2:
        raise InstructionError("checksum can't be specified for multiple sources")
    unpack = f.values.get("unpack")
    return c.AddInstruction(
        **_file_fields(ins, f),
        checksum=checksum,
        unpack=None if unpack is None else unpack == "true",
        keep_git_dir=f.values.get("keep-git-dir") == "true",
    )


def _healthcheck(ins: c.Instruction, f: ParsedFlags) -> c.Instruction:
    if ins.args[0].upper() == "NONE":
        return c.HealthcheckInstruction(**_base(ins), test=("NONE",))
    test = ("CMD", *ins.args[1:]) if ins.json_form else ("CMD-SHELL", ins.args[1])

    def ns(name: str) -> int:
        value = f.values.get(name, "")
        return go_duration_ns(value) if value else 0

    return c.HealthcheckInstruction(
        **_base(ins),
        test=test,
        interval=ns("interval"),
        timeout=ns("timeout"),
        start_period=ns("start-period"),
        start_interval=ns("start-interval"),
        retries=int(f.values.get("retries") or 0),
    )


def _one(cls: type[c.Instruction], name: str = "") -> Callable[..., c.Instruction]:
    def make(ins: c.Instruction, f: ParsedFlags) -> c.Instruction:
        del f
        extra: dict[str, Any] = {name: ins.args[0]} if name else {}
        return cls(**_base(ins), **extra)

    return make


_TYPED: dict[str, Callable[[c.Instruction, ParsedFlags], c.Instruction]] = {
    "from": _from,
    "arg": _one(c.ArgInstruction),
    "run": _run,
    "copy": _copy,
    "add": _add,
    "workdir": _one(c.WorkdirInstruction, "path"),
    "env": _one(c.EnvInstruction),
    "label": _one(c.LabelInstruction),
    "maintainer": _one(c.MaintainerInstruction, "name"),
    "expose": lambda ins, f: c.ExposeInstruction(**_base(ins), ports=ins.args),
    "cmd": _one(c.CmdInstruction),
    "entrypoint": _one(c.EntrypointInstruction),
    "user": _one(c.UserInstruction, "user"),
    "volume": lambda ins, f: c.VolumeInstruction(**_base(ins), paths=ins.args),
    "shell": lambda ins, f: c.ShellInstruction(**_base(ins), shell=ins.args),
    "stopsignal": _one(c.StopsignalInstruction, "signal"),
    "healthcheck": _healthcheck,
    "onbuild": _one(c.OnbuildInstruction, "trigger"),
}


def typed(ins: c.Instruction, written: str) -> c.Instruction:
    """Check `ins` as BuildKit's instructions.ParseInstruction does; return its typed form.

    `written` is the keyword as it appears in the file (for the unknown-instruction message).
    """
    flags = validate(ins.keyword, ins.args, ins.flags, ins.json_form, written)
    return _TYPED[ins.keyword](ins, flags)
