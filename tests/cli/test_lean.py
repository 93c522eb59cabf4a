"""The CLI's lean path (cli/lean.py, cli/cjson.py, the -S launcher): the same parse as
argparse's for every line it takes, argparse for every line it does not, the same JSON as
`json`, and none of the heavy modules imported by the common commands."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from dockyard.cli import cjson, commandline, launcher, lean, leanspecs

# Lines the lean parser must take (the fast path), each checked against argparse's parse.
TAKEN = [
    ["ps"],
    ["ps", "-a"],
    ["ps", "-a", "--format", "{{.ID}} {{.Names}}"],
    ["ps", "--format=table {{.ID}}\t{{.Status}}", "-q", "--no-trunc"],
    ["ps", "-n", "3", "--filter", "status=exited", "-f", "name=x"],
    ["ps", "--all=false", "-s"],
    ["ps", "--size=true", "--last=2"],
    ["-H", "unix:///tmp/x.sock", "ps"],
    ["--host=unix:///tmp/x.sock", "--root", "/tmp/r", "ps", "-a"],
    ["images"],
    ["images", "-q"],
    ["images", "busybox", "-a"],
    ["images", "-a", "busybox"],
    ["images", "-q", "-f", "dangling=true", "busybox", "--no-trunc"],
    ["images", "--format", "{{json .}}"],
    ["inspect", "busybox"],
    ["inspect", "-f", "{{.Id}}", "a", "b"],
    ["inspect", "--size", "x"],
    ["version"],
    ["version", "--format", "{{.Server.Version}}"],
    ["-v"],
    ["--version"],
    ["run", "--rm", "--network", "none", "busybox", "true"],
    ["run", "-d", "--name", "web", "-p", "8080:80", "-e", "A=1", "-e", "B=2", "busybox"],
    ["run", "--rm", "-i", "-t", "busybox", "sh"],
    ["run", "--rm", "-it", "busybox", "sh"],
    ["run", "-dit", "--name", "x", "busybox"],
    ["ps", "-aq"],
    ["ps", "-qa", "--no-trunc"],
    ["run", "--rm=true", "busybox", "echo", "-n", "--rm", "hi"],
    ["run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2"],
    ["run", "--rm", "--pids-limit", "10", "-m", "64m", "--cpus", "0.5", "busybox", "true"],
    ["run", "busybox"],
    ["create", "--name", "c1", "busybox", "sleep", "1"],
    ["start", "c1"],
    ["start", "-a", "c1", "c2"],
    ["stop", "-t", "1", "a", "b"],
    ["stop", "a", "b", "-t", "0"],
    ["kill", "-s", "KILL", "a"],
    ["rm", "-f", "a"],
    ["rm", "-f", "-v", "a", "b"],
    ["logs", "x"],
    ["logs", "-f", "--tail", "10", "x"],
    ["wait", "x"],
    ["tag", "a", "b:1"],
    ["rmi", "-f", "a"],
    ["history", "--no-trunc", "busybox"],
    ["info"],
    ["build", "-t", "a:1", "-t", "b", "--build-arg", "X=2", "."],
    ["build", "-q", "--no-cache", "-f", "Dockerfile.x", "--target", "s1", "ctx"],
    ["build", "-"],
]
# Lines it leaves to argparse (help, errors, forms it does not take).
LEFT = [
    [],
    ["--help"],
    ["ps", "--help"],
    ["run", "--help"],
    ["ps", "--bogus"],
    ["ps", "-an", "1"],  # a grouped letter that takes a value
    ["ps", "-ax"],
    ["run", "-itp", "80", "busybox"],
    ["ps", "--all=maybe"],
    ["ps", "--format"],
    ["ps", "-n", "x"],
    ["ps", "-n", "-1"],
    ["ps", "extra"],
    ["inspect"],
    ["inspect", "-f=x", "a"],
    ["inspect", "--type", "image", "x"],  # a flag with choices
    ["stop", "a", "-t", "1", "b"],
    ["run"],
    ["run", "--rm", "busybox", "echo", "--rm=false"],
    ["run", "--", "busybox"],
    ["tag", "a"],
    ["container", "ls"],
    ["exec", "x", "true"],
    ["daemon", "--root", "/tmp/x"],
    ["--tls=true", "ps"],
    ["bogus"],
]


def test_specs_are_the_parsers_tables() -> None:
    """cli/leanspecs.py is what lean_specs() makes of the argparse parsers today; on a
    failure, regenerate it: python -m dockyard.cli.commandline --lean-specs > that file."""
    made = commandline.lean_specs()
    assert made["GLOBAL"] == leanspecs.GLOBAL
    assert made["COMMANDS"] == leanspecs.COMMANDS


@pytest.mark.parametrize("argv", TAKEN, ids=" ".join)
def test_lean_parse_is_argparse_parse(argv: list[str]) -> None:
    parsed = lean.parse(list(argv))
    assert parsed is not None, "the lean path should take this line"
    if isinstance(parsed, str):
        assert parsed == f"Dockyard version {__import__('dockyard').__version__}\n"
        return
    args, target = parsed
    full = commandline.parse(list(argv))
    assert not isinstance(full, int)
    assert vars(args) == vars(full)
    assert target == commandline.target(full.cmd)


@pytest.mark.parametrize("argv", LEFT, ids=lambda a: " ".join(a) or "(none)")
def test_lean_leaves_the_rest_to_argparse(argv: list[str]) -> None:
    assert lean.parse(list(argv)) is None


DOCS = [
    {"a": [1, 2.5, "x\u00e9<>&", None, True, False, {}, []], "b": {"c": {"d": []}}},
    [],
    {},
    "s\u2028\x00",
    [1e300 * 10, -1e300 * 10, 0.1, -0.0, 10**30],
    {"Config": {"Labels": {"k": "v"}, "Env": ["A=1"]}, "Id": "sha256:" + "0" * 64},
]


@pytest.mark.parametrize("doc", DOCS, ids=repr)
def test_cjson_is_json(doc: object) -> None:
    assert cjson.dumps(doc) == json.dumps(doc)
    assert cjson.dumps_compact_utf8(doc) == json.dumps(
        doc, ensure_ascii=False, separators=(",", ":")
    )
    assert cjson.dumps_compact_utf8(doc, sort_keys=True) == json.dumps(
        doc, ensure_ascii=False, separators=(",", ":"), sort_keys=True
    )
    assert cjson.dumps_indented_utf8(doc, 4) == json.dumps(doc, ensure_ascii=False, indent=4)
    text = json.dumps(doc)
    assert repr(cjson.loads(text)) == repr(json.loads(text))
    assert repr(cjson.loads(f" \n{text}\t".encode())) == repr(json.loads(text))


@pytest.mark.parametrize("bad", [b"", b"{", b"[1] x", b"\xef\xbb\xbf[1]", "[1,]"])
def test_cjson_errors_are_json_errors(bad: bytes | str) -> None:
    try:
        expected: object = json.loads(bad)
    except ValueError as exc:
        with pytest.raises(type(exc)) as got:
            cjson.loads(bad)
        assert str(got.value) == str(exc)
    else:
        assert cjson.loads(bad) == expected


# What the common commands must not import: argparse (every parser), re and enum (through
# json, socket, typing, platform), socket and selectors, json, subprocess (the autostart
# check), pathlib, threading, urllib, typing, site (the launcher's -S).
HEAVY = {
    "argparse",
    "re",
    "enum",
    "socket",
    "selectors",
    "json",
    "subprocess",
    "pathlib",
    "threading",
    "urllib",
    "typing",
    "gettext",
    "platform",
    "contextlib",
    "inspect",
    "ast",
}
PROBE = """
import sys
{setup}
from dockyard.cli.main import main
rc = main({argv!r})
sys.stdout.flush()
sys.stderr.write("MODULES " + " ".join(sorted(sys.modules)) + "\\n")
"""


def _modules(argv: list[str], tmp_path: Path, launched: bool, host: str = "") -> set[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKYARD_", "DOCKER_"))}
    # a socket nobody listens on, named by DOCKER_HOST: the command fails to connect after
    # its imports, and nothing is autostarted for docker's setting
    env["DOCKER_HOST"] = host or f"unix://{tmp_path}/none.sock"
    env["DOCKER_CONFIG"] = str(tmp_path / "config")
    setup = ""
    cmd = [sys.executable, "-c"]
    if launched:  # as the installed launcher starts: -S, its paths
        paths = launcher.script().split("sys.path += ", 1)[1].split("\n", 1)[0]
        setup = f"sys.path += {paths}\nimport dockyard.cli.main as m\nm._launched = True"
        cmd = [sys.executable, "-S", "-c"]
    proc = subprocess.run(
        [*cmd, PROBE.format(setup=setup, argv=argv)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    line = [x for x in proc.stderr.splitlines() if x.startswith("MODULES ")]
    assert line, proc.stderr
    return set(line[0].split()[1:])


@pytest.mark.parametrize(
    "argv",
    [
        ["ps"],
        ["ps", "-a", "-q"],
        ["images"],
        ["inspect", "busybox"],
        ["version"],
        ["stop", "x"],
        ["rm", "-f", "x"],
        ["logs", "x"],
    ],
    ids=" ".join,
)
@pytest.mark.parametrize("launched", [False, True], ids=["python-m", "launcher"])
def test_common_commands_stay_lean(argv: list[str], launched: bool, tmp_path: Path) -> None:
    modules = _modules(argv, tmp_path, launched)
    assert "dockyard.cli.lean" in modules
    heavy = sorted(m for m in modules if m.split(".")[0] in HEAVY)
    assert heavy == []
    if launched:
        assert "site" not in modules


def test_fallback_runs_site_when_launched(tmp_path: Path) -> None:
    """A line the lean path leaves (here a usage error) gets the interpreter as usual."""
    modules = _modules(["ps", "--bogus"], tmp_path, True)
    assert {"site", "argparse"} <= modules


def test_launcher_runs_the_cli(tmp_path: Path) -> None:
    path = tmp_path / "dockyard"
    launcher.write(str(path))
    assert path.read_text().startswith(f"#!{sys.executable} -S\n")
    out = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    assert out.stdout == f"Dockyard version {__import__('dockyard').__version__}\n"
    usage = subprocess.run([str(path), "ps", "--bogus"], capture_output=True, text=True)
    assert usage.returncode == 125
    assert usage.stderr.startswith("unknown flag: --bogus\n")


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--rm", "--network", "none", "busybox", "true"],
        ["run", "-d", "--name", "web", "busybox"],
        ["start", "-a", "x"],
        ["ps", "-a", "--format", "{{.ID}} {{.Names}}"],
        ["ps", "--format", "{{json .}}"],
        ["images", "--format", "table {{.Repository}}\t{{.Size}}"],
        ["inspect", "-f", "{{.Id}}", "x"],
    ],
    ids=" ".join,
)
def test_run_and_templates_stay_lean(argv: list[str], tmp_path: Path) -> None:
    """run's threads (its wait and pumps) are threadlite.py's, on `_thread`: no `threading`
    and what it imports (functools, collections: 3.4 ms of every run); Go's templates need
    no `re`."""
    modules = _modules(argv, tmp_path, True)
    heavy = sorted(m for m in modules if m.split(".")[0] in HEAVY | {"functools", "collections"})
    assert heavy == []


TEMPLATES = [
    "{{.ID}} {{.Names}}",
    "table {{.ID}}\t{{.Status}}",
    "{{json .}}",
    '{{.Label "com.example"}} {{ .Names | upper }}',
    "{{range $i, $p := .Ports}}{{$i}}{{end}}",
    '{{if eq .State "running"}}up{{else}}down{{end}}',
    '{{- .Config.Env -}} {{index .Config.Labels "a"}} {{(.State).Status}}',
    '{{printf "%s-%d" .Name 5}} {{.a.5}} {{.5}} {{/* c */}} {{`raw`}} {{"a\\"b"}}',
    '{{.a_b.C9}} {{$}} {{ . }} {{len .Mounts}} {{join .Names ","}}',
    "{{.Repository}}:{{.Tag}} {{.ID}} {{.CreatedSince}} {{.Size}} {{.x.y.z}}",
]


@pytest.mark.parametrize("template", TEMPLATES)
def test_template_lexer_without_re_is_the_regex_lexer(template: str) -> None:
    from dockyard.cli import gotemplate as gt

    for kind, inner, pos in gt._split(template):
        if kind != "action":
            continue
        plain = gt._lex_plain(inner, pos)
        if plain is not None:
            assert [(t.kind, t.text, t.pos) for t in plain] == [
                (t.kind, t.text, t.pos) for t in gt._lex_re(inner, 1, pos)
            ]


def test_template_fields_count_parameters_as_inspect() -> None:
    import inspect

    from dockyard.cli import contexts, gotemplate

    def f(a, b=1, *c, d, **e):  # type: ignore[no-untyped-def]
        pass

    members = [f, len, lambda: 0, lambda x: x]
    for cls in [contexts.ContainerContext, contexts.ImageContext]:
        members += [getattr(cls, n) for n in dir(cls) if callable(getattr(cls, n))]
    for member in members:
        try:
            expected = len(inspect.signature(member).parameters)
        except ValueError:
            continue
        assert gotemplate._parameters(member) == expected, member


class _FakeBuildDaemon:
    """Answers `POST /session` with 101 (then holds the connection: no HTTP/2 from it) and
    `POST /build` with a cached build's stream, so a build runs its whole path."""

    STREAM = (
        b'{"stream":"Step 1/1 : FROM busybox\\n"}\r\n{"stream":" ---\\u003e 0123456789ab\\n"}\r\n'
        b'{"aux":{"ID":"sha256:0123456789abcdef"}}\r\n'
        b'{"stream":"Successfully built 0123456789ab\\n"}\r\n'
    )

    def __init__(self, path: Path) -> None:
        import threading

        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(str(path))
        self.sock.listen(8)
        self.requests: list[bytes] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import threading

        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buf = b""
        while b"\r\n\r\n" not in buf:
            data = conn.recv(65536)
            if not data:
                return
            buf += data
        self.requests.append(buf.split(b"\r\n", 1)[0])
        if b" /v1.44/session" in buf.split(b"\r\n", 1)[0]:
            conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n")
            while conn.recv(65536):
                pass
        else:
            head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            head += f"Content-Length: {len(self.STREAM)}\r\n\r\n"
            conn.sendall(head.encode() + self.STREAM)
        conn.close()


