"""Pure pieces of the container engine: DNS messages, /etc files, filters, detach keys."""

from __future__ import annotations

import os
import struct

import pytest

from dockyard.api.routes_containers import detach_keys_param
from dockyard.engine.container_fs import GO_MODE_DIR, GO_MODE_SYMLINK, go_file_mode
from dockyard.engine.container_state import State
from dockyard.engine.container_views import normalize_filters, status_text
from dockyard.engine.dns import answer, host_nameservers, parse_question
from dockyard.engine.network import bridge_name_for, mac_for
from dockyard.errors import InvalidArgument
from dockyard.runtime.etcfiles import hosts_file, resolv_conf


def _query(name: str, qtype: int = 1, qid: int = 0x1234) -> bytes:
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split("."))
    return (
        struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
        + labels
        + b"\0"
        + struct.pack(">HH", qtype, 1)
    )


def test_dns_question_and_answer() -> None:
    msg = _query("db.example")
    qid, flags, name, qtype, end = parse_question(msg)  # type: ignore[misc]
    assert (qid, name, qtype, end) == (0x1234, "db.example", 1, len(msg))
    reply = answer(msg, end, qid, flags, "10.213.4.2", qtype)
    assert struct.unpack(">HHHHHH", reply[:12])[3] == 1  # one answer
    assert struct.unpack(">HHHHHH", reply[:12])[1] & 0x0400 == 0  # not authoritative (dockerd)
    assert reply.endswith(bytes([10, 213, 4, 2]))
    empty = answer(msg, end, qid, flags, "10.213.4.2", 28)  # AAAA: NOERROR, no records
    assert struct.unpack(">HHHHHH", empty[:12])[3] == 0
    assert parse_question(b"\0" * 5) is None
    assert parse_question(msg[:-3]) is None


def test_resolv_conf_never_falls_back_to_public_resolvers() -> None:
    host = "nameserver 127.0.0.53\nsearch corp\noptions edns0\n"
    out = resolv_conf(host, host_network=False)
    assert "nameserver" not in out and "8.8.8.8" not in out
    assert "search corp" in out and "options edns0" in out
    assert resolv_conf(host, host_network=True) == host
    custom = resolv_conf(host, host_network=False, dns=["10.0.0.1"], search=["a.b"])
    assert custom.splitlines() == ["nameserver 10.0.0.1", "search a.b", "options edns0"]
    assert host_nameservers("nameserver 1.2.3.4\n#x\nnameserver 5.6.7.8\n") == [
        "1.2.3.4",
        "5.6.7.8",
    ]


def test_hosts_file_entries() -> None:
    text = hosts_file(host_network=False, own=[("10.0.0.2", "web abc")], extra=[("db", "10.0.0.9")])
    assert text.startswith("127.0.0.1\tlocalhost\n")
    assert "10.0.0.2\tweb abc\n" in text and text.endswith("10.0.0.9\tdb\n")


def test_detach_keys_param() -> None:
    assert detach_keys_param("") == b"\x10\x11"
    assert detach_keys_param("ctrl-@,ctrl-[") == b"\x00\x1b"
    with pytest.raises(InvalidArgument, match=r"Invalid detach keys \(ctrl-1\) provided"):
        detach_keys_param("ctrl-1")


def test_filters_and_status_text() -> None:
    assert normalize_filters({"status": {"running": True, "exited": False}}) == {
        "status": ["running"]
    }
    assert normalize_filters({"label": ["a=1"]}) == {"label": ["a=1"]}
    # the typed State, loaded from the JSON it is stored as
    assert status_text(State.from_docker({"Status": "created"})) == "Created"
    assert status_text(
        State.from_docker({"Status": "exited", "ExitCode": 3, "FinishedAt": "2000-01-01T00:00:00Z"})
    ).startswith("Exited (3) ")
    paused = status_text(
        State.from_docker({"Status": "paused", "StartedAt": "2000-01-01T00:00:00Z"})
    )
    assert paused.endswith("(Paused)")


def test_names_and_modes(tmp_path: os.PathLike[str]) -> None:
    from pathlib import Path

    assert mac_for("10.213.4.2") == "02:42:0a:d5:04:02"
    a, b = bridge_name_for(Path("/a"), 0), bridge_name_for(Path("/b"), 0)
    assert a != b and len(a) <= 15 and a.startswith("dy")
    d = Path(tmp_path)
    (d / "link").symlink_to("x")
    assert go_file_mode(os.lstat(d)) & GO_MODE_DIR
    assert go_file_mode(os.lstat(d / "link")) & GO_MODE_SYMLINK
