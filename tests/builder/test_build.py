"""Builder behaviour through the real daemon: build, then check files (run) and config (inspect)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.builder.helpers import api_build, error_of, stream_text
from tests.conftest import Clients, write_context

pytestmark = pytest.mark.root


def _build(clients: Clients, ctx: Path, tag: str, *extra: str) -> str:
    proc = clients.docker("build", "-t", tag, *extra, str(ctx))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def _fails(clients: Clients, ctx: Path, tag: str, *extra: str) -> str:
    proc = clients.docker("build", "-t", tag, *extra, str(ctx))
    assert proc.returncode != 0, proc.stdout
    return proc.stderr + proc.stdout


def _config(clients: Clients, tag: str) -> dict[str, Any]:
    proc = clients.docker("image", "inspect", tag)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    return dict(doc[0]["Config"])


def _run(clients: Clients, tag: str, *cmd: str) -> str:
    return clients.ok("run", "--rm", tag, *cmd)


def _not_tagged(clients: Clients, tag: str) -> None:
    assert clients.docker("image", "inspect", tag).returncode != 0


# ARG ------------------------------------------------------------------------------------------
def test_build_args_scoping_defaults_and_history(clients: Clients, tmp_path: Path) -> None:
    ctx = write_context(
        tmp_path,
        """\
ARG V=global
ARG ONLY_GLOBAL=g
FROM busybox
ARG V
ARG D=dflt
ARG U
RUN echo "v=$V d=$D u=$U og=$ONLY_GLOBAL p=$http_proxy" > /out
ENV FROM_ARG=$D
""",
    )
    out = _build(
        clients,
        ctx,
        "b-args",
        "--build-arg",
        "D=given",
        "--build-arg",
        "X=unused",
        "--build-arg",
        "http_proxy=px",
    )
    assert "[Warning] One or more build-args [X] were not consumed" in out
    assert _run(clients, "b-args", "cat", "/out") == "v=global d=given u= og= p=px\n"
    cfg = _config(clients, "b-args")
    assert "FROM_ARG=given" in cfg["Env"]
    # args reach RUN as environment but never the image config
    assert not any(e.startswith(("D=", "V=", "http_proxy=")) for e in cfg["Env"])
    proc = clients.docker("history", "--no-trunc", "--format", "{{json .}}", "b-args")
    hist = json.loads(proc.stdout.splitlines()[1])
    assert hist["CreatedBy"].startswith("|2 D=given V=global /bin/sh -c echo")


def test_build_arg_change_invalidates_only_what_uses_it(clients: Clients, tmp_path: Path) -> None:
    ctx = write_context(
        tmp_path,
        """\
FROM busybox
RUN echo before > /before
ARG A=1
RUN echo $A > /a
""",
    )
    _build(clients, ctx, "b-argcache")
    out = _build(clients, ctx, "b-argcache", "--build-arg", "A=2")
    steps = out.split("Step ")
    assert "Using cache" in steps[2]  # RUN before the ARG
    assert "Using cache" in steps[3]  # the ARG itself
    assert "Using cache" not in steps[4]  # the RUN that sees A
    assert _run(clients, "b-argcache", "cat", "/a") == "2\n"


# metadata instructions -----------------------------------------------------------------------
def test_user_volume_shell_stopsignal_healthcheck(clients: Clients, tmp_path: Path) -> None:
    ctx = write_context(
        tmp_path,
        """\
