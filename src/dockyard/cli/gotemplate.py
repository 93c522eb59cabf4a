"""Go's text/template, as the docker CLI's `--format` runs it (docker/cli templates/templates.go).

The language: text and `{{ }}` actions with `{{- -}}` trimming and `/* */` comments; pipelines
(`.A.B | lower`), variables (`$x := …`, `$x = …`, `$`), parenthesised pipelines, literals;
`if`/`else if`/`else`, `range` (with `$i, $v :=`, `else`, `break`, `continue`), `with`, `end`.
Functions: Go's builtins (and, or, not, len, index, slice, eq, ne, lt, le, gt, ge, print,
printf, println, html, js, urlquery) and docker's (json, split, join, title, lower, upper,
pad, truncate). `define`/`template`/`block`/`call` are refused by name.

Values are decoded JSON (dict, list, str, int, float, bool, None) or formatter contexts:
objects whose public CamelCase methods are the fields a template sees, as docker's
`ContainerContext.ID()`; `json` of a context marshals every argument-less method, as docker's
`formatter.MarshalJSON`. Printing follows fmt's %v (maps sorted, `<nil>`, `<no value>` for a
missing map key). Imported only when a command is given `--format`.
"""

from __future__ import annotations

from dockyard.cli import cjson

TYPE_CHECKING = False  # typing itself costs ~1.5 ms of start-up; mypy honours this name

if TYPE_CHECKING:
    import re
    from collections.abc import Callable, Iterator
    from typing import Any


def _parameters(function: Callable[..., Any]) -> int:
    """len(inspect.signature(function).parameters), from the code object of a plain function
    (`inspect` imports ast, dis, enum and re: ~10 ms of every `--format '{{json .}}'`)."""
    code = getattr(function, "__code__", None)
    if code is None or hasattr(function, "__wrapped__"):
        import inspect

        return len(inspect.signature(function).parameters)
    varargs = 1 if code.co_flags & 0x04 else 0  # CO_VARARGS
    varkw = 1 if code.co_flags & 0x08 else 0  # CO_VARKEYWORDS
    return int(code.co_argcount + code.co_kwonlyargcount + varargs + varkw)


class TemplateError(Exception):
    """A parse or execution error, worded as Go's `template: …` messages."""


class _NoValue:
    """What a missing map key evaluates to: printed `<no value>`, false, nil to functions."""

    def __repr__(self) -> str:
        return "<no value>"


NO_VALUE = _NoValue()


class GoDuration(int):
    """A time.Duration (nanoseconds): JSON as the number, printed as Go's String() ("1m30s")."""

    def __str__(self) -> str:
        return go_duration(int(self))


def go_duration(ns: int) -> str:
    """time.Duration.String: "0s", "500ms", "1.5s", "1m30s", "2h0m0s"."""
    if ns == 0:
        return "0s"
    sign, ns = ("-", -ns) if ns < 0 else ("", ns)
    if ns < 1000:
        return f"{sign}{ns}ns"
    if ns < 10**6:
        return f"{sign}{_trim(ns / 1000)}µs"
    if ns < 10**9:
        return f"{sign}{_trim(ns / 10**6)}ms"
    hours, rest = divmod(ns, 3600 * 10**9)
    minutes, rest = divmod(rest, 60 * 10**9)
    seconds = _trim(rest / 10**9)
    if hours:
        return f"{sign}{hours}h{minutes}m{seconds}s"
    if minutes:
        return f"{sign}{minutes}m{seconds}s"
    return f"{sign}{seconds}s"


def _trim(value: float) -> str:
    text = f"{value:.9f}".rstrip("0").rstrip(".")
    return text or "0"


class Context:
    """Base of formatter contexts: public methods named like Go's are the template's fields."""

    # docker's contexts marshal through formatter.MarshalJSON, a map (sorted keys); a plain
    # Go struct marshals its fields in declaration order (`fields()` gives that order)
    MARSHAL_SORTED = True

    def fields(self) -> list[str]:
        """The argument-less methods `json .` marshals (docker's marshalMap)."""
        out = []
        for name in dir(type(self)):
            if not name[:1].isupper():
                continue
            member = getattr(type(self), name)
            if callable(member) and _parameters(member) == 1:
                out.append(name)
        return sorted(out)

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name)() for name in self.fields()}


