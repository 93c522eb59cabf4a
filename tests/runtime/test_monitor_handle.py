"""The daemon's end of a monitor connection (MonitorHandle), against a peer the test plays:
what the monitor sent must all be read, whatever happens to what the daemon sends it."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from pathlib import Path

from dockyard.runtime import monitor_protocol as proto
from dockyard.runtime.monitor_client import MonitorHandle


async def _handle(state: Path) -> tuple[MonitorHandle, socket.socket]:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    reader, writer = await asyncio.open_unix_connection(sock=ours)
    return MonitorHandle(reader, writer, state), theirs


def _finish(monitor: socket.socket, state: Path, code: int) -> None:
    """The process printed and exited, and the monitor recorded it, told us and went."""
    monitor.sendall(
        proto.frame(proto.STDOUT, b"db-page\n")
        + proto.frame(
            proto.EXITED, b'{"exit_code": ' + str(code).encode() + b', "finished_at": "t"}'
        )
    )
    (state / proto.EXIT_NAME).write_text(f'{{"exit_code": {code}}}')
    monitor.close()


def test_stdin_closed_after_the_monitor_went_keeps_its_last_output(tmp_path: Path) -> None:
    """`docker compose exec -T app wget ...` with stdin at /dev/null: the client half-closes
    at once, and the exec's end of stdin is sent once the process has started. A quick process
    and a loaded daemon: by then the monitor has sent the output and the exit and closed its
    end. The send failed with EPIPE, and the transport's fatal write error dropped its reader,
    so the frames still unread were lost; the exit code came from exit.json: status 0 and no
    output (the flaky exec step of tests/interop/test_compose.py)."""

    async def scenario() -> tuple[list[tuple[int, bytes]], int]:
        handle, monitor = await _handle(tmp_path)
        monitor.sendall(proto.frame(proto.STARTED, b'{"pid": 42}'))
        assert await asyncio.wait_for(handle.started(), 5) == 42
        _finish(monitor, tmp_path, 3)
        with contextlib.suppress(OSError):
            await handle.close_stdin()
        output = await asyncio.wait_for(_collect(handle), 5)
        return output, await asyncio.wait_for(handle.wait(), 5)

    output, code = asyncio.run(scenario())
    assert (output, code) == ([(1, b"db-page\n")], 3)


def test_stdin_and_resize_to_a_monitor_that_went_are_dropped(tmp_path: Path) -> None:
    """Nobody is left to take them: the caller (a client's stdin relay, a resize) is not
    failed for it, and the output is read to the end."""

    async def scenario() -> list[tuple[int, bytes]]:
        handle, monitor = await _handle(tmp_path)
        monitor.sendall(proto.frame(proto.STARTED, b'{"pid": 42}'))
        await asyncio.wait_for(handle.started(), 5)
        _finish(monitor, tmp_path, 0)
        await handle.write_stdin(b"x" * 300_000)  # more than a socket buffer
        await handle.resize(24, 80)
        await handle.close_stdin()
        return await asyncio.wait_for(_collect(handle), 5)

    assert asyncio.run(scenario()) == [(1, b"db-page\n")]


async def _collect(handle: MonitorHandle) -> list[tuple[int, bytes]]:
    return [item async for item in handle.output()]
