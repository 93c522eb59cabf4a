"""Endpoints docker-py's suite needs beyond the CLI's: /swarm/leave, the prunes, /system/df,
/distribution/{name}/json and /events, each checked against what the disk or the registry
holds (and, for the refusals, against the reference dockerd's own answer)."""

from __future__ import annotations

import io
import json
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Clients, write_context
from tests.interop.test_api import call
from tests.registry.support import Registry, index_of, layer_tar, make_image
from tests.support.rootfs import busybox_rootfs_tar

pytestmark = pytest.mark.root
docker = pytest.importorskip("docker")


@pytest.fixture
def api(fresh_clients: Clients) -> Iterator[docker.APIClient]:
    client = docker.APIClient(base_url=fresh_clients.daemon.host, version="1.41", timeout=120)
    try:
        yield client
    finally:
        client.close()


def _tar(files: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.LNKTYPE
            info.linkname = target
            tar.addfile(info)
    return buf.getvalue()


def _import(api: docker.APIClient, data: bytes, repo: str | None = None) -> str:
    out = api.import_image_from_data(data, repository=repo)
    return str(json.loads(out.strip().splitlines()[-1])["status"])


def test_image_prune_dangling_then_all(api: docker.APIClient, fresh_clients: Clients) -> None:
    # 3000 + 1000 bytes, and a hardlink that Docker's directory.Size counts once
    dangling = _import(api, _tar({"a": b"x" * 3000, "b": b"y" * 1000}, {"c": "a"}))
    tagged = _import(api, _tar({"t": b"z" * 5000}), "prune-me")
    used = _import(api, _tar({"u": b"u" * 700}), "in-use")
    also = "in-use-too:latest"
    api.tag(used, "in-use-too")
    ctr = api.create_container("in-use", ["true"])
    report = api.prune_images()
    assert report["ImagesDeleted"][0] == {"Deleted": dangling}
    assert report["SpaceReclaimed"] == 4000
    assert api.images(all=True, quiet=True).count(tagged) == 1
    report = api.prune_images({"dangling": False})
    deleted = report["ImagesDeleted"]
    assert {"Untagged": "prune-me:latest"} in deleted and {"Deleted": tagged} in deleted
    assert report["SpaceReclaimed"] == 5000 + busybox_size(fresh_clients)
    # dockerd untags every reference of an image in use but the last, which it cannot delete
    assert sum(1 for d in deleted if d.get("Untagged") in ("in-use:latest", also)) == 1
    assert api.inspect_image(used)["Id"] == used
    api.remove_container(ctr, force=True)
    assert api.prune_images({"dangling": False})["ImagesDeleted"][-1]["Deleted"]
    assert api.images() == []
    assert api.prune_images() == {"ImagesDeleted": None, "SpaceReclaimed": 0}
    with pytest.raises(docker.errors.APIError, match="invalid filter 'bogus'"):
        api.prune_images({"bogus": "1"})


def busybox_size(clients: Clients) -> int:
    """Apparent size of the busybox tree's files (what its layer directory holds)."""
    total = 0
    with tarfile.open(busybox_rootfs_tar()) as tar:
        for m in tar.getmembers():
            if m.isfile():
                total += m.size
            elif m.issym():
                total += len(m.linkname)  # a symlink's own size is its target's length
    return total


def test_system_df_measures_the_disk(api: docker.APIClient, fresh_clients: Clients) -> None:
    image = _import(api, _tar({"f": b"f" * 2345, "g": b"g" * 55}, {"h": "f"}), "df-img")
    api.create_volume("df-vol")
    ctr = api.create_container(
        "busybox",
        ["sh", "-c", "head -c 5000 /dev/zero > /w; head -c 777 /dev/zero > /v/data"],
        host_config=api.create_host_config(binds={"df-vol": {"bind": "/v", "mode": "rw"}}),
    )
    api.start(ctr)
    assert api.wait(ctr)["StatusCode"] == 0
    df = api.df()
    mine = next(i for i in df["Images"] if i["Id"] == image)
    assert (mine["Size"], mine["SharedSize"], mine["Containers"]) == (2400, 0, 0)
    box = next(i for i in df["Images"] if "busybox:latest" in i["RepoTags"])
    assert (box["Size"], box["Containers"]) == (busybox_size(fresh_clients), 1)
    assert df["LayersSize"] == 2400 + busybox_size(fresh_clients)
    (c,) = [c for c in df["Containers"] if c["Id"] == ctr["Id"]]
    assert c["SizeRw"] == 5000
    (v,) = [v for v in df["Volumes"] if v["Name"] == "df-vol"]
    assert v["UsageData"] == {"Size": 777, "RefCount": 1}
    assert df["BuildCache"] == []
    only = call(fresh_clients.daemon.socket, "GET", "/v1.42/system/df?type=volume").json()
    assert isinstance(only, dict) and set(only) == {"Volumes"}
    bad = call(fresh_clients.daemon.socket, "GET", "/system/df?type=bogus")
    assert bad.status == 400


def test_build_prune_removes_cache_mounts(
    api: docker.APIClient, fresh_clients: Clients, tmp_path: Path
) -> None:
    ctx = write_context(
        tmp_path,
        "FROM busybox\nRUN --mount=type=cache,target=/c head -c 12345 /dev/zero > /c/blob\n",
    )
    fresh_clients.ok("build", "-t", "cached", str(ctx))
    (rec,) = api.df()["BuildCache"]
    assert (rec["Type"], rec["Size"], rec["InUse"]) == ("exec.cachemount", 12345, False)
    assert api.prune_builds(filters={"until": "24h"}) == {
        "CachesDeleted": None,
        "SpaceReclaimed": 0,
    }
    assert api.prune_builds(keep_storage=20000) == {"CachesDeleted": None, "SpaceReclaimed": 0}
    assert api.prune_builds() == {"CachesDeleted": [rec["ID"]], "SpaceReclaimed": 12345}
    assert api.df()["BuildCache"] == []
    with pytest.raises(docker.errors.APIError, match="invalid filter 'nope'"):
        api.prune_builds(filters={"nope": "x"})


def test_distribution_inspect(registry: Registry, fresh_clients: Clients) -> None:
    api = docker.APIClient(base_url=fresh_clients.daemon.host, version="1.41")
    before = api.images(quiet=True)
    one = make_image([layer_tar({"a": b"1"})])
    digest = registry.put_image("dist/one", "v1", one)
    info = api.inspect_distribution(f"{registry.host}/dist/one:v1")
    assert info["Descriptor"] == {
        "mediaType": one.manifest_type,
        "digest": digest,
        "size": len(one.manifest),
    }
    assert info["Platforms"] == [{"architecture": "amd64", "os": "linux"}]
    arm = make_image([layer_tar({"b": b"2"})], arch="arm64")
    for img in (one, arm):
        registry.put_image("dist/multi", img.config_digest[7:19], img)
    raw, mt = index_of([(one, "linux", "amd64"), (arm, "linux", "arm64")])
    listed = registry.put_raw_manifest("dist/multi", "latest", raw, mt)
    info = api.inspect_distribution(f"{registry.host}/dist/multi")
    assert info["Descriptor"]["digest"] == listed
    assert info["Platforms"] == [
        {"architecture": "amd64", "os": "linux"},
        {"architecture": "arm64", "os": "linux"},
    ]
    with pytest.raises(docker.errors.NotFound):
        api.inspect_distribution(f"{registry.host}/dist/missing:v1")
    assert api.images(quiet=True) == before, "inspecting pulls nothing"


def test_events_since_until_filters(api: docker.APIClient) -> None:
    start = time.time()
    ctr = api.create_container("busybox", ["sh", "-c", "exit 3"], name="ev-one", labels={"k": "v"})
    api.start(ctr)
    api.wait(ctr)
    api.remove_container(ctr)
    net = api.create_network("ev-net")
    api.remove_network(net["Id"])
    api.tag("busybox", "ev-tag")
    end = time.time() + 0.5
    events = list(api.events(since=start, until=end, decode=True))
    ctr_events = [e for e in events if e["Type"] == "container"]
    assert [e["Action"] for e in ctr_events] == ["create", "start", "die", "destroy"]
    die = ctr_events[2]
    assert die["status"] == "die" and die["id"] == ctr["Id"] and die["from"] == "busybox"
    assert die["Actor"] == {
        "ID": ctr["Id"],
        "Attributes": {"exitCode": "3", "image": "busybox", "name": "ev-one", "k": "v"},
    }
    assert die["scope"] == "local" and die["time"] == die["timeNano"] // 10**9
    nets = [
        (e["Action"], e["Actor"]["Attributes"]["name"]) for e in events if e["Type"] == "network"
    ]
    assert nets == [("create", "ev-net"), ("destroy", "ev-net")]
    assert "status" not in next(e for e in events if e["Type"] == "network")
    tag = next(e for e in events if e["Type"] == "image")
    assert (tag["Action"], tag["Actor"]["Attributes"]["name"]) == ("tag", "ev-tag:latest")
    only = api.events(
        since=start, until=end, decode=True, filters={"event": "die", "container": "ev-one"}
    )
    assert [e["Action"] for e in only] == ["die"]
    labelled = api.events(since=start, until=end, decode=True, filters={"label": "k=v"})
    assert len(list(labelled)) == 4
    by_image = api.events(since=start, until=end, decode=True, filters={"image": "busybox"})
    assert {e["Type"] for e in by_image} == {"container"}


def test_events_bad_queries(fresh_clients: Clients) -> None:
    sock = fresh_clients.daemon.socket
    bad = call(sock, "GET", '/events?until=1&filters={"colour":["red"]}')
    assert (bad.status, bad.json()) == (400, {"message": "invalid filter 'colour'"})
    assert call(sock, "GET", "/events?since=20&until=10").status == 400
    assert call(sock, "GET", "/events?since=yesterday").status == 400
    # a Go duration counts back from now; an `until` in the past ends the stream at once
    done = call(sock, "GET", f"/events?since=10m&until={time.time():.3f}")
    assert done.status == 200 and b'"Type": "image"' in done.body


def test_events_stream_live_until(api: docker.APIClient) -> None:
    """`until` alone replays the buffer (as dockerd's loadBufferedEvents does), then streams
    live events and closes on time; `since` in the future holds back until then."""
    api.create_volume("ev-before")
    t0 = time.monotonic()
    stream = api.events(until=time.time() + 1.5, decode=True, filters={"type": "volume"})
    api.create_volume("ev-after")
    got = [(e["Action"], e["Actor"]["ID"]) for e in stream]
    assert got == [("create", "ev-before"), ("create", "ev-after")]
    assert 1.0 < time.monotonic() - t0 < 5
    live = api.events(since=time.time(), until=time.time() + 1, decode=True)
    api.create_volume("ev-live")
    assert [e["Actor"]["ID"] for e in live] == ["ev-live"]


def test_import_with_changes(api: docker.APIClient) -> None:
    data = _tar({"bin/x": b"x"})
    out = api.import_image_from_data(
        data,
        repository="imp-changes",
        changes=["USER foobar", 'CMD ["echo"]', "ENV A=1 B=2", "EXPOSE 8080", "WORKDIR /w"],
    )
    image_id = json.loads(out.strip().splitlines()[-1])["status"]
    cfg = api.inspect_image(image_id)["Config"]
    assert (cfg["User"], cfg["Cmd"], cfg["WorkingDir"]) == ("foobar", ["echo"], "/w")
    assert cfg["Env"] == ["A=1", "B=2"] and cfg["ExposedPorts"] == {"8080/tcp": {}}
    bad = api.import_image_from_data(data, repository="imp-bad", changes=["RUN true"])
    assert "import --change RUN is not supported" in bad
    with pytest.raises(docker.errors.ImageNotFound):
        api.inspect_image("imp-bad")


def test_unknown_volume_driver_is_not_found(api: docker.APIClient) -> None:
    with pytest.raises(docker.errors.NotFound, match=r'plugin "invalid\.driver" not found'):
        api.create_volume("v-bad-driver", driver="invalid.driver")
    assert api.volumes(filters={"name": "v-bad-driver"})["Volumes"] in (None, [])
