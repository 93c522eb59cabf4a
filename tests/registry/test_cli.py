"""`dockyard login/logout/pull/push/run` against real registries through our daemon."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.conftest import Clients, short_tmp
from tests.registry.support import Registry, make_image
from tests.support.daemons import DockyardDaemon
from tests.support.rootfs import busybox_rootfs_tar

pytestmark = pytest.mark.root


@pytest.fixture
def clients_() -> Iterator[Clients]:
    d = DockyardDaemon(short_tmp("dyt-")).start()
    try:
        yield Clients(d)
    finally:
        d.cleanup()


def test_login_pull_push_logout_with_config_json(make_registry, clients_: Clients) -> None:  # type: ignore[no-untyped-def]
    reg: Registry = make_registry(auth="htpasswd", users={"alice": "s3cret"})
    img = make_image([busybox_rootfs_tar().read_bytes()], cmd=["/bin/sh"])
    digest = reg.put_image("team/bb", "latest", img, user="alice")
    c = clients_
    name = f"{reg.host}/team/bb"
    denied = c.dockyard("pull", name)
    assert denied.returncode != 0 and "pull access denied" in denied.stderr
    bad = c.dockyard("login", "-u", "alice", "--password-stdin", reg.host, input=b"nope\n")
    assert bad.returncode != 0 and "unauthorized" in bad.stderr.lower()
    out = c.dockyard("login", "-u", "alice", "--password-stdin", reg.host, input=b"s3cret\n")
    assert out.returncode == 0 and "Login Succeeded" in out.stdout, out.stderr
    config = json.loads((c.daemon.base / "docker-config" / "config.json").read_text())
    assert config["auths"][reg.host] == {"auth": "YWxpY2U6czNjcmV0"}  # alice:s3cret

    pulled = c.ok("pull", name)
    assert "Using default tag: latest" in pulled and "Pull complete" in pulled
    assert f"Digest: {digest}" in pulled and pulled.rstrip().endswith(f"{name}:latest")
    assert "Downloading" not in pulled  # progress updates stay off a non-terminal, as docker's

    c.ok("tag", name, f"{reg.host}/team/copy:v1")
    pushed = c.ok("push", f"{reg.host}/team/copy:v1")
    assert "Mounted from team/bb" in pushed and f"v1: digest: {digest}" in pushed

    # The docker CLI reads the same file: it pulls with these credentials too.
    c.ok("rmi", name, f"{reg.host}/team/copy:v1")
    run = c.dockyard("run", "--rm", "--network=none", f"{reg.host}/team/copy:v1", "echo", "ok")
    assert run.returncode == 0 and run.stdout == "ok\n", run.stderr
    assert "Unable to find image" in run.stderr

    assert "Removing login credentials" in c.ok("logout", reg.host)
    config = json.loads((c.daemon.base / "docker-config" / "config.json").read_text())
    assert reg.host not in config.get("auths", {})
    assert c.dockyard("pull", f"{reg.host}/team/bb:latest").returncode != 0
