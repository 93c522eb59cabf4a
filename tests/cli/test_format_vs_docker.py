"""`--format` through our CLI and through docker CLI 28, on the same dockyard daemon: the same
bytes for `table`, `json`, `{{.Field}}`, `{{json .}}` and the template functions users use."""

from __future__ import annotations

import re
import shutil
import time

import pytest

from tests.conftest import Clients

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(shutil.which("docker") is None, reason="docker CLI 28 not on PATH"),
]

_AGO = re.compile(r"(About a|About an|Less than a|\d+) (second|minute|hour)s?( ago)?")


def _norm(text: str) -> str:
    """Times out; where a time sat, column padding too (it follows the time's length)."""
    if not _AGO.search(text):
        return text
    return re.sub(r" {2,}", "  ", _AGO.sub("<AGO>", text))


def _same(clients: Clients, *args: str) -> str:
    ours, docker = clients.dockyard(*args), clients.docker(*args)
    norm = [_norm(p.stdout) for p in (ours, docker)]
    assert (ours.returncode, norm[0]) == (docker.returncode, norm[1]), (
        f"{args}\nours:   {ours.stdout!r} {ours.stderr!r}\ndocker: {docker.stdout!r} {docker.stderr!r}"
    )
    return ours.stdout


@pytest.fixture(scope="module")
def running(clients: Clients) -> str:
    name = f"fmt-{time.monotonic_ns() % 100000}"
    proc = clients.dockyard(
        "run",
        "-d",
        "--name",
        name,
        "-l",
        "com.example.tier=web",
        "-l",
        "b=2",
        "busybox",
        "sleep",
        "300",
    )
    assert proc.returncode == 0, proc.stderr
    yield name
    clients.dockyard("rm", "-f", name)


PS_FORMATS = [
    "{{.ID}} {{.Names}} {{.Image}}",
    '{{.Command}}|{{.State}}|{{.Labels}}|{{.Label "com.example.tier"}}|{{.Mounts}}',
    "table {{.ID}}\\t{{.Names}}\\t{{.Status}}",
    'table {{.Names}}\t{{.Label "com.example.tier"}}\t{{.LocalVolumes}}',
    "table",
    '{{json .Labels}} {{.Networks}} {{upper .Names}} {{.Names | printf "%-20s|"}}',
    '{{if eq .State "running"}}up{{else}}down{{end}} {{len .Names}} {{split .Labels ","}}',
]


@pytest.mark.parametrize("fmt", PS_FORMATS)
def test_ps_format(clients: Clients, running: str, fmt: str) -> None:
    out = _same(clients, "ps", "--filter", f"name={running}", "--format", fmt)
    assert out.strip()


def test_ps_json_and_quiet(clients: Clients, running: str) -> None:
    for args in (
        ("--format", "json"),
        ("--format", "{{json .}}"),
        ("-q", "--format", "{{.Names}}"),
    ):
        _same(clients, "ps", "--filter", f"name={running}", *args)
    _same(clients, "ps", "-a", "--no-trunc", "--filter", f"name={running}", "--format", "{{.ID}}")
    _same(clients, "ps", "-l", "--format", "{{.Names}}")
    _same(clients, "ps", "-n", "1", "-a", "--format", "{{.Names}}")


def test_bad_templates_fail_as_docker_does(clients: Clients) -> None:
    for fmt in ("{{.Nope}}", "{{nope}}", "{{if}}"):
        ours, docker = (
            clients.dockyard("ps", "--format", fmt),
            clients.docker("ps", "--format", fmt),
        )
        assert ours.returncode == docker.returncode != 0, (fmt, ours.stderr, docker.stderr)


IMAGE_FORMATS = [
    "{{.Repository}}:{{.Tag}} {{.ID}} {{.Size}}",
    "table {{.Repository}}\\t{{.Tag}}\\t{{.ID}}",
    "json",
    "{{.Digest}} {{.Containers}} {{.SharedSize}} {{.CreatedSince}}",
]


@pytest.mark.parametrize("fmt", IMAGE_FORMATS)
def test_images_format(clients: Clients, fmt: str) -> None:
    _same(clients, "images", "busybox", "--format", fmt)


def test_images_digests_table(clients: Clients) -> None:
    _same(clients, "images", "--digests", "busybox")


INSPECT_FORMATS = [
    "{{.Name}} {{.State.Status}} {{.State.Running}} {{.Config.Image}}",
    "{{json .Config.Labels}}",
    "{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}",
    '{{join .Config.Cmd " "}} {{index .Config.Cmd 0}} {{len .Config.Cmd}}',
    "{{range .Config.Cmd}}<{{.}}>{{end}}",
    "{{if .State.Running}}running{{else}}stopped{{end}} {{.HostConfig.NetworkMode}}",
    '{{.State.ExitCode}} {{printf "%05d" .State.ExitCode}} {{.RestartCount}}',
    "{{lower .Config.Image | title}} {{json .Config.Cmd}}",
    "{{.Config.Labels}}",
    "{{with .Config}}{{.Image}}{{end}} {{.Nope}}",
]


@pytest.mark.parametrize("fmt", INSPECT_FORMATS)
def test_inspect_format(clients: Clients, running: str, fmt: str) -> None:
    _same(clients, "inspect", "--format", fmt, running)
