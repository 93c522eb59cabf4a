"""The CLI against a scripted Engine API peer on a real Unix socket.

The peer is not dockyard's daemon: it answers the way dockerd answers (anchors §2.1) so the
client's wire sequence, framing and exit codes are checked end to end in-process.
"""

from __future__ import annotations

import io
import json
import socket
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dockyard.cli.client import APIError, Client, Host
from dockyard.cli.main import main
from dockyard.cli.streams import encode_frame

Handler = Callable[["Request", socket.socket], None]


class Request:
    def __init__(self, method: str, target: str, headers: dict[str, str], body: bytes) -> None:
        self.method = method
        self.target = target
        self.path = target.split("?", 1)[0]
        self.headers = headers
        self.body = body


def _read_request(conn: socket.socket) -> Request | None:
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = conn.recv(65536)
        if not data:
            return None
        buf += data
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
    body = b""
    if headers.get("transfer-encoding") == "chunked":
        while True:
            while b"\r\n" not in rest:
                rest += conn.recv(65536)
            size_line, rest = rest.split(b"\r\n", 1)
            size = int(size_line, 16)
            while len(rest) < size + 2:
                rest += conn.recv(65536)
            body += rest[:size]
            rest = rest[size + 2 :]
            if size == 0:
                break
    else:
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            rest += conn.recv(65536)
        body = rest[:length]
    return Request(method, target, headers, body)


def respond(
    conn: socket.socket, status: int, body: bytes = b"", ctype: str = "application/json"
) -> None:
    head = f"HTTP/1.1 {status} X\r\nContent-Type: {ctype}\r\nApi-Version: 1.44\r\n"
    conn.sendall(head.encode() + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)


def respond_chunked(conn: socket.socket, parts: list[bytes]) -> None:
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    for p in parts:
        conn.sendall(b"%x\r\n%s\r\n" % (len(p), p))
    conn.sendall(b"0\r\n\r\n")


class Peer:
    def __init__(self, path: Path, handler: Handler) -> None:
        self.log: list[Request] = []
        self.handler = handler
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(str(path))
        self.sock.listen(16)
        self.host = f"unix://{path}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        with conn:
            req = _read_request(conn)
            if req is None:
                return
            self.log.append(req)
            try:
                self.handler(req, conn)
            except (BrokenPipeError, ConnectionResetError):
                # The client may close once it has what it needs (a run's CLI leaves when
                # the wait answers, before the attach stream's last write): not an error of
                # the peer's, and each test checks the output the client did print.
                pass

    def calls(self) -> list[str]:
        return [f"{r.method} {r.path.removeprefix('/v1.44')}" for r in self.log]


@pytest.fixture
def peer_factory(tmp_path: Path) -> Iterator[Callable[[Handler], Peer]]:
    peers: list[Peer] = []

    def make(handler: Handler) -> Peer:
        peer = Peer(tmp_path / f"p{len(peers)}.sock", handler)
        peers.append(peer)
        return peer

    yield make
    for p in peers:
        p.sock.close()


