"""A container's state: a status and its facts, changed only by named transitions.

The shape of moby's container/state.go: `set_running`, `set_stopped`, `set_restarting`,
`set_paused`/`set_unpaused`, `set_health`; `to_docker()` is the one place that renders
Docker's `State` JSON. Docker's rule that a restarting container is `Running: true` with
`Restarting: true` (state.go SetRestarting: "we should consider the container running when
it is restarting because of all the checks in docker around rm/stop/etc") lives there too;
the engine asks `alive` when it means "has a process".

The transitions mutate the State they are called on; ContainerManager.write() is the only
caller that persists one (under the container's lock), so nothing else writes a state.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal, cast

ZERO_TIME = "0001-01-01T00:00:00Z"

Status = Literal["created", "running", "paused", "restarting", "removing", "exited", "dead"]
STATUSES: tuple[Status, ...] = (
    "created",
    "running",
    "paused",
    "restarting",
    "removing",
    "exited",
    "dead",
)
HealthStatus = Literal["starting", "healthy", "unhealthy"]
MAX_HEALTH_LOG = 5  # moby daemon/health.go maxLogEntries

JsonState = dict[str, object]


@dataclass(frozen=True)
class HealthResult:
    """One probe: moby's types.HealthcheckResult."""

    start: str
    end: str
    exit_code: int
    output: str

    def to_docker(self) -> JsonState:
        return {
            "Start": self.start,
            "End": self.end,
            "ExitCode": self.exit_code,
            "Output": self.output,
        }


@dataclass(frozen=True)
class Health:
    status: HealthStatus = "starting"
    failing_streak: int = 0
    log: tuple[HealthResult, ...] = ()

    def probed(self, result: HealthResult, *, retries: int, counts: bool) -> Health:
        """moby handleProbeResult: a success makes it healthy; a failure that counts (past
        the start period, or once it was not "starting") adds to the streak, and `retries`
        failures in a row make it unhealthy. The log keeps the last five results."""
        log = (*self.log, result)[-MAX_HEALTH_LOG:]
        if result.exit_code == 0:
            return Health("healthy", 0, log)
        if not (counts or self.status != "starting"):
            return replace(self, log=log)
        streak = self.failing_streak + 1
        return Health("unhealthy" if streak >= retries else self.status, streak, log)

    def to_docker(self) -> JsonState:
        return {
            "Status": self.status,
            "FailingStreak": self.failing_streak,
            "Log": [r.to_docker() for r in self.log],
        }

    @staticmethod
    def from_docker(doc: object) -> Health | None:
        if not isinstance(doc, dict) or not doc.get("Status"):
            return None
        return Health(
            cast(HealthStatus, str(doc["Status"])),
            int(doc.get("FailingStreak") or 0),
            tuple(
                HealthResult(
                    str(r.get("Start", "")),
                    str(r.get("End", "")),
                    int(r.get("ExitCode", 0)),
                    str(r.get("Output", "")),
                )
                for r in doc.get("Log") or []
                if isinstance(r, dict)
            ),
        )


@dataclass
class State:
    status: Status = "created"
    pid: int = 0
    exit_code: int = 0
    error: str = ""
    oom_killed: bool = False
    started_at: str = ZERO_TIME
    finished_at: str = ZERO_TIME
    health: Health | None = field(default=None)

    # questions -----------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """Docker's `Running`: true while running, paused or restarting (state.go)."""
        return self.status in ("running", "paused", "restarting")

    @property
    def alive(self) -> bool:
        """A process exists (running or paused): what exec, stop, stats and the network need."""
        return self.status in ("running", "paused")

    @property
    def paused(self) -> bool:
        return self.status == "paused"

    @property
    def restarting(self) -> bool:
        return self.status == "restarting"

    @property
    def ever_started(self) -> bool:
        return self.started_at != ZERO_TIME

    # transitions ---------------------------------------------------------------------------
    def set_running(self, pid: int, now: str) -> None:
        """A started process (moby SetRunning with initial=true). The health of the previous
        run stays until the new run's first probe is scheduled."""
        self.status = "running"
        self.pid = pid
        self.exit_code = 0
        self.error = ""
        self.oom_killed = False
        self.started_at = now

    def set_stopped(self, exit_code: int, error: str, oom_killed: bool, now: str) -> None:
        """The process exited (moby SetStopped). A health verdict turns "unhealthy": nothing
        probes a stopped container."""
        self.status = "exited"
        self.pid = 0
        self.exit_code = exit_code
        self.error = error
        self.oom_killed = oom_killed
        self.finished_at = now
        if self.health is not None:
            self.health = replace(self.health, status="unhealthy")

    def set_restarting(self, exit_code: int, error: str) -> None:
        """Exited, and the restart policy brings it back after a back-off (SetRestarting)."""
        self.status = "restarting"
        self.pid = 0
        self.exit_code = exit_code
        self.error = error
        self.oom_killed = False

    def set_restart_cancelled(self) -> None:
        """A restart that will not happen (stop, kill or a daemon restart during the back-off):
        the container stays exited with the code of its last run."""
        self.status = "exited"
        self.pid = 0
        self.error = ""
        self.oom_killed = False

    def set_start_failed(self, exit_code: int, error: str) -> None:
        """runc could not start it: a container that never ran stays created (dockerd)."""
        self.status = "exited" if self.ever_started else "created"
        self.pid = 0
        self.exit_code = exit_code
        self.error = error
        self.oom_killed = False

    def set_paused(self) -> None:
        self.status = "paused"

    def set_unpaused(self) -> None:
        self.status = "running"

    def set_health(self, health: Health) -> None:
        self.health = health

    # Docker's JSON -------------------------------------------------------------------------
    def to_docker(self) -> JsonState:
        out: JsonState = {
            "Status": self.status,
            "Running": self.running,
            "Paused": self.paused,
            "Restarting": self.restarting,
            "OOMKilled": self.oom_killed,
            "Dead": self.status == "dead",
            "Pid": self.pid,
            "ExitCode": self.exit_code,
            "Error": self.error,
            "StartedAt": self.started_at,
            "FinishedAt": self.finished_at,
        }
        if self.health is not None:
            out["Health"] = self.health.to_docker()
        return out

    @staticmethod
    def from_docker(doc: dict[str, object]) -> State:
        status = str(doc.get("Status") or "created")
        known: Status = next((s for s in STATUSES if s == status), "created")
        return State(
            status=known,
            pid=int(cast(int, doc.get("Pid") or 0)),
            exit_code=int(cast(int, doc.get("ExitCode") or 0)),
            error=str(doc.get("Error") or ""),
            oom_killed=bool(doc.get("OOMKilled")),
            started_at=str(doc.get("StartedAt") or ZERO_TIME),
            finished_at=str(doc.get("FinishedAt") or ZERO_TIME),
            health=Health.from_docker(doc.get("Health")),
        )
