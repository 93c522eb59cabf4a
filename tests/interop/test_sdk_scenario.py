"""The Docker SDK for Python's high-level calls, as a script uses them, against dockyard and the
reference dockerd 20.10: images.build (its streamed log), push/pull through a registry with
authentication, get/list/remove, containers.run detached and not, create/start/wait,
logs(stream=True), exec_run(stream=True, demux=True), put_archive/get_archive, stats, stop,
remove, events read in a thread with since/until, df, volumes, networks, version and ping.

Each step returns a value with IDs, times, sizes and side names masked (what a script would
branch on: exit codes, output bytes, names, error classes and statuses); the two daemons must
give the same value unless KNOWN names the gap. With DOCKYARD_SDK_SCENARIO_REPORT=FILE the
table docs/COMPATIBILITY.md shows ("Docker SDK for Python") is written there.
"""

from __future__ import annotations

import io
import os
import re
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import write_context
from tests.interop.conftest import Side
from tests.interop.test_cli_scenario import (  # noqa: F401 (fixtures)
    registry,
    sc_ours,
    sc_theirs,
    scenario_normalise,
)

docker = pytest.importorskip("docker")

pytestmark = [pytest.mark.root, pytest.mark.dockerd]

USER, PASSWORD = "sc", "sc-password"  # the scenario registry's account

KNOWN: dict[str, str] = {}


@dataclass
class Env:
    """One daemon as a script sees it: a client and the names the steps use."""

    side: Side
    client: Any  # docker.DockerClient (docker-py has no type hints)
    reg: str
    ctx: Path
    tag: str  # this side's tag in the registry: both sides share one registry
    values: dict[str, Any] = field(default_factory=dict)

    @property
    def repo(self) -> str:
        return f"{self.reg}/sdk{self.tag}/app"


def _mask(env: Env, value: object) -> str:
    names = {env.repo: "<REPO>", f"sdk{env.tag}": "<SIDE>", str(env.ctx): "<CTX>"}
    return scenario_normalise(repr(value), names)


def _error(exc: Exception) -> tuple[str, object]:
    status = getattr(exc, "status_code", None)
    return (type(exc).__name__, status)


def _tar(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), 0o640, 1_700_000_000
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _untar(chunks: Iterator[bytes]) -> list[tuple[str, int, bytes]]:
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
        out = []
        for m in tar.getmembers():
            f = tar.extractfile(m)
            out.append((m.name, m.mode, f.read() if f else b""))
        return out


def _events(env: Env, since: int, until: int, into: list[tuple[str, str]]) -> threading.Thread:
    """client.events read to its end (until=) in a thread of its own, as scripts watch."""

    def read() -> None:
        try:
            for ev in env.client.events(
                since=since, until=until, decode=True, filters={"container": "sdk-ev"}
            ):
                into.append((ev.get("Type", ""), ev.get("Action", "")))
        except docker.errors.APIError as exc:
            into.append(_error(exc))  # type: ignore[arg-type]

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


# --- the steps, in the order a script would make the calls --------------------------------


def ping(env: Env) -> object:
    return env.client.ping()


def version(env: Env) -> object:
    v = env.client.version()
    return (v["Os"], v["Arch"], sorted(k for k in v if k in _VERSION_KEYS))


_VERSION_KEYS = {"Version", "ApiVersion", "MinAPIVersion", "Os", "Arch", "KernelVersion"}


def build(env: Env) -> object:
    image, logs = env.client.images.build(path=str(env.ctx), tag="sdk-app:1", rm=True)
    stream = "".join(chunk.get("stream", "") for chunk in logs)
    return (image.tags, image.labels, stream)


def build_fails(env: Env) -> object:
    bad = write_context(env.ctx.parent / f"bad-{env.tag}", "FROM busybox\nRUN exit 7\n")
    before = {c.id for c in env.client.containers.list(all=True)}
    try:
        env.client.images.build(path=str(bad), tag="sdk-bad:1", rm=True)
    except docker.errors.BuildError as exc:
        # dockyard names the step's line first ("Dockerfile:2: The command …", as BuildKit
        # does; tests/interop/test_docker_cli.py test_build_failure): compare what follows
        details = [c.get("errorDetail") for c in exc.build_log if "error" in c]
        left = [c for c in env.client.containers.list(all=True) if c.id not in before]
        for c in left:  # what is left is this step's result, not the next steps'
            c.remove(force=True)
        return ("BuildError", _LINE.sub("", exc.msg), _LINE.sub("", repr(details)), len(left))
    return "built"


