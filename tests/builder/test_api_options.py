"""/build options as docker-py sends them: cachefrom, shmsize, extrahosts, and the stream's
stderr marking and pre-stream errors, with dockerd's semantics."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest

from tests.conftest import Clients

pytestmark = pytest.mark.root
docker = pytest.importorskip("docker")


@pytest.fixture
def api(clients: Clients) -> Iterator[docker.APIClient]:
    client = docker.APIClient(base_url=clients.daemon.host, version="1.41", timeout=120)
    try:
        yield client
    finally:
        client.close()


def _build(api: docker.APIClient, dockerfile: str, **kw: object) -> list[dict[str, object]]:
    return list(api.build(fileobj=io.BytesIO(dockerfile.encode()), decode=True, **kw))


def _text(chunks: list[dict[str, object]]) -> str:
    return "".join(str(c.get("stream", "")) for c in chunks)


def test_cache_from_replaces_the_local_cache(api: docker.APIClient) -> None:
    """moby's ImageCache with sources: with cache_from, a local hit counts only when it is in
    the ancestry of a named image; a name that does not exist gives no cache at all."""
    df = "FROM busybox\nENV CF=1\nRUN echo one > /one\nRUN echo two > /two\n"
    _build(api, df, tag="cf-src")
    assert _text(_build(api, df, tag="cf-2", cache_from=["cf-src"])).count("Using cache") == 3
    assert _text(_build(api, df, tag="cf-3", cache_from=["nosuchtag"])).count("Using cache") == 0
    # a different image as the only source: its ancestry lacks the steps, so no hit either
    assert _text(_build(api, df, tag="cf-4", cache_from=["busybox"])).count("Using cache") == 0
    assert _text(_build(api, df, tag="cf-5")).count("Using cache") == 3


def test_run_stderr_is_marked_as_docker_marks_it(api: docker.APIClient) -> None:
    chunks = _build(api, "FROM busybox\nRUN echo out; echo err-line >&2\n", nocache=True)
    streams = [c.get("stream") for c in chunks]
    assert "\x1b[91merr-line\n\x1b[0m" in streams
    assert "out\n" in streams


@pytest.mark.parametrize(
    ("dockerfile", "message"),
    [
        ("", "the Dockerfile (Dockerfile) cannot be empty"),
        ("# nothing\n", "file with no instructions"),
    ],
)
def test_unusable_dockerfile_is_a_400_before_the_stream(
    api: docker.APIClient, dockerfile: str, message: str
) -> None:
    with pytest.raises(docker.errors.APIError) as info:
        _build(api, dockerfile)
    assert info.value.status_code == 400
    assert message in str(info.value.explanation)


def test_shmsize_and_extrahosts_reach_run(api: docker.APIClient, clients: Clients) -> None:
    df = (
        "FROM busybox\n"
        "RUN df -k /dev/shm | tail -1 | awk '{print $2}' > /shm\n"
        "RUN cp /etc/hosts /hosts\n"
    )
    _build(
        api,
        df,
        tag="opts-img",
        shmsize=32 * 1024 * 1024,
        extra_hosts={"one.test": "127.0.0.1", "v6.test": "::1"},
        nocache=True,
    )
    out = clients.ok("run", "--rm", "opts-img", "cat", "/shm", "/hosts")
    shm, hosts = out.split("\n", 1)
    assert shm == str(32 * 1024)
    assert "127.0.0.1\tone.test" in hosts and "::1\tv6.test" in hosts
    with pytest.raises(docker.errors.APIError, match="SHM size can not be less than 0"):
        _build(api, "FROM busybox\n", shmsize=-1)
    with pytest.raises(docker.errors.APIError, match="invalid IP address"):
        _build(api, "FROM busybox\n", extra_hosts={"x": "not-an-ip"})


def test_network_mode_a_user_network(api: docker.APIClient) -> None:
    """networkmode=NAME: each RUN joins the network and resolves its containers' names and
    aliases there (docker-py's test_build_with_network_mode); the step's address is given
    back; none still has no network; an unknown name is a 404."""
    net = api.create_network("build-net")["Id"]
    target = api.create_container("busybox", "top")["Id"]
    try:
        api.start(target)
        api.connect_container_to_network(target, net, aliases=["pingtarget.docker"])
        df = "FROM busybox\nRUN ping -c1 -W5 pingtarget.docker && cat /etc/resolv.conf\n"
        out = _build(api, df, network_mode="build-net", tag="b-usernet", nocache=True)
        assert "errorDetail" not in out[-1], out
        gateway = api.inspect_network(net)["IPAM"]["Config"][0]["Gateway"]
        assert f"nameserver {gateway}" in _text(out)
        assert list(api.inspect_network(net)["Containers"]) == [target]
        nothing = _build(api, df, network_mode="none", tag="b-nonet", nocache=True)
        assert nothing[-1]["errorDetail"]["code"] == 1
        with pytest.raises(docker.errors.APIError, match="network nosuchnet not found"):
            _build(api, df, network_mode="nosuchnet")
    finally:
        api.remove_container(target, force=True)
        api.remove_network(net)
        for tag in ("b-usernet",):
            try:
                api.remove_image(tag)
            except docker.errors.NotFound:
                pass
