"""`docker build` through buildx 0.13's docker driver against dockyard (`/grpc` + `/session`).

docker CLI 28 with trixie's buildx plugin in a DOCKER_CONFIG of the test's own and no
DOCKER_BUILDKIT: the CLI hands `docker build` to buildx, which picks its docker driver because
`POST /grpc` upgrades to h2c, and builds through BuildKit's control API and gateway.
"""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import IS_ROOT, short_tmp, write_context
from tests.support.daemons import DockyardDaemon
from tests.support.rootfs import busybox_rootfs_tar
from tests.support.seed import check_seed_example
from tests.support.trixie import trixie_tools

pytestmark = [pytest.mark.root]

CLI = "/usr/local/bin/docker"  # docker CLI 28


@pytest.fixture(scope="module")
def daemon() -> Iterator[DockyardDaemon]:
    tools = trixie_tools()
    if not IS_ROOT or not os.access(CLI, os.X_OK) or tools is None:
        pytest.skip("needs root, docker CLI 28 and scripts/trixie-clients.sh's buildx")
    d = DockyardDaemon(short_tmp("dyx-")).start()
    tools.docker_config(d.base / "docker-config")
    try:
        docker(d, "import", str(busybox_rootfs_tar()), "busybox:latest")
        yield d
    finally:
        d.cleanup()


def env_of(d: DockyardDaemon, **extra: str) -> dict[str, str]:
    env = d.env()
    env.pop("DOCKER_BUILDKIT", None)  # the CLI's own choice: buildx
    env.update(extra)
    return env


def run(
    d: DockyardDaemon,
    *args: str,
    cwd: Path | None = None,
    input: bytes | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [CLI, *args],
        env=env or env_of(d),
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


def docker(d: DockyardDaemon, *args: str, cwd: Path | None = None) -> str:
    proc = run(d, *args, cwd=cwd)
    assert proc.returncode == 0, f"docker {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def build(d: DockyardDaemon, *args: str, cwd: Path) -> str:
    return docker(d, "build", "--progress=plain", *args, cwd=cwd)


@pytest.mark.slow
def test_seed_example(daemon: DockyardDaemon) -> None:
    """The founding example through buildx, run, answering PONG; the rebuild is all cache
    hits."""
    check_seed_example(
        "bx-redis",
        lambda tag, ctx: build(daemon, "-t", tag, ".", cwd=ctx),
        lambda *args: docker(daemon, *args),
        lambda *args: run(daemon, *args),
    )


def test_buildx_ls_shows_the_docker_driver(daemon: DockyardDaemon) -> None:
    out = docker(daemon, "buildx", "ls")
    line = next(ln for ln in out.splitlines() if "\\_ default" in ln)
    assert "running" in line and "linux/amd64" in line, out
    assert "docker" in out.splitlines()[1], out
    inspect = docker(daemon, "buildx", "inspect")
    assert "Driver:        docker" in inspect or "Driver: docker" in inspect.replace("  ", " ")


def test_build_run_and_cached_rebuild(daemon: DockyardDaemon, tmp_path: Path) -> None:
    ctx = write_context(
        tmp_path / "c",
        'FROM busybox\nCOPY hello.txt /hello.txt\nRUN cat /hello.txt > /copy\nCMD ["cat", "/copy"]\n',
        {"hello.txt": "hello through buildx\n"},
    )
    out = build(daemon, "-t", "bx-basic", ".", cwd=ctx)
    assert 'building with "default" instance using docker driver' in out
    assert "[1/3] FROM docker.io/library/busybox:latest" in out
    assert "[3/3] RUN cat /hello.txt > /copy" in out
    assert "naming to docker.io/library/bx-basic:latest done" in out
    assert docker(daemon, "run", "--rm", "bx-basic") == "hello through buildx\n"
    again = build(daemon, "-t", "bx-basic", ".", cwd=ctx)
    assert again.count("CACHED") == 2, again
    nocache = build(daemon, "--no-cache", "-t", "bx-basic", ".", cwd=ctx)
    assert "CACHED" not in nocache, nocache


def test_multistage_flags(daemon: DockyardDaemon, tmp_path: Path) -> None:
    ctx = write_context(
        tmp_path / "c",
        "FROM busybox AS build\nARG MSG=none\nWORKDIR /src\nCOPY . .\n"
        'RUN echo "$MSG" > /msg && (grep myhost /etc/hosts || true) > /hosts\n'
        "FROM busybox AS other\nRUN exit 1\n"
        "FROM busybox AS final\nCOPY --from=build /msg /hosts /\nCMD cat /msg\n",
        {"keep.txt": "k"},
    )
    df = tmp_path / "elsewhere" / "Build.df"
    df.parent.mkdir()
    df.write_text((ctx / "Dockerfile").read_text())
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
        "bx-ms",
        ".",
        cwd=ctx,
    )
    assert docker(daemon, "run", "--rm", "bx-ms") == "hi\n"
    hosts = docker(daemon, "run", "--rm", "bx-ms", "cat", "/hosts")
    assert "10.9.8.7" in hosts and "myhost" in hosts
    labels = json.loads(
        docker(daemon, "image", "inspect", "-f", "{{json .Config.Labels}}", "bx-ms")
    )
    assert labels == {"team": "dock"}