_LINE = re.compile(r"Dockerfile:\d+: ")


def image_get(env: Env) -> object:
    attrs = env.client.images.get("sdk-app:1").attrs
    return (attrs["Config"]["Cmd"], attrs["Config"]["Env"], attrs["RepoTags"], attrs["Os"])


def image_list(env: Env) -> object:
    by_name = sorted(t for i in env.client.images.list(name="sdk-app") for t in i.tags)
    by_label = sorted(
        t for i in env.client.images.list(filters={"label": "sdk.app=1"}) for t in i.tags
    )
    return (by_name, by_label)


def login(env: Env) -> object:
    return env.client.login(USER, PASSWORD, registry=env.reg)["Status"]


def push(env: Env) -> object:
    env.client.images.get("sdk-app:1").tag(env.repo, "1")
    statuses = {
        (line.get("status", ""), "error" in line)
        for line in env.client.images.push(env.repo, tag="1", stream=True, decode=True)
    }
    return sorted(statuses)


def remove_and_pull(env: Env) -> object:
    env.client.images.remove(f"{env.repo}:1")
    image = env.client.images.pull(env.repo, tag="1")
    return (image.tags, image.id == env.client.images.get("sdk-app:1").id)


def pull_missing(env: Env) -> object:
    try:
        env.client.images.pull(env.repo, tag="no-such-tag")
    except docker.errors.APIError as exc:
        return _error(exc)
    return "pulled"


def image_remove(env: Env) -> object:
    env.client.images.remove(f"{env.repo}:1")
    env.client.images.get("sdk-app:1").tag("sdk-gone", "1")
    env.client.images.remove("sdk-gone:1")
    try:
        env.client.images.get("sdk-gone:1")
    except docker.errors.ImageNotFound as exc:
        return _error(exc)
    return "still there"


def run_attached(env: Env) -> object:
    return env.client.containers.run("sdk-app:1", remove=True, network_mode="none")


def run_fails(env: Env) -> object:
    try:
        env.client.containers.run(
            "busybox", ["sh", "-c", "echo oops >&2; exit 4"], remove=True, network_mode="none"
        )
    except docker.errors.ContainerError as exc:
        return ("ContainerError", exc.exit_status, exc.stderr)
    return "exit 0"


def run_missing_image(env: Env) -> object:
    try:
        env.client.containers.run("sdk-no-such-image:1", network_mode="none")
    except docker.errors.APIError as exc:
        return _error(exc)
    return "ran"


def run_detached(env: Env) -> object:
    c = env.client.containers.run(
        "busybox",
        ["sleep", "300"],
        detach=True,
        name="sdk-long",
        labels={"sdk": "1"},
        network_mode="none",  # the reference runs with --bridge=none: no default network
    )
    c.reload()
    return (c.name, c.status, c.labels, c.image.tags)


def create_start_wait(env: Env) -> object:
    c = env.client.containers.create(
        "busybox",
        ["sh", "-c", "echo out; echo err >&2; exit 3"],
        name="sdk-ev",
        network_mode="none",
    )
    before = c.status
    c.start()
    return (before, c.wait(timeout=60))


def logs_stream(env: Env) -> object:
    c = env.client.containers.get("sdk-ev")
    streamed = b"".join(c.logs(stream=True))
    return (
        sorted(streamed.splitlines()),
        c.logs(stdout=True, stderr=False),
        c.logs(stdout=False, stderr=True),
        len(c.logs(timestamps=True).split()),
    )


def exec_stream_demux(env: Env) -> object:
    c = env.client.containers.get("sdk-long")
    res = c.exec_run(["sh", "-c", "echo o1; echo e1 >&2; echo o2"], stream=True, demux=True)
    out, err = b"", b""
    for o, e in res.output:
        out += o or b""
        err += e or b""
    return (res.exit_code, out, err)


def exec_demux(env: Env) -> object:
    c = env.client.containers.get("sdk-long")
    res = c.exec_run(["sh", "-c", "echo o; echo e >&2; exit 5"], demux=True, workdir="/tmp")
    plain = c.exec_run("pwd", workdir="/tmp", environment={"A": "b"})
    return (res.exit_code, res.output, plain.exit_code, plain.output)