# -- printing ---------------------------------------------------------------------------------
def go_float(value: float) -> str:
    """strconv.FormatFloat(v, 'g', -1, 64), which %v uses: shortest repr, exponent past 1e21."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    text = repr(value)
    if "e" in text or "E" in text:
        mantissa, _, exp = text.partition("e")
        sign = "-" if exp.startswith("-") else "+"
        digits = exp.lstrip("+-").rjust(2, "0")
        return f"{mantissa.removesuffix('.0')}e{sign}{digits}"
    if text.endswith(".0"):
        text = text[:-2]
    if abs(value) >= 1e21:
        return f"{value:e}"
    return text


def go_format(value: Any) -> str:
    """fmt's %v for our values (maps print sorted, as Go's fmt does since 1.12)."""
    if value is NO_VALUE:
        return "<no value>"
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, GoDuration):
        return str(value)
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, list | tuple):
        return "[" + " ".join(go_format(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_format(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, Context):
        return "&{" + " ".join(go_format(v) for v in value.to_json().values()) + "}"
    return str(value)


_ALNUM = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_WORD = _ALNUM | {"_"}


def _is_ident(key: str) -> bool:
    """[A-Za-z][A-Za-z0-9]*: a Go identifier as a struct field (no `re`: see _lex)."""
    return bool(key) and key[0] in _ALNUM and not key[0].isdigit() and set(key) <= _ALNUM


def _is_struct_key(key: str) -> bool:
    """[A-Z][A-Za-z0-9]*: an exported Go field name."""
    return _is_ident(key) and key[0].isupper()


def _jsonable(value: Any) -> Any:
    if value is NO_VALUE:
        return None
    if isinstance(value, Context):
        return {k: _jsonable(v) for k, v in value.to_json().items()}
    if isinstance(value, dict):
        # Docker's typed structs marshal in field order (identifier keys, some exported; kept
        # as the daemon sent them); its maps (labels, ports, attributes…) marshal sorted, as
        # Go's json does.
        keys = list(value)
        struct = all(isinstance(k, str) and _is_ident(k) for k in keys) and any(
            isinstance(k, str) and _is_struct_key(k) for k in keys
        )
        if not struct:
            keys = sorted(keys, key=str)
        return {k: _jsonable(value[k]) for k in keys}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def go_json(value: Any) -> str:
    """docker's `json` function: encoding/json without HTML escaping, no trailing newline.

    A context marshals as a Go map (sorted keys); decoded JSON keeps the daemon's order, as
    docker's typed structs do.
    """
    doc = _jsonable(value)
    if isinstance(value, Context):
        # a context's MarshalJSON is json.Marshal, which escapes <, > and & (\u003c …)
        text = cjson.dumps_compact_utf8(doc, sort_keys=value.MARSHAL_SORTED)
        return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return cjson.dumps_compact_utf8(doc)


def truth(value: Any) -> bool:
    """text/template's truth: false, 0, nil, and empty strings, slices and maps are false."""
    if value is None or value is NO_VALUE:
        return False
    if isinstance(value, bool | int | float | str | list | tuple | dict):
        return bool(value)
    return True


# -- lexing -----------------------------------------------------------------------------------
_TOKEN_PATTERN = r"""
    (?P<space>\s+)
  | (?P<comment>/\*.*?\*/)
  | (?P<declare>:=)
  | (?P<assign>=)
  | (?P<pipe>\|)
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<comma>,)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<raw>`[^`]*`)
  | (?P<char>'(?:[^'\\\n]|\\.)+')
  | (?P<number>[+-]?(?:0[xX][0-9a-fA-F_]+|0[bB][01_]+|0[oO]?[0-7_]+(?![.\deE])|(?:\d[\d_]*)?\.?\d[\d_]*(?:[eE][+-]?\d+)?))
  | (?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+)
  | (?P<variable>\$[A-Za-z0-9_]*)
  | (?P<dot>\.)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    """
# The single-character tokens and what _lex_plain takes without `re` (which imports enum:
# ~5 ms of every `ps --format`); the rest of Go's action syntax goes to _TOKEN_PATTERN.
_PUNCT = {"|": "pipe", "(": "lparen", ")": "rparen", ",": "comma"}


class _Tok:
    __slots__ = ("kind", "pos", "text")

    def __init__(self, kind: str, text: str, pos: int) -> None:
        self.kind = kind
        self.text = text
        self.pos = pos  # offset in the whole template, for Go's "line:col" in errors

    def __repr__(self) -> str:
        return f"{self.kind}:{self.text}"


def _find_close(src: str, start: int) -> int:
    """Index of the `}}` ending the action that starts at `start`, skipping quoted text."""
    i = start
    while i < len(src):
        c = src[i]
        if c in "\"'`":
            j = i + 1
            while j < len(src) and src[j] != c:
                if src[j] == "\\" and c != "`":
                    j += 1
                j += 1
            i = j + 1
            continue
        if src.startswith("/*", i):
            end = src.find("*/", i + 2)
            i = len(src) if end < 0 else end + 2
            continue
        if src.startswith("}}", i):
            return i
        i += 1
    return -1


def _line(src: str, pos: int) -> int:
    return src.count("\n", 0, pos) + 1


