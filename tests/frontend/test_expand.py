"""Word expansion, checked against Docker's own lexer test data.

The ENV_VAR_CASES table is moby's `builder/dockerfile/envVarTest` (env PWD=/home, SHELL=bash,
KOREAN=한국어). Rows whose answer changed when BuildKit made unterminated quotes and `${}` errors
are marked with that newer answer ("error"), as in BuildKit's copy of the file.
"""

from __future__ import annotations

import pytest

from dockyard.errors import InvalidArgument
from dockyard.frontend.expand import (
    EXPANDED_KEYWORDS,
    ExpansionError,
    expand_word,
    expand_words,
    parse_arg_values,
    parse_key_values,
    parse_words,
)

ENV = {"PWD": "/home", "SHELL": "bash", "KOREAN": "한국어"}

ENV_VAR_CASES = r"""
hello                    |     hello
he'll'o                  |     hello
he'llo                   |     error
he\'llo                  |     he'llo
he\\'llo                 |     error
abc\tdef                 |     abctdef
"abc\tdef"               |     abc\tdef
"abc\\tdef"              |     abc\tdef
'abc\tdef'               |     abc\tdef
hello\                   |     hello
hello\\                  |     hello\
"hello                   |     error
"hello\"                 |     error
"hel'lo"                 |     hel'lo
'hello                   |     error
'hello\'                 |     hello\
'hello\there'            |     hello\there
'hello\\there'           |     hello\\there
"''"                     |     ''
$.                       |     $.
he$1x                    |     hex
he$.x                    |     he$.x
he$pwd.                  |     he.
he$PWD                   |     he/home
he\$PWD                  |     he$PWD
he\\$PWD                 |     he\/home
"he\$PWD"                |     he$PWD
'he\$PWD'                |     he\$PWD
he\${}                   |     he${}
he\${}xx                 |     he${}xx
he${}                    |     error
he${}xx                  |     error
he${hi}                  |     he
he${hi}xx                |     hexx
he${PWD}                 |     he/home
he${.}                   |     error
he${XXX:-000}xx          |     he000xx
he${PWD:-000}xx          |     he/homexx
he${XXX:-$PWD}xx         |     he/homexx
he${XXX:-${PWD:-yyy}}xx  |     he/homexx
he${XXX:-${YYY:-yyy}}xx  |     heyyyxx
he${XXX:YYY}             |     error
he${XXX:+${PWD}}xx       |     hexx
he${PWD:+${XXX}}xx       |     hexx
he${PWD:+${SHELL}}xx     |     hebashxx
he${XXX:+000}xx          |     hexx
he${PWD:+000}xx          |     he000xx
'he${XX}'                |     he${XX}
"he${PWD}"               |     he/home
"he'$PWD'"               |     he'/home'
"$PWD"                   |     /home
'$PWD'                   |     $PWD
'\$PWD'                  |     \$PWD
'"hello"'                |     "hello"
he${PWD                  |     error
he${PWD:=000}xx          |     error
he${PWD:+${PWD}:}xx      |     he/home:xx
he${XXX:-\$PWD:}xx       |     he$PWD:xx
he${XXX:-\${PWD}z}xx     |     he${PWDz}xx
안녕하세요                 |     안녕하세요
안'녕'하세요               |     안녕하세요
안녕\'하세요               |     안녕'하세요
안녕$1x                    |     안녕x
안녕${XXX:-${YYY:-yyy}}xx  |     안녕yyyxx
"안녕'$PWD'"               |     안녕'/home'
$KOREAN                    |     한국어
안녕$KOREAN                |     안녕한국어
"""


def _rows(table: str) -> list[tuple[str, str]]:
    rows = []
    for line in table.strip().splitlines():
        source, expected = line.split("|")
        rows.append((source.strip(), expected.strip()))
    return rows


@pytest.mark.parametrize(("source", "expected"), _rows(ENV_VAR_CASES))
def test_env_var_table(source: str, expected: str) -> None:
    if expected == "error":
        with pytest.raises(ExpansionError):
            expand_word(source, ENV)
    else:
        assert expand_word(source, ENV) == expected


# moby builder/dockerfile/wordsTest: input | expected words joined by ",".
WORDS_ENV = {"hi": "hi", "space": "abc  def", "leading": "  ab c", "trailing": "ab c   "}
WORDS_CASES = [
    ("hello", ["hello"]),
    ("hello${hi}bye", ["hellohibye"]),
    ("hello${space}bye", ["helloabc", "defbye"]),
    ('hello"${space}"bye', ["helloabc  defbye"]),
    ('hello "${space}"bye', ["hello", "abc  defbye"]),
    ("hello${leading}def", ["hello", "ab", "cdef"]),
    ('hello"${leading}" def', ["hello  ab c", "def"]),
    ('hello"${leading}"', ["hello  ab c"]),
    ("hello${leading}", ["hello", "ab", "c"]),
    ("hello${trailing}", ["helloab", "c"]),
    ("hello${trailing}d", ["helloab", "c", "d"]),
    ('hello"${trailing}"d', ["helloab c   d"]),
    ('hel"lo${trailing}"', ["helloab c   "]),
    ('hello" there  "', ["hello there  "]),
    ("hello there     ", ["hello", "there"]),
    ("hello\\ there", ["hello there"]),
    ('hello\\" there', ['hello"', "there"]),
    ('"" a', ["a"]),
]


