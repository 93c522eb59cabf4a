"""Dockerfile parser, checked against BuildKit/moby parser test files and Docker's messages.

`dump` renders an instruction the way BuildKit's `Node.Dump` does, so the `result` files of
moby's `parser/testfiles/*` can be compared line by line.
"""

from __future__ import annotations

import json

import pytest

from dockyard.errors import InvalidArgument
from dockyard.frontend.parser import (
    DockerfileSyntaxError,
    Instruction,
    parse_dockerfile,
    parse_instructions,
)


def _q(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def dump(i: Instruction) -> str:
    out = i.keyword
    if i.flags:
        words = ["--" + k + ("" if v is None else "=" + v) for k, v in i.flags]
        out += " [" + " ".join(_q(w) for w in words) + "]"
    for a in i.args:
        out += " " + _q(a)
    return "(" + out + ")"


def dumps(text: str) -> str:
    return "\n".join(dump(i) for i in parse_instructions(text).instructions)


DOCKER_DOCKERFILE = """\
# This file describes the standard way to build Docker, using docker
#
# Usage:
#

FROM\tubuntu:14.04
LABEL\tmaintainer\tTianon Gravi <admwiggin@gmail.com> (@tianon)

# Packaged dependencies
RUN\tapt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -yq \\
\tapt-utils \\
\taufs-tools \\
\t--no-install-recommends

ENV\tPATH\t/usr/local/go/bin:$PATH
# Compile Go for cross compilation
ENV\tDOCKER_CROSSPLATFORMS\t\\
\tlinux/386 linux/arm \\
\tdarwin/amd64 darwin/386 \\
\tfreebsd/amd64 freebsd/386 freebsd/arm
RUN\tcd /usr/local/go/src && bash -xc 'for platform in $DOCKER_CROSSPLATFORMS; do GOOS=${platform%/*} GOARCH=${platform##*/} ./make.bash --no-clean 2>&1; done'
RUN\t/bin/echo -e '[default]\\naccess_key=$AWS_ACCESS_KEY\\nsecret_key=$AWS_SECRET_KEY' > /.s3cfg
VOLUME\t/var/lib/docker
WORKDIR\t/go/src/github.com/docker/docker
ENV\tDOCKER_BUILDTAGS\tapparmor selinux
ENTRYPOINT\t["hack/dind"]
COPY\t.\t/go/src/github.com/docker/docker
"""

DOCKER_RESULT = r"""(from "ubuntu:14.04")
(label "maintainer" "Tianon Gravi <admwiggin@gmail.com> (@tianon)")
(run "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -yq \tapt-utils \taufs-tools \t--no-install-recommends")
(env "PATH" "/usr/local/go/bin:$PATH")
(env "DOCKER_CROSSPLATFORMS" "linux/386 linux/arm \tdarwin/amd64 darwin/386 \tfreebsd/amd64 freebsd/386 freebsd/arm")
(run "cd /usr/local/go/src && bash -xc 'for platform in $DOCKER_CROSSPLATFORMS; do GOOS=${platform%/*} GOARCH=${platform##*/} ./make.bash --no-clean 2>&1; done'")
(run "/bin/echo -e '[default]\\naccess_key=$AWS_ACCESS_KEY\\nsecret_key=$AWS_SECRET_KEY' > /.s3cfg")
(volume "/var/lib/docker")
(workdir "/go/src/github.com/docker/docker")
(env "DOCKER_BUILDTAGS" "apparmor selinux")
(entrypoint "hack/dind")
(copy "." "/go/src/github.com/docker/docker")"""

HEALTH_DOCKERFILE = """\
FROM debian
ADD check.sh main.sh /app/
CMD /app/main.sh
HEALTHCHECK
HEALTHCHECK --interval=5s --timeout=3s --retries=3 \\
  CMD /app/check.sh --quiet
HEALTHCHECK CMD
HEALTHCHECK   CMD   a b
HEALTHCHECK --timeout=3s CMD ["foo"]
HEALTHCHECK CONNECT TCP 7000
HEALTHCHECK --start-period=0s --interval=5s --timeout=0s --retries=0 CMD ["foo"]
"""

HEALTH_RESULT = """\
(from "debian")
(add "check.sh" "main.sh" "/app/")
(cmd "/app/main.sh")
(healthcheck)
(healthcheck ["--interval=5s" "--timeout=3s" "--retries=3"] "CMD" "/app/check.sh --quiet")
(healthcheck "CMD")
(healthcheck "CMD" "a b")
(healthcheck ["--timeout=3s"] "CMD" "foo")
(healthcheck "CONNECT" "TCP 7000")
(healthcheck ["--start-period=0s" "--interval=5s" "--timeout=0s" "--retries=0"] "CMD" "foo")"""

ADD_COPY_JSON_DOCKERFILE = """\
FROM\tubuntu:14.04
MAINTAINER\tSeongyeol Lim <seongyeol37@gmail.com>

COPY\t.\t/go/src/github.com/docker/docker
ADD\t\t.\t/
ADD\t\tnull /
COPY\tnullfile /tmp
ADD\t\t[ "vimrc", "/tmp" ]
COPY\t[ "bashrc", "/tmp" ]
COPY\t[ "test file", "/tmp" ]
ADD\t\t[ "test file", "/tmp/test file" ]
"""

ADD_COPY_JSON_RESULT = """\
(from "ubuntu:14.04")
(maintainer "Seongyeol Lim <seongyeol37@gmail.com>")
(copy "." "/go/src/github.com/docker/docker")
(add "." "/")
(add "null" "/")
(copy "nullfile" "/tmp")
(add "vimrc" "/tmp")
(copy "bashrc" "/tmp")
(copy "test file" "/tmp")
(add "test file" "/tmp/test file")"""

CONTINUE_INDENT_DOCKERFILE = """\
FROM ubuntu:14.04

RUN echo hello\\
  world\\
  goodnight  \\
  moon\\
  light\\
ning
RUN echo hello  \\
  world
RUN echo hello  \\
world
RUN echo hello \\
goodbye\\
frog
RUN echo hi \\
 \\
 world \\
\\
 good\\
\\
night
RUN echo goodbye\\
frog
RUN echo good\\
bye\\
frog
"""

CONTINUE_INDENT_RESULT = """\
(from "ubuntu:14.04")
(run "echo hello  world  goodnight    moon  lightning")
(run "echo hello    world")
(run "echo hello  world")
(run "echo hello goodbyefrog")
(run "echo hi   world  goodnight")
(run "echo goodbyefrog")
(run "echo goodbyefrog")"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (DOCKER_DOCKERFILE, DOCKER_RESULT),
        (HEALTH_DOCKERFILE, HEALTH_RESULT),
        (ADD_COPY_JSON_DOCKERFILE, ADD_COPY_JSON_RESULT),
        (CONTINUE_INDENT_DOCKERFILE, CONTINUE_INDENT_RESULT),
    ],
    ids=["docker", "health", "ADD-COPY-with-JSON", "continueIndent"],
)
def test_moby_testfiles(text: str, expected: str) -> None:
    assert dumps(text) == expected


def test_lines_original_and_crlf() -> None:
    df = parse_dockerfile("FROM a\r\n\r\n  run echo a \\\r\n    b\r\nCMD x\r\n")
    run = df.instructions[1]
    assert (run.keyword, run.line, run.end_line) == ("run", 3, 4)
    assert run.original == "run echo a     b"
    assert run.args == ("echo a     b",)
    assert df.instructions[2].line == 5


def test_comments_and_empty_lines_inside_continuation() -> None:
    df = parse_dockerfile("FROM a\nRUN echo hello \\\n# comment\n\n  world\nRUN b\n")
    run = df.instructions[1]
    assert run.args == ("echo hello   world",)
    assert (run.line, run.end_line) == (2, 5)
    assert df.warnings[0].startswith("[WARNING]: Empty continuation line found in:")
    assert df.instructions[2].line == 6


def test_escaped_escape_is_not_continuation() -> None:
    df = parse_dockerfile("FROM a\nRUN echo \\\\\nRUN b\n")
    assert [i.args for i in df.instructions[1:]] == [("echo \\\\",), ("b",)]


def test_bom_and_case_insensitive_keywords() -> None:
    df = parse_dockerfile("\ufefffrom a AS Build\nWorkDir /x\n")
    assert [i.keyword for i in df.instructions] == ["from", "workdir"]
    assert df.instructions[1].original == "WorkDir /x"


class TestDirectives:
    def test_escape_backtick(self) -> None:
        df = parse_dockerfile("# escape=`\nFROM a\nRUN dir c:\\ `\n  && echo x\n")
        assert df.escape == "`"
        assert df.directives == {"escape": "`"}
        assert df.instructions[1].args == ("dir c:\\   && echo x",)

    def test_all_directives_with_spacing(self) -> None:
        text = "#syntax = docker/dockerfile:1\n# CHECK=skip=all\n  #   escape = \\\nFROM a\n"
        df = parse_dockerfile(text)
        assert df.directives == {
            "syntax": "docker/dockerfile:1",
            "check": "skip=all",
            "escape": "\\",
        }

    @pytest.mark.parametrize(
        "text",
        [
            "# comment\n# escape=`\nFROM a\n",  # after a comment
            "\n# escape=`\nFROM a\n",  # after a blank line
            "FROM a\n# escape=`\n",  # after an instruction
            "# unknown=1\n# escape=`\nFROM a\n",  # an unknown directive ends the block
        ],
    )
    def test_late_directive_is_a_comment(self, text: str) -> None:
        df = parse_dockerfile(text)
        assert df.escape == "\\"
        assert "escape" not in df.directives

    def test_invalid_escape(self) -> None:
        with pytest.raises(DockerfileSyntaxError) as e:
            parse_dockerfile("# escape=x\nFROM a\n")
        assert str(e.value) == "Dockerfile:1: invalid escape token 'x' does not match ` or \\"

    def test_duplicate_directive(self) -> None:
        with pytest.raises(DockerfileSyntaxError) as e:
            parse_dockerfile("# syntax=a\n# syntax=b\nFROM a\n")
        assert str(e.value) == "Dockerfile:2: only one syntax parser directive can be used"


class TestForms:
    def test_exec_and_shell_forms(self) -> None:
        df = parse_dockerfile(
            'FROM a\nRUN ["echo", "a b"]\nCMD [\'bad json\']\nENTRYPOINT ["x"] trailing\n'
            'RUN [ "a" , "b" ]\nCMD []\n'
        )
        run, cmd, ep, run2, cmd2 = df.instructions[1:]
        assert (run.json_form, run.args) == (True, ("echo", "a b"))
        assert (cmd.json_form, cmd.args) == (False, ("['bad json']",))
        # Go's json.Decoder reads one value and ignores the rest of the line.
        assert (ep.json_form, ep.args) == (True, ("x",))
        assert (run2.json_form, run2.args) == (True, ("a", "b"))
        assert (cmd2.json_form, cmd2.args) == (True, ())

    def test_non_string_json_array(self) -> None:
        with pytest.raises(DockerfileSyntaxError) as e:
            parse_dockerfile('FROM a\nCMD ["a", 1]\n')
        assert str(e.value) == (
            "Dockerfile:2: when using JSON array syntax, arrays must be comprised of strings only"
        )

    def test_flags(self) -> None:
        df = parse_dockerfile(
            "FROM --platform=$BUILDPLATFORM a AS b\n"
            'RUN --mount=type=cache,target=/c --mount=type=tmpfs,target=/t --network=none echo "x"\n'
            'COPY --from=b --chown="1:1" --link --chmod=755 a /d\n'
            "ADD --checksum=sha256:abc --keep-git-dir=true https://x/y /z\n"
            "RUN -- --not-a-flag\n"
        )
        fr, run, cp, add, run2 = df.instructions
        assert fr.flags == (("platform", "$BUILDPLATFORM"),)
        assert fr.args == ("a", "AS", "b")
        assert run.flag_values("mount") == ["type=cache,target=/c", "type=tmpfs,target=/t"]
        assert run.flag("network") == "none"
        assert run.args == ('echo "x"',)
        assert cp.flags == (("from", "b"), ("chown", "1:1"), ("link", None), ("chmod", "755"))
        assert cp.flag("link") == "true"
        assert add.flag("keep-git-dir") == "true"
        assert run2.args == ("--not-a-flag",)

    def test_env_label_arg_args(self) -> None:
        df = parse_dockerfile('ARG V=1 W\nFROM a\nENV A=1 B="x y"\nENV C some value\nLABEL "k"=v\n')
        arg, _, env1, env2, label = df.instructions
        assert arg.args == ("V=1", "W")
        assert env1.args == ("A", "1", "B", '"x y"')
        assert env1.rest == 'A=1 B="x y"'
        assert env2.args == ("C", "some value")
        assert label.args == ('"k"', "v")

    def test_onbuild(self) -> None:
        df = parse_dockerfile("FROM a\nONBUILD RUN echo x\nonbuild COPY <<EOF /f\nhi\nEOF\n")
        assert df.instructions[1].args == ("RUN echo x",)
        ob = df.instructions[2]
        assert ob.args == ("COPY <<EOF /f\nhi\nEOF",)
        assert ob.heredocs[0].content == "hi\n"


HEREDOC_FILE = """\
FROM alpine:3.6
RUN <<EMPTY
EMPTY
RUN 3<<EMPTY2
EMPTY2
RUN "<<NOHEREDOC"
RUN <<INDENT
\tfoo
\tbar
INDENT
RUN <<-UNINDENT
\tbaz
\tquux
UNINDENT
RUN <<-UNINDENT2
\tbaz
\tquux
\tUNINDENT2
RUN <<-'NOEXPAND'
\tdon't expand $NAME
NOEXPAND
RUN <<COMMENT
# internal comment
echo hello world # trailing
COMMENT
RUN --mount=type=cache,target=/foo <<MOUNT
echo hello
MOUNT
COPY <<FILE1 <<FILE2 /dest
content 1
FILE1
content 2
FILE2
COPY <<X <<Y /dest
Y
X
X
Y
RUN <<COMPLEX python3
print('hello world')
COMPLEX
RUN <<eo'f'
echo foo
eof
RUN <<eo\\'f
echo foo
eo'f
RUN <<'e'o\\'f
echo foo
eo'f
RUN <<'one two'
echo bar
one two
RUN <<$EOF
$EOF
RUN <<  EOF
EOF
RUN ["<<EOF"]
USER <<INVALID
"""

# (name, content, expand, chomp) per instruction after FROM, from BuildKit's
# TestParseExtractsHeredoc.
HEREDOC_EXPECTED: list[list[tuple[str, str, bool, bool]]] = [
    [("EMPTY", "", True, False)],
    [("EMPTY2", "", True, False)],
    [],
    [("INDENT", "\tfoo\n\tbar\n", True, False)],
    [("UNINDENT", "\tbaz\n\tquux\n", True, True)],
    [("UNINDENT2", "\tbaz\n\tquux\n", True, True)],
    [("NOEXPAND", "\tdon't expand $NAME\n", False, True)],
    [("COMMENT", "# internal comment\necho hello world # trailing\n", True, False)],
    [("MOUNT", "echo hello\n", True, False)],
    [("FILE1", "content 1\n", True, False), ("FILE2", "content 2\n", True, False)],
    [("X", "Y\n", True, False), ("Y", "X\n", True, False)],
    [("COMPLEX", "print('hello world')\n", True, False)],
    [("eof", "echo foo\n", False, False)],
    [("eo'f", "echo foo\n", True, False)],
    [("eo'f", "echo foo\n", False, False)],
    [("one two", "echo bar\n", False, False)],
    [("$EOF", "", True, False)],
    [("EOF", "", True, False)],
    [],
    [],
]


def test_heredocs_as_buildkit() -> None:
    df = parse_instructions(HEREDOC_FILE)
    got = [
        [(h.name, h.content, h.expand, h.chomp) for h in i.heredocs] for i in df.instructions[1:]
    ]
    assert got == HEREDOC_EXPECTED
    assert df.instructions[2].heredocs[0].fd == 3
    assert df.instructions[5].heredocs[0].body == "baz\nquux\n"
    # The heredoc body is not parsed as instructions and counts toward end_line.
    copy = df.instructions[10]
    assert (copy.keyword, copy.args, copy.line, copy.end_line) == (
        "copy",
        ("<<FILE1", "<<FILE2", "/dest"),
        29,
        33,
    )


def error_of(text: str) -> str:
    with pytest.raises(DockerfileSyntaxError) as e:
        parse_dockerfile(text)
    assert isinstance(e.value, InvalidArgument)
    return str(e.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "Dockerfile:1: the Dockerfile (Dockerfile) cannot be empty"),
        ("# only\n\n# comments\n", "Dockerfile:3: file with no instructions"),
        ("FROM a\nRUN x\nFOO bar\n", "Dockerfile:3: unknown instruction: FOO"),
        ("FROM a\nfrobnicate\n", "Dockerfile:2: unknown instruction: FROBNICATE"),
        ("ARG A\nRUN x\n", "Dockerfile:2: no build stage in current context"),
        ("# c\nENV A=1\nFROM a\n", "Dockerfile:2: no build stage in current context"),
        ("FROM\n", "Dockerfile:1: FROM requires either one or three arguments"),
        ("FROM a b\n", "Dockerfile:1: FROM requires either one or three arguments"),
        (
            "FROM a AS 1x\n",
            'Dockerfile:1: invalid name for build stage: "1x", '
            "name can't start with a number or contain symbols",
        ),
        ("FROM a\nRUN\n", "Dockerfile:2: RUN requires at least one argument"),
        ("FROM a\nRUN --mount=x\n", "Dockerfile:2: RUN requires at least one argument"),
        (
            "FROM a\n\nCOPY onlyone\n",
            "Dockerfile:3: COPY requires at least two arguments, but only one was provided. "
            "Destination could not be determined",
        ),
        (
            "FROM a\nCOPY <<EOF <<EOF2\nx\nEOF\ny\nEOF2\n",
            "Dockerfile:2: COPY cannot accept a heredoc as a destination",
        ),
        ("FROM a\nWORKDIR\n", "Dockerfile:2: WORKDIR requires exactly one argument"),
        ("FROM a\nUSER\n", "Dockerfile:2: USER requires exactly one argument"),
        ("FROM a\nEXPOSE\n", "Dockerfile:2: EXPOSE requires at least one argument"),
        ('FROM a\nVOLUME [""]\n', "Dockerfile:2: VOLUME specified can not be an empty string"),
        ("FROM a\nENV\n", "Dockerfile:2: ENV requires at least one argument"),
        ("FROM a\nENV A\n", "Dockerfile:2: ENV must have two arguments"),
        ("FROM a\nLABEL =x\n", "Dockerfile:2: LABEL names can not be blank"),
        ("FROM a\nARG =x\n", "Dockerfile:2: ARG names can not be blank"),
        ("FROM a\nCOPY --foo=1 a b\n", "Dockerfile:2: Unknown flag: foo"),
        ("FROM a\nCOPY --from=x --from=y a b\n", "Dockerfile:2: Duplicate flag specified: from"),
        ("FROM a\nCOPY --from a b\n", "Dockerfile:2: Missing a value on flag: from"),
        (
            "FROM a\nCOPY --link=maybe a b\n",
            "Dockerfile:2: Expecting boolean value for flag link, not: maybe",
        ),
        ("FROM --platform a\n", "Dockerfile:1: Missing a value on flag: platform"),
        ("FROM a\nENV --x=1 A=1\n", "Dockerfile:2: Unknown flag: x"),
        (
            "FROM a\nSHELL /bin/sh -c\n",
            "Dockerfile:2: SHELL requires the arguments to be in JSON form",
        ),
        ("FROM a\nSHELL []\n", "Dockerfile:2: SHELL requires at least one argument"),
        ("FROM a\nONBUILD\n", "Dockerfile:2: ONBUILD requires at least one argument"),
        (
            "FROM a\nONBUILD ONBUILD RUN x\n",
            "Dockerfile:2: Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
        ),
        ("FROM a\nONBUILD from b\n", "Dockerfile:2: FROM isn't allowed as an ONBUILD trigger"),
        (
            "FROM a\nONBUILD MAINTAINER me\n",
            "Dockerfile:2: MAINTAINER isn't allowed as an ONBUILD trigger",
        ),
        ("FROM a\nHEALTHCHECK\n", "Dockerfile:2: HEALTHCHECK requires at least one argument"),
        ("FROM a\nHEALTHCHECK NONE x\n", "Dockerfile:2: HEALTHCHECK NONE takes no arguments"),
        ("FROM a\nHEALTHCHECK CMD\n", "Dockerfile:2: Missing command after HEALTHCHECK CMD"),
        (
            "FROM a\nHEALTHCHECK CONNECT TCP 7000\n",
            'Dockerfile:2: Unknown type "CONNECT" in HEALTHCHECK (try CMD)',
        ),
        (
            "FROM a\nHEALTHCHECK --interval=1us CMD x\n",
            'Dockerfile:2: Interval "interval" cannot be less than 1ms',
        ),
        ("FROM a\nHEALTHCHECK --timeout=abc CMD x\n", 'Dockerfile:2: time: invalid duration "abc"'),
        (
            "FROM a\nHEALTHCHECK --retries=-1 CMD x\n",
            "Dockerfile:2: --retries cannot be negative (-1)",
        ),
        ("FROM a\nHEALTHCHECK --interval=5s NONE\n", "Dockerfile:2: Unknown flag: interval"),
        ("FROM a\nMAINTAINER\n", "Dockerfile:2: MAINTAINER requires exactly one argument"),
        ("FROM a\nSTOPSIGNAL\n", "Dockerfile:2: STOPSIGNAL requires exactly one argument"),
        ("FROM a\nRUN <<EOF\necho\n", "Dockerfile:2: unterminated heredoc"),
    ],
)
def test_errors(text: str, message: str) -> None:
    assert error_of(text) == message


def test_blank_lines_do_not_end_a_continuation() -> None:
    # Older Docker parsed `FOO` as an instruction here; BuildKit skips the blank lines.
    df = parse_dockerfile("FROM a\nRUN x\\\n\n\nFOO\n")
    assert df.instructions[1].args == ("xFOO",)
    assert len(df.warnings) == 2


def test_error_uses_given_filename() -> None:
    with pytest.raises(DockerfileSyntaxError) as e:
        parse_dockerfile("FROM a\nBAD x\n", filename="build/app.Dockerfile")
    assert str(e.value) == "build/app.Dockerfile:2: unknown instruction: BAD"
    assert (e.value.filename, e.value.line) == ("build/app.Dockerfile", 2)


def test_valid_file_accepted() -> None:
    text = """\
# syntax=docker/dockerfile:1
ARG BASE=alpine
FROM ${BASE} AS build
MAINTAINER someone
SHELL ["/bin/sh", "-c"]
HEALTHCHECK --interval=30s --timeout=3s --start-period=1m30s --retries=3 CMD curl -f http://x/
HEALTHCHECK NONE
EXPOSE 80/tcp 443
STOPSIGNAL SIGTERM
VOLUME ["/a", "/b"]
USER 1000:1000
ENTRYPOINT
CMD ["x"]
FROM scratch
COPY --from=build /out /
"""
    df = parse_dockerfile(text)
    assert [i.keyword for i in df.instructions] == [
        "arg", "from", "maintainer", "shell", "healthcheck", "healthcheck", "expose",
        "stopsignal", "volume", "user", "entrypoint", "cmd", "from", "copy",
    ]  # fmt: skip
    assert df.instructions[6].args == ("80/tcp", "443")


class TestTyped:
    """parse_dockerfile returns typed instructions with their flags checked and parsed."""

    def test_fields(self) -> None:
        from dockyard.frontend import commands as c

        df = parse_dockerfile(
            "FROM --platform=linux/amd64 a AS Build\n"
            "RUN --mount=type=cache,target=/c --network=none --security=insecure make\n"
            "COPY --from=build --chown=1:2 --chmod=755 --link --parents --exclude=*.o a b /d/\n"
            "ADD --checksum=sha256:abc --unpack=false --keep-git-dir https://x/y /z\n"
            "HEALTHCHECK --interval=1m30s --start-period=2s --retries=4 CMD check\n"
            'WORKDIR /w\nUSER u\nEXPOSE 80 81/udp\nVOLUME /v /w\nSHELL ["sh"]\n'
            "STOPSIGNAL 9\nMAINTAINER me\nONBUILD RUN x\nARG A\nENV E=1\nLABEL l=1\nCMD c\n"
            "ENTRYPOINT e\n"
        )
        fr, run, cp, add, hc, wd, user, expose, vol, sh, sig, mt, ob, *rest = df.instructions
        assert isinstance(fr, c.FromInstruction)
        assert (fr.base, fr.stage_name, fr.platform) == ("a", "build", "linux/amd64")
        assert isinstance(run, c.RunInstruction)
        assert (run.mounts, run.network, run.security) == (
            ("type=cache,target=/c",),
            "none",
            "insecure",
        )
        assert isinstance(cp, c.CopyInstruction)
        assert (cp.sources, cp.dest, cp.from_, cp.chown, cp.chmod) == (
            ("a", "b"),
            "/d/",
            "build",
            "1:2",
            "755",
        )
        assert (cp.link, cp.parents, cp.excludes) == (True, True, ("*.o",))
        assert isinstance(add, c.AddInstruction)
        assert (add.checksum, add.unpack, add.keep_git_dir) == ("sha256:abc", False, True)
        assert isinstance(hc, c.HealthcheckInstruction)
        assert (hc.test, hc.interval, hc.start_period, hc.timeout, hc.retries) == (
            ("CMD-SHELL", "check"),
            90_000_000_000,
            2_000_000_000,
            0,
            4,
        )
        assert (wd.path, user.user, expose.ports, vol.paths, sh.shell) == (
            "/w",
            "u",
            ("80", "81/udp"),
            ("/v", "/w"),
            ("sh",),
        )
        assert (sig.signal, mt.name, ob.trigger) == ("9", "me", "RUN x")
        assert [type(i).__name__ for i in rest] == [
            "ArgInstruction",
            "EnvInstruction",
            "LabelInstruction",
            "CmdInstruction",
            "EntrypointInstruction",
        ]
        plain = parse_dockerfile("FROM a\nRUN x\nADD f /f\n").instructions
        assert (plain[1].network, plain[1].security) == ("", "sandbox")  # type: ignore[attr-defined]
        assert plain[2].unpack is None  # type: ignore[attr-defined]

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("FROM a\nRUN --network=bridge x\n", "unsupported network mode 'bridge'"),
            ("FROM a\nRUN --security=lax x\n", "unsupported security mode 'lax'"),
            ("FROM a\nRUN --mount=type=nope,target=/x x\n", "unsupported mount type 'nope'"),
            ("FROM a\nRUN --mount=type=cache,wat=1,target=/x x\n", "unexpected key 'wat'"),
            ("FROM a\nADD --checksum=sha256:ab a b /d/\n", "checksum can't be specified for"),
            ("FROM a\nCOPY --chmod=8 a /d\n", "invalid chmod parameter: '8'"),
            ("FROM a\nCOPY --chmod=77777 a /d\n", "invalid chmod parameter: '77777'"),
        ],
    )
    def test_flag_values_checked_at_parse_time(self, text: str, message: str) -> None:
        with pytest.raises(DockerfileSyntaxError) as e:
            parse_dockerfile(text)
        assert str(e.value).startswith(f"Dockerfile:2: {message}"), str(e.value)

    def test_values_with_variables_wait_for_the_build(self) -> None:
        df = parse_dockerfile(
            "FROM a\nARG T=cache\nRUN --mount=type=$T,target=/c x\nCOPY --chmod=$M a /d\n"
        )
        assert df.instructions[2].mounts == ("type=$T,target=/c",)  # type: ignore[attr-defined]
        assert df.instructions[3].chmod == "$M"  # type: ignore[attr-defined]