def _split(src: str) -> Iterator[tuple[str, str, int]]:
    """("text", text, pos) and ("action", inner, inner_pos) pieces, trim markers applied."""
    pos = 0
    pending_trim = False
    while True:
        open_at = src.find("{{", pos)
        text = src[pos:] if open_at < 0 else src[pos:open_at]
        inner_start = open_at + 2
        trim_left = (
            open_at >= 0
            and src.startswith("-", inner_start)
            and inner_start + 1 < len(src)
            and src[inner_start + 1] in " \t\r\n"
        )
        if pending_trim:
            text = text.lstrip(" \t\r\n")
        if trim_left:
            text = text.rstrip(" \t\r\n")
        if text:
            yield "text", text, pos
        if open_at < 0:
            return
        if trim_left:
            inner_start += 2
        close = _find_close(src, inner_start)
        if close < 0:
            raise TemplateError(f"template: :{_line(src, open_at)}: unclosed action")
        inner = src[inner_start:close]
        pending_trim = False
        if len(inner) >= 2 and inner[-1] == "-" and inner[-2] in " \t\r\n":
            inner = inner[:-2]
            pending_trim = True
        yield "action", inner, inner_start
        pos = close + 2


def _lex_plain(action: str, base: int) -> list[_Tok] | None:
    """The tokens of an action made of fields, variables, identifiers, pipes, parentheses,
    commas and strings without escapes, as _TOKEN_PATTERN splits them; None for anything
    else (numbers, comments, `:=`, raw strings, chars, escapes), which _lex leaves to `re`."""
    toks: list[_Tok] = []
    pos = 0
    n = len(action)
    while pos < n:
        c = action[pos]
        start = pos
        if c.isspace():
            while pos < n and action[pos].isspace():
                pos += 1
            continue
        if c in _PUNCT:
            toks.append(_Tok(_PUNCT[c], c, base + pos))
            pos += 1
            continue
        if c == '"':
            end = action.find('"', pos + 1)
            if end < 0 or "\\" in action[pos:end] or "\n" in action[pos:end]:
                return None
            pos = end + 1
            toks.append(_Tok("string", action[start:pos], base + start))
            continue
        if c == ".":
            if pos + 1 < n and action[pos + 1].isdigit():
                return None  # a number (.5)
            while pos < n and action[pos] == ".":
                first = action[pos + 1 : pos + 2]
                if not first or first not in _WORD or first.isdigit():
                    break
                pos += 2
                while pos < n and action[pos] in _WORD:
                    pos += 1
            if pos == start:
                pos += 1
                toks.append(_Tok("dot", ".", base + start))
            else:
                toks.append(_Tok("field", action[start:pos], base + start))
            continue
        if c == "$":
            pos += 1
            while pos < n and action[pos] in _WORD:
                pos += 1
            toks.append(_Tok("variable", action[start:pos], base + start))
            continue
        if c in _WORD and not c.isdigit():
            while pos < n and action[pos] in _WORD:
                pos += 1
            toks.append(_Tok("ident", action[start:pos], base + start))
            continue
        return None
    return toks


def _lex(action: str, line: int, base: int) -> list[_Tok]:
    plain = _lex_plain(action, base)
    return plain if plain is not None else _lex_re(action, line, base)


def _lex_re(action: str, line: int, base: int) -> list[_Tok]:
    import re

    token = re.compile(_TOKEN_PATTERN, re.S | re.X)
    toks: list[_Tok] = []
    pos = 0
    while pos < len(action):
        m = token.match(action, pos)
        if m is None:
            raise TemplateError(f"template: :{line}: unexpected {action[pos]!r} in command")
        kind = m.lastgroup or ""
        pos = m.end()
        if kind in ("space", "comment"):
            continue
        toks.append(_Tok(kind, m.group(), base + m.start()))
    return toks


# -- parse tree -------------------------------------------------------------------------------
class _Node:
    pass


class _Text(_Node):
    def __init__(self, text: str) -> None:
        self.text = text


class _Pipe(_Node):
    def __init__(self, decl: list[str], assign: bool, cmds: list[list[Any]], where: str) -> None:
        self.decl = decl
        self.assign = assign
        self.cmds = cmds
        self.where = where


class _Action(_Node):
    def __init__(self, pipe: _Pipe) -> None:
        self.pipe = pipe


class _Block(_Node):
    def __init__(self, kind: str, pipe: _Pipe) -> None:
        self.kind = kind
        self.pipe = pipe
        self.body: list[_Node] = []
        self.orelse: list[_Node] = []


class _Loop(_Node):
    def __init__(self, kind: str) -> None:
        self.kind = kind  # "break" or "continue"


