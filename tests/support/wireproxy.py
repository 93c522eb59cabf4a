"""A recording Unix-socket proxy: clients talk to it, it forwards to a daemon's socket and keeps
what each client sent, so a test can compare the requests of two CLIs for the same command."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Request:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes

    @property
    def path(self) -> str:
        """The target without the /vX.Y prefix and query."""
        path = self.target.split("?", 1)[0]
        parts = path.split("/", 2)
        if len(parts) > 2 and parts[1].startswith("v") and parts[1][1:2].isdigit():
            return "/" + parts[2]
        return path

    @property
    def query(self) -> list[tuple[str, str]]:
        from urllib.parse import parse_qsl

        return sorted(parse_qsl(self.target.partition("?")[2], keep_blank_values=True))

    def json(self) -> Any:
        return json.loads(self.body) if self.body.strip() else None


def _parse(stream: bytes) -> list[Request]:
    """The requests in one connection's client-to-daemon bytes (up to a hijack)."""
    out: list[Request] = []
    while b"\r\n\r\n" in stream:
        head, rest = stream.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        method, target, *_ = lines[0].split(" ")
        headers = {
            k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])
        }
        body = b""
        if headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size_line, _, rest = rest.partition(b"\r\n")
                size = int(size_line.split(b";")[0] or b"0", 16)
                if size == 0:
                    rest = rest.partition(b"\r\n")[2]
                    break
                body += rest[:size]
                rest = rest[size + 2 :]
        else:
            n = int(headers.get("content-length", "0") or 0)
            body, rest = rest[:n], rest[n:]
        out.append(Request(method, target, headers, body))
        if headers.get("upgrade"):
            break
        stream = rest
    return out


@dataclass
class RecordingProxy:
    upstream: Path
    listen: Path
    streams: list[bytearray] = field(default_factory=list)
    _sock: socket.socket | None = None

    @property
    def host(self) -> str:
        return f"unix://{self.listen}"

    def start(self) -> RecordingProxy:
        self._sock = socket.socket(socket.AF_UNIX)
        self._sock.bind(str(self.listen))
        self._sock.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def _accept(self) -> None:
        assert self._sock is not None
        while True:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            up = socket.socket(socket.AF_UNIX)
            up.connect(str(self.upstream))
            record = bytearray()
            self.streams.append(record)
            threading.Thread(target=self._pipe, args=(client, up, record), daemon=True).start()
            threading.Thread(target=self._pipe, args=(up, client, None), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket, record: bytearray | None) -> None:
        try:
            while data := src.recv(65536):
                if record is not None:
                    record += data
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

    def requests(self) -> list[Request]:
        out: list[Request] = []
        for stream in list(self.streams):
            out.extend(_parse(bytes(stream)))
        return out

    def clear(self) -> None:
        self.streams.clear()

    def stop(self) -> None:
        if self._sock is not None:
            self._sock.close()
        self.listen.unlink(missing_ok=True)
