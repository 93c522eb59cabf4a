"""Go's encoding/json decoding, for request bodies described as Go types.

dockerd decodes every JSON body into a Go struct, and what a client may send is what that
decoder accepts: keys match struct fields case-insensitively (docker-py relies on it), unknown
keys are ignored, `null` leaves a value alone (or clears a slice, map or pointer), integers
must be integer literals in range for their Go type (`1.5e9` is not an int64), and the first
mismatch is reported as `json: cannot unmarshal string into Go struct field
HostConfig.HostConfig.Memory of type int64`. This module reproduces those rules (measured
against dockerd 20.10, built with Go 1.19) over Python's C JSON parser; `api/decode.py` holds
the descriptions of the Engine API's request structs.

A decoded value is plain JSON data with the fields' canonical names: objects for structs and
maps, lists for slices, ints, strings, bools; None for a nil slice, map or pointer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dockyard.errors import InvalidArgument


class GoJSONError(InvalidArgument):
    """The body is not what the Go type accepts; the message is the Go decoder's."""


class _Missing:
    """No value yet (a struct field never set): Go's zero value."""


MISSING = _Missing()
# Go's `null` into a string, bool, number, array or struct is a no-op.
_KEEP = object()


class Number:
    """A JSON number as written: Go parses the literal for the field's type."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


class Pairs(list[tuple[str, Any]]):
    """A JSON object as its key/value pairs in order, duplicates kept (the last one wins
    in Go, and for a struct or map the values merge)."""


@dataclass
class _Context:
    struct: str = ""  # the Go struct type whose field is being decoded
    path: list[str] = field(default_factory=list)  # JSON field names from the root
    saved: GoJSONError | None = None  # Go keeps the first type error and carries on
    saved_what: str = ""

    def mismatch(self, what: str, go_type: str) -> GoJSONError:
        where = f"Go struct field {self.struct}.{'.'.join(self.path)}" if self.path else "Go value"
        return GoJSONError(f"json: cannot unmarshal {what} into {where} of type {go_type}")

    def save(self, what: str, go_type: str) -> None:
        if self.saved is None:
            self.saved = self.mismatch(what, go_type)
            self.saved_what = what


class _Abort(Exception):
    """An error a custom UnmarshalJSON returned: Go stops decoding at once with it."""

    def __init__(self, error: GoJSONError) -> None:
        self.error = error


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, Number):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Pairs):
        return "object"
    return "array"


_SURROGATE = re.compile("[\ud800-\udfff]")


def _text(s: str) -> str:
    # Go replaces an unpaired surrogate escape with U+FFFD (Python keeps it, and it would
    # fail later when encoded).
    return _SURROGATE.sub("\ufffd", s) if _SURROGATE.search(s) else s


class GoType:
    """One Go type: its name as Go prints it in errors and how a JSON value decodes into it."""

    go: str

    def decode(self, value: Any, current: Any, ctx: _Context) -> Any:
        raise NotImplementedError

    def zero(self) -> Any:
        return None


@dataclass(frozen=True)
class Scalar(GoType):
    """string, bool and the integer kinds (named types keep their Go name for errors)."""

    go: str
    kind: str  # "string", "bool", "int" or "uint"
    bits: int = 64

    def zero(self) -> Any:
        return "" if self.kind == "string" else False if self.kind == "bool" else 0

    def decode(self, value: Any, current: Any, ctx: _Context) -> Any:
        if value is None:
            return _KEEP
        if self.kind == "string":
            if isinstance(value, str):
                return _text(value)
        elif self.kind == "bool":
            if isinstance(value, bool):
                return value
        elif isinstance(value, Number):
            n = self._integer(value.text)
            if n is None:
                ctx.save("number " + value.text, self.go)
                return _KEEP
            return n
        ctx.save(_kind(value), self.go)
        return _KEEP

    def _integer(self, text: str) -> int | None:
        # strconv.ParseInt/ParseUint: decimal digits only, in range for the bit size.
        digits = text[1:] if text.startswith("-") else text
        if not digits.isdigit() or not digits.isascii():
            return None
        n = int(text)
        if self.kind == "uint":
            lo, hi = 0, (1 << self.bits) - 1
            if text.startswith("-"):
                return None
        else:
            lo, hi = -(1 << (self.bits - 1)), (1 << (self.bits - 1)) - 1
        return n if lo <= n <= hi else None


@dataclass(frozen=True)
class Slice(GoType):
    elem: GoType
    go: str

    def decode(self, value: Any, current: Any, ctx: _Context) -> Any:
        if value is None:
            return None
        if not isinstance(value, list) or isinstance(value, Pairs):
            ctx.save(_kind(value), self.go)
            return _KEEP
        out = []
        for item in value:
            got = self.elem.decode(item, MISSING, ctx)
            out.append(self.elem.zero() if got is _KEEP else got)
        return out


@dataclass(frozen=True)
class Array(GoType):
    """A Go array: extra elements are dropped, missing ones are zero."""

    elem: GoType
    length: int
    go: str

    def decode(self, value: Any, current: Any, ctx: _Context) -> Any:
        if value is None:
            return _KEEP
        if not isinstance(value, list) or isinstance(value, Pairs):
            ctx.save(_kind(value), self.go)
            return _KEEP
        out = []
        for item in value[: self.length]:
            got = self.elem.decode(item, MISSING, ctx)
            out.append(self.elem.zero() if got is _KEEP else got)
        return out + [self.elem.zero()] * (self.length - len(out))

    def zero(self) -> Any:
        return [self.elem.zero()] * self.length


@dataclass(frozen=True)
class Map(GoType):
    """map[string]T: an existing map is kept and each key's value decoded afresh."""

    elem: GoType
    go: str

    def decode(self, value: Any, current: Any, ctx: _Context) -> Any:
        if value is None:
            return None
        if not isinstance(value, Pairs):
            ctx.save(_kind(value), self.go)
            return _KEEP
        out: dict[str, Any] = current if isinstance(current, dict) else {}
        for key, item in value:
            got = self.elem.decode(item, MISSING, ctx)
            out[_text(key)] = self.elem.zero() if got is _KEEP else got
        return out


