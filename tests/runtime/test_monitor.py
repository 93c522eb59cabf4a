"""The per-container monitor with real runc: output, log, stdin, exit codes, survival.

Every test runs against both monitors: the C one (data/dockyard-monitor.c, the default) and
the Python one (monitor.py, the fallback without a C compiler); they must be interchangeable.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from dockyard.runtime.monitor import LogOptions
from dockyard.runtime.monitor_client import (
    MonitorHandle,
    attach_monitor,
    monitor_command,
    spawn_monitor,
)
from dockyard.runtime.runc import ContainerStartError, Runc
from tests.runtime.conftest import BundleFactory

pytestmark = pytest.mark.root

RFC3339NANO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")


@pytest.fixture(autouse=True, params=["native", "python"])
def monitor_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    kind: str = request.param
    if kind == "python":
        monkeypatch.setenv("DOCKYARD_MONITOR", "python")
    else:
        monkeypatch.delenv("DOCKYARD_MONITOR", raising=False)
    return kind


def test_the_native_monitor_is_the_default(monitor_kind: str, tmp_path: Path) -> None:
    argv = monitor_command(tmp_path / "bin")
    if monitor_kind == "native":
        assert Path(argv[0]).name.startswith("dockyard-monitor-") and len(argv) == 1
    else:
        assert argv[1:] == ["-m", "dockyard.runtime.monitor"]


async def spawn(
    runc: Runc, cid: str, bundle: Path, state: Path, open_stdin: bool = False
) -> MonitorHandle:
    return await spawn_monitor(
        container_id=cid, bundle=bundle, state_dir=state, runc=runc, open_stdin=open_stdin
    )


async def collect(handle: MonitorHandle) -> list[tuple[int, bytes]]:
    return [item async for item in handle.output()]


def log_entries(state: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in (state / "container.log").read_text().splitlines()]


def test_output_log_and_exit_code(runc: Runc, make_bundle: BundleFactory, tmp_path: Path) -> None:
    cid, bundle = make_bundle("sh", "-c", "echo one; echo two >&2; printf 'a\\nb'; exit 4")
    state = tmp_path / "state"

    async def scenario() -> tuple[int, int, list[tuple[int, bytes]]]:
        handle = await spawn(runc, cid, bundle, state)
        pid = await handle.started()
        output = await asyncio.wait_for(collect(handle), 10)
        code = await asyncio.wait_for(handle.wait(), 10)
        await asyncio.wait_for(handle.closed(), 10)  # its `runc delete` comes after the exit
        return pid, code, output

    pid, code, output = asyncio.run(scenario())
    assert pid > 0 and code == 4
    stdout = b"".join(d for s, d in output if s == 1)
    stderr = b"".join(d for s, d in output if s == 2)
    assert (stdout, stderr) == (b"one\na\nb", b"two\n")
    entries = log_entries(state)
    out_lines = [(e["stream"], e["log"]) for e in entries if e["stream"] == "stdout"]
    assert out_lines == [("stdout", "one\n"), ("stdout", "a\n"), ("stdout", "b")]
    assert ("stderr", "two\n") in [(e["stream"], e["log"]) for e in entries]
    assert all(RFC3339NANO.match(e["time"]) for e in entries)
    exit_doc = json.loads((state / "exit.json").read_text())
    assert exit_doc["exit_code"] == 4 and RFC3339NANO.match(exit_doc["finished_at"])
    assert asyncio.run(runc.state(cid)) is None
    assert not (state / "monitor.sock").exists()


def test_one_runc_process_starts_the_container(
    runc: Runc, make_bundle: BundleFactory, tmp_path: Path
) -> None:
    """`runc run --detach`, not `create` then `start`: a runc process costs ~10-40 ms of a
    start (issue 17 row d). Then `delete` at the exit, as before."""
    calls = tmp_path / "runc-calls"
    wrapper = tmp_path / "runc-wrapper"
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> {calls}\nexec runc "$@"\n')
    wrapper.chmod(0o755)
    counted = Runc(str(wrapper), runc.state_root)
    cid, bundle = make_bundle("sh", "-c", "echo started")
    state = tmp_path / "state"

    async def scenario() -> int:
        handle = await spawn(counted, cid, bundle, state)
        await handle.started()
        await asyncio.wait_for(collect(handle), 10)
        code = await asyncio.wait_for(handle.wait(), 10)
        await asyncio.wait_for(handle.closed(), 10)  # the delete comes after the exit
        return code

    assert asyncio.run(scenario()) == 0
    words = [line.split() for line in calls.read_text().splitlines()]
    subcommands = [
        next(w for w in argv if w in {"create", "start", "run", "delete"}) for argv in words
    ]
    assert subcommands == ["run", "delete"]
    assert "--detach" in words[0]


def test_stdin_is_forwarded(runc: Runc, make_bundle: BundleFactory, tmp_path: Path) -> None:
    cid, bundle = make_bundle("cat")
    state = tmp_path / "state"

    async def scenario() -> tuple[bytes, int]:
        handle = await spawn(runc, cid, bundle, state, open_stdin=True)
        await handle.started()
        await handle.write_stdin(b"ping\n")
        first = await asyncio.wait_for(anext(aiter(handle.output())), 10)
        await handle.write_stdin(b"last")
        await handle.close_stdin()
        rest = await asyncio.wait_for(collect(handle), 10)
        return first[1] + b"".join(d for _, d in rest), await handle.wait()

    assert asyncio.run(scenario()) == (b"ping\nlast", 0)


def test_start_failure_is_reported(runc: Runc, make_bundle: BundleFactory, tmp_path: Path) -> None:
    cid, bundle = make_bundle("no-such-command")
    state = tmp_path / "state"

    async def scenario() -> ContainerStartError:
        handle = await spawn(runc, cid, bundle, state)
        with pytest.raises(ContainerStartError) as info:
            await asyncio.wait_for(handle.started(), 10)
        with pytest.raises(ContainerStartError):
            await asyncio.wait_for(handle.wait(), 10)
        return info.value

    err = asyncio.run(scenario())
    assert err.exit_code == 127 and "no-such-command" in str(err)
    assert json.loads((state / "exit.json").read_text())["exit_code"] == 127
    assert asyncio.run(runc.state(cid)) is None


def test_kill_through_runc_records_128_plus_signal(
    runc: Runc, make_bundle: BundleFactory, tmp_path: Path
) -> None:
    cid, bundle = make_bundle("sleep", "30")
    state = tmp_path / "state"

    async def scenario() -> int:
        handle = await spawn(runc, cid, bundle, state)
        await handle.started()
        await runc.kill(cid, 9)
        return await asyncio.wait_for(handle.wait(), 10)

    assert asyncio.run(scenario()) == 137


def test_monitor_survives_its_daemon_and_accepts_reattach(
    runc: Runc, make_bundle: BundleFactory, tmp_path: Path
) -> None:
    script = "echo before; read line; echo got $line; sleep 0.3; echo after; exit 7"
    cid, bundle = make_bundle("sh", "-c", script)
    state = tmp_path / "state"

    async def first_daemon() -> None:
        handle = await spawn(runc, cid, bundle, state, open_stdin=True)
        await handle.started()
        assert await asyncio.wait_for(anext(aiter(handle.output())), 10) == (1, b"before\n")
        await handle.detach()  # the daemon goes away

    async def second_daemon() -> tuple[bytes, int]:
        handle = await attach_monitor(state)
        pid = await asyncio.wait_for(handle.started(), 10)
        assert pid == handle.pid > 0
        await handle.write_stdin(b"hi\n")
        rest = await asyncio.wait_for(collect(handle), 10)
        return b"".join(d for _, d in rest), await handle.wait()

    asyncio.run(first_daemon())
    state_doc = asyncio.run(runc.state(cid))
    assert state_doc is not None and state_doc["status"] == "running"
    assert asyncio.run(second_daemon()) == (b"got hi\nafter\n", 7)
    logged = [e["log"] for e in log_entries(state)]
    assert logged == ["before\n", "got hi\n", "after\n"]


def test_output_is_logged_with_nobody_attached(
    runc: Runc, make_bundle: BundleFactory, tmp_path: Path
) -> None:
    cid, bundle = make_bundle("sh", "-c", "sleep 0.2; echo alone; exit 2")
    state = tmp_path / "state"

    async def scenario() -> None:
        handle = await spawn(runc, cid, bundle, state)
        await handle.started()
        await handle.detach()

    asyncio.run(scenario())
    deadline = time.monotonic() + 10
    while not (state / "exit.json").exists():
        assert time.monotonic() < deadline, "the monitor never recorded the exit"
        time.sleep(0.05)
    assert json.loads((state / "exit.json").read_text())["exit_code"] == 2
    assert [e["log"] for e in log_entries(state)] == ["alone\n"]


def test_terminal_through_console_socket(
    runc: Runc, make_bundle: BundleFactory, tmp_path: Path
) -> None:
    cid, bundle = make_bundle("sh", "-c", "read x; stty size; tty; echo got $x", terminal=True)
    state = tmp_path / "state"

    async def scenario() -> tuple[bytes, int]:
        handle = await spawn_monitor(
            container_id=cid, bundle=bundle, state_dir=state, runc=runc, open_stdin=True, tty=True
        )
        await handle.started()
        await handle.resize(30, 100)
        await handle.write_stdin(b"hi\n")
        output = await asyncio.wait_for(collect(handle), 10)
        assert {s for s, _ in output} == {1}
        return b"".join(d for _, d in output), await handle.wait()

    out, code = asyncio.run(scenario())
    assert code == 0
    # The terminal echoes the input and turns "\n" into "\r\n".
    assert out == b"hi\r\n30 100\r\n/dev/pts/0\r\ngot hi\r\n"
    assert "".join(e["log"] for e in log_entries(state)) == out.decode()


def run_logged(
    runc: Runc, make_bundle: BundleFactory, state: Path, script: str, log: LogOptions
) -> int:
    cid, bundle = make_bundle("sh", "-c", script)

    async def scenario() -> int:
        handle = await spawn_monitor(
            container_id=cid,
            bundle=bundle,
            state_dir=state,
            runc=runc,
            open_stdin=False,
            log=log,
        )
        await handle.started()
        await asyncio.wait_for(collect(handle), 20)
        return await asyncio.wait_for(handle.wait(), 10)

    return asyncio.run(scenario())


def test_json_file_rotates_at_max_size_keeping_max_file(
    runc: Runc, make_bundle: BundleFactory, tmp_path: Path
) -> None:
    # 300 lines of ~80 bytes of JSON each: ~24 KB through a 2000-byte max-size, 3 files kept.
    state = tmp_path / "state"
    code = run_logged(
        runc,
        make_bundle,
        state,
        "i=0; while [ $i -lt 300 ]; do echo line-$i; i=$((i+1)); done",
        LogOptions("json-file", 2000, 3),
    )
    assert code == 0
    names = sorted(p.name for p in state.glob("container.log*"))
    assert names == ["container.log", "container.log.1", "container.log.2"]
    logged = []
    for name in ("container.log.2", "container.log.1", "container.log"):
        data = (state / name).read_bytes()
        # moby rotates before the entry that finds the file at or past max-size: a rotated
        # file holds max-size plus at most one entry.
        if name != "container.log":
            assert 2000 <= len(data) < 2000 + 100
        logged += [json.loads(line)["log"] for line in data.splitlines()]
    # The newest entries survive, in order and contiguous, ending with the last line.
    assert logged[-1] == "line-299\n"
    first = int(logged[0].strip().split("-")[1])
    assert logged == [f"line-{i}\n" for i in range(first, 300)]
    assert first > 0


def test_json_file_max_file_1_starts_the_file_anew(
    runc: Runc, make_bundle: BundleFactory, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    script = "i=0; while [ $i -lt 100 ]; do echo line-$i; i=$((i+1)); done"
    assert run_logged(runc, make_bundle, state, script, LogOptions("json-file", 1000, 1)) == 0
    assert [p.name for p in state.glob("container.log*")] == ["container.log"]
    entries = log_entries(state)
    assert entries[-1]["log"] == "line-99\n" and len(entries) < 20


def test_log_driver_none_writes_no_log_but_streams_output(
    runc: Runc, make_bundle: BundleFactory, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    cid, bundle = make_bundle("sh", "-c", "echo hello")

    async def scenario() -> list[tuple[int, bytes]]:
        handle = await spawn_monitor(
            container_id=cid,
            bundle=bundle,
            state_dir=state,
            runc=runc,
            open_stdin=False,
            log=LogOptions("none"),
        )
        await handle.started()
        out = await asyncio.wait_for(collect(handle), 10)
        assert await asyncio.wait_for(handle.wait(), 10) == 0
        return out

    assert asyncio.run(scenario()) == [(1, b"hello\n")]
    assert not list(state.glob("container.log*"))


def test_the_monitor_runs_runc_by_its_resolved_path(
    runc: Runc, make_bundle: BundleFactory, tmp_path: Path
) -> None:
    """The daemon hands the monitor runc's absolute path, looked up once: a bare `runc`
    made every runc call of every container try each PATH entry first (issue 17 row d)."""
    cid, bundle = make_bundle("sleep", "5")
    state = tmp_path / "state"

    async def scenario() -> list[str]:
        handle = await spawn(runc, cid, bundle, state)
        await handle.started()
        pid = int((state / "monitor.pid").read_text())
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        await runc.kill(cid, 9)
        await asyncio.wait_for(handle.wait(), 10)
        return argv

    argv = asyncio.run(scenario())
    given = argv[argv.index("--runc") + 1]
    assert Path(given).is_absolute() and Path(given).name == "runc"


def test_runc_is_resolved_once_and_only_when_found(tmp_path: Path) -> None:
    import shutil

    assert Runc("runc").executable == shutil.which("runc")
    missing = Runc("no-such-runtime-here")
    assert missing.executable == "no-such-runtime-here"


def test_the_exit_is_reported_before_runc_delete(
    runc: Runc, make_bundle: BundleFactory, tmp_path: Path
) -> None:
    """The exit code is final once init is reaped: the daemon hears it (and exit.json says
    it) while `runc delete` still runs, ~10-15 ms off every `run --rm` (issue 17 row d); the
    connection ends once the delete is done."""
    wrapper = tmp_path / "slow-delete-runc"
    wrapper.write_text('#!/bin/sh\ncase " $* " in *" delete "*) sleep 1.5;; esac\nexec runc "$@"\n')
    wrapper.chmod(0o755)
    slow = Runc(str(wrapper), runc.state_root)
    cid, bundle = make_bundle("sh", "-c", "exit 3")
    state = tmp_path / "state"

    async def scenario() -> tuple[int, float, bool, float]:
        handle = await spawn(slow, cid, bundle, state)
        await handle.started()
        t0 = time.monotonic()
        await asyncio.wait_for(collect(handle), 10)  # the output ends with the exit too
        code = await asyncio.wait_for(handle.wait(), 10)
        reported = time.monotonic() - t0
        exit_doc = json.loads((state / "exit.json").read_text())["exit_code"] == code
        await asyncio.wait_for(handle.closed(), 10)
        return code, reported, exit_doc, time.monotonic() - t0

    code, reported, exit_doc, gone = asyncio.run(scenario())
    assert code == 3 and exit_doc
    assert reported < 1.0 <= 1.4 < gone
    assert asyncio.run(runc.state(cid)) is None


def test_a_stopped_runc_container_left_by_a_killed_monitor_is_deleted_first(
    runc: Runc, make_bundle: BundleFactory, tmp_path: Path
) -> None:
    """A monitor killed between the exit and its `runc delete` leaves a stopped runc
    container; the next start of that ID clears it instead of failing on "already exists"."""
    from dockyard.runtime.processes import RuncProcesses

    cid, bundle = make_bundle("sh", "-c", "exit 5")

    async def scenario() -> int:
        await runc.run_detached(
            cid, bundle, stdin=None, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for _ in range(100):
            st = await runc.state(cid)
            if st is not None and st["status"] == "stopped":
                break
            await asyncio.sleep(0.05)
        handle = await RuncProcesses(runc).spawn(
            cid, bundle, tmp_path / "state", open_stdin=False, tty=False
        )
        await handle.started()
        code = await asyncio.wait_for(handle.wait(), 10)
        await asyncio.wait_for(handle.closed(), 10)
        return code

    assert asyncio.run(scenario()) == 5
    assert asyncio.run(runc.state(cid)) is None


@pytest.mark.parametrize("ephemeral", [False, True])
def test_an_ephemeral_containers_exit_record_is_not_fsynced(
    runc: Runc, make_bundle: BundleFactory, tmp_path: Path, ephemeral: bool
) -> None:
    """A --rm container's exit.json is removed with it, so it need not survive a power loss:
    no fsync of it or of its directory; every other container's is durable."""
    import shutil

    if shutil.which("strace") is None:
        pytest.skip("needs strace")
    cid, bundle = make_bundle("true")
    state = tmp_path / "state"
    state.mkdir()
    trace = tmp_path / "trace"
    argv = [
        *monitor_command(tmp_path / "bin"),
        *("--id", cid, "--bundle", str(bundle), "--state-dir", str(state)),
        *("--runc", runc.executable, "--runc-root", str(runc.state_root)),
    ]
    if ephemeral:
        argv.append("--ephemeral")
    # Only the monitor's own calls: runc's children are not followed.
    proc = subprocess.run(
        ["strace", "-e", "trace=fsync,fdatasync", "-o", str(trace), *argv],
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads((state / "exit.json").read_text())["exit_code"] == 0
    syncs = [line for line in trace.read_text().splitlines() if "sync(" in line]
    assert (len(syncs) == 0) if ephemeral else (len(syncs) == 2), syncs


def test_the_monitor_is_looked_up_in_a_thread_only_the_first_time(
    monitor_kind: str, tmp_path: Path
) -> None:
    from dockyard.runtime import native

    cache = tmp_path / "bin"
    assert native.known_command(native.MONITOR, cache, "DOCKYARD_MONITOR") is None
    argv = monitor_command(cache)
    known = native.known_command(native.MONITOR, cache, "DOCKYARD_MONITOR")
    assert known == (argv if monitor_kind == "native" else None)


async def _held_monitor(
    runc: Runc, cid: str, bundle: Path, state: Path
) -> tuple[asyncio.Future[None], asyncio.Future[MonitorHandle]]:
    """A monitor spawned with `ready` (the daemon's held start), once it is up and holding:
    the future that lets it go (or calls it off) and the spawn in flight."""
    ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    spawning = asyncio.ensure_future(
        spawn_monitor(
            container_id=cid,
            bundle=bundle,
            state_dir=state,
            runc=runc,
            open_stdin=False,
            ready=ready,
        )
    )
    for _ in range(100):
        if (state / "monitor.pid").exists():
            break
        await asyncio.sleep(0.02)
    return ready, spawning


def test_a_held_monitor_runs_runc_only_once_ready_and_goes_if_called_off(
    runc: Runc, make_bundle: BundleFactory, tmp_path: Path
) -> None:
    """With `ready` the monitor starts while the daemon still writes the bundle, and waits
    for its GO; a start called off (ready fails) leaves no container and no monitor."""
    cid, bundle = make_bundle("sh", "-c", "exit 6")
    state = tmp_path / "state"

    async def go_later() -> tuple[int, dict[str, object] | None]:
        ready, spawning = await _held_monitor(runc, cid, bundle, state)
        await asyncio.sleep(0.2)
        held = await runc.state(cid)
        ready.set_result(None)
        handle = await asyncio.wait_for(spawning, 10)
        await handle.started()
        code = await asyncio.wait_for(handle.wait(), 10)
        await asyncio.wait_for(handle.closed(), 10)
        return code, held

    assert asyncio.run(go_later()) == (6, None)

    cid2, bundle2 = make_bundle("sh", "-c", "exit 0")
    state2 = tmp_path / "state2"

    async def called_off() -> int:
        ready, spawning = await _held_monitor(runc, cid2, bundle2, state2)
        pid = int((state2 / "monitor.pid").read_text())
        ready.set_exception(RuntimeError("a step before runc failed"))
        with pytest.raises(RuntimeError, match="before runc"):
            await asyncio.wait_for(spawning, 10)
        return pid

    pid = asyncio.run(called_off())
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not Path(f"/proc/{pid}").exists()
    assert asyncio.run(runc.state(cid2)) is None
    assert not (state2 / "exit.json").exists() and not (state2 / "monitor.sock").exists()