def test_failing_step_fails_the_build(daemon: DockyardDaemon, tmp_path: Path) -> None:
    ctx = write_context(tmp_path / "c", "FROM busybox\nRUN echo out && exit 3\n")
    proc = run(daemon, "build", "--progress=plain", "-t", "bx-fail", ".", cwd=ctx)
    assert proc.returncode != 0
    assert "exit code: 3" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_unsupported_requests_are_named(daemon: DockyardDaemon, tmp_path: Path) -> None:
    ctx = write_context(tmp_path / "c", "FROM busybox\n")
    proc = run(daemon, "build", "--build-context", "x=docker-image://busybox", ".", cwd=ctx)
    assert proc.returncode != 0
    assert "named build context x" in proc.stderr and "not supported" in proc.stderr
    proc = run(daemon, "build", "--platform", "linux/s390x", ".", cwd=ctx)
    assert proc.returncode != 0 and "linux/s390x is not supported" in proc.stderr


def test_legacy_build_still_works(daemon: DockyardDaemon, tmp_path: Path) -> None:
    ctx = write_context(tmp_path / "c", "FROM busybox\nRUN echo legacy > /l\n")
    proc = run(
        daemon, "build", "-t", "bx-legacy", ".", cwd=ctx, env=env_of(daemon, DOCKER_BUILDKIT="0")
    )
    assert proc.returncode == 0, proc.stderr
    assert "Step 2/2 : RUN echo legacy > /l" in proc.stdout


def test_secret_and_ssh(daemon: DockyardDaemon, tmp_path: Path) -> None:
    ctx = write_context(
        tmp_path / "c",
        "FROM busybox\n"
        "RUN --mount=type=secret,id=tok cat /run/secrets/tok > /seen\n"
        "RUN --mount=type=ssh test -S $SSH_AUTH_SOCK && echo agent > /ssh\n",
        {"tok.txt": "s3cr3t\n"},
    )
    agent = subprocess.run(
        ["ssh-agent", "-a", str(tmp_path / "agent.sock")], capture_output=True, text=True
    )
    if agent.returncode != 0:
        pytest.skip("no ssh-agent")
    pid = int(agent.stdout.split("SSH_AGENT_PID=")[1].split(";")[0])
    try:
        env = env_of(daemon, SSH_AUTH_SOCK=str(tmp_path / "agent.sock"))
        proc = run(
            daemon,
            *("build", "--progress=plain", "--secret", "id=tok,src=tok.txt", "--ssh", "default"),
            *("-t", "bx-secret", "."),
            cwd=ctx,
            env=env,
        )
        assert proc.returncode == 0, proc.stderr
    finally:
        os.kill(pid, 15)
    assert docker(daemon, "run", "--rm", "bx-secret", "cat", "/seen", "/ssh") == "s3cr3t\nagent\n"
    # the secret's content is in no layer
    history = docker(daemon, "history", "--no-trunc", "bx-secret")
    assert "s3cr3t" not in history