# operands
class _Field:
    def __init__(self, base: Any, names: list[str], text: str, pos: int = 0) -> None:
        self.base = base  # None for dot, a variable name, or a parenthesised _Pipe
        self.names = names
        self.text = text
        self.pos = pos


class _Lit:
    def __init__(self, value: Any) -> None:
        self.value = value


class _Func:
    def __init__(self, name: str, pos: int = 0) -> None:
        self.name = name
        self.pos = pos


def _unquote(tok: _Tok, line: int) -> Any:
    if tok.kind == "raw":
        return tok.text[1:-1]
    if tok.kind == "string":
        try:
            return cjson.loads(tok.text) if "\\x" not in tok.text else tok.text[1:-1]
        except ValueError:
            raise TemplateError(f"template: :{line}: bad string {tok.text}") from None
    if tok.kind == "char":
        body = tok.text[1:-1]
        value = cjson.loads('"' + body.replace('"', '\\"') + '"') if body.startswith("\\") else body
        return ord(value)
    raise AssertionError(tok.kind)


def _number(text: str, line: int) -> int | float:
    clean = text.replace("_", "")
    try:
        import re

        if re.fullmatch(r"[+-]?0[xX][0-9a-fA-F]+", clean):
            return int(clean, 16)
        if re.fullmatch(r"[+-]?0[bB][01]+", clean):
            return int(clean, 2)
        if re.fullmatch(r"[+-]?0[oO]?[0-7]+", clean) and clean.lstrip("+-") != "0":
            return int(clean.replace("o", "").replace("O", ""), 8)
        if re.fullmatch(r"[+-]?\d+", clean):
            return int(clean)
        return float(clean)
    except ValueError:
        raise TemplateError(f"template: :{line}: bad number syntax: {text!r}") from None


