"""`run` flags → create body, as docker/cli's opts.go builds it."""

from __future__ import annotations

import pytest

from dockyard.cli.refs import normalize_image_ref
from dockyard.cli.runconfig import (
    RunFlags,
    UsageError,
    build_create_body,
    parse_env_file,
    parse_memory,
    parse_port_spec,
    parse_volume,
    resolve_env,
)


def test_foreground_defaults_match_docker_run() -> None:
    body = build_create_body(RunFlags(image="busybox", args=("echo", "hi")), {}, "/")
    assert body["Image"] == "busybox"
    assert body["Cmd"] == ["echo", "hi"]
    assert body["AttachStdout"] and body["AttachStderr"]
    assert not body["AttachStdin"] and not body["OpenStdin"] and not body["StdinOnce"]
    assert body["Entrypoint"] is None
    assert body["HostConfig"]["NetworkMode"] == "default"
    assert body["HostConfig"]["AutoRemove"] is False
    assert body["HostConfig"]["RestartPolicy"] == {"Name": "no", "MaximumRetryCount": 0}
    assert body["NetworkingConfig"] == {"EndpointsConfig": {}}


def test_interactive_tty_detach_and_rm() -> None:
    body = build_create_body(
        RunFlags(image="x", interactive=True, tty=True, auto_remove=True), {}, "/"
    )
    assert body["AttachStdin"] and body["OpenStdin"] and body["StdinOnce"] and body["Tty"]
    assert body["HostConfig"]["AutoRemove"] is True
    detached = build_create_body(RunFlags(image="x", interactive=True, detach=True), {}, "/")
    assert not detached["AttachStdin"] and not detached["AttachStdout"]
    assert detached["OpenStdin"] and not detached["StdinOnce"]


def test_entrypoint_empty_string_resets() -> None:
    body = build_create_body(RunFlags(image="x", entrypoint=""), {}, "/")
    assert body["Entrypoint"] == [""]


def test_env_from_environment_and_files(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env_file = tmp_path / "env"
    env_file.write_text("# comment\n\nA=1\n  B=two words\nHOME_ONLY\nMISSING\n")
    environ = {"FROM_ENV": "v", "HOME_ONLY": "h"}
    flags = RunFlags(image="x", env=("FROM_ENV", "UNSET", "C=3"), env_files=(str(env_file),))
    body = build_create_body(flags, environ, "/")
    # env-file entries come first, a bare unset -e name is kept, an unset file name is dropped.
    assert body["Env"] == ["A=1", "B=two words", "HOME_ONLY=h", "FROM_ENV=v", "UNSET", "C=3"]
    assert resolve_env("K=", {}) == "K="
    with pytest.raises(UsageError):
        resolve_env("=x", {})
    with pytest.raises(UsageError):
        parse_env_file("BAD NAME=1\n", "f", {})


def test_ports() -> None:
    assert parse_port_spec("8080:80") == [("80/tcp", "", "8080")]
    assert parse_port_spec("127.0.0.1:53:53/udp") == [("53/udp", "127.0.0.1", "53")]
    assert parse_port_spec("80") == [("80/tcp", "", "")]
    assert parse_port_spec("[::1]:8080:80") == [("80/tcp", "::1", "8080")]
    assert parse_port_spec("8000-8001:80-81") == [("80/tcp", "", "8000"), ("81/tcp", "", "8001")]
    with pytest.raises(UsageError):
        parse_port_spec("80/icmp")
    with pytest.raises(UsageError):
        parse_port_spec("8000-8002:80-81")
    body = build_create_body(RunFlags(image="x", publish=("8080:80", "9090:80")), {}, "/")
    assert body["ExposedPorts"] == {"80/tcp": {}}
    assert body["HostConfig"]["PortBindings"] == {
        "80/tcp": [{"HostIp": "", "HostPort": "8080"}, {"HostIp": "", "HostPort": "9090"}]
    }


def test_volumes() -> None:
    assert parse_volume("/data", "/cwd") == (None, "/data")
    assert parse_volume("./src:/app:ro", "/cwd") == ("/cwd/src:/app:ro", "/app")
    assert parse_volume("named:/v", "/cwd") == ("named:/v", "/v")
    with pytest.raises(UsageError):
        parse_volume("/a:rel", "/")
    body = build_create_body(RunFlags(image="x", volumes=("/anon", "/h:/c")), {}, "/")
    assert body["Volumes"] == {"/anon": {}}
    assert body["HostConfig"]["Binds"] == ["/h:/c"]


def test_limits_and_labels() -> None:
    assert parse_memory("512m") == 512 * 1024 * 1024
    assert parse_memory("1g") == 1024**3
    body = build_create_body(
        RunFlags(image="x", memory="64m", cpus="1.5", pids_limit=10, labels=("a=b", "c")), {}, "/"
    )
    assert body["HostConfig"]["Memory"] == 64 * 1024 * 1024
    assert body["HostConfig"]["NanoCpus"] == 1_500_000_000
    assert body["HostConfig"]["PidsLimit"] == 10
    assert body["Labels"] == {"a": "b", "c": ""}


def test_normalize_image_ref() -> None:
    assert normalize_image_ref("busybox") == ("busybox", "latest")
    assert normalize_image_ref("127.0.0.1:5000/a/b") == ("127.0.0.1:5000/a/b", "latest")
    assert normalize_image_ref("127.0.0.1:5000/a:v1") == ("127.0.0.1:5000/a", "v1")
    assert normalize_image_ref("a@sha256:abc") == ("a", "sha256:abc")
