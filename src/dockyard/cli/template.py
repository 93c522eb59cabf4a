"""A tiny subset of Go's text/template for `inspect -f`, evaluated on decoded JSON.

Supported: literal text, `{{.}}`, field paths `{{.A.B}}`, and the functions docker adds or
users reach for most: `json`, `index`, `join`, `upper`, `lower`, `title`, `len`, `println`,
with `{{-`/`-}}` trimming. Anything else (range, if, pipelines) is refused with a clear
error rather than guessed at.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from dockyard.cli.output import go_json

_ACTION = re.compile(r"{{(-\s)?(.*?)(\s-)?}}", re.S)


class TemplateError(Exception):
    """The template uses something this evaluator does not implement, or a bad path."""


def go_format(value: Any) -> str:
    """fmt's %v for JSON-decoded values (maps print sorted, as Go's fmt does since 1.12)."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e21 else repr(value)
    if isinstance(value, list):
        return "[" + " ".join(go_format(v) for v in value) + "]"
    if isinstance(value, dict):
        items = " ".join(f"{k}:{go_format(value[k])}" for k in sorted(value))
        return "map[" + items + "]"
    return str(value)


class _Missing:
    """Go's "<no value>" for a key absent from a map."""

    def __str__(self) -> str:
        return "<no value>"


_NO_VALUE = _Missing()


def _lookup(data: Any, path: str) -> Any:
    if path == ".":
        return data
    value = data
    for field in path.lstrip(".").split("."):
        if isinstance(value, _Missing):
            return value
        if not isinstance(value, dict):
            kind = type(value).__name__ if value is not None else "nil"
            raise TemplateError(f"can't evaluate field {field} in type {kind}")
        value = value.get(field, _NO_VALUE)
    return value


def _argument(token: str, data: Any) -> Any:
    if token.startswith("."):
        return _lookup(data, token)
    if token.startswith(('"', "`")):
        return token[1:-1]
    try:
        return int(token)
    except ValueError:
        raise TemplateError(f"unsupported template argument {token!r}") from None


def _render(value: Any) -> str:
    if isinstance(value, _Missing):
        return str(value)
    return go_format(value)


def _call(name: str, args: list[Any]) -> Any:
    if name == "json" and len(args) == 1:
        return None if isinstance(args[0], _Missing) else _Raw(go_json(args[0]))
    if name == "index" and len(args) >= 2:
        value = args[0]
        for key in args[1:]:
            try:
                value = value[key]
            except (KeyError, IndexError, TypeError):
                raise TemplateError(f"error calling index: cannot index with {key!r}") from None
        return value
    if name == "join" and len(args) == 2:
        return _Raw(str(args[1]).join(_render(v) for v in args[0] or []))
    if name in ("upper", "lower", "title") and len(args) == 1:
        text = _render(args[0])
        return _Raw(getattr(text, name)())
    if name == "len" and len(args) == 1:
        return len(args[0] or [])
    if name == "println":
        return _Raw(" ".join(_render(a) for a in args) + "\n")
    raise TemplateError(f'function "{name}" is not supported (with {len(args)} arguments)')


class _Raw(str):
    """Already-formatted function output (printed as is)."""


def render(template: str, data: Any) -> str:
    """Execute `template` against `data` (a decoded JSON object)."""
    out: list[str] = []
    pos = 0
    for m in _ACTION.finditer(template):
        text = template[pos : m.start()]
        if m.group(1):
            text = text.rstrip()
        out.append(text)
        pos = m.end()
        if m.group(3):
            rest = template[pos:]
            pos += len(rest) - len(rest.lstrip())
        action = m.group(2).strip()
        if action.startswith("/*"):
            continue
        try:
            tokens = shlex.split(action, posix=False)
        except ValueError as exc:
            raise TemplateError(f"bad template action {{{{{action}}}}}: {exc}") from None
        if not tokens:
            raise TemplateError("missing value for command")
        if "|" in tokens or tokens[0] in ("range", "if", "with", "define", "template", "end"):
            raise TemplateError(f"template action {{{{{action}}}}} is not supported")
        if tokens[0].startswith("."):
            if len(tokens) > 1:
                raise TemplateError(f"can't give argument to non-function {tokens[0]}")
            value = _lookup(data, tokens[0])
        else:
            value = _call(tokens[0], [_argument(t, data) for t in tokens[1:]])
        out.append(value if isinstance(value, _Raw) else _render(value))
    out.append(template[pos:])
    return "".join(out)
