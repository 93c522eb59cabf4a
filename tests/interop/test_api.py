"""The Engine API surface the docker CLI relies on: /_ping, version prefixes, error bodies.

Each check runs against our daemon and, where marked `dockerd`, against the reference dockerd
with the same request, so the expected answer is Docker's, not ours.
"""

from __future__ import annotations

import http.client
import json
import socket
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import Clients
from tests.support.daemons import ReferenceDockerd

pytestmark = pytest.mark.root


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path) -> None:
        super().__init__("localhost", timeout=30)
        self._path = str(path)

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(self._path)
        self.sock = s


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


def call(sock: Path, method: str, path: str, body: object | None = None) -> Reply:
    return call_raw(sock, method, path, json.dumps(body).encode() if body is not None else None)


def call_raw(sock: Path, method: str, path: str, data: bytes | None) -> Reply:
    conn = _UnixConnection(sock)
    try:
        headers = {"Content-Type": "application/json"} if data is not None else {}
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


@pytest.fixture(scope="module")
def sock(clients: Clients) -> Path:
    return clients.daemon.socket


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_ping(sock: Path, method: str) -> None:
    r = call(sock, method, "/_ping")
    assert r.status == 200
    assert r.body == (b"OK" if method == "GET" else b"")
    assert r.headers["api-version"] == "1.44"
    assert r.headers["builder-version"] == "2"  # BuildKit on /grpc and /session
    assert r.headers["ostype"] == "linux"
    assert r.headers["docker-experimental"] == "false"
    assert r.headers["cache-control"] == "no-cache, no-store, must-revalidate"
    assert r.headers["pragma"] == "no-cache"
    assert r.headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize("prefix", ["", "/v1.24", "/v1.41", "/v1.44"])
def test_supported_versions(sock: Path, prefix: str) -> None:
    r = call(sock, "GET", f"{prefix}/version")
    assert r.status == 200
    doc = r.json()
    assert isinstance(doc, dict)
    assert (doc["ApiVersion"], doc["MinAPIVersion"]) == ("1.44", "1.24")
    assert call(sock, "GET", f"{prefix}/_ping").body == b"OK"


@pytest.mark.parametrize(
    ("version", "words"),
    [
        ("1.23", "is too old. Minimum supported API version is 1.24"),
        ("1.12", "is too old. Minimum supported API version is 1.24"),
        ("1.45", "is too new. Maximum supported API version is 1.44"),
        ("2.0", "is too new. Maximum supported API version is 1.44"),
    ],
)
def test_unsupported_versions(sock: Path, version: str, words: str) -> None:
    r = call(sock, "GET", f"/v{version}/version")
    assert r.status == 400
    assert r.json() == {
        "message": f"client version {version} {words}"
        + (", please upgrade your client to a newer version" if "old" in words else "")
    }
    assert r.headers["content-type"] == "application/json"


def test_error_statuses(sock: Path, clients: Clients) -> None:
    r = call(sock, "GET", "/v1.44/images/no-such-image-x/json")
    assert (r.status, r.json()) == (404, {"message": "No such image: no-such-image-x:latest"})
    r = call(sock, "GET", "/containers/no-such-container-x/json")
    assert (r.status, r.json()) == (404, {"message": "No such container: no-such-container-x"})
    r = call(sock, "POST", "/images/busybox/tag?repo=Bad_Upper")
    assert r.status == 400
    assert "invalid reference format" in str(r.json())
    r = call(sock, "POST", "/containers/create", {"Image": "busybox", "Cmd": ["true"]})
    assert r.status == 201
    cid = r.json()["Id"]  # type: ignore[index]
    try:
        clients.ok("tag", "busybox", "interop-api-conflict:1")
        r = call(sock, "DELETE", "/images/busybox")
        # Two names: removing one untags it; the image stays for the container.
        assert r.status == 200
        clients.ok("tag", "interop-api-conflict:1", "busybox")
        image_id = json.loads(clients.ok("inspect", "busybox"))[0]["Id"]
        r = call(sock, "DELETE", f"/images/{image_id}")
        assert r.status == 409
        assert "conflict" in r.json()["message"]  # type: ignore[index]
    finally:
        call(sock, "DELETE", f"/containers/{cid}?force=1")
        call(sock, "DELETE", "/images/interop-api-conflict:1")
    r = call(sock, "GET", "/no/such/endpoint")
    assert (r.status, r.json()) == (404, {"message": "page not found"})