FROM busybox
USER daemon
RUN id -u > /tmp/uid
USER 0:0
VOLUME ["/data", "/logs"]
SHELL ["/bin/sh", "-xc"]
RUN echo shell-used
STOPSIGNAL SIGUSR1
HEALTHCHECK --interval=30s --timeout=5s --start-period=1s --retries=4 CMD ["true"]
""",
    )
    out = _build(clients, ctx, "b-meta")
    # `sh -x` traced the command (busybox may split "+ " from the rest of the trace line and
    # interleave the step's stdout between them, so look for the command text itself); the
    # trace is stderr, which Docker paints red write by write
    plain = re.sub("\x1b\\[(91|0)m", "", out)
    assert "echo shell-used" in plain.replace("Step 7/9 : RUN echo shell-used", ""), out
    assert _run(clients, "b-meta", "cat", "/tmp/uid") == "1\n"
    cfg = _config(clients, "b-meta")
    assert cfg["User"] == "0:0"
    assert cfg["Volumes"] == {"/data": {}, "/logs": {}}
    assert cfg["Shell"] == ["/bin/sh", "-xc"]
    assert cfg["StopSignal"] == "SIGUSR1"
    assert cfg["Healthcheck"] == {
        "Test": ["CMD", "true"],
        "Interval": 30_000_000_000,
        "Timeout": 5_000_000_000,
        "StartPeriod": 1_000_000_000,
        "Retries": 4,
    }


def test_healthcheck_none_and_bad_user(clients: Clients, tmp_path: Path) -> None:
    write_context(tmp_path / "a", "FROM busybox\nHEALTHCHECK NONE\n")
    _build(clients, tmp_path / "a", "b-hcnone")
    assert _config(clients, "b-hcnone")["Healthcheck"] == {"Test": ["NONE"]}
    write_context(tmp_path / "b", "FROM busybox\nUSER nosuchuser\nRUN true\n")
    err = _fails(clients, tmp_path / "b", "b-baduser")
    assert "Dockerfile:3:" in err and "nosuchuser" in err
    _not_tagged(clients, "b-baduser")


def test_onbuild_triggers_run_in_child(clients: Clients, tmp_path: Path) -> None:
    write_context(
        tmp_path / "p",
        """\
FROM busybox
ONBUILD COPY marker /from-trigger
ONBUILD RUN echo triggered > /ran
""",
    )
    _build(clients, tmp_path / "p", "b-onbuild-parent")
    assert _config(clients, "b-onbuild-parent")["OnBuild"] == [
        "COPY marker /from-trigger",
        "RUN echo triggered > /ran",
    ]
    write_context(tmp_path / "c", "FROM b-onbuild-parent\nRUN cat /ran\n", {"marker": "m\n"})
    out = _build(clients, tmp_path / "c", "b-onbuild-child")
    assert "# Executing 2 build triggers" in out
    assert _run(clients, "b-onbuild-child", "cat", "/from-trigger", "/ran") == "m\ntriggered\n"
    assert _config(clients, "b-onbuild-child")["OnBuild"] is None


def test_entrypoint_cmd_combinations(clients: Clients, tmp_path: Path) -> None:
    write_context(tmp_path / "p", 'FROM busybox\nCMD ["inherited"]\n')
    _build(clients, tmp_path / "p", "b-ep-parent")
    write_context(tmp_path / "c", 'FROM b-ep-parent\nENTRYPOINT ["echo"]\n')
    _build(clients, tmp_path / "c", "b-ep-reset")
    cfg = _config(clients, "b-ep-reset")
    assert cfg["Entrypoint"] == ["echo"] and cfg["Cmd"] is None
    write_context(tmp_path / "d", 'FROM b-ep-parent\nCMD echo a\nENTRYPOINT ["/bin/sh"]\n')
    _build(clients, tmp_path / "d", "b-ep-keep")
    cfg = _config(clients, "b-ep-keep")
    assert cfg["Cmd"] == ["/bin/sh", "-c", "echo a"]


# multi-stage ---------------------------------------------------------------------------------
def test_target_skips_unneeded_stages_and_parallel(clients: Clients, tmp_path: Path) -> None:
    ctx = write_context(
        tmp_path,
        """\