@dataclass(frozen=True)
class Ptr(GoType):
    """*T: null clears it; anything else decodes into the value it points to."""

    elem: GoType
    go: str = ""  # never printed: Go reports the type pointed to

    def decode(self, value: Any, current: Any, ctx: _Context) -> Any:
        if value is None:
            return None
        return self.elem.decode(value, MISSING if current is None else current, ctx)


@dataclass(frozen=True)
class AnyValue(GoType):
    """interface{}: any JSON value, as plain data."""

    go: str = "interface {}"

    def decode(self, value: Any, current: Any, ctx: _Context) -> Any:
        return plain(value)


@dataclass(frozen=True)
class StrSlice(GoType):
    """moby's strslice.StrSlice: a list of strings, or one string (`"Cmd": "ls"`). Its
    UnmarshalJSON tries []string and then string, and returns the second error."""

    go: str = "strslice.StrSlice"

    def decode(self, value: Any, current: Any, ctx: _Context) -> Any:
        if value is None:
            return None
        inner = _Context()
        got = _STRINGS.decode(value, MISSING, inner)
        if inner.saved is None and got is not _KEEP:
            return got
        inner = _Context()
        one = _STRING.decode(value, MISSING, inner)
        if inner.saved is not None:
            # The inner decoder's error, placed where the outer decoder stands.
            raise _Abort(ctx.mismatch(inner.saved_what, "string"))
        return [one]


_STRING = Scalar("string", "string")
_STRINGS = Slice(_STRING, "[]string")


@dataclass
class Struct(GoType):
    """A Go struct: `fields` maps each JSON field name (promoted fields of embedded
    structs included) to its type, in declaration order."""

    go: str
    fields: dict[str, GoType]
    _folded: dict[str, str] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self._folded = {_fold(name): name for name in self.fields}

    @property
    def name(self) -> str:
        return self.go.rsplit(".", 1)[-1]

    def zero(self) -> Any:
        return {}

    def field_for(self, key: str) -> str | None:
        if key in self.fields:
            return key
        return self._folded.get(_fold(key))

    def decode(self, value: Any, current: Any, ctx: _Context) -> Any:
        if value is None:
            return _KEEP
        if not isinstance(value, Pairs):
            ctx.save(_kind(value), self.go)
            return _KEEP
        out: dict[str, Any] = current if isinstance(current, dict) else {}
        outer_struct, depth = ctx.struct, len(ctx.path)
        for key, item in value:
            name = self.field_for(key)
            if name is None:
                continue  # Go ignores unknown fields
            ctx.struct = self.name
            ctx.path.append(name)
            got = self.fields[name].decode(item, out.get(name, MISSING), ctx)
            if got is not _KEEP:
                out[name] = got
            del ctx.path[depth:]
            ctx.struct = outer_struct
        return out


