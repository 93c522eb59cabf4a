"""RUN --mount=type=secret|ssh with content from `dockyard build --secret/--ssh`, through the
real daemon: readable in the step, absent from layers, config and history, keyed by id only."""

from __future__ import annotations

import hashlib
import json
import secrets
import shutil
import socket
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.builder.helpers import context_tar
from tests.conftest import Clients, short_tmp, write_context

pytestmark = pytest.mark.root


def _build(clients: Clients, ctx: Path, tag: str, *extra: str) -> str:
    proc = clients.dockyard("build", "-t", tag, *extra, str(ctx))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def _inspect(clients: Clients, tag: str) -> dict[str, Any]:
    proc = clients.docker("image", "inspect", tag)
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout)[0])


def _run(clients: Clients, tag: str, *cmd: str) -> str:
    return clients.ok("run", "--rm", tag, *cmd)


def _layer_members(clients: Clients, tag: str) -> Iterator[tuple[str, bytes]]:
    """Every entry of every layer tar of the image (the blob kept under its diff ID)."""
    blobs = clients.daemon.root / "content" / "blobs" / "sha256"
    for diff_id in _inspect(clients, tag)["RootFS"]["Layers"]:
        with tarfile.open(blobs / diff_id.removeprefix("sha256:")) as tar:
            for member in tar:
                f = tar.extractfile(member) if member.isfile() else None
                yield member.name, f.read() if f is not None else b""


def test_secret_file_readable_absent_from_layers_history_and_keyed_by_id(
    clients: Clients, tmp_path: Path
) -> None:
    # 12 KiB of hex: once encoded the header exceeds one field (8190 bytes) and continues.
    content = secrets.token_hex(6144).encode()
    src = tmp_path / "tok.txt"
    src.write_bytes(content)
    ctx = write_context(
        tmp_path / "ctx",
        """\
FROM busybox
RUN --mount=type=secret,id=tok wc -c < /run/secrets/tok > /out-len && \\
    stat -c '%a %u:%g' /run/secrets/tok > /out-mode
RUN --mount=type=secret,id=tok,target=/etc/tokfile,mode=0440,uid=1,gid=2 \\
    sha256sum /etc/tokfile | cut -d' ' -f1 > /out-hash && stat -c '%a %u:%g' /etc/tokfile > /m2
""",
    )
    _build(clients, ctx, "sec-file", "--secret", f"id=tok,src={src}")
    assert _run(clients, "sec-file", "cat", "/out-len").strip() == str(len(content))
    assert _run(clients, "sec-file", "cat", "/out-mode").strip() == "400 0:0"
    assert _run(clients, "sec-file", "cat", "/out-hash").strip() == (
        hashlib.sha256(content).hexdigest()
    )
    assert _run(clients, "sec-file", "cat", "/m2").strip() == "440 1:2"
    # neither the secret nor its mount points reach a layer (BuildKit's guarantee)
    names = []
    for name, data in _layer_members(clients, "sec-file"):
        names.append(name)
        assert content not in data, name
    assert "out-len" in names and "out-hash" in names
    assert not [n for n in names if n.startswith(("run", "./run")) or "tokfile" in n], names
    assert "No such file" in clients.dockyard("run", "--rm", "sec-file", "ls", "/run").stderr
    doc = json.dumps(_inspect(clients, "sec-file"))
    history = clients.docker("history", "--no-trunc", "sec-file")
    assert history.returncode == 0, history.stderr
    for text in (doc, history.stdout):
        assert content.decode() not in text
        assert hashlib.sha256(content).hexdigest() not in text
    # another content under the same id is a cache hit (BuildKit keys on the id only)
    src.write_bytes(b"other")
    out = _build(clients, ctx, "sec-file", "--secret", f"id=tok,src={src}")
    assert out.count("Using cache") == 2, out