class _Parser:
    def __init__(self, src: str, funcs: dict[str, Callable[..., Any]]) -> None:
        self.src = src
        self.funcs = funcs

    def parse(self) -> list[_Node]:
        root: list[_Node] = []
        # open blocks, each with the branch being filled and whether an `else if` opened it
        stack: list[tuple[_Block, list[_Node], bool]] = []
        target = root
        for kind, text, pos in _split(self.src):
            line = _line(self.src, pos)
            if kind == "text":
                target.append(_Text(text))
                continue
            toks = _lex(text, line, pos)
            if not toks:
                if text.strip().startswith("/*"):
                    continue  # a comment
                raise TemplateError(f"template: :{line}: missing value for command")
            head = toks[0]
            word = head.text if head.kind == "ident" else ""
            if word in ("if", "range", "with"):
                block = _Block(word, self._pipe(toks[1:], line, text, word == "range"))
                target.append(block)
                stack.append((block, block.body, False))
                target = block.body
            elif word == "else":
                if not stack:
                    raise TemplateError(f"template: :{line}: unexpected {{{{else}}}}")
                block, branch, chained = stack[-1]
                if branch is block.orelse:
                    raise TemplateError(f"template: :{line}: expected end; found {{{{else}}}}")
                stack[-1] = (block, block.orelse, chained)
                rest = toks[1:]
                if rest and rest[0].kind == "ident" and rest[0].text in ("if", "with"):
                    # `else if X` is an `if` in the else branch, closed by the same `end`.
                    inner = _Block(rest[0].text, self._pipe(rest[1:], line, text, False))
                    block.orelse.append(inner)
                    stack.append((inner, inner.body, True))
                    target = inner.body
                elif rest:
                    raise TemplateError(f"template: :{line}: unexpected {rest[0].text} in else")
                else:
                    target = block.orelse
            elif word == "end":
                if not stack:
                    raise TemplateError(f"template: :{line}: unexpected {{{{end}}}}")
                while stack:
                    _, _, chained = stack.pop()
                    if not chained:
                        break
                target = stack[-1][1] if stack else root
            elif word in ("break", "continue"):
                if not any(b.kind == "range" for b, _, _ in stack):
                    raise TemplateError(f"template: :{line}: {{{{{word}}}}} outside {{{{range}}}}")
                target.append(_Loop(word))
            elif word in ("define", "template", "block"):
                raise TemplateError(f"template: :{line}: {{{{{word}}}}} is not supported")
            else:
                target.append(_Action(self._pipe(toks, line, text, False)))
        if stack:
            raise TemplateError(f"template: :{_line(self.src, len(self.src))}: unexpected EOF")
        return root

    def _pipe(self, toks: list[_Tok], line: int, text: str, in_range: bool) -> _Pipe:
        decl: list[str] = []
        assign = False
        # `$x :=`, `$x =`, or (range) `$i, $v :=`
        if toks and toks[0].kind == "variable":
            if len(toks) > 1 and toks[1].kind in ("declare", "assign"):
                decl, assign, toks = [toks[0].text], toks[1].kind == "assign", toks[2:]
            elif (
                in_range
                and len(toks) > 3
                and toks[1].kind == "comma"
                and toks[2].kind == "variable"
                and toks[3].kind in ("declare", "assign")
            ):
                decl, assign, toks = (
                    [toks[0].text, toks[2].text],
                    toks[3].kind == "assign",
                    toks[4:],
                )
        cmds: list[list[Any]] = [[]]
        i = 0
        while i < len(toks):
            tok = toks[i]
            if tok.kind == "pipe":
                if not cmds[-1]:
                    raise TemplateError(f"template: :{line}: missing command")
                cmds.append([])
                i += 1
                continue
            operand, i = self._operand(toks, i, line, text)
            cmds[-1].append(operand)
        if not cmds[-1]:
            raise TemplateError(f"template: :{line}: missing value for command")
        return _Pipe(decl, assign, cmds, "{{" + text.strip() + "}}")

    def _operand(self, toks: list[_Tok], i: int, line: int, text: str) -> tuple[Any, int]:
        tok = toks[i]
        kind = tok.kind
        if kind == "field":
            return _Field(None, tok.text[1:].split("."), tok.text, tok.pos), i + 1
        if kind == "dot":
            return _Field(None, [], ".", tok.pos), i + 1
        if kind == "variable":
            nxt = toks[i + 1] if i + 1 < len(toks) else None
            names: list[str] = []
            if nxt is not None and nxt.kind == "field" and self._adjacent(text, tok, nxt):
                names = nxt.text[1:].split(".")
                i += 1
            text_ = tok.text + ("." + ".".join(names) if names else "")
            return _Field(tok.text, names, text_, tok.pos), i + 1
        if kind == "lparen":
            depth, j = 1, i + 1
            while j < len(toks) and depth:
                depth += {"lparen": 1, "rparen": -1}.get(toks[j].kind, 0)
                j += 1
            if depth:
                raise TemplateError(f"template: :{line}: unclosed left paren")
            inner = self._pipe(toks[i + 1 : j - 1], line, text, False)
            names = []
            if j < len(toks) and toks[j].kind == "field":
                names = toks[j].text[1:].split(".")
                j += 1
            return (_Field(inner, names, "(...)") if names else inner), j
        if kind in ("string", "raw", "char"):
            return _Lit(_unquote(tok, line)), i + 1
        if kind == "number":
            return _Lit(_number(tok.text, line)), i + 1
        if kind == "ident":
            if tok.text in ("true", "false"):
                return _Lit(tok.text == "true"), i + 1
            if tok.text == "nil":
                return _Lit(None), i + 1
            if tok.text in ("call",):
                raise TemplateError(f'template: :{line}: function "call" is not supported')
            if tok.text not in self.funcs:
                raise TemplateError(f'template: :{line}: function "{tok.text}" not defined')
            return _Func(tok.text, tok.pos), i + 1
        raise TemplateError(f"template: :{line}: unexpected {tok.text!r} in operand")

    @staticmethod
    def _adjacent(text: str, a: _Tok, b: _Tok) -> bool:
        return (a.text + b.text) in text


# -- functions --------------------------------------------------------------------------------
def _index(item: Any, *keys: Any) -> Any:
    for key in keys:
        if isinstance(item, dict):
            item = item.get(key)
        elif isinstance(item, list | tuple | str):
            if not isinstance(key, int) or not 0 <= key < len(item):
                raise TemplateError(f"error calling index: index out of range: {key}")
            item = item[key]
        elif item is None or item is NO_VALUE:
            raise TemplateError("error calling index: index of untyped nil")
        else:
            raise TemplateError(
                f"error calling index: can't index item of type {type(item).__name__}"
            )
    return item


def _slice(item: Any, *bounds: int) -> Any:
    if not isinstance(item, list | tuple | str):
        raise TemplateError(f"error calling slice: can't slice item of type {type(item).__name__}")
    return item[slice(*bounds)] if bounds else item


def _len(item: Any) -> int:
    if isinstance(item, list | tuple | str | dict):
        return len(item)
    raise TemplateError(f"error calling len: len of type {type(item).__name__}")


def _basic(a: Any) -> Any:
    if a is NO_VALUE:
        return None
    return a


def _eq(a: Any, *others: Any) -> bool:
    if not others:
        raise TemplateError("wrong number of args for eq: want at least 1 got 0")
    a = _basic(a)
    for b in others:
        b = _basic(b)
        if isinstance(a, str) != isinstance(b, str) and a is not None and b is not None:
            raise TemplateError("error calling eq: incompatible types for comparison")
        if a == b:
            return True
    return False