def test_output_local_and_tar(daemon: DockyardDaemon, tmp_path: Path) -> None:
    ctx = write_context(
        tmp_path / "c",
        "FROM busybox AS build\nRUN mkdir -p /out/sub && echo one > /out/one && "
        "echo two > /out/sub/two && ln -s one /out/link && chmod 0751 /out/sub\n"
        "FROM scratch\nCOPY --from=build /out /\n",
    )
    dest = tmp_path / "dest"
    build(daemon, "--output", f"type=local,dest={dest}", ".", cwd=ctx)
    assert (dest / "one").read_text() == "one\n"
    assert (dest / "sub" / "two").read_text() == "two\n"
    assert os.readlink(dest / "link") == "one"
    assert (dest / "sub").stat().st_mode & 0o777 == 0o751
    tar = tmp_path / "out.tar"
    build(daemon, "--output", f"type=tar,dest={tar}", ".", cwd=ctx)
    with tarfile.open(tar) as tf:
        names = {m.name.rstrip("/"): m for m in tf.getmembers()}
        assert {"one", "sub", "sub/two", "link"} <= set(names)
        assert names["link"].issym() and names["link"].linkname == "one"
        f = tf.extractfile(names["sub/two"])
        assert f is not None and f.read() == b"two\n"
    # `-o -`: the tar on stdout
    proc = subprocess.run(
        [CLI, "build", "-q", "--output", "type=tar,dest=-", "."],
        env=env_of(daemon),
        cwd=ctx,
        capture_output=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert b"sub/two" in proc.stdout


def _du_records(out: str) -> list[dict[str, str]]:
    """`docker buildx du --verbose` as records of its `Key:\tvalue` lines."""
    records = []
    for block in out.strip().split("\n\n"):
        rec = {}
        for line in block.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                rec[key.strip()] = value.strip()
        if "ID" in rec:
            records.append(rec)
    return records


def test_du_and_prune(daemon: DockyardDaemon, tmp_path: Path) -> None:
    ctx = write_context(
        tmp_path / "c", "FROM busybox\nRUN head -c 5000 /dev/zero > /z\nRUN echo b > /b\n"
    )
    build(daemon, "-t", "bx-du", ".", cwd=ctx)
    recs = {r["Description"]: r for r in _du_records(docker(daemon, "buildx", "du", "--verbose"))}
    z = recs["mount / from exec /bin/sh -c head -c 5000 /dev/zero > /z"]
    assert z["Size"] == "5kB" and z["Shared"] == "false" and z["Type"] == "regular", z
    b = recs["mount / from exec /bin/sh -c echo b > /b"]
    assert b["Size"] == "2B" and b["Shared"] == "true", b  # the tagged image's own step
    docker(daemon, "buildx", "prune", "-f")
    left = {r["Description"] for r in _du_records(docker(daemon, "buildx", "du", "--verbose"))}
    assert (
        "mount / from exec /bin/sh -c head -c 5000 /dev/zero > /z" not in left
    )  # untagged step images went
    assert "mount / from exec /bin/sh -c echo b > /b" in left
    assert "bx-du" in docker(daemon, "images")  # the tagged image stays
    docker(daemon, "builder", "prune", "-af")
    assert _du_records(docker(daemon, "buildx", "du", "--verbose")) == []
    assert docker(daemon, "run", "--rm", "bx-du", "cat", "/b") == "b\n"
    again = build(daemon, "-t", "bx-du", ".", cwd=ctx)
    assert "CACHED" not in again


def test_push_to_a_local_registry(daemon: DockyardDaemon, tmp_path: Path) -> None:
    from tests.registry.support import Registry

    reg = Registry(tmp_path / "reg").start()
    try:
        ctx = write_context(tmp_path / "c", "FROM busybox\nRUN echo pushed > /p\n")
        name = f"{reg.host}/bx/pushed:v1"
        proc = run(daemon, "build", "--progress=plain", "--push", "-t", name, ".", cwd=ctx)
        if "page not found" in proc.stderr:
            pytest.skip("GET /distribution/{name}/json is not on this branch yet (dockerpy)")
        assert proc.returncode == 0, proc.stderr
        assert f"pushing {name} with docker" in proc.stderr
        with reg.client() as c:
            assert c.get("/v2/bx/pushed/tags/list").json()["tags"] == ["v1"]
    finally:
        reg.cleanup()


# Both processes are PID 1 without a SIGTERM handler: `down` would wait the default 10 s per
# stop wave (worker, then web) before its SIGKILL; a grace of 1 s takes the same path.
COMPOSE = """\
services:
  web:
    build: ./web
    image: bxc-web:dev
    stop_grace_period: 1s
  worker:
    build:
      context: ./worker
      args:
        MSG: from-compose
    depends_on: [web]
    volumes:
      - data:/data
    stop_grace_period: 1s
volumes:
  data: {}
"""


def test_compose_v2_build_up_down(daemon: DockyardDaemon, tmp_path: Path) -> None:
    proj = tmp_path / "bxc"
    write_context(
        proj / "web",
        'FROM busybox\nCOPY index.html /www/index.html\nCMD ["httpd", "-f", "-p", "8080", "-h", "/www"]\n',
        {"index.html": "hi-web\n"},
    )
    write_context(
        proj / "worker",
        "FROM busybox AS base\nARG MSG=none\nRUN echo $MSG > /msg\nFROM base\n"
        'CMD ["sh", "-c", "cat /msg; echo x > /data/x; while true; do sleep 1; done"]\n',
    )
    (proj / "compose.yaml").write_text(COMPOSE)
    out = docker(daemon, "compose", "build", cwd=proj)
    assert "naming to docker.io/library/bxc-web:dev" in out, out
    docker(daemon, "compose", "up", "-d", "--build", cwd=proj)
    try:
        ps = docker(daemon, "compose", "ps", cwd=proj)
        assert "bxc-web-1" in ps and "bxc-worker-1" in ps and ps.count("Up") == 2, ps
        assert (
            docker(daemon, "compose", "exec", "-T", "web", "cat", "/www/index.html", cwd=proj)
            == "hi-web\n"
        )
        for _ in range(50):
            logs = docker(daemon, "compose", "logs", "--no-color", "worker", cwd=proj)
            if "from-compose" in logs:
                break
            time.sleep(0.1)
        assert "from-compose" in logs, logs
    finally:
        down = docker(daemon, "compose", "down", "-v", cwd=proj)
    assert "Volume bxc_data  Removed" in down or "bxc_data" in down, down
    assert "bxc_default" not in docker(daemon, "network", "ls")
    assert "bxc_data" not in docker(daemon, "volume", "ls")
    assert "bridge" in docker(daemon, "network", "ls")


def test_context_and_dockerfile_from_stdin(daemon: DockyardDaemon, tmp_path: Path) -> None:
    """`docker build - < ctx.tar` (buildx serves the tar through the session's Upload) and
    `-f -` (the Dockerfile in buildx's own `dockerfile` source beside the context)."""
    ctx = write_context(
        tmp_path / "c",
        'FROM busybox\nCOPY in.txt /in.txt\nCMD ["cat", "/in.txt"]\n',
        {"in.txt": "from a tar\n"},
    )
    tar = tmp_path / "ctx.tar"
    # GNU format as tar(1) writes it: buildx tells a tar from a Dockerfile by reading one
    # header out of stdin's first KiB, which a PAX extended header (Python's default) overruns
    with tarfile.open(tar, "w", format=tarfile.GNU_FORMAT) as tf:
        for name in ("Dockerfile", "in.txt"):
            tf.add(ctx / name, arcname=name)
    proc = run(
        daemon, "build", "--progress=plain", "-t", "bx-stdin-tar", "-", input=tar.read_bytes()
    )
    assert proc.returncode == 0, proc.stderr
    assert docker(daemon, "run", "--rm", "bx-stdin-tar") == "from a tar\n"
    df = b'FROM busybox\nCOPY in.txt /other.txt\nCMD ["cat", "/other.txt"]\n'
    proc = run(
        daemon, "build", "--progress=plain", "-f", "-", "-t", "bx-stdin-df", str(ctx), input=df
    )
    assert proc.returncode == 0, proc.stderr
    assert docker(daemon, "run", "--rm", "bx-stdin-df") == "from a tar\n"
    # a tar that is not one: a clear error, no traceback
    proc = run(daemon, "build", "-t", "bx-stdin-bad", "-", input=b"\x00" * 100 + b"garbage")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr


def test_inline_cache_through_a_registry(daemon: DockyardDaemon, tmp_path: Path) -> None:
    """`--cache-to type=inline` records the step keys in the image's config; pushed, the build
    cache pruned, pulled again, `--cache-from` of it hits every step — and only while the
    inputs are the same: BuildKit's history (`COPY f /f`) does not say what f held, so an
    image without inline cache serves nothing and a changed file misses."""
    from tests.registry.support import Registry

    reg = Registry(tmp_path / "reg").start()
    try:
        ctx = write_context(
            tmp_path / "c",
            "FROM busybox\nENV A=1\nCOPY f /f\nRUN cat /f > /g\nWORKDIR /w\n"
            'RUN echo x > y\nCMD ["cat", "/g"]\n',
            {"f": "one\n"},
        )
        name = f"{reg.host}/bx/cache:v1"
        build(daemon, "--cache-to", "type=inline", "-t", name, ".", cwd=ctx)
        docker(daemon, "push", name)
        build(daemon, "-t", "bx-plain", ".", cwd=ctx)  # the same image without inline cache
        docker(daemon, "rmi", name)
        docker(daemon, "builder", "prune", "-af")
        out = build(daemon, "--cache-from", "bx-plain", "-t", "bx-c1", ".", cwd=ctx)
        assert "CACHED" not in out, out
        # imports add to the local cache (BuildKit), they do not replace it (legacy)
        out = build(daemon, "--cache-from", "busybox", "-t", "bx-c1", ".", cwd=ctx)
        assert out.count("CACHED") == 4, out
        docker(daemon, "pull", name)
        docker(daemon, "builder", "prune", "-af")
        out = build(daemon, "--cache-from", name, "-t", "bx-c2", ".", cwd=ctx)
        assert out.count("CACHED") == 4, out
        assert docker(daemon, "run", "--rm", "bx-c2") == "one\n"
        (ctx / "f").write_text("two\n")
        docker(daemon, "builder", "prune", "-af")
        out = build(daemon, "--cache-from", name, "-t", "bx-c3", ".", cwd=ctx)
        assert "CACHED" not in out, out
        assert docker(daemon, "run", "--rm", "bx-c3") == "two\n"
        # BUILDKIT_INLINE_CACHE=1 asks the same (BuildKit's legacy spelling)
        build(daemon, "--build-arg", "BUILDKIT_INLINE_CACHE=1", "-t", "bx-arg", ".", cwd=ctx)
        docker(daemon, "builder", "prune", "-af")
        out = build(daemon, "--cache-from", "bx-arg", "-t", "bx-c4", ".", cwd=ctx)
        assert out.count("CACHED") == 4, out
        # other cache exports: buildx refuses them for the docker driver before it asks
        proc = run(daemon, "build", "--cache-to", "type=registry,ref=x/y", ".", cwd=ctx)
        assert proc.returncode != 0 and "Cache export is not supported" in proc.stderr
    finally:
        reg.cleanup()


def _help_flags(d: DockyardDaemon) -> set[str]:
    """The flags of the `Options:` section of `docker buildx build --help` (not the CLI's
    global ones)."""
    env = env_of(d)
    env.pop("BUILDX_EXPERIMENTAL", None)
    out = subprocess.run(
        [CLI, "buildx", "build", "--help"], env=env, capture_output=True, text=True
    ).stdout
    section = out.split("\nOptions:\n", 1)[1].split("\n\n", 1)[0]
    flags = set()
    for line in section.splitlines():
        words = line.split()
        for w in words[:2]:
            if w.startswith("--"):
                flags.add(w.rstrip(","))
                break
    return flags


# Every flag of `docker buildx build` (0.13) and where it is shown honoured or refused by
# name; a flag buildx gains that is in none of them fails the test below.
SHOWN_ELSEWHERE = {
    "--add-host": "test_multistage_flags",
    "--build-arg": "test_multistage_flags",
    "--file": "test_multistage_flags",
    "--label": "test_multistage_flags",
    "--target": "test_multistage_flags",
    "--tag": "test_multistage_flags",
    "--build-context": "test_unsupported_requests_are_named",
    "--platform": "test_unsupported_requests_are_named",
    "--no-cache": "test_build_run_and_cached_rebuild",
    "--progress": "test_build_run_and_cached_rebuild (plain); here (rawjson)",
    "--output": "test_output_local_and_tar",
    "--secret": "test_secret_and_ssh",
    "--ssh": "test_secret_and_ssh",
    "--push": "test_push_to_a_local_registry",
    "--cache-from": "test_inline_cache_through_a_registry; here (type=local)",
    "--cache-to": "test_inline_cache_through_a_registry",
}


def test_every_build_flag_is_honoured_or_refused(daemon: DockyardDaemon, tmp_path: Path) -> None:
    ctx = write_context(
        tmp_path / "c",
        "FROM busybox\nRUN grep ':' /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort > /ifaces\n"
        'CMD ["cat", "/ifaces"]\n',
    )

    def ok(*args: str) -> str:
        proc = run(daemon, "build", *args, ".", cwd=ctx)
        assert proc.returncode == 0, f"{args}: {proc.stderr}"
        return proc.stdout + proc.stderr

    def refused(words: str, *args: str) -> None:
        proc = run(daemon, "build", *args, ".", cwd=ctx)
        assert proc.returncode != 0, args
        assert words in proc.stderr, f"{args}: {proc.stderr}"
        assert "Traceback" not in proc.stderr

    tested: set[str] = set()

    def flag(name: str) -> str:
        tested.add(name)
        return name

    # honoured
    iid = tmp_path / "iid"
    out = ok(flag("--quiet"), flag("--iidfile"), str(iid), "-t", "bx-flags")
    image_id = iid.read_text()
    assert image_id.startswith("sha256:") and out.strip() == image_id
    meta = tmp_path / "meta.json"
    ok("-q", flag("--metadata-file"), str(meta), "-t", "bx-flags")
    assert json.loads(meta.read_text())["containerimage.digest"] == image_id
    ok("-q", flag("--load"), "-t", "bx-loaded")
    assert docker(daemon, "image", "inspect", "-f", "{{.Id}}", "bx-loaded").strip() == image_id
    ok("-q", flag("--network"), "none", "--no-cache", "-t", "bx-none")
    assert docker(daemon, "run", "--rm", "bx-none") == "lo\n"
    ok("-q", flag("--allow"), "network.host", "--network", "host", "--no-cache", "-t", "bx-host")
    assert docker(daemon, "run", "--rm", "bx-host") != "lo\n"
    ok("-q", flag("--builder"), "default")
    lines = ok("--progress", "rawjson").splitlines()
    vertexes = [v for ln in lines if ln.startswith("{") for v in [ln]]
    assert vertexes, lines
    raw = run(daemon, "build", "--progress", "rawjson", ".", cwd=ctx).stderr
    names = [v["name"] for doc in _json_docs(raw) for v in doc.get("vertexes", [])]
    assert any("RUN grep" in n for n in names), names
    # refused by name, by us
    refused("--cgroup-parent for builds is not supported", flag("--cgroup-parent"), "x")
    refused("--shm-size for builds is not supported", flag("--shm-size"), "64m")
    refused("--ulimit for builds is not supported", flag("--ulimit"), "nofile=100:100")
    refused("--no-cache-filter is not supported", flag("--no-cache-filter"), "x")
    refused(
        "exporter option annotation.a=b of type=moby is not supported",
        flag("--annotation"),
        "a=b",
        "-o",
        "type=image,name=bx-ann",
    )
    refused(
        "exporter option compression=zstd of type=moby is not supported",
        "-o",
        "type=image,name=bx-z,compression=zstd",
    )
    cache_dir = tmp_path / "lc"
    cache_dir.mkdir()
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "digest": "sha256:" + "0" * 64,
                "size": 2,
                "annotations": {"org.opencontainers.image.ref.name": "latest"},
            }
        ],
    }
    (cache_dir / "index.json").write_text(json.dumps(index))
    refused(
        "cache import type=local is not supported", "--cache-from", f"type=local,src={cache_dir}"
    )
    # refused by buildx itself for a daemon without the containerd image store (as for
    # dockerd 26.1's default store)
    refused("Attestation is not supported for the docker driver", flag("--attest"), "type=sbom")
    refused("Attestation is not supported", flag("--provenance"), "true")
    refused("Attestation is not supported", flag("--sbom"), "true")
    refused("Docker exporter is not supported", "-o", f"type=docker,dest={tmp_path / 'd.tar'}")
    refused("OCI exporter is not supported", "-o", f"type=oci,dest={tmp_path / 'o.tar'}")
    # --pull: a base whose tag moved in the registry is fetched again only with it
    _pull_is_honoured(daemon, tmp_path)
    tested.add("--pull")
    flags = _help_flags(daemon)
    assert "--tag" in flags and "--cache-to" in flags, flags
    missing = flags - tested - set(SHOWN_ELSEWHERE)
    assert not missing, f"buildx build flags shown nowhere: {sorted(missing)}"