FROM busybox AS slow1
RUN cut -d" " -f1 /proc/uptime > /s1 && sleep 3 && echo one > /one && cut -d" " -f1 /proc/uptime > /e1
FROM busybox AS slow2
RUN cut -d" " -f1 /proc/uptime > /s2 && sleep 3 && echo two > /two && cut -d" " -f1 /proc/uptime > /e2
FROM busybox AS broken
RUN exit 1
FROM busybox AS final
COPY --from=slow1 /one /s1 /e1 /
COPY --from=slow2 /two /s2 /e2 /
""",
    )
    out = _build(clients, ctx, "b-stages", "--no-cache")
    assert "exit 1" not in out  # the broken stage is not needed by the target
    assert _run(clients, "b-stages", "cat", "/one", "/two") == "one\ntwo\n"
    s1, e1, s2, e2 = (
        float(_run(clients, "b-stages", "cat", f"/{n}")) for n in ("s1", "e1", "s2", "e2")
    )
    assert s2 < e1 and s1 < e2, (s1, e1, s2, e2)  # the two stages' RUNs overlapped
    assert out.index("echo one") < out.index("echo two")
    _build(clients, ctx, "b-stages-slow2", "--target", "slow2")
    assert _run(clients, "b-stages-slow2", "ls", "/").count("two") == 1
    err = _fails(clients, ctx, "b-stages-x", "--target", "nope")
    assert "Dockerfile:7: failed to reach build target nope in Dockerfile" in err


def test_copy_from_image_and_index(clients: Clients, tmp_path: Path) -> None:
    ctx = write_context(
        tmp_path,
        """\
FROM busybox
RUN echo zero > /z
FROM scratch
COPY --from=0 /z /z
COPY --from=busybox /bin/busybox /bin/busybox
""",
    )
    _build(clients, ctx, "b-copyfrom")
    assert _run(clients, "b-copyfrom", "/bin/busybox", "cat", "/z") == "zero\n"
    write_context(tmp_path / "bad", "FROM busybox\nCOPY --from=nostage /x /x\n")
    err = _fails(clients, tmp_path / "bad", "b-copyfrom-bad")
    assert "Dockerfile:2:" in err and "nostage" in err


# COPY/ADD -------------------------------------------------------------------------------------
def test_copy_flags_chmod_parents_exclude(clients: Clients, tmp_path: Path) -> None:
    ctx = write_context(
        tmp_path,
        """\
FROM busybox
COPY --chmod=640 a.txt /chmod/
COPY --chmod=750 src /chdir
COPY --parents src/./one/x.txt src/two/y.txt /par/
COPY --exclude=*.log --exclude=skip tree /ex/
COPY --link a.txt /linked
""",
        {
            "a.txt": "a",
            "src/one/x.txt": "x",
            "src/two/y.txt": "y",
            "tree/keep.txt": "k",
            "tree/drop.log": "d",
            "tree/skip/f": "s",
            "tree/sub/also.log": "d",
        },
    )
    _build(clients, ctx, "b-flags")
    out = _run(
        clients,
        "b-flags",
        "sh",
        "-c",
        "stat -c '%a %n' /chmod/a.txt /chdir; find /par /ex | sort; cat /linked",
    )
    lines = out.splitlines()
    assert lines[0] == "640 /chmod/a.txt"
    assert lines[1] == "750 /chdir"
    assert "/par/one/x.txt" in lines and "/par/src/two/y.txt" in lines
    assert "/ex/keep.txt" in lines
    # patterns match as in .dockerignore: `*.log` is anchored at the source's top level
    assert "/ex/sub/also.log" in lines
    assert not any(x.endswith("drop.log") or "skip" in x for x in lines)
    assert lines[-1] == "a"


def test_dockerignore_and_named_ignore_file(clients: Clients, tmp_path: Path) -> None:
    ctx = write_context(
        tmp_path,
        "FROM busybox\nCOPY . /ctx/\n",
        {
            ".dockerignore": "**/*.tmp\nsecret\n!keep.tmp\n",
            "Dockerfile.dockerignore": "",
            "a.tmp": "x",
            "d/b.tmp": "x",
            "keep.tmp": "k",
            "secret": "s",
            "ok": "o",
        },
    )
    _build(clients, ctx, "b-ignore")
    listing = _run(clients, "b-ignore", "find", "/ctx").split()
    assert "/ctx/ok" in listing and "/ctx/keep.tmp" in listing
    assert "/ctx/a.tmp" not in listing and "/ctx/d/b.tmp" not in listing
    assert "/ctx/secret" not in listing


class _Handler(BaseHTTPRequestHandler):
    payload = b"downloaded\n"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.payload)))
        self.send_header("Last-Modified", "Wed, 21 Oct 2015 07:28:00 GMT")
        self.end_headers()
        self.wfile.write(self.payload)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_add_url_with_checksum(clients: Clients, tmp_path: Path, http_server: str) -> None:
    good = hashlib.sha256(_Handler.payload).hexdigest()
    write_context(
        tmp_path / "a",
        f"""\
