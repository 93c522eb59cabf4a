"""Bad bodies straight at the Engine API: a 400 naming the field (dockerd's decoder words),
never a traceback, and nothing allocated; limits and names checked as dockerd checks them;
JSON bodies over 16 MiB refused with 413 before they are read."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Clients
from tests.containers.helpers import snapshot_leftovers
from tests.support.api import post_json, request, rss

pytestmark = pytest.mark.root

CREATE = "/v1.44/containers/create"


def _snapshots(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "overlay").iterdir()) + sorted(
        p.name for p in (root / "tmp").iterdir()
    )


def _containers(clients: Clients) -> list[str]:
    reply = request(clients.daemon.socket, "GET", "/v1.44/containers/json?all=1")
    return sorted(c["Id"] for c in reply.json())


@pytest.fixture
def untouched(clients: Clients):  # type: ignore[no-untyped-def]
    root = clients.daemon.root
    before = (_snapshots(root), _containers(clients), snapshot_leftovers(root))
    yield
    assert (_snapshots(root), _containers(clients), snapshot_leftovers(root)) == before


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"Image": "busybox", "Cmd": ["true"], "HostConfig": {"Memory": "lots"}},
            "json: cannot unmarshal string into Go struct field HostConfig.HostConfig.Memory "
            "of type int64",
        ),
        (
            {"Image": "busybox", "Cmd": ["true"], "HostConfig": "x"},
            "json: cannot unmarshal string into Go struct field ContainerConfigWrapper.HostConfig "
            "of type container.HostConfig",
        ),
        (
            {"Image": "busybox", "Cmd": ["true"], "CpuShares": [1]},
            "json: cannot unmarshal array into Go struct field ContainerConfigWrapper.CpuShares "
            "of type int64",
        ),
        (
            {"Image": "busybox", "Cmd": 5},
            "json: cannot unmarshal number into Go struct field ContainerConfigWrapper.Cmd "
            "of type string",
        ),
        (
            # docker-py's spelling rules are Go's: keys match case-insensitively
            {"image": "busybox", "cmd": ["true"], "hostconfig": {"memory": "lots"}},
            "json: cannot unmarshal string into Go struct field HostConfig.HostConfig.Memory "
            "of type int64",
        ),
    ],
)
def test_wrong_types_are_400_and_allocate_nothing(
    clients: Clients, untouched: None, body: dict[str, Any], message: str
) -> None:
    reply = post_json(clients.daemon.socket, CREATE, body)
    assert (reply.status, reply.headers["content-type"]) == (400, "application/json")
    assert reply.message == message


def test_other_bodies_are_typed_too(clients: Clients, untouched: None) -> None:
    sock = clients.daemon.socket
    for target, body, field in [
        ("/v1.44/containers/x/update", {"Memory": "x"}, "UpdateConfig.Memory"),
        ("/v1.44/containers/x/exec", {"Cmd": "ls"}, "ExecConfig.Cmd"),
        ("/v1.44/exec/x/start", {"Detach": "yes"}, "ExecStartCheck.Detach"),
        ("/v1.44/networks/create", {"Name": 5}, "NetworkCreateRequest.Name"),
        ("/v1.44/networks/x/connect", {"Container": 5}, "NetworkConnect.Container"),
        ("/v1.44/networks/x/disconnect", {"Force": "y"}, "NetworkDisconnect.Force"),
        ("/v1.44/volumes/create", {"Labels": {"a": 1}}, "VolumeCreateBody.Labels"),
        ("/v1.44/commit?container=x", {"Env": "A=1"}, "ContainerConfigWrapper.Env"),
        ("/v1.44/auth", {"username": 5}, "AuthConfig.username"),
    ]:
        reply = post_json(sock, target, body)
        assert reply.status == 400, (target, reply.body)
        assert f"Go struct field {field} of type" in reply.message, reply.message


def test_memory_range_and_swap_as_dockerd(clients: Clients) -> None:
    sock = clients.daemon.socket
    for memory in (2**70, 1.5e9):
        reply = request(
            sock,
            "POST",
            CREATE,
            b'{"Image":"busybox","Cmd":["true"],"HostConfig":{"Memory":%s}}' % str(memory).encode(),
        )
        assert reply.status == 400 and "of type int64" in reply.message, reply.body
    for hc, message in [
        ({"Memory": 4 << 20}, "Minimum memory limit allowed is 6MB"),
        ({"MemorySwap": 1 << 30}, "You should always set the Memory limit when using Memoryswap"),
    ]:
        reply = post_json(sock, CREATE, {"Image": "busybox", "Cmd": ["true"], "HostConfig": hc})
        assert reply.status == 400 and message in reply.message, reply.body
    # 2^63-1: dockerd's swap of twice the memory wraps, and the container gets unlimited
    # swap; ours must start too (it used to overflow runc's int64).
    script = "cat /sys/fs/cgroup/memory/memory.memsw.limit_in_bytes 2>/dev/null || true"
    for hc in ({"Memory": 2**63 - 1}, {"Memory": 1 << 30, "MemorySwap": -2}):
        name = f"mem{time.monotonic_ns() % 10**8}"
        reply = post_json(
            sock,
            f"{CREATE}?name={name}",
            {"Image": "busybox", "Cmd": ["sh", "-c", script], "HostConfig": hc},
        )
        assert reply.status == 201, reply.body
        try:
            started = request(sock, "POST", f"/v1.44/containers/{name}/start")
            assert started.status == 204, started.body
            waited = request(sock, "POST", f"/v1.44/containers/{name}/wait")
            assert waited.json()["StatusCode"] == 0
        finally:
            request(sock, "DELETE", f"/v1.44/containers/{name}?force=1")


def test_container_names_are_ascii_as_dockerd(clients: Clients, untouched: None) -> None:
    sock = clients.daemon.socket
    for name in ("rel-%C3%A9", "a", "%2F%2Fab", "ab%0A", "_ab", "%EF%BC%A1bc", "%2F"):
        reply = post_json(sock, f"{CREATE}?name={name}", {"Image": "busybox", "Cmd": ["true"]})
        assert reply.status == 400, (name, reply.body)
        assert "only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed" in reply.message


def test_rename_checks_the_name_as_dockerd(clients: Clients) -> None:
    sock = clients.daemon.socket
    name = f"rn{time.monotonic_ns() % 10**8}"
    assert post_json(sock, f"{CREATE}?name={name}", {"Image": "busybox", "Cmd": ["true"]}).status
    try:
        for new, message in [
            ("", "Neither old nor new names may be empty"),
            (name, "Renaming a container with the same name as its current name"),
            ("rel-%C3%A9", "Error when allocating new name: Invalid container name (/rel-é)"),
        ]:
            reply = request(sock, "POST", f"/v1.44/containers/{name}/rename?name={new}")
            assert reply.status == 400 and reply.message.startswith(message), reply.body
    finally:
        request(sock, "DELETE", f"/v1.44/containers/{name}?force=1")


def _huge_body(size: int) -> tuple[int, list[bytes]]:
    head = b'{"Image":"busybox","Cmd":["true"],"Labels":{"x":"'
    tail = b'"}}'
    chunk = b"a" * (1 << 20)
    n = (size - len(head) - len(tail)) // len(chunk)
    return len(head) + n * len(chunk) + len(tail), [head, *([chunk] * n), tail]


@pytest.mark.parametrize("chunked", [False, True])
def test_json_body_over_16mib_is_413_before_parsing(
    clients: Clients, untouched: None, chunked: bool
) -> None:
    pid = clients.daemon.proc.pid  # type: ignore[union-attr]
    before = rss(pid)
    length, chunks = _huge_body(100 << 20)
    reply = request(
        clients.daemon.socket, "POST", CREATE, iter(chunks), length=None if chunked else length
    )
    assert reply.status == 413, reply.body
    assert "16 MiB" in reply.message
    grown = rss(pid) - before
    assert grown < 40 << 20, f"daemon RSS grew by {grown >> 20} MiB for a refused body"
    assert request(clients.daemon.socket, "GET", "/_ping").status == 200


def _wrong_values(t: Any) -> list[Any]:
    """JSON values of every kind the Go type does not take."""
    from dockyard.api.gojson import Array, Map, Ptr, Scalar, Slice, StrSlice, Struct

    while isinstance(t, Ptr):
        t = t.elem
    kinds: dict[str, Any] = {
        "string": "x",
        "number": 5,
        "bool": True,
        "array": [1],
        "object": {"a": 1},
    }
    if isinstance(t, Scalar):
        accepted = {"string": "string", "bool": "bool"}.get(t.kind, "number")
        out = [v for k, v in kinds.items() if k != accepted]
        if t.kind in ("int", "uint"):
            out += [1.5, 2**64]
        return out
    if isinstance(t, StrSlice):
        return [5, True, {"a": 1}, [1]]
    if isinstance(t, (Slice, Array)):
        return [v for k, v in kinds.items() if k != "array"] + [
            [v] for v in _wrong_values(t.elem)[:2]
        ]
    if isinstance(t, (Map, Struct)):
        return [v for k, v in kinds.items() if k != "object"]
    return []


def test_type_mutations_of_a_create_body_never_fail_inside(
    clients: Clients, untouched: None
) -> None:
    """Every field of a create body given each JSON kind its Go type refuses: always a 400
    JSON answer, never 500 or a traceback, and nothing left behind."""
    from dockyard.api import decode as d

    sock = clients.daemon.socket
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    print(f"seed {seed}")
    base: dict[str, Any] = {"Image": "busybox", "Cmd": ["true"], "HostConfig": {}}
    cases: list[tuple[str, Any]] = []
    for name, t in d.CONFIG_FIELDS.items():
        cases += [(name, v) for v in _wrong_values(t)]
    for name, t in d.HOST_CONFIG_FIELDS.items():
        cases += [("HostConfig." + name, v) for v in _wrong_values(t)]
    rng.shuffle(cases)
    for field, value in cases:
        body = json.loads(json.dumps(base))
        if field.startswith("HostConfig."):
            body["HostConfig"][field.split(".", 1)[1]] = value
        else:
            body[field] = value
        reply = post_json(sock, CREATE, body)
        assert reply.status == 400, (seed, field, value, reply.body[:300])
        assert reply.headers["content-type"] == "application/json"
        assert "json: cannot unmarshal" in reply.message, (field, value, reply.message)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"this is not a tar at all\n" * 40, "invalid build context"),
        (b"FROM busybox\n", "invalid build context"),
        (b"\x1f\x8b\x08\x00" + b"\x00" * 200, "invalid build context"),
        (b"", "Cannot locate specified Dockerfile: Dockerfile"),
        (b"\0" * 10240, "Cannot locate specified Dockerfile: Dockerfile"),
    ],
)
def test_build_of_a_body_that_is_not_a_context_is_an_error_status(
    clients: Clients, untouched: None, body: bytes, message: str
) -> None:
    # dockerd reads the context before it answers: an error status, not a 200 stream.
    reply = request(
        clients.daemon.socket,
        "POST",
        "/v1.44/build?t=notatar",
        body,
        content_type="application/x-tar",
    )
    assert reply.status == 400, reply.body
    assert reply.headers["content-type"] == "application/json"
    assert message in reply.message