def archive(env: Env) -> object:
    c = env.client.containers.get("sdk-long")
    put = c.put_archive("/tmp", _tar("f.txt", b"payload\n"))
    chunks, stat = c.get_archive("/tmp/f.txt")
    return (put, stat["name"], stat["size"], oct(stat["mode"]), _untar(chunks))


def archive_missing(env: Env) -> object:
    c = env.client.containers.get("sdk-long")
    try:
        c.get_archive("/no/such/path")
    except docker.errors.NotFound as exc:
        return _error(exc)
    return "found"


def stats(env: Env) -> object:
    c = env.client.containers.get("sdk-long")
    one = c.stats(stream=False)
    first = next(iter(c.stats(stream=True, decode=True)))
    return (sorted(one), sorted(first), one["name"])


def stop(env: Env) -> object:
    c = env.client.containers.get("sdk-long")
    c.stop(timeout=1)
    c.reload()
    return (c.status, c.attrs["State"]["ExitCode"])


def remove(env: Env) -> object:
    for name in ("sdk-long", "sdk-ev"):
        env.client.containers.get(name).remove()
    left = env.client.containers.list(all=True, filters={"name": "sdk-"})
    try:
        env.client.containers.get("sdk-long")
    except docker.errors.NotFound as exc:
        return (left, _error(exc))
    return (left, "found")


def events_past(env: Env) -> object:
    seen: list[tuple[str, str]] = []
    _events(env, env.values["t0"], int(time.time()) + 1, seen).join(30)
    return seen


def events_live(env: Env) -> object:
    seen: list[tuple[str, str]] = []
    now = int(time.time())
    thread = _events(env, now, now + 4, seen)
    time.sleep(1)
    c = env.client.containers.run("busybox", ["true"], name="sdk-ev", detach=True)
    c.wait(timeout=60)
    c.remove()
    thread.join(30)
    return (thread.is_alive(), seen)


def df(env: Env) -> object:
    usage = env.client.df()
    tags = sorted(t for i in usage["Images"] for t in (i.get("RepoTags") or []))
    names = sorted(n for c in usage["Containers"] for n in c.get("Names") or [])
    return (sorted(usage), tags, names, usage["Volumes"])


def volumes(env: Env) -> object:
    v = env.client.volumes.create("sdk-vol", labels={"sdk": "1"})
    out = env.client.containers.run(
        "busybox",
        ["sh", "-c", "echo kept > /v/f; cat /v/f"],
        volumes={"sdk-vol": {"bind": "/v", "mode": "rw"}},
        remove=True,
        network_mode="none",
    )
    listed = [x.name for x in env.client.volumes.list(filters={"label": "sdk=1"})]
    got = env.client.volumes.get("sdk-vol")
    v.remove()
    try:
        env.client.volumes.get("sdk-vol")
    except docker.errors.NotFound as exc:
        gone: object = _error(exc)
    else:
        gone = "still there"
    return (v.name, got.attrs["Driver"], got.attrs["Labels"], out, listed, gone)


def networks(env: Env) -> object:
    net = env.client.networks.create("sdk-net", driver="bridge", labels={"sdk": "1"})
    c = env.client.containers.run("busybox", ["sleep", "60"], detach=True, name="sdk-member")
    net.connect(c, aliases=["member"])
    net.reload()
    members = [m.name for m in net.containers]
    listed = [n.name for n in env.client.networks.list(filters={"label": "sdk=1"})]
    c.reload()
    attached = sorted(c.attrs["NetworkSettings"]["Networks"])
    net.disconnect(c)
    c.remove(force=True)
    net.remove()
    try:
        env.client.networks.get("sdk-net")
    except docker.errors.NotFound as exc:
        gone: object = _error(exc)
    else:
        gone = "still there"
    return (net.name, net.attrs["Driver"], members, listed, attached, gone)


