"""Dockerfile parser: text in, checked instructions out (no I/O).

A port of BuildKit's `frontend/dockerfile/parser` (parser.go, line_parsers.go,
split_command.go, directives.go) followed by the checks of `instructions/parse.go`, so a
file that Docker rejects is rejected here with Docker's message and line number.

Quirks kept on purpose because Docker has them:
- Parser directives (`# escape=`, `# syntax=`, `# check=`) count only before the first
  comment, blank line or instruction; an unknown `# key=value` ends the directive block.
- Inside a line continuation, comment lines and empty lines are skipped (empty ones with a
  warning); continuation lines keep their leading whitespace, so `RUN a \\` + `    b` is
  `RUN a     b`.
- Invalid JSON after RUN/CMD/ENTRYPOINT/COPY/... silently means shell form; a JSON array
  holding a non-string is an error. SHELL must be JSON.
- Every instruction may carry `--flags` before its arguments (a word starting with `--`);
  unknown flags are errors, and `--` ends the flags.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from dockyard.errors import InvalidArgument
from dockyard.frontend import instructions as _ins
from dockyard.frontend.commands import Heredoc, Instruction
from dockyard.frontend.expand import (
    ExpansionError,
    ShellLex,
    parse_words,
    split_key_values,
)

__all__ = [
    "Dockerfile",
    "DockerfileSyntaxError",
    "Heredoc",
    "Instruction",
    "parse_dockerfile",
    "parse_instructions",
]

_RE_DIRECTIVE = re.compile(
    r"^#[ \t\n\f\r]*([a-zA-Z][a-zA-Z0-9]*)[ \t\n\f\r]*=[ \t\n\f\r]*(.+?)[ \t\n\f\r]*$"
)
_RE_WHITESPACE = re.compile(r"[\t\v\f\r ]+")
_RE_HEREDOC = re.compile(r"^(\d*)<<(-?)\s*([^<]*)$")
_RE_ONBUILD_PREFIX = re.compile(r"(?i)^\s*ONBUILD\s*")
_VALID_DIRECTIVES = ("syntax", "escape", "check")
_HEREDOC_KEYWORDS = frozenset({"run", "copy", "add"})
_JSON_KEYWORDS = frozenset({"run", "cmd", "entrypoint", "shell"})
_JSON_LIST_KEYWORDS = frozenset({"copy", "add", "volume"})
_STRING_KEYWORDS = frozenset({"maintainer", "stopsignal", "user", "workdir"})


@dataclass(frozen=True)
class Dockerfile:
    instructions: tuple[Instruction, ...]
    escape: str
    directives: dict[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()


class DockerfileSyntaxError(InvalidArgument):
    """The Dockerfile breaks Docker's grammar; str() is `Dockerfile:LINE: message`."""

    def __init__(self, filename: str, line: int, message: str) -> None:
        self.filename = filename
        self.line = line
        self.message = message
        super().__init__(f"{filename}:{line}: {message}")


class _Error(Exception):
    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


@dataclass
class _Node:
    written: str  # the keyword as written
    keyword: str
    flags: tuple[tuple[str, str | None], ...]
    args: tuple[str, ...]
    json_form: bool
    rest: str
    original: str
    child: _Node | None = None
    heredocs: tuple[Heredoc, ...] = ()


class _Directives:
    def __init__(self) -> None:
        self.escape = "\\"
        self.values: dict[str, str] = {}
        self.done = False
        self._set_escape("\\")

    def _set_escape(self, token: str) -> None:
        if token not in ("`", "\\"):
            raise ValueError(f"invalid escape token '{token}' does not match ` or \\")
        self.escape = token
        e = re.escape(token)
        # The escape token ends a line as continuation unless it is itself escaped; the second
        # branch is a continuation token alone on its line.
        self.continuation = re.compile(rf"([^{e}]){e}[ \t]*\Z|^{e}[ \t]*\Z")

    def possible_directive(self, line: str) -> None:
        if self.done:
            return
        m = _RE_DIRECTIVE.match(line)
        if not m:
            self.done = True
            return
        key = m.group(1).lower()
        if key not in _VALID_DIRECTIVES:
            self.done = True
            return
        if key in self.values:
            raise ValueError(f"only one {key} parser directive can be used")
        self.values[key] = m.group(2)
        if key == "escape":
            self._set_escape(m.group(2))


