"""Formatting against values the docker CLI (go-units, formatter) prints."""

from __future__ import annotations

from dockyard.cli import output


def test_human_duration_matches_go_units() -> None:
    cases = {
        0.5: "Less than a second",
        1: "1 second",
        3: "3 seconds",
        59: "59 seconds",
        60: "About a minute",
        119: "About a minute",
        120: "2 minutes",
        3599: "59 minutes",
        3600: "About an hour",
        5399: "About an hour",
        5400: "2 hours",
        47 * 3600: "47 hours",
        48 * 3600: "2 days",
        14 * 86400: "2 weeks",
        60 * 86400: "2 months",
        2 * 365 * 86400: "2 years",
    }
    for seconds, text in cases.items():
        assert output.human_duration(seconds) == text, seconds


def test_human_size_uses_decimal_units_and_go_g_format() -> None:
    assert output.human_size(4194304) == "4.19MB"
    assert output.human_size(0) == "0B"
    assert output.human_size(999) == "999B"
    assert output.human_size(1000) == "1kB"
    assert output.human_size(1234567890) == "1.23GB"
    assert output.human_size(2048, 4) == "2.048kB"


def test_truncate_id_and_ellipsis() -> None:
    assert output.truncate_id("sha256:0123456789abcdef0123") == "0123456789ab"
    assert output.truncate_id("abc") == "abc"
    assert output.ellipsis("sh -c 'while true; do sleep 1; done'", 20) == "sh -c 'while true; …"
    assert output.ellipsis("short", 20) == "short"


def test_render_table_pads_like_tabwriter() -> None:
    text = output.render_table(["CONTAINER ID", "IMAGE", "NAMES"], [["abc", "busybox", "x"]])
    assert text.splitlines() == ["CONTAINER ID   IMAGE     NAMES", "abc            busybox   x"]


def test_ps_table_row() -> None:
    now = 1_700_000_000.0
    container = {
        "Id": "f" * 64,
        "Names": ["/web", "/other/alias"],
        "Image": "busybox",
        "ImageID": "sha256:" + "a" * 64,
        "Command": "sh -c 'while true; do sleep 1; done'",
        "Created": now - 3,
        "Status": "Up 2 seconds",
        "Ports": [{"PrivatePort": 80, "Type": "tcp"}],
    }
    lines = output.ps_table([container], now).splitlines()
    assert lines[0] == (
        "CONTAINER ID   IMAGE     COMMAND                  CREATED         STATUS         "
        "PORTS     NAMES"
    )
    assert lines[1] == (
        'ffffffffffff   busybox   "sh -c \'while true; …"   3 seconds ago   Up 2 seconds   '
        "80/tcp    web"
    )


def test_displayable_ports_groups_ranges_and_host_mappings() -> None:
    ports = [
        {"PrivatePort": 81, "Type": "tcp"},
        {"PrivatePort": 80, "Type": "tcp"},
        {"PrivatePort": 53, "Type": "udp"},
        {"IP": "0.0.0.0", "PrivatePort": 443, "PublicPort": 8443, "Type": "tcp"},
        {"IP": "::", "PrivatePort": 443, "PublicPort": 8443, "Type": "tcp"},
        {"IP": "0.0.0.0", "PrivatePort": 22, "PublicPort": 22, "Type": "tcp"},
    ]
    assert output.displayable_ports(ports) == (
        "0.0.0.0:22->22/tcp, 53/udp, 80-81/tcp, 0.0.0.0:8443->443/tcp, [::]:8443->443/tcp"
    )


def test_images_rows_tags_digests_and_none() -> None:
    images = [
        {"Id": "sha256:" + "1" * 64, "RepoTags": ["a:1", "a:latest"], "Created": 2, "Size": 1},
        {"Id": "sha256:" + "2" * 64, "RepoTags": None, "RepoDigests": None, "Created": 1},
        {"Id": "sha256:" + "3" * 64, "RepoDigests": ["r@sha256:" + "9" * 64], "Created": 3},
    ]
    rows = [(r, t) for r, t, _ in output.image_rows(images)]
    assert rows == [("r", "<none>"), ("a", "1"), ("a", "latest"), ("<none>", "<none>")]
    table = output.images_table(images, 10).splitlines()
    assert table[0] == "REPOSITORY   TAG       IMAGE ID       CREATED         SIZE"
    assert table[2].split() == ["a", "1", "111111111111", "8", "seconds", "ago", "1B"]


def test_history_table_and_rfc3339() -> None:
    created = "2024-01-01T00:00:00.123456789Z"
    ts = output.parse_rfc3339(created)
    assert ts is not None and abs(ts - 1704067200.123456) < 1e-3
    entries = [
        {
            "Id": "<missing>",
            "Created": ts - 7200,
            "CreatedBy": "/bin/sh -c\t#(nop)  CMD",
            "Size": 0,
        },
    ]
    lines = output.history_table(entries, ts).splitlines()
    assert lines[0].startswith("IMAGE       CREATED       CREATED BY")
    assert lines[1].split()[:5] == ["<missing>", "2", "hours", "ago", "/bin/sh"]


def test_go_json_escapes_html_like_encoding_json() -> None:
    assert output.go_json({"a": "<&>"}) == '{"a":"\\u003c\\u0026\\u003e"}'
    assert output.go_json([1], indent=4) == "[\n    1\n]"
