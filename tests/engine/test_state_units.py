"""The typed container State and record without root: transitions, Docker's JSON, the store's
documents (the shape written before the record was typed still loads), restart back-off."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dockyard.engine.container_record import Container
from dockyard.engine.container_state import ZERO_TIME, Health, HealthResult, State
from dockyard.engine.containers import restart_delay
from dockyard.metadata.store import ContainerRow

NOW = "2026-01-01T00:00:10.000000Z"


def test_transitions_render_as_dockerd() -> None:
    s = State()
    assert s.to_docker()["Status"] == "created" and not s.running and not s.alive
    s.set_running(42, "2026-01-01T00:00:00.000000Z")
    doc = s.to_docker()
    assert (doc["Status"], doc["Running"], doc["Pid"]) == ("running", True, 42)
    s.set_paused()
    assert s.to_docker()["Paused"] is True and s.to_docker()["Running"] is True and s.alive
    s.set_unpaused()
    s.set_stopped(3, "", False, NOW)
    doc = s.to_docker()
    assert (doc["Status"], doc["Running"], doc["Pid"], doc["ExitCode"]) == ("exited", False, 0, 3)
    assert doc["FinishedAt"] == NOW
    s.set_restarting(3, "")
    doc = s.to_docker()
    # moby state.go SetRestarting: Running and Restarting both true, no process
    assert (doc["Status"], doc["Running"], doc["Restarting"], doc["Pid"]) == (
        "restarting",
        True,
        True,
        0,
    )
    assert s.running and not s.alive
    s.set_restart_cancelled()
    assert s.to_docker()["Status"] == "exited" and s.exit_code == 3


def test_a_start_failure_keeps_a_never_run_container_created() -> None:
    s = State()
    s.set_start_failed(127, "exec: not found")
    assert (s.status, s.exit_code, s.error) == ("created", 127, "exec: not found")
    s.set_running(1, NOW)
    s.set_stopped(0, "", False, NOW)
    s.set_start_failed(127, "again")
    assert s.status == "exited"


def test_health_follows_moby_rules() -> None:
    def probe(code: int) -> HealthResult:
        return HealthResult(NOW, NOW, code, "")

    h = Health()
    h = h.probed(probe(1), retries=2, counts=False)  # inside the start period
    assert (h.status, h.failing_streak) == ("starting", 0)
    h = h.probed(probe(1), retries=2, counts=True)
    assert (h.status, h.failing_streak) == ("starting", 1)
    h = h.probed(probe(1), retries=2, counts=True)
    assert (h.status, h.failing_streak) == ("unhealthy", 2)
    h = h.probed(probe(0), retries=2, counts=True)
    assert (h.status, h.failing_streak) == ("healthy", 0)
    for _ in range(7):
        h = h.probed(probe(0), retries=2, counts=True)
    assert len(h.log) == 5
    s = State()
    s.set_running(5, NOW)
    s.set_health(h)
    s.set_stopped(0, "", False, NOW)
    assert s.to_docker()["Health"] == {**h.to_docker(), "Status": "unhealthy"}
    assert State.from_docker(s.to_docker()) == s


def test_restart_back_off() -> None:
    def ran(seconds: float) -> State:
        start = datetime(2026, 1, 1, tzinfo=UTC)
        fmt = "%Y-%m-%dT%H:%M:%S.%fZ"
        s = State()
        s.set_running(1, start.strftime(fmt))
        s.set_stopped(1, "", False, (start + timedelta(seconds=seconds)).strftime(fmt))
        return s

    assert restart_delay(0, ran(0.1)) == 0.1
    assert restart_delay(3, ran(0.1)) == 0.8
    assert restart_delay(20, ran(0.1)) == 60.0  # capped at a minute
    assert restart_delay(9, ran(11)) == 0.1  # a run of more than 10 s resets it


# A row as the code before the typed record wrote it (a running container with a published
# port on a user network, restarting-policy fields, a named and an anonymous volume).
OLD_ROW = ContainerRow(
    id="c" * 64,
    name="web",
    image_id="sha256:" + "a" * 64,
    created="2026-01-01T00:00:00.000000Z",
    config={
        "Config": {
            "Hostname": "cccccccccccc",
            "Env": ["PATH=/bin"],
            "Cmd": ["httpd", "-f"],
            "Image": "busybox",
            "ExposedPorts": {"80/tcp": {}},
            "Healthcheck": {"Test": ["CMD", "true"], "Interval": 1000000000},
            "Labels": {"a": "1"},
            "Volumes": None,
            "Entrypoint": None,
            "OnBuild": None,
        },
        "HostConfig": {"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 2}},
        "Snapshot": 12,
        "Path": "httpd",
        "Args": ["-f"],
        "ImageName": "busybox",
        "Mounts": [
            {"type": "volume", "target": "/data", "source": "v1", "readonly": False,
             "propagation": "rprivate", "nocopy": False, "tmpfs_options": [],
             "create_source": False, "anonymous": False, "volume": "v1"},
            {"type": "bind", "target": "/b", "source": "/tmp", "readonly": True,
             "propagation": "rprivate", "nocopy": False, "tmpfs_options": [],
             "create_source": False},
        ],
        "Networks": {"n" * 64: {"Aliases": ["w"]}},
        "RestartCount": 1,
        "Runtime": {
            "Endpoints": {
                "n" * 64: {"network": "n" * 64, "ip": "10.1.0.2", "prefix": 24,
                           "gateway": "10.1.0.1", "mac": "02:42:0a:01:00:02",
                           "ifname": "eth0", "host_if": "vethx"}
            },
            "Ports": [[80, "tcp", "", 8080]],
            "Netns": "/run/x/netns",
        },
        "StoppedByUser": True,
    },
    state={
        "Status": "running", "Running": True, "Paused": False, "Restarting": False,
        "OOMKilled": False, "Dead": False, "Pid": 99, "ExitCode": 0, "Error": "",
        "StartedAt": "2026-01-01T00:00:01.000000Z", "FinishedAt": ZERO_TIME,
    },
)  # fmt: skip


def test_a_row_written_before_the_typed_record_loads_and_round_trips() -> None:
    c = Container.from_row(OLD_ROW)
    assert c.state.alive and c.state.pid == 99 and c.restart_count == 1 and c.stopped_by_user
    assert c.host_config.restart_policy == ("on-failure", 2)
    assert c.config.exposed_ports == ("80/tcp",) and c.config.has_healthcheck
    assert [m.volume for m in c.mounts] == ["v1", ""] and c.mounts[1].spec.readonly
    assert c.networks["n" * 64].aliases == ("w",)
    assert c.runtime.endpoints["n" * 64].ip == "10.1.0.2"
    assert c.runtime.ports[0].host_port == 8080 and c.runtime.netns == "/run/x/netns"
    again = c.to_row()
    assert again.state == OLD_ROW.state
    for key in ("HostConfig", "Snapshot", "Path", "Args", "ImageName", "Mounts", "Networks",
                "RestartCount", "Runtime", "StoppedByUser"):  # fmt: skip
        assert again.config[key] == OLD_ROW.config[key], key
    assert Container.from_row(again) == c