def _json_docs(text: str) -> list[dict[str, object]]:
    """The JSON documents buildx's rawjson progress prints one after another."""
    dec = json.JSONDecoder()
    docs, i = [], 0
    while (start := text.find("{", i)) >= 0:
        try:
            doc, i = dec.raw_decode(text, start)
        except ValueError:
            i = start + 1
            continue
        if isinstance(doc, dict):
            docs.append(doc)
    return docs


def _pull_is_honoured(daemon: DockyardDaemon, tmp_path: Path) -> None:
    from tests.registry.support import Registry

    reg = Registry(tmp_path / "pullreg").start()
    try:
        base = f"{reg.host}/bx/base:1"
        newer = write_context(tmp_path / "newer", "FROM busybox\nRUN echo newer > /marker\n")
        docker(daemon, "build", "-q", "-t", base, str(newer))
        docker(daemon, "push", base)
        docker(daemon, "tag", "busybox", base)  # here the tag is the older image again
        ctx = write_context(
            tmp_path / "p",
            f'FROM {base}\nRUN (cat /marker 2>/dev/null || echo older) > /seen\nCMD ["cat", "/seen"]\n',
        )
        docker(daemon, "build", "-q", "-t", "bx-nopull", str(ctx))
        assert docker(daemon, "run", "--rm", "bx-nopull") == "older\n"
        docker(daemon, "build", "-q", "--pull", "-t", "bx-pull", str(ctx))
        assert docker(daemon, "run", "--rm", "bx-pull") == "newer\n"
    finally:
        reg.cleanup()


def test_compose_v2_push(daemon: DockyardDaemon, tmp_path: Path) -> None:
    from tests.registry.support import Registry

    reg = Registry(tmp_path / "reg").start()
    try:
        proj = tmp_path / "bxp"
        write_context(proj / "app", "FROM busybox\nRUN echo app > /app\n")
        (proj / "compose.yaml").write_text(
            f"services:\n  app:\n    build: ./app\n    image: {reg.host}/bxp/app:1\n"
        )
        docker(daemon, "compose", "build", cwd=proj)
        out = docker(daemon, "compose", "push", cwd=proj)
        assert "Pushed" in out or "Pushing" in out, out
        with reg.client() as c:
            assert c.get("/v2/bxp/app/tags/list").json()["tags"] == ["1"]
    finally:
        reg.cleanup()