def _order(op: str) -> Callable[[Any, Any], bool]:
    def compare(a: Any, b: Any) -> bool:
        a, b = _basic(a), _basic(b)
        if isinstance(a, str) != isinstance(b, str) or a is None or b is None:
            raise TemplateError(f"error calling {op}: incompatible types for comparison")
        return bool({"lt": a < b, "le": a <= b, "gt": a > b, "ge": a >= b}[op])

    return compare


def _go_sprint(args: tuple[Any, ...]) -> str:
    """fmt.Sprint: a space between operands when neither is a string."""
    out = ""
    for i, a in enumerate(args):
        if i and not isinstance(a, str) and not isinstance(args[i - 1], str):
            out += " "
        out += go_format(a)
    return out


_VERB = r"%([-+# 0]*)(\*|\d+)?(?:\.(\*|\d+))?([a-zA-Z%])"


def go_sprintf(fmt: str, *args: Any) -> str:
    """fmt.Sprintf for the verbs templates use: %v %s %d %q %t %x %X %o %c %f %e %g %%."""
    it = iter(args)
    missing = object()

    def take() -> Any:
        return next(it, missing)

    def one(m: re.Match[str]) -> str:
        flags, width, prec, verb = m.groups()
        if verb == "%":
            return "%"
        if width == "*":
            width = str(take())
        if prec == "*":
            prec = str(take())
        value = take()
        if value is missing:
            return f"%!{verb}(MISSING)"
        value = _basic(value)
        if verb in "vs":
            text = go_format(value) if value is not None else "<nil>"
            if prec:
                text = text[: int(prec)]
        elif verb == "q":
            text = (
                cjson.encode_basestring(str(value))  # json.dumps(.., ensure_ascii=False)
                if isinstance(value, str)
                else repr(value)
            )
        elif verb == "t":
            text = go_format(value)
        elif verb in "dxXobc" and isinstance(value, int) and not isinstance(value, bool):
            spec = {"d": "d", "x": "x", "X": "X", "o": "o", "b": "b"}.get(verb)
            text = chr(value) if verb == "c" else format(value, spec or "d")
            if "+" in flags and verb == "d" and value >= 0:
                text = "+" + text
        elif verb in "xX" and isinstance(value, str):
            text = value.encode().hex()
            text = text.upper() if verb == "X" else text
        elif verb in "feEgG" and isinstance(value, int | float) and not isinstance(value, bool):
            p = int(prec) if prec else (6 if verb in "feE" else -1)
            if verb in "gG" and p < 0:
                text = go_float(float(value))
            else:
                text = format(float(value), f".{p}{verb}")
        else:
            text = f"%!{verb}({type(value).__name__}={go_format(value)})"
        if width:
            w = int(width)
            if "-" in flags:
                text = text.ljust(w)
            elif "0" in flags and verb not in "sqvt":
                sign = text[0] if text[:1] in "+-" else ""
                text = sign + text[len(sign) :].rjust(w - len(sign), "0")
            else:
                text = text.rjust(w)
        return text

    import re

    out = re.sub(_VERB, one, fmt)
    extra = list(it)
    if extra:
        out += "%!(EXTRA " + ", ".join(f"{type(e).__name__}={go_format(e)}" for e in extra) + ")"
    return out


def _title(s: Any) -> str:
    """strings.Title: upper-case the first letter of each word."""
    text = go_format(s) if not isinstance(s, str) else s
    out, prev_sep = [], True
    for c in text:
        out.append(c.upper() if prev_sep and c.isalpha() else c)
        prev_sep = not (c.isalnum() or c == "_")
    return "".join(out)


def _join(items: Any, sep: str) -> str:
    if items is None or items is NO_VALUE:
        return ""
    if not isinstance(items, list | tuple):
        raise TemplateError(
            f"error calling join: wrong type for value; expected []string; got {type(items).__name__}"
        )
    return sep.join(go_format(i) for i in items)


def _pad(s: Any, before: int, after: int) -> str:
    text = s if isinstance(s, str) else go_format(s)
    return text if text == "" else " " * before + text + " " * after


def _truncate(s: Any, length: int) -> str:
    text = s if isinstance(s, str) else go_format(s)
    return text if len(text) < length else text[:length]


def _html(*args: Any) -> str:
    import html

    return html.escape(_go_sprint(args)).replace("&#x27;", "&#39;")


def _js(*args: Any) -> str:
    text = _go_sprint(args)
    table = {
        "\\": "\\\\",
        "'": "\\'",
        '"': '\\"',
        "<": "\\u003C",
        ">": "\\u003E",
        "&": "\\u0026",
        "=": "\\u003D",
        "\n": "\\n",
        "\r": "\\r",
        "\t": "\\t",
    }
    return "".join(table.get(c, c) for c in text)


def _urlquery(*args: Any) -> str:
    from urllib.parse import quote_plus

    return quote_plus(_go_sprint(args))


