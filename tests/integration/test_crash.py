"""kill -9 of the daemon in the middle of build, commit, load, pull, rmi and push (issue 10 §1).

Each operation is killed at several points, by step (a line of its output) and at random
offsets (the seed is printed; DOCKYARD_CRASH_SEED=N replays a run). After each kill the daemon
is started again and `dockyard system check` must find nothing: no partial blob in ingest/, no
runc container but the containers' own, no orphan layer row, snapshot or blob, no builds/<id>
left; a container started before the kills is still running and answers exec; and the
interrupted operation, run again, works. What the start-up sweep removed after each kill (what
a dead daemon left behind: what used to leak) is printed per kill.
"""

from __future__ import annotations

import json
import os
import random
import re
import secrets
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import Clients, own_daemon, short_tmp
from tests.engine.conftest import tar_of
from tests.registry.support import Registry, make_image
from tests.support.daemons import DockyardDaemon
from tests.support.rootfs import busybox_rootfs_tar

pytestmark = [pytest.mark.root, pytest.mark.slow]

SEED = int(os.environ.get("DOCKYARD_CRASH_SEED") or secrets.randbits(32))
MB = 1_000_000


@dataclass
class Crashes:
    c: Clients
    registry: Registry
    work: Path
    rng: random.Random
    log: list[str] = field(default_factory=list)
    reclaimed: int = 0
    kills: int = 0

    @property
    def d(self) -> DockyardDaemon:
        return self.c.daemon

    def ok(self, *args: str, timeout: float = 300) -> str:
        proc = self.c.docker(*args, timeout=timeout)
        assert proc.returncode == 0, f"docker {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
        return proc.stdout

    def kill_during(
        self,
        label: str,
        argv: list[str],
        *,
        after: float | None = None,
        when: Callable[[str], bool] | None = None,
        during: Callable[[], bool] | None = None,
        then: float = 0.0,
    ) -> None:
        """Run the docker CLI with `argv`; kill -9 the daemon `after` seconds, or `then`
        seconds after a line of the output satisfies `when`, or as soon as `during()` holds
        (a state seen from outside: the CLI prints no progress lines when not on a terminal);
        start it again and check."""
        proc = subprocess.Popen(
            ["docker", *argv],
            env=self.d.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        seen = threading.Event()
        lines: list[str] = []

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line)
                if when is not None and when(line):
                    seen.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        if when is not None:
            assert seen.wait(120) or proc.poll() is not None, "".join(lines)
        if during is not None:
            deadline = time.monotonic() + 120
            while not during() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.005)
            assert during(), f"{label}: never seen before the command ended: {''.join(lines)}"
        time.sleep(after if after is not None else then)
        finished = proc.poll() is not None
        assert self.d.proc is not None
        self.d.proc.kill()
        self.d.proc.wait()
        proc.wait(60)
        reader.join(10)
        point = f"{label} at {after:.2f}s" if after is not None else f"{label} +{then:.2f}s"
        self.after_restart(point + (" (it had finished)" if finished else ""))

    def kill_during_request(self, label: str, method: str, target: str, after: float) -> None:
        """Send one API request and kill -9 the daemon `after` seconds later: for an
        operation too quick for a CLI's start-up to leave room (the collection of an rmi)."""
        s = socket.socket(socket.AF_UNIX)
        s.connect(str(self.d.socket))
        s.sendall(f"{method} {target} HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n".encode())
        time.sleep(after)
        assert self.d.proc is not None
        self.d.proc.kill()
        self.d.proc.wait()
        s.settimeout(5)
        try:
            answered = s.recv(100).startswith(b"HTTP/1.1 200")
        except OSError:
            answered = False
        s.close()
        self.after_restart(f"{label} at {after * 1000:.1f}ms" + (" (answered)" if answered else ""))

    def server_ms(self, method: str, path: str) -> float:
        """How long the daemon took over its last `method path` (its request log)."""
        pattern = rf"{method} /v[\d.]+{re.escape(path)} \d+ ([\d.]+)(ms|s)\b"
        value, unit = re.findall(pattern, self.d.log.read_text())[-1]
        return float(value) * (1 if unit == "ms" else 1000)

    def after_restart(self, point: str) -> None:
        self.kills += 1
        mark = self.d.log.stat().st_size
        self.d.start()
        # (the socket listens before the start-up work is done: the check waits for it)
        check = self.c.dockyard("system", "check", "--format", "json")
        report = json.loads(check.stdout)
        assert report["Problems"] == [] and check.returncode == 0, (point, report)
        swept = self.d.log.read_bytes()[mark:].decode(errors="replace")
        removed = re.findall(r"start-up: removed (orphan \w+|[\w ]+?): .*, (\d+) bytes", swept)
        strays = swept.count("removed the stray runc container")
        freed = sum(int(n) for _, n in removed)
        self.reclaimed += freed
        kinds = sorted({k for k, _ in removed} | ({"step container"} if strays else set()))
        self.log.append(
            f"{point}: start-up removed {len(removed) + strays} leftovers ({freed} bytes): "
            + ", ".join(kinds)
        )
        assert "Traceback" not in swept, swept
        root = self.d.root
        assert list((root / "content" / "ingest").iterdir()) == [], point
        assert list((root / "builds").iterdir()) == [], point
        ids = set(self.ok("ps", "-aq", "--no-trunc").split())
        runc = subprocess.run(
            ["runc", "--root", str(root / "runc"), "list", "-q"], capture_output=True, text=True
        ).stdout.split()
        assert set(runc) <= ids, (point, runc, ids)  # no step container of the dead daemon
        state = json.loads(self.ok("inspect", "sleeper"))[0]["State"]
        assert state["Running"] is True, (point, state)
        assert self.ok("exec", "sleeper", "echo", "alive", timeout=30) == "alive\n", point

    def uploading(self) -> bool:
        """A blob upload has begun on the registry and has not been committed yet."""
        return any(f.stat().st_size > 0 for f in self.registry.storage.glob("**/_uploads/*/data"))

    def points(self, duration: float, n: int) -> list[float]:
        return sorted(self.rng.uniform(0.05, max(duration, 0.2)) for _ in range(n))

    def timed(self, *args: str) -> float:
        started = time.monotonic()
        self.ok(*args)
        return time.monotonic() - started