def _run_handler(start_error: str | None = None, status: int = 3) -> Handler:
    started = threading.Event()

    def handler(req: Request, conn: socket.socket) -> None:
        p = req.path.removeprefix("/v1.44")
        if p == "/containers/create":
            respond(conn, 201, json.dumps({"Id": "cid1", "Warnings": []}).encode())
        elif p == "/containers/cid1/attach":
            assert req.headers["upgrade"] == "tcp" and req.headers["connection"] == "Upgrade"
            # The head and the first frame in one send: the client must keep those bytes.
            conn.sendall(
                b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\n"
                b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n" + encode_frame(1, b"first\n")
            )
            if started.wait(5):
                conn.sendall(encode_frame(1, b"out\n") + encode_frame(2, b"err\n"))
        elif p == "/containers/cid1/wait":
            # As Docker's daemon: the header goes out as soon as the waiter is registered,
            # the body when the container exits.
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n"
            )
            if started.wait(5):
                time.sleep(0.05)
                body = json.dumps({"Error": None, "StatusCode": status}).encode()
                conn.sendall(b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
        elif p == "/containers/cid1/start":
            if start_error:
                respond(conn, 400, json.dumps({"message": start_error}).encode())
                return
            started.set()
            respond(conn, 204)
        else:
            respond(conn, 404, b'{"message":"no route"}')

    return handler


def test_run_sequence_streams_and_exit_code(peer_factory, capfd) -> None:  # type: ignore[no-untyped-def]
    peer = peer_factory(_run_handler(status=3))
    rc = main(["-H", peer.host, "run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2"])
    out, err = capfd.readouterr()
    assert rc == 3
    assert out == "first\nout\n" and err == "err\n"
    calls = peer.calls()
    assert calls[0] == "POST /containers/create"
    # attach and wait are open before start (the daemon relies on it)
    assert calls.index("POST /containers/cid1/start") == 3
    assert set(calls[1:3]) == {"POST /containers/cid1/attach", "POST /containers/cid1/wait"}
    create = json.loads(peer.log[0].body)
    assert create["Cmd"] == ["sh", "-c", "echo out; echo err >&2"]
    assert create["HostConfig"]["AutoRemove"] is True
    wait = next(r for r in peer.log if "/wait" in r.path)
    assert wait.target.endswith("condition=removed")
    attach = next(r for r in peer.log if "/attach" in r.path)
    assert "stdin=1" not in attach.target and "stream=1" in attach.target


def test_run_start_error_not_found_exits_127(peer_factory, capfd) -> None:  # type: ignore[no-untyped-def]
    msg = 'failed to create task: exec: "nope": executable file not found in $PATH'
    peer = peer_factory(_run_handler(start_error=msg))
    rc = main(["-H", peer.host, "run", "busybox", "nope"])
    _, err = capfd.readouterr()
    assert rc == 127
    # docker CLI 28's withHelp: the error as it is, a blank line, the pointer to --help
    assert (
        f"dockyard: Error response from daemon: {msg}\n\nRun 'dockyard run --help' for more "
        "information\n"
    ) in err


def test_run_pulls_on_404_then_detaches(peer_factory, capfd) -> None:  # type: ignore[no-untyped-def]
    attempts: list[int] = []

    def handler(req: Request, conn: socket.socket) -> None:
        p = req.path.removeprefix("/v1.44")
        if p == "/containers/create":
            attempts.append(1)
            if len(attempts) == 1:
                respond(conn, 404, b'{"message":"No such image: busybox:latest"}')
            else:
                respond(conn, 201, b'{"Id":"cid2","Warnings":[]}')
        elif p == "/images/create":
            respond_chunked(conn, [b'{"status":"Pulling from library/busybox","id":"latest"}\n'])
        elif p == "/containers/cid2/wait":
            time.sleep(0.2)
        elif p == "/containers/cid2/start":
            respond(conn, 204)

    peer = peer_factory(handler)
    rc = main(["-H", peer.host, "run", "-d", "--name", "web", "busybox"])
    out, err = capfd.readouterr()
    assert rc == 0 and out == "cid2\n"
    assert "Unable to find image 'busybox:latest' locally" in err
    pull = next(r for r in peer.log if r.path.endswith("/images/create"))
    assert pull.target.endswith("fromImage=busybox&tag=latest")
    assert peer.log[0].target.endswith("/containers/create?name=web")


def test_build_sends_chunked_tar_and_fails_on_error_detail(peer_factory, tmp_path, capfd) -> None:  # type: ignore[no-untyped-def]
    # a daemon without build sessions (404 on /session): the CLI sends the tar instead
    def handler(req: Request, conn: socket.socket) -> None:
        if req.path.endswith("/session"):
            respond(conn, 404, b'{"message":"page not found"}')
            return
        respond_chunked(
            conn,
            [
                b'{"stream":"Step 1/2 : FROM busybox"}\n{"stream":"\\n"}\n',
                b'{"errorDetail":{"message":"The command returned a non-zero code: 1"},'
                b'"error":"The command returned a non-zero code: 1"}\n',
            ],
        )

    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN false\n")
    peer = peer_factory(handler)
    rc = main(["-H", peer.host, "build", "-t", "a:1", "-t", "b", "--build-arg", "X=2", str(ctx)])
    out, err = capfd.readouterr()
    assert rc == 1
    assert "Step 1/2 : FROM busybox\n" in out
    assert "The command returned a non-zero code: 1" in err
    session, req = peer.log
    assert session.headers["upgrade"] == "h2c" and session.path.endswith("/session")
    assert req.headers["transfer-encoding"] == "chunked"
    assert req.headers["content-type"] == "application/x-tar"
    assert "t=a%3A1&t=b&dockerfile=Dockerfile" in req.target
    assert "buildargs=%7B%22X%22%3A+%222%22%7D" in req.target
    with tarfile.open(fileobj=io.BytesIO(req.body)) as tf:
        names = tf.getnames()
    assert names == ["Dockerfile"]


def test_ps_and_api_error(peer_factory, capfd) -> None:  # type: ignore[no-untyped-def]
    def handler(req: Request, conn: socket.socket) -> None:
        if req.path.endswith("/containers/json"):
            assert "all=1" in req.target
            respond(conn, 200, b"[]")
        else:
            respond(conn, 404, b'{"message":"No such container: x"}')

    peer = peer_factory(handler)
    assert main(["-H", peer.host, "ps", "-a"]) == 0
    assert capfd.readouterr().out.startswith("CONTAINER ID   IMAGE")
    assert main(["-H", peer.host, "logs", "x"]) == 1
    assert capfd.readouterr().err == "Error response from daemon: No such container: x\n"


def test_client_reads_chunked_and_raises_api_error(peer_factory) -> None:  # type: ignore[no-untyped-def]
    def handler(req: Request, conn: socket.socket) -> None:
        if req.path == "/_ping":
            conn.sendall(b"HTTP/1.1 200 OK\r\nApi-Version: 1.44\r\nContent-Length: 2\r\n\r\n")
        elif req.path.endswith("/big"):
            respond_chunked(conn, [b"a" * 100000, b"b", b"c" * 3])
        else:
            respond(conn, 409, b'{"message":"conflict"}')

    peer = peer_factory(handler)
    client = Client(Host("unix", peer.host.removeprefix("unix://")))
    assert client.ping()["api-version"] == "1.44"  # HEAD: no body despite Content-Length
    assert client.call("GET", "/big") == b"a" * 100000 + b"bccc"
    with pytest.raises(APIError) as exc:
        client.call("POST", "/x")
    assert exc.value.status == 409 and exc.value.message == "conflict"


def test_unreachable_non_unix_host_is_not_autostarted(capfd) -> None:  # type: ignore[no-untyped-def]
    assert main(["-H", "tcp://127.0.0.1:1", "ps"]) == 1
    assert "Cannot connect to the dockyard daemon at tcp://127.0.0.1:1" in capfd.readouterr().err


def test_usage_error_exit_codes(capfd) -> None:  # type: ignore[no-untyped-def]
    # docker CLI 28: too few arguments exit 1, a flag error 125 (test_usage_vs_docker.py
    # compares every command's with docker's own)
    assert main(["run"]) == 1
    assert "dockyard: 'dockyard run' requires at least 1 argument" in capfd.readouterr().err
    assert main(["ps", "--bogus"]) == 125
    assert capfd.readouterr().err.startswith("unknown flag: --bogus\n\nUsage:  dockyard ps")
