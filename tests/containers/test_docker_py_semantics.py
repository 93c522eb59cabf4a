"""What docker-py's own integration suite relies on, as our own tests (issue 15): kill that
answers once a SIGKILLed container is exited, commit of an exiting container, exec framing
from the start request and exec detach keys, log drivers (none, json-file rotation, dockerd's
messages), MemorySwappiness, VolumeDriver, DeviceCgroupRules, CPU real-time settings,
Runtime, and legacy links (default bridge and endpoint links)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Clients

pytestmark = pytest.mark.root
docker = pytest.importorskip("docker")


@pytest.fixture
def api(clients: Clients) -> Iterator[docker.APIClient]:
    client = docker.APIClient(base_url=clients.daemon.host, version="1.41", timeout=60)
    made: list[str] = []
    client.made = made  # type: ignore[attr-defined]
    yield client
    for cid in made:
        try:
            client.remove_container(cid, force=True)
        except docker.errors.APIError:
            pass
    client.close()


def _create(api: docker.APIClient, cmd: list[str] | str, **kw: object) -> str:
    cid: str = api.create_container("busybox", cmd, **kw)["Id"]
    api.made.append(cid)  # type: ignore[attr-defined]
    return cid


def test_sigkill_answers_with_the_container_exited_137(api: docker.APIClient) -> None:
    for _ in range(3):
        cid = _create(api, ["sleep", "9999"])
        api.start(cid)
        api.kill(cid)
        state = api.inspect_container(cid)["State"]
        assert (state["Running"], state["Status"], state["ExitCode"]) == (False, "exited", 137)
        api.remove_container(cid)  # not running any more: no force needed


def test_other_signals_answer_on_delivery(api: docker.APIClient) -> None:
    cid = _create(api, ["sh", "-c", "trap 'echo got-usr1' USR1; while true; do sleep 0.1; done"])
    api.start(cid)
    time.sleep(0.5)
    api.kill(cid, "SIGUSR1")
    assert api.inspect_container(cid)["State"]["Running"] is True
    deadline = time.monotonic() + 10
    while b"got-usr1" not in api.logs(cid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert b"got-usr1" in api.logs(cid)


def test_commit_of_a_container_that_is_exiting(api: docker.APIClient) -> None:
    # docker-py's CommitTest: start `touch /test` and commit at once (pause=True). The
    # container may be gone when the pause comes; dockerd ignores a failed pause.
    for _ in range(5):
        cid = _create(api, ["touch", "/test"])
        api.start(cid)
        image = api.commit(cid)["Id"]
        api.remove_container(cid, force=True)
        api.remove_image(image)


def _frames(sock: socket.socket, timeout: float = 10) -> list[tuple[int, bytes]]:
    sock.settimeout(timeout)
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    out = []
    while data:
        assert len(data) >= 8, data
        kind, size = data[0], int.from_bytes(data[4:8], "big")
        assert data[1:4] == b"\0\0\0", data
        out.append((kind, data[8 : 8 + size]))
        data = data[8 + size :]
    return out


def _raw(sock: object) -> socket.socket:
    raw = getattr(sock, "_sock", sock)
    assert isinstance(raw, socket.socket)
    return raw


def test_exec_framing_follows_the_start_requests_tty(api: docker.APIClient) -> None:
    cid = _create(api, ["cat"], stdin_open=True)
    api.start(cid)
    # Created with a terminal, started without one: multiplexed frames (docker-py's
    # exec_start sends Tty=false by default), the terminal's CRLF inside stdout frames.
    exec_id = api.exec_create(cid, ["sh", "-c", "echo out; echo err >&2"], tty=True)
    assert api.exec_start(exec_id) == b"out\r\nerr\r\n"
    exec_id = api.exec_create(cid, ["printf", "yay"], tty=True)
    frames = _frames(_raw(api.exec_start(exec_id, socket=True)))
    assert frames == [(1, b"yay")]
    # Created without a terminal, started with Tty=true: the raw bytes, no frame headers.
    exec_id = api.exec_create(cid, ["printf", "raw"])
    sock = _raw(api.exec_start(exec_id, socket=True, tty=True))
    sock.settimeout(10)
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    assert data == b"raw"


def _detaches(api: docker.APIClient, cid: str, keys: list[bytes], **create: object) -> None:
    exec_id = api.exec_create(cid, "cat", stdin=True, tty=True, stdout=True, **create)
    sock = _raw(api.exec_start(exec_id, tty=True, socket=True))
    sock.settimeout(10)
    for key in keys:
        sock.sendall(key)
        time.sleep(0.3)
    # Detached: the daemon ends the stream; the exec's process runs on.
    assert sock.recv(128) == b""
    sock.close()
    assert api.exec_inspect(exec_id)["Running"] is True


def test_exec_detach_keys(api: docker.APIClient) -> None:
    cid = _create(api, ["cat"], stdin_open=True)
    api.start(cid)
    _detaches(api, cid, [b"\x10", b"\x11"])  # the default, ctrl-p ctrl-q
    _detaches(api, cid, [b"\x18"], detach_keys="ctrl-x")
    # ctrl-p alone is held back (the start of the sequence) and released by what follows.
    exec_id = api.exec_create(cid, "cat", stdin=True, tty=True, stdout=True)
    sock = _raw(api.exec_start(exec_id, tty=True, socket=True))
    sock.settimeout(10)
    sock.sendall(b"\x10a\n")
    got = b""
    while b"a" not in got:
        got += sock.recv(128)
    sock.close()
    with pytest.raises(docker.errors.APIError, match=r"Invalid escape keys \(ctrl-\?\)"):
        api.exec_create(cid, "cat", stdin=True, tty=True, detach_keys="ctrl-?")


def test_log_driver_none(api: docker.APIClient, clients: Clients) -> None:
    log_config = docker.types.LogConfig(type="none")
    cid = _create(api, ["echo", "hello"], host_config=api.create_host_config(log_config=log_config))
    api.start(cid)
    assert api.wait(cid)["StatusCode"] == 0
    assert api.inspect_container(cid)["HostConfig"]["LogConfig"]["Type"] == "none"
    with pytest.raises(docker.errors.APIError) as err:
        api.logs(cid)
    assert err.value.response.status_code == 501
    assert "configured logging driver does not support reading" in str(err.value)
    assert not list((clients.daemon.root / "containers" / cid).glob("container.log*"))


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"type": "asdf"}, "logger: no log driver named 'asdf' is registered"),
        ({"type": "json-file", "config": {"max-sized": "1"}}, "unknown log opt 'max-sized'"),
        ({"type": "json-file", "config": {"max-file": "0"}}, "max-file cannot be less than 1"),
        ({"type": "json-file", "config": {"max-size": "0"}}, "max-size must be a positive"),
    ],
)
def test_bad_log_config_in_dockerds_words(
    api: docker.APIClient, config: dict[str, object], message: str
) -> None:
    host_config = api.create_host_config(log_config=docker.types.LogConfig(**config))
    with pytest.raises(docker.errors.APIError, match=message) as err:
        _create(api, ["true"], host_config=host_config)
    assert err.value.response.status_code == 400


def test_json_file_rotation_and_logs_across_files(api: docker.APIClient, clients: Clients) -> None:
    log_config = docker.types.LogConfig(
        type="json-file", config={"max-size": "2k", "max-file": "3"}
    )
    script = "i=0; while [ $i -lt 400 ]; do echo line-$i; i=$((i+1)); done"
    cid = _create(
        api, ["sh", "-c", script], host_config=api.create_host_config(log_config=log_config)
    )
    api.start(cid)
    assert api.wait(cid)["StatusCode"] == 0
    hc = api.inspect_container(cid)["HostConfig"]
    assert hc["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "2k", "max-file": "3"}}
    files = sorted(
        p.name for p in (clients.daemon.root / "containers" / cid).glob("container.log*")
    )
    assert files == ["container.log", "container.log.1", "container.log.2"]
    lines = api.logs(cid).decode().splitlines()
    # The newest lines, contiguous across the three files, oldest first.
    first = int(lines[0].split("-")[1])
    assert first > 0 and lines == [f"line-{i}" for i in range(first, 400)]
    assert api.logs(cid, tail=2).decode().splitlines() == ["line-398", "line-399"]


@pytest.mark.parametrize("max_file", ["1", "2"])
def test_follow_goes_on_across_rotations(api: docker.APIClient, max_file: str) -> None:
    log_config = docker.types.LogConfig(
        type="json-file", config={"max-size": "2k", "max-file": max_file}
    )
    # Slow enough that the follower is attached before the first rotation.
    script = "sleep 1; i=0; while [ $i -lt 60 ]; do echo line-$i; i=$((i+1)); sleep 0.05; done"
    cid = _create(
        api, ["sh", "-c", script], host_config=api.create_host_config(log_config=log_config)
    )
    api.start(cid)
    seen = b"".join(api.logs(cid, stream=True, follow=True)).decode().splitlines()
    # Every line once, in order, though the file was rotated several times meanwhile.
    assert seen == [f"line-{i}" for i in range(60)]


def test_memory_swappiness(api: docker.APIClient) -> None:
    cid = _create(api, ["sleep", "60"], host_config=api.create_host_config(mem_swappiness=40))
    api.start(cid)
    assert api.inspect_container(cid)["HostConfig"]["MemorySwappiness"] == 40
    v1 = Path(f"/sys/fs/cgroup/memory/dockyard/{cid}/memory.swappiness")
    if v1.exists():
        assert v1.read_text().strip() == "40"
    with pytest.raises(docker.errors.APIError, match="valid memory swappiness range is 0-100"):
        _create(api, ["true"], host_config=api.create_host_config(mem_swappiness=101))


def test_volume_driver_local_and_an_unknown_one(api: docker.APIClient) -> None:
    cid = _create(
        api,
        ["sh", "-c", "echo ok > /data/f; cat /data/f"],
        host_config=api.create_host_config(binds=["/data"], volume_driver="local"),
    )
    api.start(cid)
    assert api.wait(cid)["StatusCode"] == 0
    assert api.logs(cid) == b"ok\n"
    assert api.inspect_container(cid)["HostConfig"]["VolumeDriver"] == "local"
    # dockerd looks the driver up only to make a volume with it (docker-py's
    # test_create_with_volume_driver makes none and expects the create to pass).
    cid = _create(api, ["true"], host_config=api.create_host_config(volume_driver="nope"))
    assert api.inspect_container(cid)["HostConfig"]["VolumeDriver"] == "nope"
    with pytest.raises(docker.errors.NotFound, match='plugin "nope" not found'):
        _create(
            api, ["true"], host_config=api.create_host_config(binds=["/d"], volume_driver="nope")
        )


def test_device_cgroup_rules(api: docker.APIClient, clients: Clients) -> None:
    rule = "c 7:128 rwm"
    cid = _create(api, ["true"], host_config=api.create_host_config(device_cgroup_rules=[rule]))
    assert api.inspect_container(cid)["HostConfig"]["DeviceCgroupRules"] == [rule]
    api.start(cid)
    assert api.wait(cid)["StatusCode"] == 0
    spec = json.loads(
        (clients.daemon.root / "containers" / cid / "bundle" / "config.json").read_text()
    )
    rules = spec["linux"]["resources"]["devices"]
    assert {"allow": True, "type": "c", "major": 7, "minor": 128, "access": "rwm"} in rules
    any_minor = _create(
        api, ["true"], host_config=api.create_host_config(device_cgroup_rules=["b 8:* r"])
    )
    assert api.inspect_container(any_minor)["HostConfig"]["DeviceCgroupRules"] == ["b 8:* r"]
    with pytest.raises(docker.errors.APIError, match="invalid device cgroup rule format"):
        _create(api, ["true"], host_config=api.create_host_config(device_cgroup_rules=["x 1"]))


def test_cpu_realtime_keys_in_any_case(api: docker.APIClient) -> None:
    # docker-py sends CpuRealtimePeriod; Go's decoder matches keys case-insensitively, so
    # CPURealtimeRuntime is the same field.
    res = api._post_json(
        api._url("/containers/create"),
        data={
            "Image": "busybox",
            "Cmd": ["true"],
            "HostConfig": {"CPURealtimePeriod": 1000, "cpurealtimeruntime": 500},
        },
    )
    cid = api._result(res, True)["Id"]
    api.made.append(cid)  # type: ignore[attr-defined]
    hc = api.inspect_container(cid)["HostConfig"]
    assert (hc["CpuRealtimePeriod"], hc["CpuRealtimeRuntime"]) == (1000, 500)
    with pytest.raises(docker.errors.APIError, match="cpu-rt-runtime cannot be higher"):
        _create(
            api,
            ["true"],
            host_config=api.create_host_config(cpu_rt_period=1000, cpu_rt_runtime=2000),
        )


def test_container_prune_reports_the_writable_layers(api: docker.APIClient) -> None:
    # A label of its own: the session's daemon holds other tests' stopped containers.
    labels = {"dockyard-test": "prune-size"}
    done = _create(api, ["sh", "-c", "head -c 100000 /dev/zero > /data.bin"], labels=labels)
    running = _create(api, ["sleep", "9999"], labels=labels)
    api.start(done)
    api.start(running)
    assert api.wait(done)["StatusCode"] == 0
    result = api.prune_containers(filters={"label": "dockyard-test=prune-size"})
    assert done in result["ContainersDeleted"] and running not in result["ContainersDeleted"]
    assert result["SpaceReclaimed"] >= 100000


def test_attach_logs_reach_a_client_that_takes_the_raw_socket(api: docker.APIClient) -> None:
    # docker-py reads the upgrade answer through http.client, then takes the raw socket:
    # stream bytes that arrive before it read the headers were lost (1 run in 6 under load).
    for _ in range(15):
        cid = _create(api, "echo hello")
        api.start(cid)
        api.wait(cid, condition="not-running")
        assert api.attach(cid, stream=False, logs=True) == b"hello\n"


def test_default_bridge_links_give_env_hosts_and_names(api: docker.APIClient) -> None:
    target = _create(api, ["sleep", "9999"], environment={"FOO": "1"}, ports=[80, 81, (53, "udp")])
    api.start(target)
    tname = api.inspect_container(target)["Name"][1:]
    tip = api.inspect_container(target)["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]
    parent = _create(
        api,
        ["sh", "-c", "env; cat /etc/hosts"],
        host_config=api.create_host_config(links={tname: "my-db"}, network_mode="bridge"),
    )
    pname = api.inspect_container(parent)["Name"][1:]
    assert api.inspect_container(parent)["HostConfig"]["Links"] == [f"/{tname}:/{pname}/my-db"]
    api.start(parent)
    assert api.wait(parent)["StatusCode"] == 0
    out = api.logs(parent).decode()
    # moby links.go: the first port, each port's four variables, the 80-81 range, the name,
    # the target's environment but HOME and PATH
    for line in (
        f"MY_DB_PORT=tcp://{tip}:80",
        f"MY_DB_PORT_80_TCP=tcp://{tip}:80",
        f"MY_DB_PORT_81_TCP_ADDR={tip}",
        "MY_DB_PORT_53_UDP_PROTO=udp",
        f"MY_DB_PORT_80_TCP_START=tcp://{tip}:80",
        "MY_DB_PORT_80_TCP_PORT_END=81",
        f"MY_DB_NAME=/{pname}/my-db",
        "MY_DB_ENV_FOO=1",
    ):
        assert line in out.splitlines(), line
    assert "MY_DB_ENV_PATH" not in out
    hosts = [line.split() for line in out.splitlines() if line.startswith(tip)]
    assert [tip, "my-db", target[:12], tname] in hosts
    names = {c["Id"]: c["Names"] for c in api.containers(all=True)}
    assert names[target] == [f"/{tname}", f"/{pname}/my-db"]
    # DELETE /containers/PARENT/ALIAS?link=1 drops the link, both containers stay
    api.remove_container(f"{pname}/my-db", link=True)
    names = {c["Id"]: c["Names"] for c in api.containers(all=True)}
    assert names[target] == [f"/{tname}"] and parent in names
    assert api.inspect_container(parent)["HostConfig"]["Links"] is None
    with pytest.raises(docker.errors.NotFound):
        api.remove_container(f"{pname}/my-db", link=True)


def test_default_bridge_link_needs_its_target(api: docker.APIClient) -> None:
    hc = api.create_host_config(links={"no-such-target": "x"})
    with pytest.raises(docker.errors.APIError, match="could not get container for no-such-target"):
        _create(api, ["true"], host_config=hc)
    target = _create(api, ["true"])
    tname = api.inspect_container(target)["Name"][1:]
    parent = _create(api, ["true"], host_config=api.create_host_config(links={tname: "t"}))
    with pytest.raises(docker.errors.APIError, match="Cannot link to a non running container"):
        api.start(parent)


def test_endpoint_links_name_a_container_that_may_start_later(api: docker.APIClient) -> None:
    net = api.create_network("dpy-links")["Id"]
    try:
        parent = _create(
            api,
            ["sleep", "9999"],
            host_config=api.create_host_config(network_mode="dpy-links"),
            networking_config=api.create_networking_config(
                {"dpy-links": api.create_endpoint_config(links=[("dpy-upstream", "bar")])}
            ),
        )
        api.start(parent)
        links = api.inspect_container(parent)["NetworkSettings"]["Networks"]["dpy-links"]
        assert links["Links"] == ["dpy-upstream:bar"]
        upstream = _create(
            api,
            ["sleep", "9999"],
            name="dpy-upstream",
            host_config=api.create_host_config(network_mode="dpy-links"),
        )
        api.start(upstream)
        ex = api.exec_create(parent, ["nslookup", "bar"])
        out = api.exec_start(ex["Id"])
        assert api.exec_inspect(ex["Id"])["ExitCode"] == 0, out
    finally:
        for cid in list(api.made):  # type: ignore[attr-defined]
            api.remove_container(cid, force=True)
        api.made.clear()  # type: ignore[attr-defined]
        api.remove_network(net)


def test_runtime_runc_is_kept_and_others_are_unknown(api: docker.APIClient) -> None:
    cid = _create(api, ["true"], runtime="runc")
    assert api.inspect_container(cid)["HostConfig"]["Runtime"] == "runc"
    with pytest.raises(docker.errors.APIError, match="Unknown runtime specified crun"):
        _create(api, ["true"], runtime="crun")


def _free_subnet() -> str:
    import subprocess

    routes = subprocess.run(["ip", "-o", "route"], capture_output=True, text=True).stdout
    for third in range(250, 200, -1):
        if f"10.213.{third}." not in routes:
            return f"10.213.{third}.0/24"
    raise AssertionError("no free 10.213.x.0/24 on this host")


def test_network_prune_frees_the_dns_port_for_the_next_network(api: docker.APIClient) -> None:
    # docker-py's network tests prune and make networks over and over: a responder left
    # bound by a pruned network kept the next one on the same subnet without DNS.
    # the same subnet both rounds (that is the point), one no bridge on this host holds yet
    ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=_free_subnet())])
    for round_ in range(2):
        net = api.create_network(f"dpy-prune-dns-{round_}", ipam=ipam)["Id"]
        cid = _create(
            api,
            ["nslookup", f"dpy-dns-{round_}"],
            name=f"dpy-dns-{round_}",
            host_config=api.create_host_config(network_mode=f"dpy-prune-dns-{round_}"),
        )
        api.start(cid)
        assert api.wait(cid)["StatusCode"] == 0, api.logs(cid)
        api.remove_container(cid)
        api.made.remove(cid)  # type: ignore[attr-defined]
        assert api.prune_networks()["NetworksDeleted"] == [f"dpy-prune-dns-{round_}"], net


def test_a_container_resolves_names_from_its_first_instruction(api: docker.APIClient) -> None:
    # The record says running only after the start has published its ports; a process that
    # asks at once (docker-py's network tests nslookup their own name as their command) must
    # already be answered, as dockerd's embedded DNS knows an endpoint before the task runs.
    net = api.create_network("dpy-dns-early")["Id"]
    try:
        for round_ in range(4):
            cid = _create(
                api,
                ["nslookup", f"dpy-early-{round_}"],
                name=f"dpy-early-{round_}",
                ports=[80],
                host_config=api.create_host_config(
                    network_mode="dpy-dns-early", port_bindings={80: ("127.0.0.1",)}
                ),
            )
            api.start(cid)
            assert api.wait(cid)["StatusCode"] == 0, api.logs(cid)
            api.remove_container(cid)
            api.made.remove(cid)  # type: ignore[attr-defined]
    finally:
        api.remove_network(net)