def _split_lines(text: str) -> list[str]:
    parts = text.split("\n")
    lines = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def _trim_newline(s: str) -> str:
    return s.rstrip("\r\n")


def _is_comment(line: str) -> bool:
    return _trim_newline(line).lstrip().startswith("#")


def _process_line(d: _Directives, token: str, strip_left: bool) -> str:
    token = _trim_newline(token)
    if strip_left:
        token = token.lstrip()
    d.possible_directive(token)
    return "" if _is_comment(token) else token


def _trim_continuation(line: str, d: _Directives) -> tuple[str, bool]:
    if d.continuation.search(line):
        return d.continuation.sub(lambda m: m.group(1) or "", line), False
    return line, True


def _extract_builder_flags(line: str) -> tuple[str, list[str]]:
    """BuildKit's extractBuilderFlags: leading `--words` (quotes and `\\` processed)."""
    words: list[str] = []
    in_spaces, in_word, in_quote = 0, 1, 2
    phase = in_spaces
    word: list[str] = []
    quote = ""
    blank_ok = False
    pos = 0
    n = len(line)
    while pos <= n:
        ch = line[pos] if pos < n else ""
        if phase == in_spaces:
            if pos == n:
                break
            if ch.isspace():
                pos += 1
                continue
            if ch != "-" or pos + 1 == n or line[pos + 1] != "-":
                return line[pos:], words
            phase = in_word
        if pos == n:
            w = "".join(word)
            if w != "--" and (blank_ok or w):
                words.append(w)
            break
        if phase == in_word:
            if ch.isspace():
                phase = in_spaces
                w = "".join(word)
                if w == "--":
                    return line[pos:], words
                if blank_ok or w:
                    words.append(w)
                word = []
                blank_ok = False
                pos += 1
                continue
            if ch in ("'", '"'):
                quote = ch
                blank_ok = True
                phase = in_quote
                pos += 1
                continue
            if ch == "\\":
                if pos + 1 == n:
                    pos += 1
                    continue
                pos += 1
                ch = line[pos]
            word.append(ch)
            pos += 1
            continue
        # in_quote
        if ch == quote:
            phase = in_word
            pos += 1
            continue
        if ch == "\\":
            if pos + 1 == n:
                phase = in_word
                pos += 1
                continue
            pos += 1
            ch = line[pos]
        word.append(ch)
        pos += 1
    return "", words


def _split_command(line: str) -> tuple[str, list[str], str]:
    parts = _RE_WHITESPACE.split(line.strip(), maxsplit=1)
    cmd = parts[0]
    rest = ""
    flags: list[str] = []
    if len(parts) == 2:
        rest, flags = _extract_builder_flags(parts[1])
    return cmd, flags, rest.strip()


class _NotStringArray(Exception):
    pass


def _reject_constant(name: str) -> object:
    # Go's encoding/json has no NaN/Infinity: such text is not JSON, hence shell form.
    raise ValueError(name)


def _parse_json(rest: str) -> list[str] | None:
    rest = rest.lstrip()
    if not rest.startswith("["):
        return None
    try:
        # Go's json.Decoder reads one value and ignores what follows it.
        value, _ = json.JSONDecoder(parse_constant=_reject_constant).raw_decode(rest)
    except ValueError:
        return None
    if not isinstance(value, list):
        return None
    if not all(isinstance(v, str) for v in value):
        raise _NotStringArray
    return value


def _whitespace_list(rest: str) -> tuple[str, ...]:
    if not rest:
        return ()
    return tuple(_RE_WHITESPACE.split(rest))