# Go matches a key to a field name with Unicode simple case folding; for the ASCII names of
# the Engine API that is ASCII case plus two letters that fold onto ASCII ones: KELVIN SIGN
# onto k and LATIN SMALL LETTER LONG S onto s (encoding/json fold.go).
_FOLD = {ord(c): ord(c) + 32 for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"} | {0x212A: "k", 0x17F: "s"}


def _fold(name: str) -> str:
    return name.translate(_FOLD)


def plain(value: Any) -> Any:
    """Parsed JSON (Pairs, Number) as ordinary Python data."""
    if isinstance(value, Pairs):
        return {_text(k): plain(v) for k, v in value}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, Number):
        text = value.text
        return float(text) if any(c in text for c in ".eE") else int(text)
    if isinstance(value, str):
        return _text(value)
    return value


class _NotJSON(Exception):
    pass


def _constant(name: str) -> Any:
    raise _NotJSON(name)  # NaN, Infinity and -Infinity are Python's, not JSON's


_DECODER = json.JSONDecoder(
    object_pairs_hook=Pairs, parse_int=Number, parse_float=Number, parse_constant=_constant
)


def decode(raw: bytes, target: GoType) -> Any:
    """`json.NewDecoder(body).Decode(&target)` as dockerd calls it: the first JSON value of
    the body (what follows it is never read), decoded into the Go type."""
    text = raw.decode("utf-8", errors="replace")  # Go: invalid UTF-8 becomes U+FFFD
    start = len(text) - len(text.lstrip(" \t\r\n"))
    if start == len(text):
        raise GoJSONError("EOF")
    try:
        value, _ = _DECODER.raw_decode(text, start)
    except (ValueError, _NotJSON):
        raise GoJSONError(syntax_error(raw)) from None
    except RecursionError:
        # Python's parser gives up nearer than Go's 10000 levels
        raise GoJSONError("exceeded max depth") from None
    ctx = _Context()
    try:
        result = target.decode(value, MISSING, ctx)
    except _Abort as abort:
        raise abort.error from None
    if ctx.saved is not None:
        raise ctx.saved
    return None if result is _KEEP else result


# Go's scanner (encoding/json/scanner.go), for the wording of its syntax errors; it runs
# only on a body Python's parser has refused.
_SPACE = b" \t\r\n"
_MAX_DEPTH = 10000


def _quote_char(c: int) -> str:
    if c == 0x27:
        return "'\\''"
    if c == 0x22:
        return "'\"'"
    escapes = {7: "\\a", 8: "\\b", 12: "\\f", 10: "\\n", 13: "\\r", 9: "\\t", 11: "\\v"}
    if c in escapes:
        s = escapes[c]
    elif c == 0x5C:
        s = "\\\\"
    elif c < 0x20 or c == 0x7F:
        s = f"\\x{c:02x}"
    elif 0x80 <= c <= 0xA0 or c == 0xAD:  # not printable for Go's strconv.Quote
        s = f"\\u{c:04x}"
    else:
        s = chr(c)
    return f"'{s}'"


class _Syntax(Exception):
    pass


def syntax_error(raw: bytes) -> str:
    """The message Go's json.Decoder gives for the first value of `raw`."""
    scanner = _Scanner()
    try:
        for c in raw:
            if scanner.step(c):
                break
    except _Syntax as exc:
        return str(exc)
    return "EOF" if not raw.strip(_SPACE) else "unexpected EOF"