@pytest.fixture(scope="module")
def crashes() -> Iterator[Crashes]:
    print(f"crash test seed {SEED} (DOCKYARD_CRASH_SEED={SEED} replays it)")
    base = short_tmp("dycrash-")
    registry = Registry(base / "registry").start()
    try:
        with own_daemon(base / "daemon") as c:
            x = Crashes(c, registry, base, random.Random(SEED))
            x.ok("run", "-d", "--name", "sleeper", "busybox", "sleep", "3600")
            yield x
            print("\n".join(x.log))
            print(f"{x.kills} kills; the start-up sweeps removed {x.reclaimed} bytes in all")
    finally:
        registry.cleanup()
        shutil.rmtree(base, ignore_errors=True)


def _step(n: int) -> Callable[[str], bool]:
    return lambda line: line.startswith(f"Step {n}/")


def test_kill_during_build(crashes: Crashes, tmp_path: Path) -> None:
    x = crashes
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "big").write_bytes(random.Random(SEED).randbytes(20 * MB))
    (ctx / "Dockerfile").write_text(
        "FROM busybox\n"
        "COPY big /big\n"
        "RUN head -c 30000000 /dev/urandom > /r1\n"
        "ARG S=90\n"
        "RUN sleep $S\n"
        "RUN echo done > /done\n"
    )
    build = ["build", "--no-cache", "-t", "built:1", str(ctx)]
    # by step: COPY, the RUN writing 30 MB, the RUN that sleeps (its runc container running)
    for n, then in [(2, 0.0), (2, 0.3), (3, 0.5), (5, 1.5)]:
        x.kill_during(f"build step {n}", build, when=_step(n), then=then)
    for at in x.points(4.0, 2):
        x.kill_during("build", build, after=at)
    x.ok("build", "--build-arg", "S=0", "-t", "built:1", str(ctx))
    assert x.ok("run", "--rm", "built:1", "cat", "/done") == "done\n"
    x.ok("rmi", "built:1")


def test_kill_during_commit(crashes: Crashes) -> None:
    x = crashes
    x.ok("run", "-d", "--name", "src", "busybox", "sh", "-c",
         "head -c 60000000 /dev/urandom > /big && sleep 3600")  # fmt: skip
    deadline = time.monotonic() + 60
    while x.c.docker("exec", "src", "test", "-f", "/big").returncode != 0:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    time.sleep(1)
    duration = x.timed("commit", "src", "committed:0")
    x.ok("rmi", "committed:0")
    for i, at in enumerate(x.points(duration, 5)):
        x.kill_during("commit", ["commit", "src", f"committed:{i + 1}"], after=at)
        # a commit pauses the container: after the kill it runs on, controllable
        assert x.ok("exec", "src", "echo", "ok", timeout=30) == "ok\n"
    x.ok("commit", "src", "committed:again")
    assert x.ok("run", "--rm", "committed:again", "ls", "-l", "/big").split()[4] == "60000000"
    x.ok("rm", "-f", "src")
    for ref in x.ok("images", "--format", "{{.Repository}}:{{.Tag}}", "committed").split():
        x.ok("rmi", ref)