def _node_args(keyword: str, rest: str, escape: str) -> tuple[tuple[str, ...], bool]:
    if keyword in _JSON_KEYWORDS:
        if not rest:
            return (), False
        items = _parse_json(rest)
        return (tuple(items), True) if items is not None else ((rest,), False)
    if keyword in _JSON_LIST_KEYWORDS:
        items = _parse_json(rest)
        return (tuple(items), True) if items is not None else (_whitespace_list(rest), False)
    if keyword in ("from", "expose"):
        return _whitespace_list(rest), False
    if keyword in _STRING_KEYWORDS:
        return ((rest,) if rest else ()), False
    if keyword in ("env", "label"):
        if not parse_words(rest, escape):
            return (), False
        pairs = split_key_values(rest, keyword.upper(), escape)
        return tuple(x for kv in pairs for x in kv), False
    if keyword == "arg":
        return tuple(parse_words(rest, escape)), False
    if keyword == "healthcheck":
        sep = 0
        while sep < len(rest) and not rest[sep].isspace():
            sep += 1
        if sep == 0:
            return (), False
        nxt = sep
        while nxt < len(rest) and rest[nxt].isspace():
            nxt += 1
        cmd_args, json_form = _node_args("cmd", rest[nxt:], escape)
        return (rest[:sep], *cmd_args), json_form
    return (), False


def _new_node(line: str, escape: str) -> _Node:
    written, flag_words, rest = _split_command(line)
    keyword = written.lower()
    flags: list[tuple[str, str | None]] = []
    for w in flag_words:
        name, eq, value = w[2:].partition("=")
        flags.append((name, value if eq else None))
    child: _Node | None = None
    try:
        if keyword == "onbuild":
            args: tuple[str, ...] = ()
            json_form = False
            if rest:
                child = _new_node(rest, escape)
                args = (rest,)
        else:
            args, json_form = _node_args(keyword, rest, escape)
    except _NotStringArray:
        raise ValueError(
            "when using JSON array syntax, arrays must be comprised of strings only"
        ) from None
    except InvalidArgument as e:
        raise ValueError(str(e)) from None
    return _Node(written, keyword, tuple(flags), args, json_form, rest, line.strip(), child)


def _heredoc_from_word(word: str) -> Heredoc | None:
    m = _RE_HEREDOC.match(word)
    if not m or not m.group(3):
        return None
    fd = int(m.group(1)) if m.group(1) else 0
    chomp = m.group(2) == "-"
    rest = m.group(3)
    lex = ShellLex("\\", skip_unset_env=True)
    words = lex.process_words(rest, {})
    if len(words) != 1:
        return None
    raw = ShellLex("\\", skip_unset_env=True, raw_quotes=True).process_words(rest, {})
    if len(raw) != len(words):
        raise ValueError(f"internal lexing of heredoc produced inconsistent results: {rest}")
    name = words[0]

    def quotes(s: str) -> int:
        return s.count("'") + s.count('"')

    # Any quoting of the delimiter (even partial, `eo'f'`) turns expansion off, as in sh.
    return Heredoc(name=name, content="", expand=quotes(name) == quotes(raw[0]), chomp=chomp, fd=fd)


def _heredocs_from_line(line: str) -> list[Heredoc]:
    lex = ShellLex(
        "\\", raw_quotes=True, raw_escapes=True, skip_unset_env=True, heredoc_markers=True
    )
    try:
        words = lex.process_words(line, {})
    except ExpansionError:
        words = []
    docs = []
    for w in words:
        try:
            h = _heredoc_from_word(w)
        except ExpansionError as e:
            raise ValueError(str(e)) from None
        if h is not None:
            docs.append(h)
    return docs


def _can_contain_heredoc(node: _Node) -> bool:
    if node.keyword == "onbuild" and node.child is not None:
        node = node.child
    return node.keyword in _HEREDOC_KEYWORDS and not node.json_form


@dataclass
class _Parsed:
    nodes: list[tuple[_Node, int, int]]
    directives: _Directives
    warnings: list[str]
    last_line: int


