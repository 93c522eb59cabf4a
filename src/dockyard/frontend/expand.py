"""Dockerfile word expansion: a port of BuildKit's shell lexer (`frontend/dockerfile/shell/lex.go`).

Docker does not run a shell to expand `$VAR` in instructions; it runs its own small lexer
over each word. It knows `$VAR`, `${VAR}`, `${VAR:-w}` `${VAR-w}` `${VAR:+w}` `${VAR+w}`
`${VAR:?msg}` `${VAR?msg}`, BuildKit's `${VAR#pat}` `${VAR##pat}` `${VAR%pat}` `${VAR%%pat}`
`${VAR/pat/repl}` `${VAR//pat/repl}`, single quotes (literal), double quotes (only `$`, `"`
and the escape character are special), and the escape character (`\\` or the backtick
chosen with `# escape=`). Quotes are removed as a shell removes them; an unset variable
expands to the empty string.

Which instructions are expanded (docs.docker.com/reference/dockerfile/#environment-replacement,
and the `Expand` methods of BuildKit's `instructions/commands.go`): ADD, COPY (sources,
destination, --chown, --chmod, --from), ENV and LABEL (keys and values), ARG (names and
defaults), EXPOSE, FROM (image and --platform, with the global ARGs only), STOPSIGNAL, USER,
VOLUME, WORKDIR, and ONBUILD triggers when they run in a child build. RUN, CMD, ENTRYPOINT,
SHELL and HEALTHCHECK bodies are NOT expanded: the shell of the container does that at run
time (exec form gets no expansion at all).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from dockyard.errors import InvalidArgument

EXPANDED_KEYWORDS: frozenset[str] = frozenset(
    {
        "add",
        "copy",
        "env",
        "label",
        "arg",
        "expose",
        "from",
        "stopsignal",
        "user",
        "volume",
        "workdir",
    }
)

_EOF = ""
_SPECIAL_PARAMS = frozenset("@*#?-$!0")
# `reWhitespace` of BuildKit's parser: the legacy `ENV key value` form splits on these only.
_RE_WHITESPACE = re.compile(r"[\t\v\f\r ]+")


class ExpansionError(InvalidArgument):
    """A word could not be expanded (bad `${...}`, unterminated quote, `${VAR:?}` unset)."""


class _LexError(Exception):
    pass


def _is_space(ch: str) -> bool:
    return ch.isspace()


def _is_digit(ch: str) -> bool:
    # Go's unicode.IsDigit is the Nd category, which is Python's isdecimal.
    return ch.isdecimal()


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else _EOF

    def next(self) -> str:
        ch = self.peek()
        if ch:
            self.pos += 1
        return ch


@dataclass
class _Words:
    words: list[str] = field(default_factory=list)
    buf: str = ""
    in_word: bool = False

    def add_char(self, ch: str) -> None:
        if _is_space(ch):
            # An empty quoted string sets in_word without text; Docker then drops it.
            if self.in_word and self.buf:
                self.words.append(self.buf)
                self.buf = ""
                self.in_word = False
        else:
            self.add_raw(ch)

    def add_raw(self, text: str) -> None:
        self.buf += text
        self.in_word = True

    def add_string(self, text: str) -> None:
        for ch in text:
            self.add_char(ch)

    def get(self) -> list[str]:
        if self.buf:
            self.words.append(self.buf)
            self.buf = ""
            self.in_word = False
        return self.words


class ShellLex:
    """BuildKit's `shell.Lex` with its options; `expand_word` / `expand_words` are the usual way in.

    raw_quotes keeps quote characters in the output, raw_escapes keeps escape characters,
    skip_unset_env leaves `$NAME` of unset variables as written (the parser uses these three
    to find heredoc markers), heredoc_markers joins `<<  NAME` into one word as BuildKit does.
    """

    def __init__(
        self,
        escape: str = "\\",
        *,
        raw_quotes: bool = False,
        raw_escapes: bool = False,
        skip_unset_env: bool = False,
        heredoc_markers: bool = False,
    ) -> None:
        if escape not in ("\\", "`"):
            raise InvalidArgument(f"invalid escape token '{escape}' does not match ` or \\")
        self.escape = escape
        self.raw_quotes = raw_quotes
        self.raw_escapes = raw_escapes
        self.skip_unset_env = skip_unset_env
        self.heredoc_markers = heredoc_markers

    def process_word(self, word: str, env: Mapping[str, str]) -> str:
        return self._process(word, env)[0]

    def process_words(self, word: str, env: Mapping[str, str]) -> list[str]:
        return self._process(word, env)[1]

    def _process(self, word: str, env: Mapping[str, str]) -> tuple[str, list[str]]:
        sw = _ShellWord(self, word, env)
        try:
            return sw.process_stop_on(_EOF, self.raw_escapes)
        except _LexError as e:
            raise ExpansionError(f'failed to process "{word}": {e}') from None


class _ShellWord:
    def __init__(self, lex: ShellLex, word: str, env: Mapping[str, str]) -> None:
        self.lex = lex
        self.scanner = _Scanner(word)
        self.env = env
        self.raw_escapes = lex.raw_escapes

    def get_env(self, name: str) -> tuple[str, bool]:
        value = self.env.get(name)
        if value is None:
            return "", False
        return value, True

    def process_stop_on(self, stop: str, raw_escapes: bool) -> tuple[str, list[str]]:
        saved = self.raw_escapes
        self.raw_escapes = raw_escapes
        try:
            return self._process_stop_on(stop)
        finally:
            self.raw_escapes = saved

    def _process_stop_on(self, stop: str) -> tuple[str, list[str]]:
        sc = self.scanner
        esc = self.lex.escape
        result: list[str] = []
        words = _Words()
        while sc.peek() != _EOF:
            ch = sc.peek()
            if stop and ch == stop:
                sc.next()
                return "".join(result), words.get()
            if ch == "$":
                tmp = self.process_dollar()
                result.append(tmp)
                words.add_string(tmp)
                continue
            if ch == "'":
                tmp = self.process_single_quote()
                result.append(tmp)
                words.add_raw(tmp)
                continue
            if ch == '"':
                tmp = self.process_double_quote()
                result.append(tmp)
                words.add_raw(tmp)
                continue
            if ch == "<" and self.lex.heredoc_markers:
                tmp = self.process_possible_heredoc()
                result.append(tmp)
                words.add_raw(tmp)
                continue
            ch = sc.next()
            if ch == esc:
                if self.raw_escapes:
                    words.add_raw(ch)
                    result.append(ch)
                ch = sc.next()
                if ch == _EOF:
                    # A lone escape character at the end of a word vanishes.
                    break
                words.add_raw(ch)
            else:
                words.add_char(ch)
            result.append(ch)
        if stop:
            raise _LexError(f"unexpected end of statement while looking for matching {stop}")
        return "".join(result), words.get()

    def process_possible_heredoc(self) -> str:
        sc = self.scanner
        sc.next()
        if sc.peek() != "<":
            return "<"
        sc.next()
        # BuildKit allows blanks between `<<` and the delimiter word.
        spaces = []
        while sc.peek() in (" ", "\t"):
            spaces.append(sc.next())
        return "<<" + "".join(spaces)

    def process_single_quote(self) -> str:
        sc = self.scanner
        out: list[str] = []
        ch = sc.next()
        if self.lex.raw_quotes:
            out.append(ch)
        while True:
            ch = sc.next()
            if ch == _EOF:
                raise _LexError(
                    "unexpected end of statement while looking for matching single-quote"
                )
            if ch == "'":
                if self.lex.raw_quotes:
                    out.append(ch)
                return "".join(out)
            out.append(ch)

    def process_double_quote(self) -> str:
        sc = self.scanner
        esc = self.lex.escape
        out: list[str] = []
        ch = sc.next()
        if self.lex.raw_quotes:
            out.append(ch)
        while True:
            peek = sc.peek()
            if peek == _EOF:
                raise _LexError(
                    "unexpected end of statement while looking for matching double-quote"
                )
            if peek == '"':
                ch = sc.next()
                if self.lex.raw_quotes:
                    out.append(ch)
                return "".join(out)
            if peek == "$":
                out.append(self.process_dollar())
                continue
            ch = sc.next()
            if ch == esc:
                if self.raw_escapes:
                    out.append(ch)
                nxt = sc.peek()
                if nxt == _EOF:
                    continue
                # Inside double quotes only `"`, `$` and the escape character itself are
                # escapable; any other escape character stays literal (as in sh).
                if nxt in ('"', "$", esc):
                    ch = sc.next()
            out.append(ch)

    def process_name(self) -> str:
        sc = self.scanner
        name: list[str] = []
        while sc.peek() != _EOF:
            ch = sc.peek()
            if not name and _is_digit(ch):
                while sc.peek() != _EOF and _is_digit(sc.peek()):
                    name.append(sc.next())
                return "".join(name)
            if not name and ch in _SPECIAL_PARAMS:
                return sc.next()
            if not (ch.isalpha() or _is_digit(ch) or ch == "_"):
                break
            name.append(sc.next())
        return "".join(name)

    def process_dollar(self) -> str:
        sc = self.scanner
        sc.next()
        if sc.peek() != "{":
            name = self.process_name()
            if not name:
                return "$"
            value, found = self.get_env(name)
            if not found and self.lex.skip_unset_env:
                return "$" + name
            return value

        sc.next()
        peek = sc.peek()
        if peek == _EOF:
            raise _LexError("syntax error: missing '}'")
        if peek in "{}:":
            raise _LexError("syntax error: bad substitution")
        name = self.process_name()
        ch = sc.next()
        if ch == _EOF:
            raise _LexError("syntax error: missing '}'")
        chs = ch
        if ch == "}":
            value, found = self.get_env(name)
            if not found and self.lex.skip_unset_env:
                return "${" + name + "}"
            return value
        if ch == "/":
            return self._substitute(name)
        null_is_unset = False
        if ch == ":":
            null_is_unset = True
            ch = sc.next()
            chs += ch
        elif ch not in "+-?#%":
            raise _LexError(f"unsupported modifier ({chs}) in substitution")
        pattern_mode = ch in "#%"
        if null_is_unset and pattern_mode:
            raise _LexError(f"unsupported modifier ({chs}) in substitution")
        try:
            word, _ = self.process_stop_on("}", pattern_mode)
        except _LexError:
            if sc.peek() == _EOF:
                raise _LexError("syntax error: missing '}'") from None
            raise
        value, found = self.get_env(name)
        if self.lex.skip_unset_env and not found:
            return "${" + name + chs + word + "}"
        unset = not found or (null_is_unset and value == "")
        if ch == "-":
            return word if unset else value
        if ch == "+":
            return "" if unset else word
        if ch == "?":
            if not found:
                raise _LexError(f"{name}: {word or 'is not allowed to be unset'}")
            if null_is_unset and value == "":
                raise _LexError(f"{name}: {word or 'is not allowed to be empty'}")
            return value
        if ch in "#%":
            greedy = word.startswith(ch)
            if greedy:
                word = word[1:]
            if ch == "%":
                return _trim_suffix(word, value, greedy)
            return _trim_prefix(word, value, greedy)
        raise _LexError(f"unsupported modifier ({chs}) in substitution")

    def _substitute(self, name: str) -> str:
        sc = self.scanner
        replace_all = sc.peek() == "/"
        if replace_all:
            sc.next()
        try:
            pattern, _ = self.process_stop_on("/", True)
        except _LexError:
            if sc.peek() == _EOF:
                raise _LexError("syntax error: missing '/' in ${}") from None
            raise
        try:
            replacement, _ = self.process_stop_on("}", True)
        except _LexError:
            if sc.peek() == _EOF:
                raise _LexError("syntax error: missing '}'") from None
            raise
        value, found = self.get_env(name)
        if self.lex.skip_unset_env and not found:
            sep = "//" if replace_all else "/"
            return "${" + name + sep + pattern + "/" + replacement + "}"
        regex = _shell_pattern_to_regex(pattern, greedy=True, anchored=False)
        if replace_all:
            return regex.sub(lambda _m: replacement, value)
        m = regex.search(value)
        if m:
            value = value[: m.start()] + replacement + value[m.end() :]
        return value


def _shell_pattern_to_regex(pattern: str, *, greedy: bool, anchored: bool) -> re.Pattern[str]:
    out = ["^"] if anchored else []
    star = ".*" if greedy else ".*?"
    i = 0
    while i < len(pattern):
        tok = pattern[i]
        i += 1
        if tok == "*":
            out.append(star)
        elif tok == "?":
            out.append(".")
        elif tok == "\\":
            nxt = pattern[i] if i < len(pattern) else ""
            if nxt in ("}", "/"):
                continue
            i += 1
            if nxt not in ("*", "?", "\\"):
                raise _LexError(
                    f"invalid pattern ({pattern}) in substitution: invalid escape '\\{nxt}'"
                )
            out.append(re.escape(nxt))
        else:
            out.append(re.escape(tok))
    return re.compile("".join(out))


def _trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    m = _shell_pattern_to_regex(pattern, greedy=greedy, anchored=True).search(value)
    return value[m.end() :] if m else value


def _reverse_pattern(pattern: str) -> str:
    # Reverse the pattern but keep each `\x` escape pair in order (`a\*c` -> `c\*a`).
    tokens: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\" and i + 1 < len(pattern):
            tokens.append(pattern[i : i + 2])
            i += 2
        else:
            tokens.append(pattern[i])
            i += 1
    return "".join(reversed(tokens))


def _trim_suffix(pattern: str, value: str, greedy: bool) -> str:
    # A regex cannot find the shortest rightmost match, so BuildKit reverses both sides.
    return _trim_prefix(_reverse_pattern(pattern), value[::-1], greedy)[::-1]


def expand_word(word: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """Expand one word as Docker's `ProcessWord`: variables substituted, quotes removed,
    whitespace kept."""
    return ShellLex(escape).process_word(word, env)


def expand_words(text: str, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    """Expand and split as Docker's `ProcessWords`: splitting happens after substitution,
    on whitespace outside quotes (so an unquoted variable holding blanks yields several words)."""
    return ShellLex(escape).process_words(text, env)


def parse_words(rest: str, escape: str = "\\") -> list[str]:
    """Split on unquoted whitespace keeping quotes and escapes (BuildKit's `parseWords`),
    which the parser uses for ENV, LABEL and ARG before anything is expanded."""
    words: list[str] = []
    in_spaces, in_word, in_quote = 0, 1, 2
    phase = in_spaces
    word: list[str] = []
    quote = ""
    blank_ok = False
    pos = 0
    n = len(rest)
    while True:
        if phase == in_spaces:
            if pos == n:
                break
            if rest[pos].isspace():
                pos += 1
                continue
            phase = in_word
        if pos == n:
            if blank_ok or word:
                words.append("".join(word))
            break
        ch = rest[pos]
        if phase == in_word:
            if ch.isspace():
                phase = in_spaces
                if blank_ok or word:
                    words.append("".join(word))
                word = []
                blank_ok = False
                pos += 1
                continue
            if ch in ("'", '"'):
                quote = ch
                blank_ok = True
                phase = in_quote
            if ch == escape:
                if pos + 1 == n:
                    pos += 1
                    continue
                # Unquoted, the escape and the escaped character both stay in the word.
                word.append(ch)
                pos += 1
                ch = rest[pos]
            word.append(ch)
            pos += 1
            continue
        # in_quote
        if ch == quote:
            phase = in_word
        if ch == escape and quote != "'":
            if pos + 1 == n:
                phase = in_word
                pos += 1
                continue
            word.append(ch)
            pos += 1
            ch = rest[pos]
        word.append(ch)
        pos += 1
    return words


def split_key_values(rest: str, keyword: str, escape: str = "\\") -> list[tuple[str, str]]:
    """Split ENV/LABEL arguments into raw (unexpanded) pairs as BuildKit's `parseNameVal`:
    `K=V K2="v 2"` or the legacy `K some value` (chosen by whether the first word has `=`)."""
    words = parse_words(rest, escape)
    if not words:
        raise InvalidArgument(f"{keyword} requires at least one argument")
    if "=" not in words[0]:
        parts = _RE_WHITESPACE.split(rest, maxsplit=1)
        if len(parts) < 2:
            raise InvalidArgument(f"{keyword} must have two arguments")
        pairs = [(parts[0], parts[1])]
    else:
        pairs = []
        for w in words:
            if "=" not in w:
                raise InvalidArgument(
                    f"Syntax error - can't find = in {go_quote(w)}. Must be of the form: name=value"
                )
            k, _, v = w.partition("=")
            pairs.append((k, v))
    for k, _ in pairs:
        if not k:
            raise InvalidArgument(f"{keyword} names can not be blank")
    return pairs


def split_arg_definitions(rest: str, escape: str = "\\") -> list[tuple[str, str | None]]:
    """Split ARG arguments into raw `(name, default or None)` pairs (BuildKit `parseArg`)."""
    words = parse_words(rest, escape)
    if not words:
        raise InvalidArgument("ARG requires at least one argument")
    out: list[tuple[str, str | None]] = []
    for w in words:
        if "=" in w:
            k, _, v = w.partition("=")
            if not k:
                raise InvalidArgument("ARG names can not be blank")
            out.append((k, v))
        else:
            out.append((w, None))
    return out


def parse_arg_values(
    args: str, env: Mapping[str, str], escape: str = "\\"
) -> list[tuple[str, str | None]]:
    """ARG definitions with names and defaults expanded; None marks an ARG without default."""
    lex = ShellLex(escape)
    out: list[tuple[str, str | None]] = []
    for k, v in split_arg_definitions(args, escape):
        out.append((lex.process_word(k, env), None if v is None else lex.process_word(v, env)))
    return out


def parse_key_values(
    args: str, keyword: str, env: Mapping[str, str], escape: str = "\\"
) -> list[tuple[str, str]]:
    """ENV / LABEL / ARG arguments as expanded `(key, value)` pairs, in order.

    `args` is the instruction text after the keyword (and flags). For ARG a name without a
    default yields an empty value; use `parse_arg_values` to tell the two apart.
    """
    kw = keyword.upper()
    if kw == "ARG":
        return [(k, v or "") for k, v in parse_arg_values(args, env, escape)]
    lex = ShellLex(escape)
    return [
        (lex.process_word(k, env), lex.process_word(v, env))
        for k, v in split_key_values(args, kw, escape)
    ]


def go_quote(s: str) -> str:
    """Go's `%q` of a string: Docker quotes names this way in error messages and history."""
    out = ['"']
    for ch in s:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif not ch.isprintable():
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)
