"""The Engine API's JSON bodies decoded with Go's rules (api/gojson.py, api/decode.py).

The expected messages are dockerd 20.10's (tests/api/decode_cases.py, recorded from the
reference daemon); the semantic checks are Go's encoding/json behaviour that clients rely on.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from dockyard.api import decode as d
from dockyard.api.gojson import GoJSONError, decode, syntax_error
from tests.api.decode_cases import CASES

TYPES = {
    "create": d.CONTAINER_CONFIG_WRAPPER,
    "update": d.UPDATE_CONFIG,
    "exec": d.EXEC_CONFIG,
    "execstart": d.EXEC_START,
    "network": d.NETWORK_CREATE,
    "connect": d.NETWORK_CONNECT,
    "disconnect": d.NETWORK_DISCONNECT,
    "volume": d.VOLUME_CREATE,
}


@pytest.mark.parametrize(("endpoint", "body", "message"), CASES)
def test_messages_are_dockerds(endpoint: str, body: str, message: str | None) -> None:
    if message is None:
        decode(body.encode(), TYPES[endpoint])
        return
    with pytest.raises(GoJSONError) as info:
        decode(body.encode(), TYPES[endpoint])
    assert str(info.value) == message
    assert info.value.status == 400


def _create(body: Any) -> dict[str, Any]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return d.container_create(decode(raw, d.CONTAINER_CONFIG_WRAPPER))


def test_keys_match_case_insensitively_and_come_out_canonical() -> None:
    # docker-py and hand-written clients send "hostconfig", "cpushares", ...: Go's decoder
    # matches them to the fields, and the engine sees Docker's spelling only.
    got = _create(
        {"image": "busybox", "CMD": ["true"], "hostconfig": {"memory": 7 << 20, "cpushares": 2}}
    )
    assert got == {
        "Image": "busybox",
        "Cmd": ["true"],
        "HostConfig": {"Memory": 7 << 20, "CpuShares": 2},
    }
    # Unicode simple folding: KELVIN SIGN is k, LONG S is s (Go's fold.go).
    assert _create({"Image": "b", "\u212aernelMemory": 0, "Ho\u017ftname": "h"})["Hostname"] == "h"


def test_unknown_keys_are_ignored_as_go_does() -> None:
    assert _create({"Image": "busybox", "NoSuchField": {"x": [1]}}) == {"Image": "busybox"}


def test_duplicate_keys_last_wins_and_structs_merge() -> None:
    raw = b'{"Image":"a","image":"b","HostConfig":{"Memory":1},"hostconfig":{"CpuShares":2}}'
    got = _create(raw)
    assert got["Image"] == "b"
    assert got["HostConfig"] == {"Memory": 1, "CpuShares": 2}
    # A map keeps its entries and replaces a key's value; a slice is replaced.
    raw = b'{"Labels":{"a":"1"},"Labels":{"b":"2"},"Env":["A=1"],"Env":["B=2"]}'
    got = _create(raw)
    assert got["Labels"] == {"a": "1", "b": "2"} and got["Env"] == ["B=2"]


def test_null_keeps_values_and_clears_pointers_slices_maps() -> None:
    got = _create(
        b'{"Image":"a","Tty":true,"Tty":null,"Cmd":null,"Labels":null,"StopTimeout":null}'
    )
    assert got == {"Image": "a", "Tty": True, "Cmd": None, "Labels": None, "StopTimeout": None}


def test_strslice_takes_a_string_or_a_list() -> None:
    assert _create({"Image": "a", "Cmd": "ls -l"})["Cmd"] == ["ls -l"]
    assert _create({"Image": "a", "Entrypoint": ["sh", "-c"]})["Entrypoint"] == ["sh", "-c"]


def test_integers_are_go_integers() -> None:
    got = _create({"Image": "a", "HostConfig": {"Memory": 2**63 - 1, "BlkioWeight": 65535}})
    assert got["HostConfig"] == {"Memory": 2**63 - 1, "BlkioWeight": 65535}
    for bad in (b"2e9", b"1.0", b"9223372036854775808", b"-9223372036854775809"):
        with pytest.raises(GoJSONError, match=f"number {bad.decode()} into"):
            _create(b'{"HostConfig":{"Memory":' + bad + b"}}")


def test_deprecated_top_level_host_config_fields() -> None:
    # runconfig getHostConfig: without a HostConfig object the top-level fields are it...
    got = _create({"Image": "a", "Binds": ["/x:/y"], "Memory": 8 << 20})
    assert got["HostConfig"] == {"Binds": ["/x:/y"], "Memory": 8 << 20}
    # ...with one, only these five fill in what it leaves unset, and Cpuset is CpusetCpus.
    got = _create(
        {
            "Image": "a",
            "Binds": ["/x:/y"],
            "Memory": 8 << 20,
            "CpuShares": 5,
            "Cpuset": "0",
            "HostConfig": {"CpuShares": 7},
        }
    )
    assert got["HostConfig"] == {"CpuShares": 7, "Memory": 8 << 20, "CpusetCpus": "0"}


def test_only_the_first_value_is_read() -> None:
    # json.Decoder stops after the first value, as dockerd reads it.
    assert _create(b'{"Image":"a"} {"Image":"b"} garbage') == {"Image": "a"}


def test_strings_are_valid_text() -> None:
    got = _create(b'{"Image":"a\\ud800b","Labels":{"\\udfff":"\xff"}}')
    assert got["Image"] == "a\ufffdb" and got["Labels"] == {"\ufffd": "\ufffd"}


def test_syntax_errors_in_go_words() -> None:
    assert syntax_error(b"") == "EOF"
    assert syntax_error(b"   ") == "EOF"
    assert syntax_error(b'{"a":') == "unexpected EOF"
    assert syntax_error(b'{"a":\x01}') == "invalid character '\\x01' looking for beginning of value"
    assert syntax_error(b'{"a":"\x0a"}') == "invalid character '\\n' in string literal"
    assert (
        syntax_error(b"\xef\xbb\xbf{}")
        == "invalid character '\u00ef' looking for beginning of value"
    )
    deep = b"[" * 10001
    assert syntax_error(deep) == "invalid character '[' exceeded max depth"


def test_deep_nesting_is_refused_not_a_crash() -> None:
    with pytest.raises(GoJSONError):
        decode(b'{"Labels":' + b"[" * 5000 + b"]" * 5000 + b"}", d.CONTAINER_CONFIG_WRAPPER)


def test_every_create_field_has_a_type() -> None:
    # What the docker CLI sends (docker/cli's create body keys) decodes without loss.
    body = {
        "Hostname": "",
        "Domainname": "",
        "User": "",
        "AttachStdin": False,
        "AttachStdout": True,
        "AttachStderr": True,
        "ExposedPorts": {"80/tcp": {}},
        "Tty": False,
        "OpenStdin": False,
        "StdinOnce": False,
        "Env": [],
        "Cmd": ["true"],
        "Image": "busybox",
        "Volumes": {},
        "WorkingDir": "",
        "Entrypoint": None,
        "OnBuild": None,
        "Labels": {},
        "HostConfig": {
            "Binds": None,
            "ContainerIDFile": "",
            "LogConfig": {"Type": "", "Config": {}},
            "NetworkMode": "default",
            "PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]},
            "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
            "AutoRemove": True,
            "ConsoleSize": [24, 80],
            "CapAdd": None,
            "Mounts": [{"Type": "bind", "Source": "/a", "Target": "/b"}],
            "Ulimits": [{"Name": "nofile", "Soft": 1, "Hard": 2}],
            "PidsLimit": None,
            "OomKillDisable": False,
        },
        "NetworkingConfig": {"EndpointsConfig": {"net": {"Aliases": ["x"]}}},
    }
    got = _create(body)
    assert got == body