FROM busybox
ADD {http_server}/files/remote.txt /dl/
ADD --checksum=sha256:{good} {http_server}/x/y.bin /named
""",
    )
    _build(clients, tmp_path / "a", "b-url")
    out = _run(clients, "b-url", "sh", "-c", "cat /dl/remote.txt /named; stat -c '%a %Y' /named")
    assert out == f"downloaded\ndownloaded\n600 {1445412480}\n"
    write_context(
        tmp_path / "b", f"FROM busybox\nADD --checksum=sha256:{'0' * 64} {http_server}/f /f\n"
    )
    err = _fails(clients, tmp_path / "b", "b-url-bad")
    assert "Dockerfile:2:" in err and "digest mismatch" in err


# BuildKit syntax -------------------------------------------------------------------------------
def test_heredocs(clients: Clients, tmp_path: Path) -> None:
    ctx = write_context(
        tmp_path,
        """\
FROM busybox
ARG NAME=world
RUN <<EOF
echo first > /h1
echo second >> /h1
EOF
RUN <<EOF
#!/bin/sh
echo "from a script $0" > /h2
EOF
COPY <<EOF /greeting
hello ${NAME}
EOF
COPY <<'EOF' /literal
keep $NAME
EOF
RUN cat <<A > /h3 && cat <<B >> /h3
a
A
b
B
""",
    )
    _build(clients, ctx, "b-heredoc")
    assert _run(clients, "b-heredoc", "cat", "/h1") == "first\nsecond\n"
    assert _run(clients, "b-heredoc", "cat", "/h2").startswith("from a script /dev/pipes/EOF")
    assert _run(clients, "b-heredoc", "cat", "/greeting", "/literal") == "hello world\nkeep $NAME\n"
    assert _run(clients, "b-heredoc", "cat", "/h3") == "a\nb\n"
    assert "pipes" not in _run(clients, "b-heredoc", "ls", "/dev")


def test_run_mounts_cache_bind_tmpfs(clients: Clients, tmp_path: Path) -> None:
    ctx = write_context(
        tmp_path,
        """\
FROM busybox
RUN --mount=type=cache,target=/var/cache/thing \\
    echo run >> /var/cache/thing/log && cat /var/cache/thing/log | wc -l > /count
RUN --mount=type=bind,source=data,target=/mnt/data cat /mnt/data/f > /copied
RUN --mount=type=tmpfs,target=/scratch touch /scratch/x && test -f /scratch/x
RUN --mount=type=secret,id=nope test ! -e /run/secrets/nope
""",
        {"data/f": "bound\n"},
    )
    _build(clients, ctx, "b-mounts")
    assert _run(clients, "b-mounts", "cat", "/count") == "1\n"
    assert _run(clients, "b-mounts", "cat", "/copied") == "bound\n"
    # mount points created for the step are not left in the image; the cache is not a layer
    assert (
        _run(clients, "b-mounts", "sh", "-c", "ls /var/cache /mnt /scratch /run 2>&1; true").count(
            "No such file"
        )
        == 4
    )
    _build(clients, ctx, "b-mounts", "--no-cache")
    assert _run(clients, "b-mounts", "cat", "/count") == "2\n"  # the cache dir persisted
    (ctx / "data" / "f").write_text("changed\n")
    out = _build(clients, ctx, "b-mounts")
    assert "Using cache" in out.split("Step ")[2]  # the cache mount is not an input
    assert "Using cache" not in out.split("Step ")[3]  # the bound file is
    assert _run(clients, "b-mounts", "cat", "/copied") == "changed\n"


def test_run_network_and_security(clients: Clients, tmp_path: Path) -> None:
    write_context(
        tmp_path / "a",
        """\
