"""JSON for the CLI's hot path, on CPython's C accelerator (`_json`) without `import json`.

`json` imports `re` (json.decoder and json.scanner compile patterns at import), and `re`
brings `enum`: ~5 ms of CPU on this machine for every command, more than the whole request a
`dockyard ps` makes. The C scanner and encoder that `json` itself uses need none of that, so
these functions call them with `json`'s own settings and give the same results as
`json.loads` / `json.dumps`; whatever they are not sure of (a parse error, a type the plain
encoder does not know) is handed to `json`, which raises or answers as it always does.
"""

from __future__ import annotations

from _json import encode_basestring as encode_basestring
from _json import encode_basestring_ascii, make_encoder, make_scanner

TYPE_CHECKING = False  # typing itself costs ~1.5 ms of start-up; mypy honours this name

if TYPE_CHECKING:
    from typing import Any

_INF = float("inf")
_CONSTANTS = {"-Infinity": -_INF, "Infinity": _INF, "NaN": _INF - _INF}
_WS = " \t\n\r"  # JSON's whitespace (json.decoder.WHITESPACE)


class _Settings:
    """What `_json.make_scanner` reads from its context: json.JSONDecoder()'s defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = _CONSTANTS.__getitem__
    memo: dict[str, str] = {}


_scan = make_scanner(_Settings())  # type: ignore[arg-type]


def loads(data: bytes | str) -> Any:
    """json.loads: the document's value; an invalid document raises json's own error."""
    if isinstance(data, str):
        text = data
    elif data[:3] == b"\xef\xbb\xbf" or data[:2] in (b"\xff\xfe", b"\xfe\xff") or 0 in data[:4]:
        text = ""  # a BOM, or UTF-16/32: json.loads detects the encoding (below)
    else:
        text = data.decode("utf-8", "surrogatepass")
    stripped = text.strip(_WS)
    if stripped:
        try:
            value, end = _scan(stripped, 0)
        except (StopIteration, ValueError):
            pass
        else:
            if end == len(stripped):
                return value
    import json

    return json.loads(data)


def raw_decode(text: str, pos: int = 0) -> tuple[Any, int]:
    """json.JSONDecoder().raw_decode(text, pos): the document at `pos` and where it ends."""
    try:
        return _scan(text, pos)
    except (StopIteration, ValueError):
        pass
    import json  # its error, as it says it

    return json.JSONDecoder().raw_decode(text, pos)


def _unserializable(o: object) -> Any:
    raise TypeError(f"Object of type {o.__class__.__name__} is not JSON serializable")


# json.dumps(o) and json.dumps(o, ensure_ascii=False, separators=(",", ":")): the encoders
# json.JSONEncoder.iterencode makes for those settings (no indent: the C encoder).
_DEFAULT = make_encoder(
    {}, _unserializable, encode_basestring_ascii, None, ": ", ", ", False, False, True
)
_COMPACT_UTF8 = make_encoder(
    {}, _unserializable, encode_basestring, None, ":", ",", False, False, True
)
_COMPACT_UTF8_SORTED = make_encoder(
    {}, _unserializable, encode_basestring, None, ":", ",", True, False, True
)


def dumps(value: object) -> str:
    """json.dumps(value)."""
    if isinstance(value, str):
        return encode_basestring_ascii(value)
    return "".join(_DEFAULT(value, 0))


def dumps_compact_utf8(value: object, sort_keys: bool = False) -> str:
    """json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=sort_keys)."""
    if isinstance(value, str):
        return encode_basestring(value)
    return "".join((_COMPACT_UTF8_SORTED if sort_keys else _COMPACT_UTF8)(value, 0))


class _Unsupported(Exception):
    """A value the indenting encoder below leaves to json (its errors, its other types)."""


def _float(o: float) -> str:
    if o != o:
        return "NaN"
    if o == _INF:
        return "Infinity"
    if o == -_INF:
        return "-Infinity"
    return float.__repr__(o)


def _key(k: object) -> str:
    if isinstance(k, str):
        return k
    if isinstance(k, float):
        return _float(k)
    if k is True:
        return "true"
    if k is False:
        return "false"
    if k is None:
        return "null"
    if isinstance(k, int):
        return int.__repr__(k)
    raise _Unsupported


def dumps_indented_utf8(value: object, indent: int) -> str:
    """json.dumps(value, ensure_ascii=False, indent=indent) for documents of JSON's own
    types (what the daemon sent, decoded): json's pure-Python indenting encoder, in its
    order of type checks, without importing json."""
    out: list[str] = []
    emit = out.append
    string = encode_basestring

    def one(o: object, level: int) -> None:
        if isinstance(o, str):
            emit(string(o))
        elif o is None:
            emit("null")
        elif o is True:
            emit("true")
        elif o is False:
            emit("false")
        elif isinstance(o, int):
            emit(int.__repr__(o))
        elif isinstance(o, float):
            emit(_float(o))
        elif isinstance(o, list | tuple):
            if not o:
                emit("[]")
                return
            pad = "\n" + " " * (indent * (level + 1))
            emit("[")
            sep = pad
            for item in o:
                emit(sep)
                sep = "," + pad
                one(item, level + 1)
            emit("\n" + " " * (indent * level) + "]")
        elif isinstance(o, dict):
            if not o:
                emit("{}")
                return
            pad = "\n" + " " * (indent * (level + 1))
            emit("{")
            sep = pad
            for k, v in o.items():
                emit(sep)
                sep = "," + pad
                emit(string(_key(k)))
                emit(": ")
                one(v, level + 1)
            emit("\n" + " " * (indent * level) + "}")
        else:
            raise _Unsupported

    try:
        one(value, 0)
    except (_Unsupported, RecursionError):
        import json

        return json.dumps(value, ensure_ascii=False, indent=indent)
    return "".join(out)
