"""Terminal plumbing of an attached stream: raw mode, resize, detach keys, the two pumps.

One module for `run`, `start -a`, `attach` and `exec` (docker/cli container/hijack.go and
tty.go): stdin goes raw while a TTY container reads it; the container's terminal follows our
window (a resize at start and on SIGWINCH); on a TTY the detach sequence (ctrl-p ctrl-q, or
`--detach-keys`) ends the attachment and leaves the container running; the output pump
copies raw bytes (TTY) or demultiplexes stdout and stderr frames.
"""

from __future__ import annotations

import _socket
import os
import sys

from dockyard.cli.client import Client, HijackedStream
from dockyard.cli.context import CommandError
from dockyard.cli.streams import STDERR, SYSTEMERR, Demuxer
from dockyard.runtime.detachkeys import (
    DEFAULT_DETACH_KEYS,
    EscapeMatcher,
    InvalidDetachKeys,
    parse_detach_keys,
)
from dockyard.threadlite import Thread

TYPE_CHECKING = False  # typing itself costs ~1.5 ms of start-up; mypy honours this name

if TYPE_CHECKING:
    import signal
else:  # the C module: `signal` builds its enums at import (imports enum, ~2 ms)
    import _signal as signal

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


def escape_keys(spec: str, warn: Callable[[str], None]) -> bytes:
    """The CLI's own escape sequence: an invalid `--detach-keys` warns and falls back to the
    default (hijack.go setupInput); the daemon, sent the same value, refuses it by name."""
    try:
        return parse_detach_keys(spec)
    except InvalidDetachKeys as exc:
        warn(f"invalid detach escape keys, using default: {exc}")
        return DEFAULT_DETACH_KEYS


def write_fd(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            continue
        view = view[n:]


class OutputClosed(CommandError):
    """Whoever reads our stdout or stderr went away (`dockyard run … | head -1`). The docker
    CLI's copy of the stream then fails with Go's write error, which it prints as it is, and
    exits 1 without waiting for the container (which runs on, its output discarded)."""

    def __init__(self, fd: int) -> None:
        super().__init__(f"write /dev/{'stderr' if fd == 2 else 'stdout'}: broken pipe", 1)


def pump_output(stream: HijackedStream, tty: bool) -> str:
    """Copy the stream to our stdout/stderr; returns a daemon systemerr, if any. Raises
    OutputClosed when our stdout or stderr is a pipe nobody reads any more."""
    demux = None if tty else Demuxer()
    fd = 1
    try:
        for chunk in stream.recv_chunks():
            if demux is None:
                write_fd(1, chunk)
                continue
            for kind, payload in demux.feed(chunk):
                if kind == SYSTEMERR:
                    return payload.decode("utf-8", "replace")
                fd = 2 if kind == STDERR else 1
                write_fd(fd, payload)
    except BrokenPipeError:
        raise OutputClosed(fd) from None
    return ""


def pump_input(stream: HijackedStream, escape: EscapeMatcher | None = None) -> None:
    """Our stdin to the container; at EOF half-close so the process sees end of input.

    With `escape`, the detach sequence ends the attachment instead: the socket is shut down
    both ways, which also wakes the output pump's recv.
    """
    try:
        while True:
            data = os.read(0, 32768)
            if not data:
                break
            if escape is not None:
                data = escape.feed(data)
            if data:
                stream.send_all(data)
            if escape is not None and escape.detached:
                try:
                    stream.sock.shutdown(_socket.SHUT_RDWR)
                except OSError:
                    pass
                return
    except OSError:
        pass
    finally:
        if escape is None or not escape.detached:
            stream.close_write()


class RawTerminal:
    """stdin in raw mode while a TTY container is attached (hijack.go setRawTerminal)."""

    def __init__(self) -> None:
        self.saved: list[Any] | None = None

    def __enter__(self) -> RawTerminal:
        import termios
        import tty

        if os.isatty(0):
            self.saved = termios.tcgetattr(0)
            tty.setraw(0)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.saved is not None:
            import termios

            termios.tcsetattr(0, termios.TCSADRAIN, self.saved)
            self.saved = None


def resize(client: Client, path: str) -> None:
    """`POST {path}?h=&w=` with our window size (path: /containers/ID/resize or /exec/ID/resize)."""
    try:
        size = os.get_terminal_size(1)
    except OSError:
        return
    if size.lines and size.columns:
        try:
            client.call("POST", path, {"h": str(size.lines), "w": str(size.columns)})
        except Exception:
            pass


def join(thread: Thread) -> None:
    """Wait with short timeouts, so Python runs signal handlers in the main thread."""
    while thread.is_alive():
        thread.join(0.1)


class Attachment:
    """The terminal side of one hijacked stream: `run()` copies both ways until it ends.

    `detached` tells, afterwards, whether the user typed the detach sequence.
    """

    def __init__(
        self,
        client: Client,
        stream: HijackedStream,
        *,
        tty: bool,
        stdin: bool,
        resize_path: str,
        detach_keys: bytes = DEFAULT_DETACH_KEYS,
    ) -> None:
        self.client = client
        self.stream = stream
        self.tty = tty
        self.stdin = stdin
        self.resize_path = resize_path
        # As docker's CLI: the escape proxy only wraps a terminal's input.
        self.escape = EscapeMatcher(detach_keys) if tty and stdin else None

    @property
    def detached(self) -> bool:
        return self.escape is not None and self.escape.detached

    def run(self) -> str:
        """Copy until the stream ends; returns a daemon systemerr message, if any. Raises
        OutputClosed (from the main thread) when our output's reader has gone."""
        sys.stdout.flush()
        raw = RawTerminal() if self.tty and self.stdin else None
        old_winch: Any = None
        try:
            if raw is not None:
                raw.__enter__()
            if self.tty and os.isatty(1):
                resize(self.client, self.resize_path)
                try:
                    old_winch = signal.signal(
                        signal.SIGWINCH, lambda *_: resize(self.client, self.resize_path)
                    )
                except ValueError:  # not the main thread
                    pass
            if self.stdin:
                Thread(target=pump_input, args=(self.stream, self.escape)).start()
            result: list[str] = []
            closed: list[OutputClosed] = []

            def pump() -> None:
                try:
                    result.append(pump_output(self.stream, self.tty))
                except OutputClosed as exc:
                    closed.append(exc)

            out = Thread(target=pump)
            out.start()
            join(out)
            self.stream.close()
            if closed:
                raise closed[0]
            return result[0] if result else ""
        finally:
            if old_winch is not None:
                signal.signal(signal.SIGWINCH, old_winch)
            if raw is not None:
                raw.__exit__(None, None, None)