FROM busybox
RUN --network=none sh -c 'ls /sys/class/net > /nets'
""",
    )
    _build(clients, tmp_path / "a", "b-net")
    assert _run(clients, "b-net", "cat", "/nets").split() == ["lo"]
    ctx = write_context(
        tmp_path / "b",
        "FROM busybox\nRUN --security=insecure mkdir /m && mount -t tmpfs none /m && umount /m\n",
    )
    err = _fails(clients, ctx, "b-insecure")
    assert "Dockerfile:2:" in err and "security.insecure" in err
    msgs = api_build(clients, ctx, t="b-insecure", allow="security.insecure")
    assert error_of(msgs) == "", stream_text(msgs)
    write_context(tmp_path / "c", "FROM busybox\nRUN mkdir /m && mount -t tmpfs none /m\n")
    assert "returned a non-zero code" in _fails(clients, tmp_path / "c", "b-sandboxed")


# errors ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("dockerfile", "files", "line", "needle"),
    [
        ("FROM busybox\nFROBNICATE x\n", {}, 2, "unknown instruction: FROBNICATE"),
        ("FROM busybox\nCOPY --bogus=1 a /\n", {"a": ""}, 2, "Unknown flag: bogus"),
        ("FROM busybox\nCOPY missing /x\n", {}, 2, "missing"),
        ("FROM busybox\nCOPY ../outside /x\n", {}, 2, "outside the build context"),
        ("FROM busybox\nCOPY link/x /x\n", {"link": "->/etc"}, 2, "link/x"),
        ("FROM busybox\n\nRUN exit 3\n", {}, 3, "returned a non-zero code: 3"),
        ("FROM busybox\nSTOPSIGNAL SIGNOPE\n", {}, 2, "Invalid signal"),
        ("FROM busybox\nSHELL sh -c\n", {}, 2, "SHELL requires the arguments to be in JSON"),
        ("FROM busybox AS a\nFROM busybox AS a\n", {}, 2, "duplicate stage name"),
        ("FROM scratch\n", {}, 1, "No image was generated"),
        ('FROM busybox\nRUN ["echo", 1]\n', {}, 2, "arrays must be comprised of strings"),
        ("# comment only\n", {}, 1, "file with no instructions"),
        ("", {}, 1, "cannot be empty"),
        ("FROM busybox\nCOPY *.nothing /x/\n", {}, 2, "no source files were specified"),
        ("FROM busybox\nCOPY a b /notadir\n", {"a": "", "b": ""}, 2, "must be a directory"),
        ("FROM busybox\nADD --from=x a /a\n", {"a": ""}, 2, "Unknown flag: from"),
        ("FROM busybox\nHEALTHCHECK --interval=1 CMD true\n", {}, 2, "missing unit"),
        ("FROM busybox\nRUN --mount=type=nope,target=/x true\n", {}, 2, "nope"),
        ("FROM busybox\nCOPY a /etc/passwd/x\n", {"a": ""}, 2, "COPY failed"),
        ("FROM nosuchimage\n", {}, 1, "nosuchimage"),
    ],
)
def test_errors_name_the_line(
    clients: Clients,
    tmp_path: Path,
    dockerfile: str,
    files: dict[str, str],
    line: int,
    needle: str,
) -> None:
    plain = {k: v for k, v in files.items() if not v.startswith("->")}
    ctx = write_context(tmp_path, dockerfile, plain)
    for k, v in files.items():
        if v.startswith("->"):
            (ctx / k).symlink_to(v[2:])
    tag = f"b-err-{abs(hash(dockerfile)) % 10**8}"
    err = _fails(clients, ctx, tag)
    assert f"Dockerfile:{line}:" in err, err
    assert needle in err, err
    _not_tagged(clients, tag)


# cache -----------------------------------------------------------------------------------------
def test_explain_cache(clients: Clients, tmp_path: Path) -> None:
    ctx = write_context(
        tmp_path,
        """\