def _thirty_layers(path: Path) -> str:
    """A `docker save` archive of an image of 30 layers (busybox, then 29 of 2 MB); its name."""
    rng = random.Random(SEED + 30)
    layers = [busybox_rootfs_tar().read_bytes()]
    layers += [tar_of({f"l{i}": rng.randbytes(2 * MB)}) for i in range(29)]
    image = make_image(layers)
    files = {f"{image.image_id[7:]}.json": image.config}
    names = []
    for i, layer in enumerate(layers):
        files[f"{i:02d}/layer.tar"] = layer
        names.append(f"{i:02d}/layer.tar")
    manifest = [{"Config": f"{image.image_id[7:]}.json", "RepoTags": ["thirty:1"], "Layers": names}]
    files["manifest.json"] = json.dumps(manifest).encode()
    path.write_bytes(tar_of(files))
    return "thirty:1"


def _absent(x: Crashes, name: str) -> None:
    if x.c.docker("image", "inspect", name).returncode == 0:
        x.ok("rmi", name)


def test_kill_during_load_and_rmi(crashes: Crashes, tmp_path: Path) -> None:
    x = crashes
    archive = tmp_path / "thirty.tar"
    name = _thirty_layers(archive)
    load = ["load", "-i", str(archive)]
    x.ok(*load)
    x.ok("rmi", name)
    load_ms = x.server_ms("POST", "/images/load")
    for at in x.points(load_ms / 1000, 5):
        _absent(x, name)
        x.kill_during("load", load, after=at + 0.05)  # (the CLI's start, about 50 ms)
    x.ok(*load)
    assert x.ok("run", "--rm", name, "ls", "/l28") == "/l28\n"
    x.ok("rmi", name)
    x.ok(*load)
    rmi_ms = x.server_ms("DELETE", f"/images/{name}")
    print(f"load of 30 layers: {load_ms:.0f} ms; rmi: {rmi_ms:.1f} ms in the daemon")
    for i in range(5):
        if x.c.docker("image", "inspect", name).returncode != 0:
            x.ok(*load)
        at = x.rng.uniform(0, rmi_ms / 1000) if i else 0.0
        x.kill_during_request("rmi", "DELETE", f"/images/{name}", at)
    _absent(x, name)
    assert name not in x.ok("images", "--format", "{{.Repository}}:{{.Tag}}")


def test_kill_during_pull(crashes: Crashes) -> None:
    x = crashes
    rng = random.Random(SEED + 1)
    layers = [busybox_rootfs_tar().read_bytes()] + [
        tar_of({f"p{i}": rng.randbytes(15 * MB)}) for i in range(4)
    ]
    x.registry.put_image("pullme", "latest", make_image(layers))
    name = f"{x.registry.host}/pullme:latest"
    duration = x.timed("pull", name)
    for label, when in [
        ("pull: first download", lambda line: "Downloading" in line or "Pulling fs" in line),
        ("pull: a layer downloaded", lambda line: "Download complete" in line),
        ("pull: a layer extracted", lambda line: "Pull complete" in line),
    ]:
        _absent(x, name)
        x.kill_during(label, ["pull", name], when=when)
    for at in x.points(duration, 3):
        _absent(x, name)
        x.kill_during("pull", ["pull", name], after=at)
    _absent(x, name)
    x.ok("pull", name)
    assert x.ok("run", "--rm", name, "ls", "/p3") == "/p3\n"
    x.ok("rmi", name)


def test_kill_during_push(crashes: Crashes, tmp_path: Path) -> None:
    x = crashes
    (tmp_path / "Dockerfile").write_text(
        "FROM busybox\nRUN head -c 20000000 /dev/urandom > /a\n"
        "RUN head -c 20000000 /dev/urandom > /b\n"
    )

    def fresh(i: int) -> str:
        name = f"{x.registry.host}/pushme:{i}"
        x.ok("build", "--no-cache", "-q", "-t", name, str(tmp_path))
        return name

    started = time.monotonic()
    x.ok("push", fresh(0))
    duration = time.monotonic() - started
    pushes: list[tuple[str, float | None, Callable[[str], bool] | None]] = [
        ("push: preparing", None, lambda line: "Preparing" in line),
        ("push: a layer pushed", None, lambda line: "Pushed" in line),
    ] + [("push", at, None) for at in x.points(duration, 3)]
    for i, (label, at, when) in enumerate(pushes, start=1):
        x.kill_during(label, ["push", fresh(i)], after=at, when=when)
    # mid-upload: the CLI off a terminal prints no "Pushing" lines, so this waits for the
    # registry to hold a partial upload (it used to wait 120 s for a line that never came
    # and kill after the push had finished)
    pushes.append(("push: uploading", None, None))
    x.kill_during("push: uploading", ["push", fresh(len(pushes))], during=x.uploading)
    name = f"{x.registry.host}/pushme:{len(pushes)}"
    out = x.ok("push", name)
    assert "digest: sha256:" in out
    for i in range(len(pushes) + 1):
        x.ok("rmi", f"{x.registry.host}/pushme:{i}")
