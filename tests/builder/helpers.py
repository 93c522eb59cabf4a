"""Talking to /build directly (for query parameters and aux messages the CLIs do not show)."""

from __future__ import annotations

import http.client
import io
import json
import socket
import tarfile
import urllib.parse
from pathlib import Path
from typing import Any

from tests.conftest import Clients


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=300)
        self._path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(300)
        s.connect(self._path)
        self.sock = s


def context_tar(ctx: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for p in sorted(ctx.rglob("*")):
            tar.add(p, arcname=str(p.relative_to(ctx)), recursive=False)
    return buf.getvalue()


def api_build(clients: Clients, ctx: Path, **params: str) -> list[dict[str, Any]]:
    """POST /build with `ctx` as the context; returns the decoded message stream."""
    conn = _UnixConnection(str(clients.daemon.socket))
    query = urllib.parse.urlencode(params)
    conn.request(
        "POST",
        f"/build?{query}",
        body=context_tar(ctx),
        headers={"Content-Type": "application/x-tar"},
    )
    resp = conn.getresponse()
    body = resp.read().decode()
    conn.close()
    if resp.status != 200:
        return [{"error": body, "status": resp.status}]
    return [json.loads(line) for line in body.splitlines() if line.strip()]


def stream_text(messages: list[dict[str, Any]]) -> str:
    return "".join(str(m.get("stream", "")) for m in messages)


def error_of(messages: list[dict[str, Any]]) -> str:
    for m in messages:
        if "error" in m:
            return str(m["error"])
    return ""
