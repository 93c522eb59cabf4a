"""An attach stream ends when the container it waits on cannot give it output any more: its
start failed (moby's containerStart resets the container, which closes its streams) or it
was removed. `docker run --rm busybox /nonexistent` opens the attach before the start; the
daemon kept that connection (and its handler task) until shutdown, one per failed run."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from tests.conftest import Clients
from tests.support.api import post_json, request


def _attach(sock_path: Path, cid: str) -> socket.socket:
    """A hijacked attach as the docker CLI opens it (stdout and stderr, stream)."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(str(sock_path))
    s.sendall(
        (
            f"POST /v1.44/containers/{cid}/attach?stream=1&stdout=1&stderr=1 HTTP/1.1\r\n"
            "Host: localhost\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        assert chunk, head
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return s


def _seconds_until_eof(s: socket.socket, limit: float) -> float:
    s.settimeout(limit)
    started = time.monotonic()
    try:
        while s.recv(4096):
            pass
    except TimeoutError:
        return float("inf")
    return time.monotonic() - started


def _create(clients: Clients, name: str, cmd: list[str], *, auto_remove: bool) -> str:
    reply = post_json(
        clients.daemon.socket,
        f"/v1.44/containers/create?name={name}",
        {
            "Image": "busybox",
            "Cmd": cmd,
            "AttachStdout": True,
            "AttachStderr": True,
            "HostConfig": {"AutoRemove": auto_remove},
        },
    )
    assert reply.status == 201, reply.body
    return str(reply.json()["Id"])


@pytest.mark.parametrize("auto_remove", [True, False], ids=["rm", "kept"])
def test_attach_ends_when_the_start_fails(clients: Clients, auto_remove: bool) -> None:
    name = f"attach-end-{int(auto_remove)}-{time.monotonic_ns() % 100000}"
    cid = _create(clients, name, ["/nonexistent"], auto_remove=auto_remove)
    try:
        attach = _attach(clients.daemon.socket, cid)
        try:
            start = request(clients.daemon.socket, "POST", f"/v1.44/containers/{cid}/start")
            assert start.status >= 400 and "/nonexistent" in start.message
            assert _seconds_until_eof(attach, 5.0) < 3.0
        finally:
            attach.close()
    finally:
        request(clients.daemon.socket, "DELETE", f"/v1.44/containers/{cid}?force=1")


def test_attach_ends_when_the_container_is_removed(clients: Clients) -> None:
    name = f"attach-rm-{time.monotonic_ns() % 100000}"
    cid = _create(clients, name, ["true"], auto_remove=False)
    attach = _attach(clients.daemon.socket, cid)
    try:
        gone = request(clients.daemon.socket, "DELETE", f"/v1.44/containers/{cid}")
        assert gone.status == 204, gone.body
        assert _seconds_until_eof(attach, 5.0) < 3.0
    finally:
        attach.close()