def _and(*args: Any) -> Any:
    for a in args:
        if not truth(a):
            return a
    return args[-1]


def _or(*args: Any) -> Any:
    for a in args:
        if truth(a):
            return a
    return args[-1]


BASIC_FUNCS: dict[str, Callable[..., Any]] = {
    "and": _and,
    "or": _or,
    "not": lambda a: not truth(a),
    "len": _len,
    "index": _index,
    "slice": _slice,
    "eq": _eq,
    "ne": lambda a, b: not _eq(a, b),
    "lt": _order("lt"),
    "le": _order("le"),
    "gt": _order("gt"),
    "ge": _order("ge"),
    "print": lambda *a: _go_sprint(a),
    "println": lambda *a: " ".join(go_format(x) for x in a) + "\n",
    "printf": go_sprintf,
    "html": _html,
    "js": _js,
    "urlquery": _urlquery,
    # docker/cli templates.basicFunctions
    "json": go_json,
    "split": lambda s, sep: (
        (s if isinstance(s, str) else go_format(s)).split(sep) if sep else list(s)
    ),
    "join": _join,
    "title": _title,
    "lower": lambda s: (s if isinstance(s, str) else go_format(s)).lower(),
    "upper": lambda s: (s if isinstance(s, str) else go_format(s)).upper(),
    "pad": _pad,
    "truncate": _truncate,
}

# templates.HeaderFunctions: a table's header keeps the column names as they are.
HEADER_FUNCS: dict[str, Callable[..., Any]] = {
    **BASIC_FUNCS,
    "json": lambda v: v,
    "split": lambda v, _sep: v,
    "join": lambda v, _sep: v,
    "title": lambda v: v,
    "lower": lambda v: v,
    "upper": lambda v: v,
    "truncate": lambda v, _n: v,
}


# -- execution --------------------------------------------------------------------------------
class _Break(Exception):
    pass


class _Continue(Exception):
    pass


def _type_name(value: Any) -> str:
    if isinstance(value, Context):
        return f"*formatter.{type(value).__name__}"
    return {
        dict: "map[string]interface {}",
        list: "[]interface {}",
        str: "string",
        int: "int",
        float: "float64",
        bool: "bool",
    }.get(type(value), "interface {}")


class Template:
    """A parsed template; `execute(data)` renders it."""

    def __init__(self, source: str, funcs: dict[str, Callable[..., Any]] | None = None) -> None:
        self.source = source
        self.funcs = funcs or BASIC_FUNCS
        self.nodes = _Parser(source, self.funcs).parse()

    def execute(
        self,
        data: Any,
        funcs: dict[str, Callable[..., Any]] | None = None,
        *,
        missing_key_error: bool = False,
    ) -> str:
        """Render; `missing_key_error` is Go's Option("missingkey=error") (docker inspect)."""
        run = _Run(data, funcs or self.funcs, self.source, missing_key_error)
        run.walk(self.nodes)
        return "".join(run.out)