FROM busybox
ARG A=1
COPY f /f
RUN echo $A > /a
""",
        {"f": "one"},
    )
    api_build(clients, ctx, t="b-explain", explaincache="1")
    msgs = api_build(clients, ctx, t="b-explain", explaincache="1")
    cache = [m["aux"]["cache"] for m in msgs if "cache" in m.get("aux", {})]
    assert [c["hit"] for c in cache] == [True, True, True]
    (ctx / "f").write_text("two")
    msgs = api_build(
        clients, ctx, t="b-explain", explaincache="1", buildargs=json.dumps({"A": "9"})
    )
    cache = [m["aux"]["cache"] for m in msgs if "cache" in m.get("aux", {})]
    assert cache[0]["hit"] is True
    assert cache[1]["hit"] is False
    assert any(r.startswith("file f changed: ") for r in cache[1]["reasons"])
    old_digest, new_digest = cache[1]["files"]["f"]
    assert old_digest != new_digest
    assert cache[1]["reasons"][0] == f"file f changed: {old_digest[7:19]} -> {new_digest[7:19]}"
    assert any("parent image changed" in r for r in cache[2]["reasons"])
    assert any("build arg A changed: '1' -> '9'" in r for r in cache[2]["reasons"])
    assert "Cache miss: " in stream_text(msgs)
    assert error_of(msgs) == ""


def test_cache_ignores_mtime_and_no_cache(clients: Clients, tmp_path: Path) -> None:
    ctx = write_context(tmp_path, "FROM busybox\nCOPY f /f\n", {"f": "same"})
    _build(clients, ctx, "b-mtime")
    os.utime(ctx / "f", (1, 1))
    assert "Using cache" in _build(clients, ctx, "b-mtime")
    assert "Using cache" not in _build(clients, ctx, "b-mtime", "--no-cache")
    os.chmod(ctx / "f", 0o600)
    assert "Using cache" not in _build(clients, ctx, "b-mtime")


def test_cache_from(fresh_clients: Clients, tmp_path: Path) -> None:
    clients = fresh_clients
    ctx = write_context(tmp_path, "FROM busybox\nRUN echo built > /x\nENV A=1\n")
    _build(clients, ctx, "b-cachefrom-src")
    saved = tmp_path / "img.tar"
    assert clients.docker("save", "-o", str(saved), "b-cachefrom-src").returncode == 0
    # a new build cache: drop the image's intermediate history by re-loading into a
    # daemon that lacks the cache records
    assert clients.docker("rmi", "b-cachefrom-src").returncode == 0
    assert clients.docker("load", "-i", str(saved)).returncode == 0
    out = _build(clients, ctx, "b-cachefrom", "--cache-from", "b-cachefrom-src")
    assert out.count("Using cache") == 2, out
    assert _run(clients, "b-cachefrom", "cat", "/x") == "built\n"


def _tar(members: dict[str, bytes]) -> bytes:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_add_zstd_archive_and_hostile_archive(clients: Clients, tmp_path: Path) -> None:
    import zstandard

    packed = zstandard.ZstdCompressor().compress(_tar({"z/inside": b"zstd\n"}))
    write_context(tmp_path / "a", "FROM busybox\nADD pkg.tar.zst /opt/\n", {"pkg.tar.zst": packed})
    _build(clients, tmp_path / "a", "b-zstd")
    assert _run(clients, "b-zstd", "cat", "/opt/z/inside") == "zstd\n"
    write_context(
        tmp_path / "b",
        "FROM busybox\n\nADD evil.tar /opt/\n",
        {"evil.tar": _tar({"../../escape": b"x"})},
    )
    err = _fails(clients, tmp_path / "b", "b-evil")
    assert "Dockerfile:3:" in err
    _not_tagged(clients, "b-evil")


def test_platform_flag_and_mount_from_stage(clients: Clients, tmp_path: Path) -> None:
    write_context(
        tmp_path / "a",
        """\
FROM --platform=$BUILDPLATFORM busybox AS tools
RUN echo tool > /tool
FROM --platform=linux/amd64 busybox
ARG TARGETARCH
RUN --mount=type=bind,from=tools,source=/tool,target=/mnt/tool cat /mnt/tool > /got \\
 && echo $TARGETARCH > /arch
