"""Per-instruction rules of the Dockerfile: accepted flags, argument counts, Docker's messages.

A port of the checks in BuildKit's `frontend/dockerfile/instructions/parse.go` and
`bflag.go`. The parser calls `validate` for every instruction, so the builder can rely on
the shape of `Instruction.args` (e.g. COPY has at least two, FROM one or three). Messages
are Docker's own wording; the parser prefixes them with `Dockerfile:LINE:`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from dockyard.errors import InvalidArgument

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
            raise InstructionError(f"unknown flag: {name}")
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


def _validate_healthcheck(args: tuple[str, ...], flags: tuple[tuple[str, str | None], ...]) -> None:
    if not args:
        raise InstructionError("HEALTHCHECK requires at least one argument")
    typ = args[0].upper()
    if typ == "NONE":
        if len(args) > 1:
            raise InstructionError("HEALTHCHECK NONE takes no arguments")
        # BuildKit declares the timing flags only for the CMD form.
        for name, _ in flags:
            raise InstructionError(f"unknown flag: {name}")
        return
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
) -> None:
    """Raise InstructionError if the instruction is not one Docker would accept.

    `written` is the keyword as it appears in the file (for the unknown-instruction message).
    ONBUILD triggers are checked by the caller, which knows the trigger keyword.
    """
    kw = keyword
    up = kw.upper()
    if kw not in KNOWN_KEYWORDS:
        raise InstructionError(f"unknown instruction: {written.upper()}")
    if kw == "healthcheck":
        _validate_healthcheck(args, flags)
        return
    if kw in ("env", "label"):
        parse_flags(kw, flags)
        if not args:
            raise _err_at_least_one(up)
        return
    if kw in ("maintainer", "workdir", "user", "stopsignal"):
        if len(args) != 1:
            raise _err_exactly_one(up)
        parse_flags(kw, flags)
        return
    if kw in ("add", "copy"):
        if len(args) < 2:
            raise InstructionError(
                f"{up} requires at least two arguments, but only one was provided. "
                "Destination could not be determined"
            )
        parse_flags(kw, flags)
        if is_heredoc_word(args[-1]):
            raise InstructionError(f"{up} cannot accept a heredoc as a destination")
        return
    if kw == "from":
        if len(args) == 3 and args[1].lower() == "as":
            if not _VALID_STAGE_NAME.match(args[2].lower()):
                raise InstructionError(
                    f'invalid name for build stage: "{args[2]}", '
                    "name can't start with a number or contain symbols"
                )
        elif len(args) != 1:
            raise InstructionError("FROM requires either one or three arguments")
        parse_flags(kw, flags)
        return
    if kw == "onbuild":
        if not args:
            raise _err_at_least_one(up)
        parse_flags(kw, flags)
        return
    if kw == "run":
        if not args:
            raise _err_at_least_one(up)
        parse_flags(kw, flags)
        return
    if kw in ("cmd", "entrypoint"):
        parse_flags(kw, flags)
        return
    if kw in ("expose", "volume", "arg"):
        if not args:
            raise _err_at_least_one(up)
        parse_flags(kw, flags)
        if kw == "volume" and any(not a.strip() for a in args):
            raise InstructionError("VOLUME specified can not be an empty string")
        if kw == "arg" and any(a.startswith("=") for a in args):
            raise InstructionError("ARG names can not be blank")
        return
    if kw == "shell":
        parse_flags(kw, flags)
        if not args:
            raise _err_at_least_one(up)
        if not json_form:
            raise InstructionError("SHELL requires the arguments to be in JSON form")
        return


def validate_onbuild_trigger(trigger: str) -> None:
    t = trigger.strip().upper()
    if t == "ONBUILD":
        raise InstructionError("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if t in ("MAINTAINER", "FROM"):
        raise InstructionError(f"{t} isn't allowed as an ONBUILD trigger")