def test_unsupported_host_config_is_refused_by_name(sock: Path) -> None:
    r = call(
        sock,
        "POST",
        "/containers/create",
        {"Image": "busybox", "Cmd": ["true"], "HostConfig": {"OomScoreAdj": 500}},
    )
    assert r.status == 400
    assert "--oom-score-adj" in r.json()["message"]  # type: ignore[index]
    # At its default value the same field is accepted.
    r = call(
        sock,
        "POST",
        "/containers/create",
        {
            "Image": "busybox",
            "Cmd": ["true"],
            "HostConfig": {"OomScoreAdj": 0, "Privileged": False},
        },
    )
    assert r.status == 201
    call(sock, "DELETE", f"/containers/{r.json()['Id']}?force=1")  # type: ignore[index]


@pytest.mark.dockerd
def test_ping_headers_match_dockerd(sock: Path, reference: ReferenceDockerd) -> None:
    for method in ("GET", "HEAD"):
        ours = call(sock, method, "/_ping")
        theirs = call(reference.socket, method, "/_ping")
        assert (ours.status, ours.body) == (theirs.status, theirs.body)
        keys = {
            "cache-control",
            "content-type",
            "docker-experimental",
            "ostype",
            "pragma",
            "content-length",
        }
        assert {k: ours.headers.get(k) for k in keys} == {k: theirs.headers.get(k) for k in keys}
        assert set(theirs.headers) - set(ours.headers) <= {"date"}
        # Builder-Version is ours to choose: 2 (BuildKit, served on /grpc and /session), as
        # Docker 23+ sends; Docker 20.10 without BuildKit sends none.
        assert ours.headers["builder-version"] == "2"


# Requests whose answer Docker 20.10 words as Docker 25+ does; the others differ between Docker
# versions (20.10 says "no such image: x: No such image: x:latest" on inspect, answers 500 to a
# bad tag, and accepts API versions down to 1.12), so only their status is compared.
SAME_BODY = [
    ("GET", "/containers/no-such-x/json"),
    ("DELETE", "/images/no-such-image-x"),
    ("DELETE", "/containers/no-such-x"),
    ("POST", "/containers/no-such-x/start"),
    ("GET", "/images/no-such-image-x/history"),
    ("GET", "/images/get?names=no-such-image-x"),
    ("GET", "/images/no-such-image-x/get"),
    ("GET", "/no/such/endpoint"),
    ("GET", "/v9.1/version"),
    ("POST", "/images/no-such-image-x/tag?repo=x"),
    ("POST", "/images/no-such-image-x:1/tag?repo=x"),
    ("DELETE", "/images/no-such-image-x:2"),
]


@pytest.mark.dockerd
@pytest.mark.parametrize(("method", "path"), [*SAME_BODY, ("GET", "/images/no-such-image-x/json")])
def test_errors_match_dockerd(
    sock: Path, reference: ReferenceDockerd, method: str, path: str
) -> None:
    ours = call(sock, method, path)
    theirs = call(reference.socket, method, path)
    assert ours.status == theirs.status
    assert ours.headers["content-type"] == theirs.headers["content-type"] == "application/json"
    if (method, path) in SAME_BODY:
        mine, docker = ours.json(), theirs.json()
        if "version" in path:  # the maximum differs: 1.44 here, 1.41 in Docker 20.10
            assert isinstance(mine, dict) and isinstance(docker, dict)
            mine, docker = mine["message"][:-4], docker["message"][:-4]
        assert mine == docker


