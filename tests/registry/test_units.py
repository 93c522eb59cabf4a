"""Pure pieces of the registry code: challenges, X-Registry-Auth, platforms, progress text,
daemon configuration, and the client-side credential store (config.json and helpers)."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from dockyard.cli import registry_auth as cli_auth
from dockyard.engine.distribution import gzip_parallel, registry_domain
from dockyard.errors import InvalidArgument, NotFound, NotSupported
from dockyard.registry.auth import Credentials, decode_registry_auth, parse_challenges
from dockyard.registry.config import RegistryConfig
from dockyard.registry.manifest import (
    OCI_INDEX,
    SCHEMA1,
    Descriptor,
    Index,
    Platform,
    parse,
    select,
    sniff_media_type,
)
from dockyard.registry.progress import human_size, progress_bar


def test_parse_bearer_and_basic_challenges() -> None:
    [ch] = parse_challenges(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/alpine:pull"'
    )
    assert ch.scheme == "bearer"
    assert ch.params == {
        "realm": "https://auth.docker.io/token",
        "service": "registry.docker.io",
        "scope": "repository:library/alpine:pull",
    }
    [basic] = parse_challenges('Basic realm="basic-realm"')
    assert basic.scheme == "basic" and basic.params["realm"] == "basic-realm"


def test_x_registry_auth_decoding() -> None:
    doc = {"username": "u", "password": "p+/=", "serveraddress": "r:5000"}
    raw = json.dumps(doc).encode()
    for enc in (base64.urlsafe_b64encode(raw), base64.urlsafe_b64encode(raw).rstrip(b"=")):
        creds = decode_registry_auth(enc.decode())
        assert (creds.username, creds.password, creds.server) == ("u", "p+/=", "r:5000")
    assert decode_registry_auth("e30=").empty  # "{}"
    assert decode_registry_auth(base64.b64encode(b"null").decode()).empty
    with pytest.raises(InvalidArgument, match="not JSON"):
        decode_registry_auth(base64.b64encode(b"{nope").decode())
    both = Credentials.from_json({"auth": base64.b64encode(b"a:b:c").decode()})
    assert (both.username, both.password) == ("a", "b:c")


def test_platforms_and_index_selection() -> None:
    assert str(Platform.parse("linux/arm64/v8")) == "linux/arm64"
    assert str(Platform.parse("linux/arm/v7")) == "linux/arm/v7"
    with pytest.raises(InvalidArgument):
        Platform.parse("linux//")
    idx = Index(
        OCI_INDEX,
        (
            Descriptor(
                "m",
                "sha256:" + "1" * 64,
                1,
                {"os": "linux", "architecture": "arm", "variant": "v6"},
            ),
            Descriptor(
                "m",
                "sha256:" + "2" * 64,
                1,
                {"os": "linux", "architecture": "arm", "variant": "v7"},
            ),
            Descriptor("m", "sha256:" + "3" * 64, 1, {"os": "unknown", "architecture": "unknown"}),
            Descriptor(
                "m",
                "sha256:" + "4" * 64,
                1,
                {"os": "linux", "architecture": "arm64", "variant": "v8"},
            ),
        ),
    )
    assert select(idx, Platform.parse("linux/arm/v7")).digest.endswith("2" * 64)
    assert select(idx, Platform.parse("linux/arm64")).digest.endswith("4" * 64)
    with pytest.raises(NotFound, match="no matching manifest for linux/amd64"):
        select(idx, Platform.parse("linux/amd64"))


def test_manifest_media_types() -> None:
    assert sniff_media_type(b'{"manifests": []}', "application/json") == OCI_INDEX
    with pytest.raises(NotSupported, match="schema 1"):
        parse(b"{}", SCHEMA1[1])
    with pytest.raises(NotSupported, match="unsupported layer media type"):
        parse(
            json.dumps(
                {
                    "config": {"digest": "sha256:" + "0" * 64, "size": 1},
                    "layers": [{"mediaType": "application/x-foo", "digest": "sha256:" + "1" * 64}],
                }
            ).encode(),
            "application/vnd.oci.image.manifest.v1+json",
        )


def test_progress_text_as_docker() -> None:
    assert human_size(527) == "527B"
    assert human_size(2_811_000) == "2.811MB"
    assert progress_bar(50, 100) == "[" + "=" * 25 + ">" + " " * 25 + "]      50B/100B"
    assert progress_bar(0, 0) == ""


def test_daemon_json_and_registry_domain(tmp_path: Path) -> None:
    path = tmp_path / "daemon.json"
    path.write_text(
        json.dumps(
            {
                "registry-mirrors": ["https://mirror.example"],
                "insecure-registries": ["10.0.0.0/8"],
                "max-concurrent-downloads": 7,
            }
        )
    )
    cfg = RegistryConfig.from_file(path)
    assert cfg.mirrors == ("https://mirror.example",) and cfg.max_concurrent_downloads == 7
    path.write_text(json.dumps({"registry-mirrors": ["mirror.example"]}))
    with pytest.raises(InvalidArgument, match="unsupported scheme"):
        RegistryConfig.from_file(path)
    assert registry_domain("https://index.docker.io/v1/") == "docker.io"
    assert registry_domain("127.0.0.1:5000") == "127.0.0.1:5000"


def test_gzip_parallel_is_deterministic_and_readable() -> None:
    import gzip
    import io

    data = os.urandom(5 << 20) + b"x" * (6 << 20)
    outs = []
    for _ in range(2):
        sink = io.BytesIO()
        gzip_parallel(io.BytesIO(data), sink)
        outs.append(sink.getvalue())
    assert outs[0] == outs[1]
    assert gzip.decompress(outs[0]) == data


def test_cli_config_json_as_docker_writes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    cli_auth.store_credentials("127.0.0.1:5000", "alice", "pw")
    cli_auth.store_credentials("", "bob", "hub")
    doc = json.loads((tmp_path / "config.json").read_text())
    assert doc["auths"]["127.0.0.1:5000"] == {"auth": base64.b64encode(b"alice:pw").decode()}
    assert "https://index.docker.io/v1/" in doc["auths"]
    assert cli_auth.get_credentials("docker.io")["username"] == "bob"
    header = cli_auth.registry_auth_header(cli_auth.registry_of_image("127.0.0.1:5000/x/y:1"))
    sent = json.loads(base64.urlsafe_b64decode(header))
    assert sent == {"serveraddress": "127.0.0.1:5000", "username": "alice", "password": "pw"}
    assert cli_auth.erase_credentials("127.0.0.1:5000")
    assert not cli_auth.erase_credentials("127.0.0.1:5000")
    assert cli_auth.get_credentials("127.0.0.1:5000") == {}


def test_cli_credential_helpers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    store = tmp_path / "helper-store.json"
    helper = bindir / "docker-credential-fake"
    helper.write_text(
        "#!/usr/bin/env python3\n"
        "import json, sys\n"
        f"path = {str(store)!r}\n"
        "try:\n    db = json.load(open(path))\nexcept FileNotFoundError:\n    db = {}\n"
        "act = sys.argv[1]\n"
        "data = sys.stdin.read()\n"
        "if act == 'store':\n    d = json.loads(data); db[d['ServerURL']] = d\n"
        "    json.dump(db, open(path, 'w'))\n"
        "elif act == 'get':\n    d = db.get(data.strip())\n"
        "    if not d:\n        print('credentials not found in native keychain'); sys.exit(1)\n"
        "    print(json.dumps(d))\n"
        "elif act == 'erase':\n    db.pop(data.strip(), None); json.dump(db, open(path, 'w'))\n"
    )
    helper.chmod(helper.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "cfg"))
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "config.json").write_text(
        json.dumps({"credHelpers": {"reg.example:5000": "fake"}})
    )
    assert cli_auth.store_credentials("reg.example:5000", "carol", "tok") == "fake"
    doc = json.loads((tmp_path / "cfg" / "config.json").read_text())
    assert doc["auths"] == {"reg.example:5000": {}}  # the secret lives in the helper only
    assert cli_auth.get_credentials("reg.example:5000") == {
        "username": "carol",
        "password": "tok",
        "serveraddress": "reg.example:5000",
    }
    assert cli_auth.get_credentials("other.example") == {}
    assert cli_auth.erase_credentials("reg.example:5000")
    assert cli_auth.get_credentials("reg.example:5000") == {}


def test_cli_progress_rendering() -> None:
    import io

    from dockyard.cli.pull_progress import show_plain, show_rich

    msgs = [
        {"status": "Pulling from library/bb", "id": "latest"},
        {"status": "Pulling fs layer", "progressDetail": {}, "id": "abc123"},
        {"status": "Downloading", "progressDetail": {"current": 50, "total": 100}, "id": "abc123"},
        {"status": "Pull complete", "progressDetail": {}, "id": "abc123"},
        {"status": "Digest: sha256:00"},
        {"progressDetail": {}, "aux": {"Tag": "v1", "Digest": "sha256:00", "Size": 5}},
    ]
    plain = io.StringIO()
    assert show_plain(iter(msgs), plain) == {"Tag": "v1", "Digest": "sha256:00", "Size": 5}
    assert plain.getvalue() == (
        "latest: Pulling from library/bb\nabc123: Pulling fs layer\nabc123: Pull complete\n"
        "Digest: sha256:00\n"
    )
    rich_out = io.StringIO()
    show_rich(iter(msgs), rich_out)
    text = rich_out.getvalue()
    assert "abc123:" in text and "Pull complete" in text and "Digest: sha256:00" in text