@pytest.mark.parametrize(("source", "expected"), WORDS_CASES)
def test_words_table(source: str, expected: list[str]) -> None:
    assert expand_words(source, WORDS_ENV) == expected


def test_unterminated_quote_in_words_is_an_error() -> None:
    with pytest.raises(ExpansionError, match="matching double-quote"):
        expand_words('hello" there', WORDS_ENV)


@pytest.mark.parametrize(
    ("source", "env", "expected"),
    [
        ("${X-def}", {}, "def"),
        ("${X-def}", {"X": ""}, ""),  # without ':' only unset counts
        ("${X:-def}", {"X": ""}, "def"),
        ("${X+alt}", {"X": ""}, "alt"),
        ("${X:+alt}", {"X": ""}, ""),
        ("${X+alt}", {}, ""),
        ("${X?}", {"X": ""}, ""),
        ("${X#*/}", {"X": "a/b/c"}, "b/c"),
        ("${X##*/}", {"X": "a/b/c"}, "c"),
        ("${X%/*}", {"X": "a/b/c"}, "a/b"),
        ("${X%%/*}", {"X": "a/b/c"}, "a"),
        ("${X/b/B}", {"X": "abab"}, "aBab"),
        ("${X//b/B}", {"X": "abab"}, "aBaB"),
        ("${X/?/_}", {"X": "abc"}, "_bc"),
        ("$@x", {"@": "at"}, "atx"),
        ("${1}", {"1": "one"}, "one"),
    ],
)
def test_modifiers(source: str, env: dict[str, str], expected: str) -> None:
    assert expand_word(source, env) == expected


@pytest.mark.parametrize(
    ("source", "env", "message"),
    [
        ("${X:?}", {}, "X: is not allowed to be unset"),
        ("${X:?}", {"X": ""}, "X: is not allowed to be empty"),
        ("${X?custom msg}", {}, "X: custom msg"),
        ("${X:#a}", {"X": "a"}, "unsupported modifier (:#) in substitution"),
        ("${}", {}, "bad substitution"),
        ("${X", {}, "missing '}'"),
    ],
)
def test_modifier_errors(source: str, env: dict[str, str], message: str) -> None:
    with pytest.raises(ExpansionError) as e:
        expand_word(source, env)
    assert message in str(e.value)
    assert str(e.value).startswith(f'failed to process "{source}"')


def test_backtick_escape() -> None:
    # With `# escape=`` the backslash is an ordinary character (Windows paths).
    assert expand_word(r"C:\path\$X", {"X": "v"}, "`") == r"C:\path\v"
    assert expand_word("a`$X", {"X": "v"}, "`") == "a$X"
    assert expand_word('"a`"b"', {}, "`") == 'a"b'
    assert expand_words("a` b c", {}, "`") == ["a b", "c"]


def test_parse_words_keeps_quotes_and_escapes() -> None:
    assert parse_words('A="x y" B=z\\ w C') == ['A="x y"', "B=z\\ w", "C"]
    assert parse_words("a 'b c' \"\"") == ["a", "'b c'", '""']


def test_parse_key_values_both_syntaxes() -> None:
    env = {"V": "val"}
    assert parse_key_values('A=1 B="x y" C=$V D=\\$V', "ENV", env) == [
        ("A", "1"),
        ("B", "x y"),
        ("C", "val"),
        ("D", "$V"),
    ]
    assert parse_key_values("A some  value $V", "ENV", env) == [("A", "some  value val")]
    assert parse_key_values('"my key"="v"', "LABEL", env) == [("my key", "v")]
    assert parse_key_values("A=${V}x", "LABEL", env) == [("A", "valx")]


@pytest.mark.parametrize(
    ("args", "keyword", "message"),
    [
        ("=x", "ENV", "ENV names can not be blank"),
        ("A", "ENV", "ENV must have two arguments"),
        ("A=1 B", "LABEL", 'Syntax error - can\'t find = in "B". Must be of the form: name=value'),
        ("", "ENV", "ENV requires at least one argument"),
        ("=1", "ARG", "ARG names can not be blank"),
    ],
)
def test_parse_key_values_errors(args: str, keyword: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as e:
        parse_key_values(args, keyword, {})
    assert str(e.value) == message


def test_arg_values() -> None:
    assert parse_arg_values("A B=1 C=${B:-x}", {"B": "zz"}) == [
        ("A", None),
        ("B", "1"),
        ("C", "zz"),
    ]
    assert parse_key_values("A B=2", "ARG", {}) == [("A", ""), ("B", "2")]


def test_expanded_keywords() -> None:
    assert {"copy", "add", "env", "workdir", "from", "user", "arg"} <= EXPANDED_KEYWORDS
    assert not {"run", "cmd", "entrypoint", "shell", "healthcheck"} & EXPANDED_KEYWORDS
