"""The common commands' command lines, parsed without argparse (see cli/main.py for why).

The tables in cli/leanspecs.py are made from the argparse parsers, so this parser fills the
same attributes with the same values argparse would; it takes only what it is sure of, the
forms docker's users type: `--flag`, `--flag value`, `--flag=value`, `-f`, `-f value`,
`-it` (boolean letters grouped), `--bool=true|false` (pflag's), and the positionals in one
run. Anything else (a help flag, an unknown flag, a grouped one that takes a value, a missing value, a wrong number of arguments, `--`, argparse's
split of positionals around flags) returns None, and cli/commandline.py parses the line with
argparse, errors and all. tests/cli/test_lean.py checks both give the same namespace.
"""

from __future__ import annotations

from dockyard.cli.leanspecs import COMMANDS, GLOBAL

TYPE_CHECKING = False  # typing itself costs ~1.5 ms of start-up; mypy honours this name

if TYPE_CHECKING:
    from typing import Any

# strconv.ParseBool's spellings (flags.GO_BOOLS; flags.py imports argparse)
_GO_BOOLS = {
    **dict.fromkeys(("1", "t", "T", "TRUE", "true", "True"), True),
    **dict.fromkeys(("0", "f", "F", "FALSE", "false", "False"), False),
}


class Args:
    """The parsed command line: an attribute per flag and positional, as argparse's
    Namespace (a plain class: argparse stays unloaded)."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)

    def __repr__(self) -> str:
        return f"Args({self.__dict__!r})"


class _Bail(Exception):
    """This command line is for argparse."""


def _is_flag(word: str) -> bool:
    return word[:1] == "-" and word != "-"


def _option(
    options: dict[str, tuple[str, str]],
    values: dict[str, Any],
    words: list[str],
    i: int,
    bools_take_go_values: bool,
) -> int:
    """Apply the flag at words[i] to values; the index of the next word."""
    word = words[i]
    if word == "--":
        raise _Bail
    name, eq, value = (
        word.partition("=") if word[:2] == "--" or word[2:3] == "=" else (word, "", "")
    )
    spec = options.get(name)
    if spec is None:
        if bools_take_go_values and _grouped_bools(options, word, values):
            return i + 1
        raise _Bail
    dest, kind = spec
    if kind == "t":
        if not eq:
            values[dest] = True
        elif bools_take_go_values and value in _GO_BOOLS:
            if _GO_BOOLS[value]:  # `=false` leaves the default, as commandline._go_bools
                values[dest] = True
        else:
            raise _Bail
        return i + 1
    if kind == "x" or (eq and word[:2] != "--"):
        raise _Bail
    if not eq:
        if i + 1 >= len(words) or _is_flag(words[i + 1]):
            raise _Bail
        value = words[i + 1]
        i += 1
    if kind == "i":
        try:
            values[dest] = int(value)
        except ValueError:
            raise _Bail from None
    elif kind == "m":
        values[dest] = [*(values[dest] or ()), value]
    else:
        values[dest] = value
    return i + 1


def _grouped_bools(options: dict[str, tuple[str, str]], word: str, values: dict[str, Any]) -> bool:
    """`-it`, `-aq`: single-letter boolean flags in one word, as pflag and argparse both take
    them; False (nothing set) for any other word, or one argparse could read otherwise (a
    letter that takes a value, an option string the word begins)."""
    if word[:1] != "-" or word[1:2] == "-" or len(word) < 3 or "=" in word:
        return False
    if any(option.startswith(word) for option in options):
        return False
    dests = []
    for letter in word[1:]:
        spec = options.get("-" + letter)
        if spec is None or spec[1] != "t":
            return False
        dests.append(spec[0])
    for dest in dests:
        values[dest] = True
    return True


def _fresh(defaults: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, list) else v for k, v in defaults.items()}


def _command(name: str, words: list[str], values: dict[str, Any]) -> None:
    spec: Any = COMMANDS[name]
    target, options, defaults, positionals = spec
    leaf = _fresh(defaults)
    remainder = positionals[-1][1] == "..." if positionals else False
    fixed = sum(1 for _, nargs in positionals if nargs == "1")
    run: list[str] = []  # the positional words, in one run
    ended = False
    i = 0
    while i < len(words):
        word = words[i]
        if remainder and len(run) == fixed:
            # argparse.REMAINDER: the rest of the line as typed, flags and all; a word
            # commandline._go_bools would rewrite is left to it
            rest = words[i:]
            for w in rest:
                flag, eq, value = w.partition("=")
                if eq and value in _GO_BOOLS and options.get(flag, ("", ""))[1] == "t":
                    raise _Bail
            leaf[positionals[-1][0]] = rest
            i = len(words)
            break
        if _is_flag(word):
            i = _option(options, leaf, words, i, True)
            if run:
                ended = True
            continue
        if ended:
            raise _Bail  # positionals on both sides of a flag: argparse's own split
        run.append(word)
        i += 1
    _positionals(positionals, run, leaf, remainder)
    values.update(leaf)
    values["cmd"] = name
    values["__target__"] = target


def _positionals(
    positionals: tuple[tuple[str, str], ...], run: list[str], leaf: dict[str, Any], rest: bool
) -> None:
    """The run of positional words over the command's positionals (only the last may vary)."""
    words = list(run)
    for dest, nargs in positionals:
        if nargs == "1":
            if not words:
                raise _Bail  # too few arguments: docker's error, from commandline
            leaf[dest] = words.pop(0)
        elif nargs == "?":
            if words:
                leaf[dest] = words.pop(0)
        elif nargs in "*+":
            if nargs == "+" and not words:
                raise _Bail
            leaf[dest], words = words, []
        # "...": filled by _command
    if words and not rest:
        raise _Bail  # too many arguments


def parse(argv: list[str]) -> tuple[Args, str] | str | None:
    """(the parsed line, its handler "module:function") for a lean command; the text to
    print for `dockyard --version`; None: a line for cli/commandline.py."""
    g_options, g_defaults, _ = GLOBAL
    values: dict[str, Any] = dict(g_defaults)
    i = 0
    try:
        while i < len(argv) and _is_flag(argv[i]):
            i = _option(g_options, values, argv, i, False)
        if i < len(argv):
            name = argv[i]
            if name not in COMMANDS:
                return None
            _command(name, argv[i + 1 :], values)
        elif not values["version"]:
            return None  # the help text
    except _Bail:
        return None
    if values["version"]:
        from dockyard import __version__

        return f"Dockyard version {__version__}\n"
    target = values.pop("__target__")
    return Args(values), target