def _parse_nodes(text: str) -> _Parsed:
    d = _Directives()
    lines = _split_lines(text)
    if lines:
        lines[0] = lines[0].removeprefix("\ufeff")
    nodes: list[tuple[_Node, int, int]] = []
    warnings: list[str] = []
    idx = 0
    current = 0
    while idx < len(lines):
        raw = lines[idx]
        idx += 1
        current += 1
        try:
            processed = _process_line(d, raw, True)
        except ValueError as e:
            raise _Error(str(e), current) from None
        start = current
        line, eol = _trim_continuation(processed, d)
        if eol and line == "":
            continue
        has_empty = False
        while not eol and idx < len(lines):
            raw = lines[idx]
            idx += 1
            current += 1
            try:
                processed = _process_line(d, raw, False)
            except ValueError as e:
                raise _Error(str(e), current) from None
            if _is_comment(raw):
                continue
            if not processed.lstrip():
                has_empty = True
                continue
            cont, eol = _trim_continuation(processed, d)
            line += cont
        if has_empty:
            warnings.append("[WARNING]: Empty continuation line found in:\n    " + line)
        try:
            node = _new_node(line, d.escape)
        except ValueError as e:
            raise _Error(str(e), start) from None
        if _can_contain_heredoc(node) and "<<" in line:
            try:
                found = _heredocs_from_line(line)
            except ValueError as e:
                raise _Error(str(e), start) from None
            docs: list[Heredoc] = []
            for h in found:
                content: list[str] = []
                terminated = False
                while idx < len(lines):
                    body = lines[idx]
                    idx += 1
                    current += 1
                    candidate = _trim_newline(body)
                    if h.chomp:
                        candidate = candidate.lstrip("\t")
                    if candidate == h.name:
                        terminated = True
                        break
                    content.append(body)
                if not terminated:
                    raise _Error("unterminated heredoc", start)
                docs.append(Heredoc(h.name, "".join(content), h.expand, h.chomp, h.fd))
            node.heredocs = tuple(docs)
        nodes.append((node, start, current))
    if len(warnings) > 0:
        warnings.append(
            "[WARNING]: Empty continuation lines will become errors in a future release."
        )
    return _Parsed(nodes, d, warnings, current)


def _to_instruction(node: _Node, start: int, end: int) -> Instruction:
    args = node.args
    if node.keyword == "onbuild" and node.child is not None:
        # What Docker records as the trigger: the text after ONBUILD, heredocs appended.
        expression = _RE_ONBUILD_PREFIX.sub("", node.original, count=1)
        for h in node.heredocs:
            expression += "\n" + h.content + h.name
        args = (expression,)
    return Instruction(
        keyword=node.keyword,
        args=args,
        json_form=node.json_form,
        flags=node.flags,
        original=node.original,
        line=start,
        end_line=end,
        heredocs=node.heredocs,
        rest=node.rest,
    )


def parse_instructions(text: str, filename: str = "Dockerfile") -> Dockerfile:
    """Parse without the per-instruction checks (BuildKit's `parser.Parse` alone).

    Unknown instructions come back with empty args; use `parse_dockerfile` to build.
    """
    try:
        parsed = _parse_nodes(text)
    except _Error as e:
        raise DockerfileSyntaxError(filename, e.line, e.message) from None
    return Dockerfile(
        instructions=tuple(_to_instruction(n, s, e) for n, s, e in parsed.nodes),
        escape=parsed.directives.escape,
        directives=dict(parsed.directives.values),
        warnings=tuple(parsed.warnings),
    )


def parse_dockerfile(text: str, filename: str = "Dockerfile") -> Dockerfile:
    """Parse and check a Dockerfile as Docker does before building anything; the
    instructions come back typed (`RunInstruction`, `CopyInstruction`, …: commands.py).

    Raises DockerfileSyntaxError (`Dockerfile:LINE: message`) for the first problem.
    """
    if text == "":
        raise DockerfileSyntaxError(filename, 1, f"the Dockerfile ({filename}) cannot be empty")
    try:
        parsed = _parse_nodes(text)
    except _Error as e:
        raise DockerfileSyntaxError(filename, e.line, e.message) from None
    if not parsed.nodes:
        raise DockerfileSyntaxError(filename, max(parsed.last_line, 1), "file with no instructions")
    out: list[Instruction] = []
    seen_from = False
    for node, start, end in parsed.nodes:
        try:
            ins = _ins.typed(_to_instruction(node, start, end), node.written)
            if node.keyword == "onbuild" and node.child is not None:
                _ins.validate_onbuild_trigger(node.child.written)
        except InvalidArgument as e:
            raise DockerfileSyntaxError(filename, start, str(e)) from None
        if node.keyword == "from":
            seen_from = True
        elif not seen_from and node.keyword != "arg":
            # Only ARG may precede the first FROM (instructions.Parse / CurrentStage).
            raise DockerfileSyntaxError(filename, start, "no build stage in current context")
        out.append(ins)
    return Dockerfile(
        instructions=tuple(out),
        escape=parsed.directives.escape,
        directives=dict(parsed.directives.values),
        warnings=tuple(parsed.warnings),
    )
