"""Raw Engine API calls on a Unix socket, and a daemon's memory, for tests that need to send
what no client would (wrong types, huge bodies) or to watch the daemon while it works."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def message(self) -> str:
        return str(self.json().get("message", ""))


def _read_reply(sock: socket.socket) -> Reply:
    f = sock.makefile("rb")
    status_line = f.readline().decode()
    status = int(status_line.split()[1])
    headers: dict[str, str] = {}
    while (line := f.readline().decode()) not in ("\r\n", "\n", ""):
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    if "content-length" in headers:
        body = f.read(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        body = b""
        while (size := int(f.readline().strip() or b"0", 16)) > 0:
            body += f.read(size)
            f.readline()
    else:
        body = f.read()
    return Reply(status, headers, body)


def request(
    path: Path,
    method: str,
    target: str,
    body: bytes | Iterable[bytes] | None = None,
    *,
    content_type: str = "application/json",
    length: int | None = None,
    timeout: float = 120,
) -> Reply:
    """One request on its own connection. `body` as bytes goes with Content-Length; an
    iterable of chunks goes chunked, unless `length` announces its total size."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(timeout)
    s.connect(str(path))
    try:
        head = [f"{method} {target} HTTP/1.1", "Host: localhost", "Connection: close"]
        if body is not None:
            head.append(f"Content-Type: {content_type}")
        chunked = False
        if isinstance(body, bytes):
            head.append(f"Content-Length: {len(body)}")
        elif body is not None:
            if length is None:
                head.append("Transfer-Encoding: chunked")
                chunked = True
            else:
                head.append(f"Content-Length: {length}")
        s.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        try:
            if isinstance(body, bytes):
                s.sendall(body)
            elif body is not None:
                for chunk in body:
                    s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
                if chunked:
                    s.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the daemon answered and closed before the body was all sent
        return _read_reply(s)
    finally:
        s.close()


def post_json(path: Path, target: str, doc: Any) -> Reply:
    return request(path, "POST", target, json.dumps(doc).encode())


def rss(pid: int) -> int:
    """Resident set size of a process, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


class PeakRSS:
    """The highest RSS a process reaches while the block runs (sampled every 20 ms)."""

    def __init__(self, pid: int) -> None:
        import threading

        self.pid = pid
        self.start = rss(pid)
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            try:
                self.peak = max(self.peak, rss(self.pid))
            except (OSError, AssertionError):
                return

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss(self.pid))

    @property
    def peak_mb(self) -> float:
        return self.peak / (1 << 20)


def frames(data: bytes) -> list[tuple[int, bytes]]:
    """Docker's multiplexed stream (8-byte headers) as (stream, payload) pairs."""
    out = []
    while data:
        stream, size = data[0], int.from_bytes(data[4:8], "big")
        out.append((stream, data[8 : 8 + size]))
        data = data[8 + size :]
    return out