class _Scanner:
    def __init__(self) -> None:
        self.stack: list[str] = []
        self.state: Callable[[int], bool | None] = self._begin_value

    def step(self, c: int) -> bool:
        """Feed one byte; True when the first top-level value is complete."""
        return bool(self.state(c))

    def _error(self, c: int, context: str) -> None:
        raise _Syntax(f"invalid character {_quote_char(c)} {context}")

    def _push(self, c: int, kind: str) -> None:
        self.stack.append(kind)
        if len(self.stack) > _MAX_DEPTH:
            self._error(c, "exceeded max depth")

    def _begin_value_or_empty(self, c: int) -> bool | None:
        if c in _SPACE:
            return None
        if c == 0x5D:  # ]
            return self._end_value(c)
        return self._begin_value(c)

    def _begin_value(self, c: int) -> bool | None:
        if c in _SPACE:
            return None
        if c == 0x7B:  # {
            self._push(c, "key")
            self.state = self._begin_string_or_empty
        elif c == 0x5B:  # [
            self._push(c, "array")
            self.state = self._begin_value_or_empty
        elif c == 0x22:
            self.state = self._in_string
        elif c == 0x2D:
            self.state = self._neg
        elif c == 0x30:
            self.state = self._zero
        elif 0x31 <= c <= 0x39:
            self.state = self._digits
        elif c in b"tfn":
            word = {0x74: "true", 0x66: "false", 0x6E: "null"}[c]
            self.state = self._literal(word, 1)
        else:
            self._error(c, "looking for beginning of value")
        return None

    def _begin_string_or_empty(self, c: int) -> bool | None:
        if c in _SPACE:
            return None
        if c == 0x7D:  # }
            self.stack[-1] = "value"
            return self._end_value(c)
        return self._begin_string(c)

    def _begin_string(self, c: int) -> bool | None:
        if c in _SPACE:
            return None
        if c == 0x22:
            self.state = self._in_string
            return None
        self._error(c, "looking for beginning of object key string")
        return None

    def _end_value(self, c: int) -> bool | None:
        if not self.stack:
            return True  # the first value is complete (the decoder stops reading here)
        if c in _SPACE:
            self.state = self._end_value
            return None
        top = self.stack[-1]
        if top == "key":
            if c == 0x3A:  # :
                self.stack[-1] = "value"
                self.state = self._begin_value
                return None
            self._error(c, "after object key")
        elif top == "value":
            if c == 0x2C:
                self.stack[-1] = "key"
                self.state = self._begin_string
                return None
            if c == 0x7D:
                return self._pop()
            self._error(c, "after object key:value pair")
        else:
            if c == 0x2C:
                self.state = self._begin_value
                return None
            if c == 0x5D:
                return self._pop()
            self._error(c, "after array element")
        return None

    def _pop(self) -> bool | None:
        self.stack.pop()
        if not self.stack:
            return True
        self.state = self._end_value
        return None

    def _in_string(self, c: int) -> bool | None:
        if c == 0x22:
            self.state = self._end_value
        elif c == 0x5C:
            self.state = self._in_escape
        elif c < 0x20:
            self._error(c, "in string literal")
        return None

    def _in_escape(self, c: int) -> bool | None:
        if c in b'bfnrt\\/"':
            self.state = self._in_string
        elif c == 0x75:  # u
            self.state = self._hex(4)
        else:
            self._error(c, "in string escape code")
        return None

    def _hex(self, left: int) -> Callable[[int], bool | None]:
        def state(c: int) -> bool | None:
            if c in b"0123456789abcdefABCDEF":
                self.state = self._in_string if left == 1 else self._hex(left - 1)
            else:
                self._error(c, "in \\u hexadecimal character escape")
            return None

        return state

    def _neg(self, c: int) -> bool | None:
        if c == 0x30:
            self.state = self._zero
        elif 0x31 <= c <= 0x39:
            self.state = self._digits
        else:
            self._error(c, "in numeric literal")
        return None

    def _digits(self, c: int) -> bool | None:
        if 0x30 <= c <= 0x39:
            return None
        return self._zero(c)

    def _zero(self, c: int) -> bool | None:
        if c == 0x2E:
            self.state = self._dot
            return None
        if c in b"eE":
            self.state = self._exp
            return None
        return self._end_value(c)

    def _dot(self, c: int) -> bool | None:
        if 0x30 <= c <= 0x39:
            self.state = self._dot_digits
            return None
        self._error(c, "after decimal point in numeric literal")
        return None

    def _dot_digits(self, c: int) -> bool | None:
        if 0x30 <= c <= 0x39:
            return None
        if c in b"eE":
            self.state = self._exp
            return None
        return self._end_value(c)

    def _exp(self, c: int) -> bool | None:
        if c in b"+-":
            self.state = self._exp_sign
            return None
        return self._exp_sign(c)

    def _exp_sign(self, c: int) -> bool | None:
        if 0x30 <= c <= 0x39:
            self.state = self._exp_digits
            return None
        self._error(c, "in exponent of numeric literal")
        return None

    def _exp_digits(self, c: int) -> bool | None:
        if 0x30 <= c <= 0x39:
            return None
        return self._end_value(c)

    def _literal(self, word: str, at: int) -> Callable[[int], bool | None]:
        def state(c: int) -> bool | None:
            if c == ord(word[at]):
                self.state = self._end_value if at + 1 == len(word) else self._literal(word, at + 1)
            else:
                self._error(c, f"in literal {word} (expecting {_quote_char(ord(word[at]))})")
            return None

        return state
