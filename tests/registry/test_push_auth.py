"""Push, authentication (Basic, Bearer), TLS and mirrors against real docker-registry servers."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

from dockyard.engine.distribution import PullDenied
from dockyard.errors import NotFound
from dockyard.registry.auth import Credentials, Unauthorized
from dockyard.registry.client import RegistryClient, RegistryUnavailable
from dockyard.registry.config import Endpoint, RegistryConfig
from tests.conftest import short_tmp
from tests.registry.conftest import EngineRunner
from tests.registry.support import Registry, free_port, layer_tar, make_cert, make_image, sha

pytestmark = pytest.mark.root


def _import(r: EngineRunner, name: str, files: dict[str, bytes]) -> str:
    tar = layer_tar(files)
    return r.run(lambda: r.engine.import_image(io.BytesIO(tar), repo=name, tag="v1"))


def test_push_chunked_skip_mount_and_pull_back(
    engine_runner: EngineRunner, registry: Registry
) -> None:
    r = engine_runner
    d = r.engine.distribution
    name = f"{registry.host}/pushed"
    image_id = _import(r, name, {"data": os.urandom(300_000)})
    d.upload_chunk_size = 100_000
    r.run(lambda: d.push(name, "v1", Credentials(), r.emit))
    st = r.statuses()
    assert st[0] == f"The push refers to repository [{name}]"
    for word in ("Preparing", "Pushing", "Pushed"):
        assert word in st, (word, st)
    final = [m for m in r.messages if "aux" in m][-1]["aux"]
    assert final["Tag"] == "v1" and final["Digest"].startswith("sha256:")
    assert f"v1: digest: {final['Digest']} size: {final['Size']}" in st
    assert r.engine.images.repo_digests(image_id) == [f"{name}@{final['Digest']}"]

    # The registry has exactly what we announced.
    with registry.client() as c:
        resp = c.get(
            "/v2/pushed/manifests/v1",
            headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        )
        assert resp.status_code == 200 and sha(resp.content) == final["Digest"]
        manifest = json.loads(resp.content)
        assert manifest["config"]["digest"] == image_id
        layer = manifest["layers"][0]
        blob = c.get(f"/v2/pushed/blobs/{layer['digest']}").content
        assert sha(blob) == layer["digest"] and len(blob) == layer["size"]

    # Again: the layer is already there.
    r.messages.clear()
    r.run(lambda: d.push(name, "v1", Credentials(), r.emit))
    assert "Layer already exists" in r.statuses()

    # Another repository of the same registry: cross-repository mount.
    other = f"{registry.host}/elsewhere:v2"
    r.engine.images.tag(image_id, other)
    r.messages.clear()
    r.run(lambda: d.push(f"{registry.host}/elsewhere", "", Credentials(), r.emit))
    assert "Mounted from pushed" in r.statuses()

    # What we pushed pulls back into another engine as the same image.
    second = EngineRunner(short_tmp("dyeng-"))
    try:
        res = second.run(
            lambda: second.engine.distribution.pull(other, "", "", Credentials(), second.emit)
        )
        assert res.image_id == image_id
    finally:
        second.close()


def test_push_unknown_tag_is_not_found(engine_runner: EngineRunner, registry: Registry) -> None:
    d = engine_runner.engine.distribution
    with pytest.raises(NotFound, match="An image does not exist locally"):
        d.check_pushable(f"{registry.host}/nothing", "")


def test_manifest_put_by_digest(registry: Registry, engine_runner: EngineRunner) -> None:
    img = make_image([layer_tar({"f": b"x"})])
    registry.put_image("bydigest", "t", img)

    async def go() -> tuple[bytes, str]:
        ep = Endpoint(f"http://{registry.host}", False)
        async with RegistryClient(ep) as c:
            digest = await c.put_manifest(
                "copy", sha(img.manifest), img.manifest, img.manifest_type
            )
            raw, _, got = await c.get_manifest("copy", digest)
            assert got == digest
            return raw, digest

    # The blobs must exist in the target repository first.
    registry.put_image("copy", "seed", img)
    raw, digest = engine_runner.run(go)
    assert raw == img.manifest and digest == sha(img.manifest)


def _engine_pull(r: EngineRunner, name: str, creds: Credentials) -> str:
    d = r.engine.distribution
    return r.run(lambda: d.pull(name, "", "", creds, r.emit)).image_id


@pytest.mark.parametrize("auth", ["htpasswd", "token"])
def test_auth_pull_push_login(auth: str, make_registry, engine_runner: EngineRunner) -> None:  # type: ignore[no-untyped-def]
    reg: Registry = make_registry(auth=auth, users={"alice": "s3cret"})
    img = make_image([layer_tar({"secret": b"s"})])
    reg.put_image("private/app", "latest", img, user="alice")
    name = f"{reg.host}/private/app"
    d = engine_runner.engine.distribution
    with pytest.raises(PullDenied, match="pull access denied for"):
        _engine_pull(engine_runner, name, Credentials())
    with pytest.raises(PullDenied):
        _engine_pull(engine_runner, name, Credentials("alice", "wrong"))
    good = Credentials("alice", "s3cret")
    assert _engine_pull(engine_runner, name, good) == img.image_id
    if reg.issuer is not None:
        scopes = [s for req in reg.issuer.requests for s in req["scopes"]]
        assert "repository:private/app:pull" in scopes
    # Push with the same credentials.
    engine_runner.engine.images.tag(img.image_id, f"{reg.host}/private/copy:v1")
    engine_runner.run(lambda: d.push(f"{reg.host}/private/copy", "v1", good, engine_runner.emit))
    assert any("aux" in m for m in engine_runner.messages)
    # docker login's check.
    ok = engine_runner.run(lambda: d.login(Credentials("alice", "s3cret", server=reg.host)))
    assert ok["Status"] == "Login Succeeded"
    with pytest.raises(Unauthorized):
        engine_runner.run(lambda: d.login(Credentials("alice", "nope", server=reg.host)))


def test_tls_with_explicit_ca_bundle(make_registry, engine_runner: EngineRunner) -> None:  # type: ignore[no-untyped-def]
    reg: Registry = make_registry(tls=True)
    img = make_image([layer_tar({"tls": b"t"})])
    reg.put_image("secure", "latest", img)
    certs = reg.base / "certs.d"
    (certs / reg.host).mkdir(parents=True)
    d = engine_runner.engine.distribution
    name = f"{reg.host}/secure"

    # A CA bundle that did not sign the server's certificate: refused, no plain-HTTP fallback.
    _, wrong = make_cert(reg.base / "wrong", "ca")
    (certs / reg.host / "ca.crt").write_bytes(wrong.read_bytes())
    d.config = RegistryConfig(certs_dir=certs)
    with pytest.raises(RegistryUnavailable, match=r"CERTIFICATE_VERIFY_FAILED|certificate"):
        _engine_pull(engine_runner, name, Credentials())

    assert reg.cert is not None
    (certs / reg.host / "ca.crt").write_bytes(reg.cert.read_bytes())
    assert _engine_pull(engine_runner, name, Credentials()) == img.image_id


def test_insecure_rules() -> None:
    cfg = RegistryConfig(insecure=("10.1.0.0/16", "myreg:5000"), certs_dir=Path("/nonexistent"))
    assert cfg.is_insecure("127.0.0.1:5000") and cfg.is_insecure("localhost:5000")
    assert cfg.is_insecure("myreg:5000") and cfg.is_insecure("10.1.2.3:443")
    assert not cfg.is_insecure("10.2.0.1:5000")
    ep = cfg.endpoints("10.2.0.1:5000")[0]
    assert ep.url == "https://10.2.0.1:5000" and not ep.fallback_http and ep.verify is not False
    assert cfg.endpoints("127.0.0.1:5000")[0].fallback_http
    hub = RegistryConfig(mirrors=("http://127.0.0.1:5001/",)).endpoints("docker.io")
    assert [e.url for e in hub] == ["http://127.0.0.1:5001", "https://registry-1.docker.io"]
    assert hub[0].mirror and not hub[1].mirror


def test_mirror_serves_docker_hub_names(engine_runner: EngineRunner, registry: Registry) -> None:
    img = make_image([layer_tar({"etc/alpine-release": b"3.99\n"})])
    registry.put_image("library/alpine", "latest", img)
    d = engine_runner.engine.distribution
    # A dead mirror first: skipped, as dockerd skips a failing mirror.
    dead = f"http://127.0.0.1:{free_port()}"
    d.config = RegistryConfig(mirrors=(dead, registry.url))
    image_id = _engine_pull(engine_runner, "alpine", Credentials())
    assert image_id == img.image_id
    assert engine_runner.engine.images.resolve("docker.io/library/alpine:latest") == image_id
    assert "Status: Downloaded newer image for alpine:latest" in engine_runner.statuses()


def test_anonymous_bearer_token_as_docker_hub(make_registry, engine_runner: EngineRunner) -> None:  # type: ignore[no-untyped-def]
    reg: Registry = make_registry(auth="token", users={"alice": "pw"}, anonymous_pull=True)
    img = make_image([layer_tar({"pub": b"lic"})])
    reg.put_image("library/public", "latest", img, user="alice")
    assert _engine_pull(engine_runner, f"{reg.host}/library/public", Credentials()) == img.image_id
    assert reg.issuer is not None
    assert {"user": "", "scopes": ["repository:library/public:pull"]} in reg.issuer.requests
    # Anonymous tokens carry no push right: the push is refused inside the stream.
    engine_runner.engine.images.tag(img.image_id, f"{reg.host}/library/public:mine")
    d = engine_runner.engine.distribution
    with pytest.raises(Unauthorized):
        engine_runner.run(
            lambda: d.push(f"{reg.host}/library/public", "mine", Credentials(), engine_runner.emit)
        )


def test_parallel_layer_uploads_share_the_first_ping(
    engine_runner: EngineRunner, make_registry
) -> None:  # type: ignore[no-untyped-def]
    src: Registry = make_registry()
    dst: Registry = make_registry()
    img = make_image([layer_tar({f"f{i}": os.urandom(20_000)}) for i in range(4)])
    src.put_image("multi", "latest", img)
    d = engine_runner.engine.distribution
    _engine_pull(engine_runner, f"{src.host}/multi", Credentials())
    engine_runner.engine.images.tag(img.image_id, f"{dst.host}/multi:latest")
    # The first request to dst is made by four concurrent uploads (HTTPS fails over to HTTP).
    engine_runner.messages.clear()
    engine_runner.run(lambda: d.push(f"{dst.host}/multi", "", Credentials(), engine_runner.emit))
    assert engine_runner.statuses().count("Pushed") == 4
    # The same layer blobs as pulled (kept compressed), so the same manifest digest.
    final = [m for m in engine_runner.messages if "aux" in m][-1]["aux"]
    assert final["Digest"] == sha(img.manifest)


def test_build_credentials_reach_from_pulls(make_registry, engine_runner: EngineRunner) -> None:  # type: ignore[no-untyped-def]
    import base64

    from dockyard.registry.auth import decode_registry_config

    reg: Registry = make_registry(auth="htpasswd", users={"bob": "pw"})
    img = make_image([layer_tar({"base": b"b"})])
    reg.put_image("private/base", "latest", img, user="bob")
    d = engine_runner.engine.distribution
    name = f"{reg.host}/private/base"
    with pytest.raises(PullDenied):
        engine_runner.run(lambda: d.ensure_image(name, engine_runner.emit))
    # What `docker build` sends: every stored login, keyed by server address.
    header = base64.urlsafe_b64encode(
        json.dumps({reg.host: {"username": "bob", "password": "pw"}}).encode()
    ).decode()

    async def build_like() -> str:
        auth = decode_registry_config(header)
        return await d.ensure_image(name, engine_runner.emit, auth=auth)

    assert engine_runner.run(build_like) == img.image_id