""",
    )
    _build(clients, tmp_path / "a", "b-platform")
    assert _run(clients, "b-platform", "cat", "/got", "/arch") == "tool\namd64\n"
    _build(clients, tmp_path / "a", "b-platform", "--platform", "linux/amd64")
    assert "linux/s390x" in _fails(clients, tmp_path / "a", "b-pl-x", "--platform", "linux/s390x")
    write_context(tmp_path / "b", "FROM --platform=linux/s390x busybox\n")
    err = _fails(clients, tmp_path / "b", "b-platform-bad")
    assert "Dockerfile:1:" in err and "linux/s390x" in err


def test_locked_cache_mount_serialises_parallel_stages(clients: Clients, tmp_path: Path) -> None:
    step = (
        "RUN --mount=type=cache,id=b-locked,target=/c,sharing=locked "
        "sh -c 'test ! -e /c/busy && touch /c/busy && sleep 0.4 && rm /c/busy && date > /ok'"
    )
    ctx = write_context(
        tmp_path,
        f"FROM busybox AS a\n{step}\nFROM busybox AS b\n{step}\n"
        "FROM busybox\nCOPY --from=a /ok /a\nCOPY --from=b /ok /b\n",
    )
    _build(clients, ctx, "b-locked", "--no-cache")
    assert _run(clients, "b-locked", "ls", "/a", "/b").split() == ["/a", "/b"]


def test_client_going_away_cancels_the_build(clients: Clients, tmp_path: Path) -> None:
    import subprocess

    from tests.support.daemons import mounts_under

    ctx = write_context(
        tmp_path,
        "FROM busybox AS a\nRUN sleep 30\nFROM busybox AS b\nRUN sleep 30\n"
        "FROM busybox\nCOPY --from=a /bin/sh /a\nCOPY --from=b /bin/sh /b\n",
    )
    proc = subprocess.Popen(
        ["docker", "build", "--no-cache", "-t", "b-cancel", str(ctx)],
        env=clients.daemon.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if "Running in" in line:
            break
    time.sleep(0.5)
    proc.kill()
    proc.wait()
    root = clients.daemon.root
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        running = subprocess.run(
            ["runc", "--root", str(root / "runc"), "list", "-q"], capture_output=True, text=True
        ).stdout.split()
        if not running and not list((root / "builds").iterdir()):
            break
        time.sleep(0.2)
    assert running == [] and mounts_under(root / "builds") == []
    # nothing left of the steps: no mount, and no empty builds/<id>/rootfs either (issue 10 §1)
    assert list((root / "builds").iterdir()) == []
    assert list((root / "steps").iterdir()) == []
    _not_tagged(clients, "b-cancel")


def test_python_sdk_builds_with_args_and_target(clients: Clients, tmp_path: Path) -> None:
    docker = pytest.importorskip("docker")
    ctx = write_context(tmp_path, "FROM busybox AS one\nARG V\nRUN echo $V > /v\nFROM busybox\n")
    client = docker.DockerClient(base_url=clients.daemon.host, version="1.44")
    try:
        image, logs = client.images.build(
            path=str(ctx), tag="b-sdk", buildargs={"V": "from-sdk"}, target="one", rm=True
        )
        text = "".join(str(m.get("stream", "")) for m in logs)
        assert "Successfully built" in text
        assert image.id.startswith("sha256:")
    finally:
        client.close()
    assert _run(clients, "b-sdk", "cat", "/v") == "from-sdk\n"


def test_private_cache_mount_gets_its_own_dir_when_busy(clients: Clients, tmp_path: Path) -> None:
    step = (
        "RUN --mount=type=cache,id=b-private,target=/c,sharing=private "
        "sh -c 'mktemp -p /c >/dev/null; sleep 0.6; ls /c | wc -l > /seen'"
    )
    ctx = write_context(
        tmp_path,
        f"FROM busybox AS a\n{step}\nFROM busybox AS b\n{step}\n"
        "FROM busybox\nCOPY --from=a /seen /a\nCOPY --from=b /seen /b\n",
    )
    _build(clients, ctx, "b-private", "--no-cache")
    # the two steps overlapped: the second user of the cache got a directory of its own
    counts = sorted(int(n) for n in _run(clients, "b-private", "cat", "/a", "/b").split())
    assert counts[0] == 1


def test_cli_explain_cache_flag(clients: Clients, tmp_path: Path) -> None:
    ctx = write_context(tmp_path, "FROM busybox\nCOPY f /f\nRUN cat /f\n", {"f": "one"})
    clients.ok("build", "--explain-cache", "-t", "b-cli-explain", str(ctx))
    (ctx / "f").write_text("two")
    out = clients.ok("build", "--explain-cache", "-t", "b-cli-explain", str(ctx))
    step2 = out.split("Step 2/3")[1].split("Step 3/3")[0]
    assert "Cache miss: file f changed: " in step2
    step3 = out.split("Step 3/3")[1]
    assert "Cache miss: parent image changed" in step3
    plain = clients.ok("build", "-t", "b-cli-explain", str(ctx))
    assert "Cache miss" not in plain and plain.count("Using cache") == 2


def test_network_flag_and_the_cache(clients: Clients, tmp_path: Path) -> None:
    """Issue 19: the key holds the effective network (`default` is the host's), and
    --explain-cache names the network when it is what changed."""
    ctx = write_context(tmp_path, "FROM busybox\nRUN echo net > /n\n")
    clients.ok("build", "-t", "b-net-cache", str(ctx))
    out = clients.ok("build", "--network", "host", "-t", "b-net-cache", str(ctx))
    assert out.count("Using cache") == 1, out
    out = _build(clients, ctx, "b-net-cache", "--network=host")  # the docker CLI's spelling
    assert out.count("Using cache") == 1, out
    msgs = api_build(clients, ctx, t="b-net-cache", explaincache="1", networkmode="none")
    cache = [m["aux"]["cache"] for m in msgs if "cache" in m.get("aux", {})]
    assert [c["hit"] for c in cache] == [False]
    assert cache[0]["reasons"] == ["network changed: 'host' -> 'none'"]
    msgs = api_build(clients, ctx, t="b-net-cache", explaincache="1", networkmode="default")
    cache = [m["aux"]["cache"] for m in msgs if "cache" in m.get("aux", {})]
    assert [c["hit"] for c in cache] == [True]
    assert error_of(msgs) == ""


def test_cache_mount_seeded_from_stage(clients: Clients, tmp_path: Path) -> None:
    ctx = write_context(
        tmp_path,
        "FROM busybox AS seed\nRUN mkdir /s && echo seeded > /s/f\n"
        "FROM busybox\n"
        "RUN --mount=type=cache,id=b-seeded,from=seed,source=/s,target=/c cat /c/f > /got\n",
    )
    _build(clients, ctx, "b-seeded")
    assert _run(clients, "b-seeded", "cat", "/got") == "seeded\n"


def test_copy_from_stage_named_by_a_stage_arg(clients: Clients, tmp_path: Path) -> None:
    ctx = write_context(
        tmp_path,
        "FROM busybox AS one\nRUN echo one > /w\nFROM busybox AS two\nRUN echo two > /w\n"
        "FROM busybox\nARG SRC=one\nCOPY --from=$SRC /w /w\n",
    )
    out = _build(clients, ctx, "b-dynfrom", "--build-arg", "SRC=two")
    assert _run(clients, "b-dynfrom", "cat", "/w") == "two\n"
    assert "echo one" not in out  # stage one is not needed with SRC=two
    assert "Step 2/5 : RUN echo two > /w" in out


def test_null_list_and_map_params(clients: Clients, tmp_path: Path) -> None:
    """Compose v2 sends Go's json.Marshal of nil (`cachefrom=null`, `buildargs=null`): dockerd
    takes them as none; a value of the wrong type is still refused."""
    ctx = write_context(tmp_path, "FROM busybox\nARG A=dflt\nRUN echo $A > /a\n")
    msgs = api_build(clients, ctx, t="b-nulls", cachefrom="null", buildargs="null", labels="null")
    assert error_of(msgs) == "" and "Successfully tagged b-nulls:latest" in stream_text(msgs)
    assert _run(clients, "b-nulls", "cat", "/a") == "dflt\n"
    refused = api_build(clients, ctx, t="b-nulls", cachefrom="{}")
    assert refused[0].get("status") == 400, refused