def test_secret_env_is_for_that_run_only(
    clients: Clients, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DY_TEST_SECRET", "s3cr3t-value")
    ctx = write_context(
        tmp_path,
        """\
FROM busybox
RUN --mount=type=secret,id=api,env=API_TOKEN \\
    test "$API_TOKEN" = s3cr3t-value && test ! -e /run/secrets/api && echo ok > /env-ok
RUN test -z "$API_TOKEN" && echo unset > /env-after
""",
    )
    _build(clients, ctx, "sec-env", "--secret", "id=api,env=DY_TEST_SECRET")
    assert _run(clients, "sec-env", "cat", "/env-ok") == "ok\n"
    assert _run(clients, "sec-env", "cat", "/env-after") == "unset\n"
    assert "s3cr3t" not in json.dumps(_inspect(clients, "sec-env"))
    assert "API_TOKEN=" not in json.dumps(_inspect(clients, "sec-env")["Config"])


def test_required_secret_missing_fails_with_line(clients: Clients, tmp_path: Path) -> None:
    ctx = write_context(
        tmp_path,
        """\
FROM busybox
RUN echo before
RUN --mount=type=secret,id=needed,required=true cat /run/secrets/needed
""",
    )
    proc = clients.dockyard("build", "-t", "sec-req", str(ctx))
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "Dockerfile:3:" in out and "secret needed is required" in out, out
    # an optional one is skipped, and a bad --secret is the client's error
    proc = clients.dockyard("build", "--secret", f"id=x,src={tmp_path}/missing", str(ctx))
    assert proc.returncode != 0 and "cannot read" in proc.stderr, proc.stderr


def test_secret_temp_files_removed_after_failed_step(clients: Clients, tmp_path: Path) -> None:
    src = tmp_path / "s"
    src.write_text("fail-secret")
    ctx = write_context(
        tmp_path / "ctx",
        """\
FROM busybox
RUN --mount=type=secret,id=s,env=S --mount=type=secret,id=s cat /run/secrets/s && exit 3
""",
    )
    proc = clients.dockyard("build", "--secret", f"id=s,src={src}", str(ctx))
    assert proc.returncode != 0 and "returned a non-zero code: 3" in proc.stdout + proc.stderr
    # the secret was readable (printed by the failing step) and its file is gone
    assert "fail-secret" in proc.stdout
    left = [p for p in (clients.daemon.root / "builds").rglob("*") if p.name == "secret"]
    assert left == []


@pytest.fixture
def agent_socket() -> Iterator[Path]:
    """A stand-in for an ssh agent: any Unix stream socket (nothing talks to it here)."""
    base = short_tmp("dya-")
    path = base / "agent.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.bind(str(path))
        server.listen(1)
        yield path
    finally:
        server.close()
        shutil.rmtree(base, ignore_errors=True)


def test_ssh_agent_socket_bound_with_auth_sock(
    clients: Clients, tmp_path: Path, agent_socket: Path
) -> None:
    # busybox's nc has no -U, so the step checks the socket and SSH_AUTH_SOCK only.
    ctx = write_context(
        tmp_path,
        """\
FROM busybox
RUN --mount=type=ssh --mount=type=ssh,id=work \\
    test -S "$SSH_AUTH_SOCK" && test -S /run/buildkit/ssh_agent.1 && \\
    echo "$SSH_AUTH_SOCK" > /sock-path
RUN --mount=type=ssh,id=work,target=/agent,required=true test -S /agent && echo ok > /custom
""",
    )
    _build(
        clients,
        ctx,
        "sec-ssh",
        "--ssh",
        f"default={agent_socket}",
        "--ssh",
        f"work={agent_socket}",
    )
    assert _run(clients, "sec-ssh", "cat", "/sock-path") == "/run/buildkit/ssh_agent.0\n"
    assert _run(clients, "sec-ssh", "cat", "/custom") == "ok\n"
    names = [n for n, _ in _layer_members(clients, "sec-ssh")]
    assert not [n for n in names if "run" in n.split("/") or n.strip("./") == "agent"], names
    assert "SSH_AUTH_SOCK" not in json.dumps(_inspect(clients, "sec-ssh")["Config"])
    # a path that is not a socket is refused before anything runs
    proc = clients.dockyard("build", "--ssh", f"default={tmp_path}/Dockerfile", str(ctx))
    assert proc.returncode != 0 and "not a Unix socket" in proc.stderr, proc.stderr


def test_secrets_over_buildkits_limit_are_refused(clients: Clients, tmp_path: Path) -> None:
    # BuildKit's secrets provider refuses more than 500 KiB; so does our client
    big = tmp_path / "big"
    big.write_bytes(b"x" * (500 * 1024 + 1))
    ctx = write_context(tmp_path / "ctx", "FROM busybox\n")
    proc = clients.dockyard("build", "--secret", f"id=big,src={big}", str(ctx))
    assert proc.returncode != 0 and "secret big too large" in proc.stderr, proc.stderr


def test_secret_with_a_context_on_stdin(clients: Clients, tmp_path: Path) -> None:
    # the tar in the body, the secret on a session of its own
    src = tmp_path / "tok"
    src.write_bytes(b"from-stdin-build\n")
    ctx = write_context(
        tmp_path / "ctx",
        "FROM busybox\nRUN --mount=type=secret,id=tok cat /run/secrets/tok > /seen\n",
    )
    proc = clients.dockyard(
        "build", "-t", "sec-stdin", "--secret", f"id=tok,src={src}", "-", input=context_tar(ctx)
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _run(clients, "sec-stdin", "cat", "/seen") == "from-stdin-build\n"


def test_parse_secret_and_ssh_mounts() -> None:
    from dockyard.builder.mounts import number_ssh_targets, parse_mount

    tok = parse_mount("type=secret,target=/etc/tok", "/")
    assert (tok.id, tok.target) == ("tok", "/etc/tok")
    env_only = parse_mount("type=secret,id=a,env=A", "/")
    assert (env_only.target, env_only.env) == ("", "A")
    assert parse_mount("type=secret,id=a,env=A,target=/x", "/").target == "/x"
    specs = number_ssh_targets(
        [parse_mount(m, "/") for m in ("type=ssh", "type=ssh,target=/a", "type=ssh,id=k")]
    )
    assert [(s.id, s.target) for s in specs] == [
        ("default", "/run/buildkit/ssh_agent.0"),
        ("default", "/a"),
        ("k", "/run/buildkit/ssh_agent.2"),
    ]
    # the content is not part of what the cache key sees
    assert "env=A" in env_only.describe()