STEPS: list[tuple[str, Callable[[Env], object]]] = [
    ("ping", ping),
    ("version", version),
    ("images.build (streamed log)", build),
    ("images.build of a failing RUN", build_fails),
    ("images.get", image_get),
    ("images.list (name, label filter)", image_list),
    ("login", login),
    ("images.push (stream, decode)", push),
    ("images.remove + images.pull", remove_and_pull),
    ("images.pull of a missing tag", pull_missing),
    ("images.remove", image_remove),
    ("containers.run (attached)", run_attached),
    ("containers.run exiting 4", run_fails),
    ("containers.run of a missing image", run_missing_image),
    ("containers.run (detached)", run_detached),
    ("containers.create/start/wait", create_start_wait),
    ("logs(stream=True), stdout/stderr", logs_stream),
    ("exec_run(stream=True, demux=True)", exec_stream_demux),
    ("exec_run(demux=True), workdir, environment", exec_demux),
    ("put_archive/get_archive", archive),
    ("get_archive of a missing path", archive_missing),
    ("stats (one, stream)", stats),
    ("stop", stop),
    ("remove", remove),
    ("events in a thread (since/until, past)", events_past),
    ("events in a thread (since/until, live)", events_live),
    ("df", df),
    ("volumes create/list/get/remove", volumes),
    ("networks create/connect/list/disconnect/remove", networks),
]


@dataclass(frozen=True)
class Outcome:
    step: str
    mine: str
    docker: str

    @property
    def same(self) -> bool:
        return self.mine == self.docker


def _play(env: Env, fn: Callable[[Env], object]) -> str:
    try:
        value = fn(env)
    except Exception as exc:  # a step that raises is a result too (class, status)
        value = ("raised", *_error(exc), str(exc)[:200])
    return _mask(env, value)


def _env(side: Side, tag: str, reg: str, ctx: Path) -> Env:
    client = docker.DockerClient(base_url=side.env["DOCKER_HOST"], version="1.41", timeout=120)
    env = Env(side, client, reg, ctx, tag)
    env.values["t0"] = int(time.time())
    return env


def _cleanup(env: Env) -> None:
    for c in env.client.containers.list(all=True, filters={"name": "sdk-"}):
        c.remove(force=True)
    for name in ("sdk-net",):
        for n in env.client.networks.list(names=[name]):
            n.remove()
    for v in env.client.volumes.list(filters={"name": "sdk-vol"}):
        v.remove(force=True)
    for image in env.client.images.list():
        for t in image.tags:
            if t.startswith("sdk-") or f"/sdk{env.tag}/" in t:
                env.client.images.remove(t, force=True)
    env.client.close()


def table(outcomes: list[Outcome]) -> str:
    same = sum(1 for o in outcomes if o.same)
    lines = [
        f"{len(outcomes)} steps: {same} the same, {len(outcomes) - same} differ.",
        "",
        "| step | result | note |",
        "|---|---|---|",
    ]
    for o in outcomes:
        note = "" if o.same else KNOWN.get(o.step, "")
        lines.append(f"| `{o.step}` | {'same' if o.same else 'differ'} | {note} |")
    return "\n".join(lines) + "\n"


def test_sdk_scenario(sc_ours: Side, sc_theirs: Side, registry: str, tmp_path: Path) -> None:  # noqa: F811
    ctx = write_context(
        tmp_path / "ctx",
        'FROM busybox\nLABEL sdk.app=1\nCOPY greeting /greeting\nENV APP=1\nCMD ["cat", "/greeting"]\n',
        {"greeting": "hello from the sdk\n"},
    )
    ours, theirs = _env(sc_ours, "dy", registry, ctx), _env(sc_theirs, "dk", registry, ctx)
    outcomes: list[Outcome] = []
    try:
        for name, fn in STEPS:
            outcomes.append(Outcome(name, _play(ours, fn), _play(theirs, fn)))
    finally:
        for env in (ours, theirs):
            _cleanup(env)
    report = os.environ.get("DOCKYARD_SDK_SCENARIO_REPORT")
    if report:
        Path(report).write_text(table(outcomes))
    worse = [o for o in outcomes if not o.same and o.step not in KNOWN]
    detail = "\n".join(f"{o.step}:\n  dockyard {o.mine}\n  dockerd  {o.docker}" for o in worse)
    assert not worse, f"{len(worse)} of {len(outcomes)} steps differ:\n{detail}"
    # every step's value says something: none of them is a bare error on both sides
    raised = [o.step for o in outcomes if o.same and o.mine.startswith("('raised'")]
    assert not raised, f"steps that raised on both daemons: {raised}"