class _Run:
    def __init__(
        self, data: Any, funcs: dict[str, Callable[..., Any]], src: str, missing_key_error: bool
    ) -> None:
        self.src = src
        self.missing_key_error = missing_key_error
        self.funcs = funcs
        self.vars: list[tuple[str, Any]] = [("$", data)]
        self.dot: Any = data
        self.out: list[str] = []

    def walk(self, nodes: list[_Node]) -> None:
        for node in nodes:
            if isinstance(node, _Text):
                self.out.append(node.text)
            elif isinstance(node, _Action):
                value = self.pipe(node.pipe)
                if not node.pipe.decl:
                    self.out.append(go_format(value))
            elif isinstance(node, _Block):
                self.block(node)
            elif isinstance(node, _Loop):
                raise _Break() if node.kind == "break" else _Continue()

    def scoped(self, nodes: list[_Node], dot: Any) -> None:
        mark, saved = len(self.vars), self.dot
        self.dot = dot
        try:
            self.walk(nodes)
        finally:
            del self.vars[mark:]
            self.dot = saved

    def block(self, node: _Block) -> None:
        mark = len(self.vars)
        try:
            if node.kind == "range":
                self.range(node)
                return
            value = self.pipe(node.pipe)
            if truth(value):
                self.scoped(node.body, value if node.kind == "with" else self.dot)
            else:
                self.scoped(node.orelse, self.dot)
        finally:
            del self.vars[mark:]

    def range(self, node: _Block) -> None:
        pipe = node.pipe
        value = self.pipe(_Pipe([], False, pipe.cmds, pipe.where))
        if isinstance(value, dict):
            items = [(k, value[k]) for k in sorted(value)]
        elif isinstance(value, list | tuple):
            items = list(enumerate(value))
        elif isinstance(value, int) and not isinstance(value, bool):
            items = [(i, i) for i in range(value)]
        elif value is None or value is NO_VALUE:
            items = []
        else:
            raise TemplateError(f"range can't iterate over {go_format(value)}")
        if not items:
            self.scoped(node.orelse, self.dot)
            return
        for key, elem in items:
            mark = len(self.vars)
            if len(pipe.decl) == 2:
                self.vars += [(pipe.decl[0], key), (pipe.decl[1], elem)]
            elif pipe.decl:
                self.vars.append((pipe.decl[0], elem))
            try:
                self.scoped(node.body, elem)
            except _Continue:
                continue
            except _Break:
                break
            finally:
                del self.vars[mark:]

    def var(self, name: str) -> Any:
        for n, v in reversed(self.vars):
            if n == name:
                return v
        raise TemplateError(f"undefined variable: {name}")

    def pipe(self, pipe: _Pipe) -> Any:
        value: Any = _UNSET
        for cmd in pipe.cmds:
            value = self.command(cmd, value, pipe.where)
        if pipe.decl:
            name = pipe.decl[0]
            if pipe.assign:
                for idx in range(len(self.vars) - 1, -1, -1):
                    if self.vars[idx][0] == name:
                        self.vars[idx] = (name, value)
                        break
                else:
                    raise TemplateError(f"undefined variable: {name}")
            else:
                self.vars.append((name, value))
        return value

    def at(self, pos: int, what: str) -> str:
        line = self.src.count("\n", 0, pos) + 1
        col = pos - self.src.rfind("\n", 0, pos) - 1  # Go's ErrorContext: 0-based byte
        return f'template: :{line}:{col}: executing "" at <{what}>'

    def command(self, cmd: list[Any], piped: Any, where: str) -> Any:
        head, rest = cmd[0], cmd[1:]
        args = [self.operand(a, where) for a in rest]
        if piped is not _UNSET:
            args.append(piped)
        if isinstance(head, _Func):
            try:
                return self.funcs[head.name](*args)
            except TemplateError as exc:
                raise TemplateError(f"{self.at(head.pos, head.name)}: {exc}") from None
            except TypeError:
                raise TemplateError(
                    f"{self.at(head.pos, head.name)}: wrong number of args for {head.name}: "
                    f"got {len(args)}"
                ) from None
        if isinstance(head, _Field) and head.names:
            return self.field(head, args, where)
        if args:
            pos = head.pos if isinstance(head, _Field) else 0
            raise TemplateError(
                f"{self.at(pos, where[2:-2])}: can't give argument to non-function "
                f"{self._text(head)}"
            )
        return self.operand(head, where)

    @staticmethod
    def _text(node: Any) -> str:
        return node.text if isinstance(node, _Field) else "value"

    def operand(self, node: Any, where: str) -> Any:
        if isinstance(node, _Lit):
            return node.value
        if isinstance(node, _Pipe):
            mark = len(self.vars)
            try:
                return self.pipe(node)
            finally:
                del self.vars[mark:]
        if isinstance(node, _Field):
            return self.field(node, [], where)
        if isinstance(node, _Func):
            return self.funcs[node.name]()
        raise AssertionError(node)

    def field(self, node: _Field, args: list[Any], where: str) -> Any:
        if node.base is None:
            value = self.dot
        elif isinstance(node.base, _Pipe):
            value = self.operand(node.base, where)
        else:
            value = self.var(node.base)
        for i, name in enumerate(node.names):
            last = i == len(node.names) - 1
            value = self.lookup(value, name, args if last else [], self.at(node.pos, node.text))
        return value

    def lookup(self, value: Any, name: str, args: list[Any], at: str) -> Any:
        if isinstance(value, Context):
            member = getattr(value, name, None)
            if member is None or not callable(member) or not name[:1].isupper():
                raise TemplateError(
                    f"{at}: can't evaluate field {name} in type {_type_name(value)}"
                )
            try:
                return member(*args)
            except TypeError:
                raise TemplateError(
                    f"{at}: wrong number of args for {name}: got {len(args)}"
                ) from None
        if isinstance(value, dict):
            if args:
                raise TemplateError(f"{at}: {name} is not a method but has arguments")
            if name not in value and self.missing_key_error:
                raise TemplateError(f'{at}: map has no entry for key "{name}"')
            return value.get(name, NO_VALUE)
        if value is None or value is NO_VALUE:
            raise TemplateError(f"{at}: nil pointer evaluating interface {{}}.{name}")
        raise TemplateError(f"{at}: can't evaluate field {name} in type {_type_name(value)}")


_UNSET = object()


def render(source: str, data: Any) -> str:
    """Parse and execute in one go (`inspect -f`, `version -f`, `info -f`)."""
    return Template(source).execute(data)
