"""`docker build` from Debian's 20.10 client with DOCKER_BUILDKIT=1 against dockyard.

The client opens BuildKit's session (`POST /session`, h2c), serves the context, Dockerfile,
secrets and ssh agent on it, and reads BuildKit's trace from `/build?version=2`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import IS_ROOT, short_tmp, write_context
from tests.support.daemons import DockyardDaemon, mounts_under
from tests.support.rootfs import busybox_rootfs_tar
from tests.support.seed import BOOKWORM, check_seed_example

pytestmark = [pytest.mark.root]

CLIENT = "/usr/bin/docker"  # Debian's docker.io 20.10 client


@pytest.fixture(scope="module")
def daemon() -> Iterator[DockyardDaemon]:
    if not IS_ROOT or not os.access(CLIENT, os.X_OK):
        pytest.skip("needs root and Debian's docker 20.10 client")
    d = DockyardDaemon(short_tmp("dys-")).start()
    try:
        env = d.env()
        subprocess.run(
            [CLIENT, "import", str(busybox_rootfs_tar()), "busybox:latest"],
            env=env,
            check=True,
            capture_output=True,
        )
        yield d
    finally:
        d.cleanup()


def _env(d: DockyardDaemon, **extra: str) -> dict[str, str]:
    env = d.env()
    env.update(DOCKER_BUILDKIT="1", BUILDKIT_PROGRESS="plain", **extra)
    return env


def build(
    d: DockyardDaemon,
    *args: str,
    cwd: Path | None = None,
    input: bytes | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [CLIENT, "build", *args],
        env=env or _env(d),
        cwd=cwd,
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        capture_output=True,
        timeout=300,
    )
    return subprocess.CompletedProcess(
        proc.args,
        proc.returncode,
        proc.stdout.decode(errors="replace"),
        proc.stderr.decode(errors="replace"),
    )


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stderr


def docker(d: DockyardDaemon, *args: str) -> str:
    proc = subprocess.run([CLIENT, *args], env=d.env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_build_shows_steps_and_cached_on_rebuild(daemon: DockyardDaemon, tmp_path: Path) -> None:
    ctx = write_context(
        tmp_path / "c",
        'FROM busybox\nCOPY hello.txt /hello.txt\nRUN cat /hello.txt > /copy\nCMD ["cat", "/copy"]\n',
        {"hello.txt": "hello from the session\n"},
    )
    out = ok(build(daemon, "-t", "sess-basic", ".", cwd=ctx))
    assert "[internal] load build definition from Dockerfile" in out
    assert "[1/3] FROM docker.io/library/busybox:latest" in out
    assert "[2/3] COPY hello.txt /hello.txt" in out
    assert "[3/3] RUN cat /hello.txt > /copy" in out
    assert "naming to docker.io/library/sess-basic:latest done" in out
    assert docker(daemon, "run", "--rm", "sess-basic") == "hello from the session\n"
    again = ok(build(daemon, "-t", "sess-basic", ".", cwd=ctx))
    assert again.count("CACHED") == 2, again
    # a changed file misses from its COPY on, and only it travels
    (ctx / "hello.txt").write_text("changed\n")
    third = ok(build(daemon, "-t", "sess-basic", ".", cwd=ctx))
    assert "CACHED" not in third.split("[2/3]")[1]
    assert docker(daemon, "run", "--rm", "sess-basic") == "changed\n"


@pytest.mark.slow
def test_seed_example_through_the_20_10_client_with_buildkit(daemon: DockyardDaemon) -> None:
    """The founding example through DOCKER_BUILDKIT=1 and the 20.10 client's display; it runs
    and answers PONG; the rebuild is all cache hits."""

    def attempt(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([CLIENT, *args], env=daemon.env(), capture_output=True, text=True)

    check_seed_example(
        "sess-redis",
        lambda tag, ctx: ok(build(daemon, "-t", tag, ".", cwd=ctx)),
        lambda *args: docker(daemon, *args),
        attempt,
    )


def test_multistage_flags(daemon: DockyardDaemon, tmp_path: Path) -> None:
    ctx = write_context(
        tmp_path / "c",
        "ARG BASE=busybox\n"
        "FROM ${BASE} AS build\nARG MSG=none\nWORKDIR /src\nCOPY . .\n"
        'RUN echo "$MSG" > /msg && (grep myhost /etc/hosts || true) > /hosts\n'
        "FROM busybox AS other\nRUN exit 1\n"
        "FROM busybox AS final\nCOPY --from=build /msg /hosts /\nCMD cat /msg\n",
        {"keep.txt": "k", "skip.log": "s", ".dockerignore": "*.log\n"},
    )
    df = tmp_path / "elsewhere" / "Build.df"
    df.parent.mkdir()
    df.write_text((ctx / "Dockerfile").read_text())
    ok(
        build(
            daemon,
            "-f",
            str(df),
            "--target",
            "final",
            "--build-arg",
            "MSG=hi",
            "--label",
            "team=dock",
            "--add-host",
            "myhost:10.9.8.7",
            "-t",
            "sess-ms:a",
            "-t",
            "sess-ms:b",
            str(ctx),
        )
    )
    assert docker(daemon, "run", "--rm", "sess-ms:a") == "hi\n"
    assert "10.9.8.7" in docker(daemon, "run", "--rm", "sess-ms:b", "cat", "/hosts")
    assert docker(daemon, "inspect", "-f", "{{.Config.Labels.team}}", "sess-ms:a") == "dock\n"
    ok(build(daemon, "--target", "build", "-t", "sess-ms-build", str(ctx)))
    files = docker(daemon, "run", "--rm", "sess-ms-build", "ls", "-a", "/src")
    assert "keep.txt" in files and "skip.log" not in files
    out = ok(build(daemon, "--network", "none", "--no-cache", "-q", str(ctx)))
    assert out == ""


def test_secret_and_quiet(daemon: DockyardDaemon, tmp_path: Path) -> None:
    ctx = write_context(
        tmp_path / "c",
        "FROM busybox\nRUN --mount=type=secret,id=tok cat /run/secrets/tok > /got\n",
        {"tok.txt": "s3cret\n"},
    )
    proc = build(daemon, "-q", "--secret", "id=tok,src=tok.txt", "-t", "sess-secret", ".", cwd=ctx)
    ok(proc)
    assert proc.stdout.startswith("sha256:")
    assert docker(daemon, "run", "--rm", "sess-secret", "cat", "/got") == "s3cret\n"
    clean = docker(
        daemon, "run", "--rm", "sess-secret", "sh", "-c", "test ! -e /run/secrets && echo clean"
    )
    assert clean == "clean\n"


def test_ssh_agent_is_forwarded(daemon: DockyardDaemon, tmp_path: Path) -> None:
    if not BOOKWORM.exists():
        pytest.skip("needs the cached bookworm base (perl speaks to the agent)")
    docker(daemon, "import", str(BOOKWORM), "sess-bookworm:latest")
    key = tmp_path / "key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "sesskey", "-f", str(key)], check=True
    )
    agent = subprocess.run(["ssh-agent", "-s"], capture_output=True, text=True, check=True).stdout
    env_agent = dict(
        line.split(";")[0].split("=", 1) for line in agent.splitlines() if "=" in line.split(";")[0]
    )
    try:
        subprocess.run(
            ["ssh-add", str(key)], env={**os.environ, **env_agent}, check=True, capture_output=True
        )
        perl = (
            "perl -MIO::Socket::UNIX -e '$s=IO::Socket::UNIX->new(Peer=>$ENV{SSH_AUTH_SOCK}) or die $!;"
            ' print $s pack("NC",1,11); read($s,$h,5); ($n,$t)=unpack("NC",$h); read($s,$b,$n-1);'
            ' print "type=$t ", ($b =~ /sesskey/ ? "found" : "missing"), "\\n"\''
        )
        ctx = write_context(tmp_path / "c", f"FROM sess-bookworm\nRUN --mount=type=ssh {perl}\n")
        out = ok(
            build(
                daemon,
                "--no-cache",
                "--ssh",
                "default",
                ".",
                cwd=ctx,
                env=_env(daemon, **env_agent),
            )
        )
        assert "type=12 found" in out, out
    finally:
        subprocess.run(["kill", env_agent["SSH_AGENT_PID"]])


def test_stdin_dockerfile_and_tar_context(daemon: DockyardDaemon, tmp_path: Path) -> None:
    out = ok(build(daemon, "-t", "sess-stdin", "-", input=b"FROM busybox\nRUN echo stdin > /s\n"))
    assert "[2/2] RUN echo stdin > /s" in out
    ctx = write_context(tmp_path / "c", "FROM busybox\nCOPY f /f\n", {"f": "from tar\n"})
    tar = subprocess.run(["tar", "-C", str(ctx), "-c", "."], capture_output=True, check=True).stdout
    ok(build(daemon, "-t", "sess-tar", "-", input=tar))
    assert docker(daemon, "run", "--rm", "sess-tar", "cat", "/f") == "from tar\n"


def test_syntax_directive_and_remote_contexts(daemon: DockyardDaemon, tmp_path: Path) -> None:
    for syntax in (
        "docker/dockerfile:1",
        "docker.io/docker/dockerfile:1.4-labs",
        "docker/dockerfile@sha256:" + "a" * 64,
    ):
        ctx = write_context(
            tmp_path / syntax.replace("/", "_"), f"# syntax={syntax}\nFROM busybox\nRUN true\n"
        )
        ok(build(daemon, ".", cwd=ctx))
    ctx = write_context(tmp_path / "custom", "# syntax=example.com/my/frontend:1\nFROM busybox\n")
    proc = build(daemon, ".", cwd=ctx)
    assert proc.returncode != 0
    assert "syntax image example.com/my/frontend:1 is not supported" in proc.stderr
    proc = build(daemon, "https://example.invalid/ctx.tar")
    assert proc.returncode != 0 and "is not supported" in proc.stderr
    failing = write_context(tmp_path / "fail", "FROM busybox\nRUN echo out; exit 3\n")
    proc = build(daemon, ".", cwd=failing)
    assert proc.returncode == 1
    assert "executor failed running [/bin/sh -c echo out; exit 3]: exit code: 3" in proc.stderr


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _leftovers(d: DockyardDaemon) -> list[str]:
    out = [str(p) for p in (d.root / "tmp").iterdir()]
    out += [str(p) for p in (d.root / "contexts").glob("*/staging")]
    out += mounts_under(d.root / "builds")
    out += [str(p) for p in (d.root / "steps").glob("*")] if (d.root / "steps").exists() else []
    return out


def _wait_clean(d: DockyardDaemon, fds: int) -> None:
    assert d.proc is not None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if not _leftovers(d) and _fds(d.proc.pid) <= fds:
            return
        time.sleep(0.2)
    raise AssertionError(f"left behind: {_leftovers(d)}, fds {_fds(d.proc.pid)} > {fds}")


def _kill_when(d: DockyardDaemon, ctx: Path, marker: str) -> None:
    proc = subprocess.Popen(
        [CLIENT, "build", "--no-cache", "."],
        cwd=ctx,
        env=_env(d),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    seen = b""
    deadline = time.monotonic() + 60
    while marker.encode() not in seen and time.monotonic() < deadline:
        chunk = proc.stderr.read1(4096)  # type: ignore[attr-defined]
        if not chunk:
            break
        seen += chunk
    assert marker.encode() in seen, seen.decode(errors="replace")
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_client_leaving_mid_build_or_mid_sync_leaves_nothing(
    daemon: DockyardDaemon, tmp_path: Path
) -> None:
    assert daemon.proc is not None
    ok(build(daemon, "-", input=b"FROM busybox\nRUN true\n"))  # loads the session modules
    time.sleep(0.5)
    fds = _fds(daemon.proc.pid)
    ctx = write_context(
        tmp_path / "sleepy",
        "FROM busybox\nRUN --mount=type=secret,id=x echo started; sleep 60\n",
    )
    _kill_when(daemon, ctx, "started")
    _wait_clean(daemon, fds)
    big = write_context(tmp_path / "big", "FROM busybox\nCOPY . /c\n")
    for i in range(8):
        (big / f"blob{i}").write_bytes(os.urandom(64 << 20))
    _kill_when(daemon, big, "[internal] load build context")
    _wait_clean(daemon, fds)
    # the daemon still builds afterwards
    ok(build(daemon, "-", input=b"FROM busybox\nRUN true\n"))
