"""The C monitor against the Python one: the same json-file log bytes for the same output."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from dockyard.runtime.monitor_client import spawn_monitor
from dockyard.runtime.runc import Runc
from tests.runtime.conftest import BundleFactory

pytestmark = pytest.mark.root

# Invalid and truncated UTF-8, a surrogate encoded in UTF-8, control bytes, what Go escapes
# (<, >, &, U+2028, U+2029), a non-BMP character, a CR, a line longer than the 16 KiB split,
# stderr interleaved, and a last line without a newline.
SCRIPT = r"""
printf '\377 \342\202 \355\240\200 \340\200 \364\220\200\200 \301\277 end\n'
printf 'ctl \001\002\010\014\033\177 tab\t cr\r quote" back\\ <a&b> \342\200\250\342\200\251\n'
printf 'wide \360\237\220\263 \303\251\n' >&2
head -c 40000 /dev/zero | tr '\0' x
printf '\npartial'
"""


def run_under(kind: str, runc: Runc, make_bundle: BundleFactory, tmp_path: Path) -> list[bytes]:
    cid, bundle = make_bundle("sh", "-c", SCRIPT)
    state = tmp_path / f"state-{kind}"
    old = os.environ.pop("DOCKYARD_MONITOR", None)
    if kind == "python":
        os.environ["DOCKYARD_MONITOR"] = "python"
    try:

        async def scenario() -> int:
            handle = await spawn_monitor(
                container_id=cid, bundle=bundle, state_dir=state, runc=runc, open_stdin=False
            )
            await handle.started()
            async for _ in handle.output():
                pass
            return await asyncio.wait_for(handle.wait(), 10)

        assert asyncio.run(scenario()) == 0
    finally:
        os.environ.pop("DOCKYARD_MONITOR", None)
        if old is not None:
            os.environ["DOCKYARD_MONITOR"] = old
    lines = (state / "container.log").read_bytes().splitlines()
    # Everything but the timestamp must be the same bytes.
    return [line[: line.rindex(b',"time":')] for line in lines]


def test_native_log_bytes_equal_the_python_monitors(
    runc: Runc, make_bundle: BundleFactory, tmp_path: Path
) -> None:
    native = run_under("native", runc, make_bundle, tmp_path)
    python = run_under("python", runc, make_bundle, tmp_path)
    # stdout and stderr are separate pipes: only each stream's order is defined.
    for stream in (b'"stdout"', b'"stderr"'):
        assert [x for x in native if stream in x] == [x for x in python if stream in x]
    entries = [json.loads(x + b"}") for x in native]
    assert [len(e["log"]) for e in entries if e["log"].startswith("xxx")] == [16384, 16384, 7233]
    assert entries[-1]["log"] == "partial"
    assert any("\ufffd" in e["log"] for e in entries)


def test_monitor_is_launched_on_the_loop_without_a_worker_thread(
    runc: Runc, make_bundle: BundleFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The intermediate's exit is awaited through a pidfd: a worker thread would wait for the
    GIL while the loop writes the bundle (issue 17 row d), so none is used once the monitor's
    binary is known."""
    from dockyard.runtime import monitor_client, native

    cid, bundle = make_bundle("true")
    state = tmp_path / "state"
    cache = runc.state_root.absolute().parent / "bin"
    monkeypatch.delenv("DOCKYARD_MONITOR", raising=False)
    native.command(native.MONITOR, cache, "dockyard.runtime.monitor", "DOCKYARD_MONITOR")

    def no_thread(*_args: object, **_kw: object) -> None:
        raise AssertionError("spawn_monitor used a worker thread")

    async def scenario() -> int:
        monkeypatch.setattr(monitor_client.asyncio, "to_thread", no_thread)
        ticks = 0
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def bundle_writer() -> None:  # the loop runs while the monitor comes up
            nonlocal ticks
            for _ in range(3):
                ticks += 1
                await asyncio.sleep(0)
            ready.set_result(None)

        writer = asyncio.ensure_future(bundle_writer())
        handle = await monitor_client.spawn_monitor(
            container_id=cid,
            bundle=bundle,
            state_dir=state,
            runc=runc,
            open_stdin=False,
            ready=ready,
        )
        await writer
        monkeypatch.undo()
        assert ticks == 3
        await handle.started()
        async for _ in handle.output():
            pass
        return await asyncio.wait_for(handle.wait(), 10)

    assert asyncio.run(scenario()) == 0