@pytest.mark.dockerd
def test_create_with_missing_image_matches_dockerd(sock: Path, reference: ReferenceDockerd) -> None:
    body = {"Image": "no-such-image-x", "Cmd": ["true"]}
    ours = call(sock, "POST", "/containers/create", body)
    theirs = call(reference.socket, "POST", "/containers/create", body)
    assert (ours.status, ours.json()) == (theirs.status, theirs.json())


@pytest.mark.dockerd
def test_swarm_leave_answers_as_dockerd(clients: Clients, reference: ReferenceDockerd) -> None:
    for path in ("/swarm/leave?force=1", "/v1.41/swarm/leave", "/swarm"):
        method = "GET" if path == "/swarm" else "POST"
        ours = call(clients.daemon.socket, method, path)
        theirs = call(reference.socket, method, path)
        assert (ours.status, ours.json()) == (theirs.status, theirs.json())
    assert ours.status == 503


def _exec_start(sock: Path, cid: str, cmd: list[str]) -> tuple[str, Reply]:
    made = call(sock, "POST", f"/containers/{cid}/exec", {"Cmd": cmd, "AttachStdout": True})
    assert made.status == 201, made.body
    eid = str(made.json()["Id"])  # type: ignore[index]
    return eid, call(sock, "POST", f"/exec/{eid}/start", {"Detach": False, "Tty": False})


def _exec_failures(sock: Path, name: str) -> dict[str, object]:
    """What a client sees of the three ways an exec start fails (moby's postContainerExecStart
    and ContainerExecStart): an exec that already ran, a command runc cannot start, a
    container that stopped between the exec's create and its start."""
    call(sock, "DELETE", f"/containers/{name}?force=1")
    made = call(
        sock,
        "POST",
        f"/containers/create?name={name}",
        {"Image": "busybox:latest", "Cmd": ["sleep", "60"]},
    )
    assert made.status == 201, made.body
    cid = str(made.json()["Id"])  # type: ignore[index]
    try:
        assert call(sock, "POST", f"/containers/{cid}/start").status == 204
        seen: dict[str, object] = {}
        eid, first = _exec_start(sock, cid, ["echo", "hi"])
        again = call(sock, "POST", f"/exec/{eid}/start", {"Detach": False, "Tty": False})
        # moby hijacks first, then finds the exec already ran: the error is stdout's frame
        seen["again"] = (
            first.status,
            first.body,
            again.status,
            again.body.replace(eid.encode(), b"<EID>"),
        )
        eid, bad = _exec_start(sock, cid, ["/no/such/binary"])
        inspected = call(sock, "GET", f"/exec/{eid}/json").json()
        assert isinstance(inspected, dict)
        seen["bad"] = (
            bad.status,
            bad.body[:1],
            b"OCI runtime exec failed" in bad.body,
            inspected["ExitCode"],
            inspected["Running"],
        )
        made = call(sock, "POST", f"/containers/{cid}/exec", {"Cmd": ["true"]})
        late = str(made.json()["Id"])  # type: ignore[index]
        assert call(sock, "POST", f"/containers/{cid}/kill").status == 204
        assert call(sock, "POST", f"/containers/{cid}/wait").status == 200
        stopped = call(sock, "POST", f"/exec/{late}/start", {"Detach": False, "Tty": False})
        # moby forgets a container's execs when it stops: start and inspect find none
        looked = call(sock, "GET", f"/exec/{late}/json")
        seen["stopped"] = [
            (
                r.status,
                r.headers.get("content-type"),
                json.loads(r.body.replace(late.encode(), b"<EID>")),
            )
            for r in (stopped, looked)
        ]
        return seen
    finally:
        call(sock, "DELETE", f"/containers/{cid}?force=1")


@pytest.mark.dockerd
def test_exec_start_failures_answer_as_dockerd(sock: Path, reference: ReferenceDockerd) -> None:
    ours = _exec_failures(sock, "exec-fail-probe")
    theirs = _exec_failures(reference.socket, "exec-fail-probe")
    assert ours == theirs
    assert theirs["bad"] == (200, b"\x01", True, 126, False)
    assert theirs["stopped"][0][0] == 404  # type: ignore[index]