# What a plain build must not load besides: the session on asyncio, h2 and protobuf, the
# Dockerfile frontend, dataclasses, tempfile and tarfile (a tar is made only without a
# session), hashlib (OpenSSL's bindings; _sha256 serves).
BUILD_HEAVY = HEAVY - {"threading"} | {
    "asyncio",
    "h2",
    "hpack",
    "hyperframe",
    "google",
    "dataclasses",
    "tempfile",
    "tarfile",
    "hashlib",
    "shutil",
    "collections",
    "dockyard.frontend",
    "dockyard.session.h2grpc",
    "dockyard.session.proto",
}


@pytest.mark.parametrize(
    "argv",
    [
        ["build", "CTX"],
        ["build", "-q", "-t", "a:1", "-t", "b", "--build-arg", "X=2", "CTX"],
        ["build", "-f", "CTX/Dockerfile.x", "CTX"],
    ],
    ids=" ".join,
)
def test_build_stays_lean(argv: list[str], tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\n")
    (ctx / "Dockerfile.x").write_text("FROM busybox\n")
    daemon = _FakeBuildDaemon(tmp_path / "d.sock")
    try:
        modules = _modules(
            [str(ctx) if a == "CTX" else a.replace("CTX", str(ctx)) for a in argv],
            tmp_path,
            True,
            host=f"unix://{tmp_path}/d.sock",
        )
    finally:
        daemon.sock.close()
    assert [r.split(b"?")[0] for r in daemon.requests] == [
        b"POST /v1.44/session HTTP/1.1",
        b"POST /v1.44/build",
    ]
    assert "dockyard.session.h2lite" in modules
    heavy = sorted(
        m
        for m in modules
        if m.split(".")[0] in BUILD_HEAVY or m.rsplit(".", 1)[0] in BUILD_HEAVY or m in BUILD_HEAVY
    )
    assert heavy == []
