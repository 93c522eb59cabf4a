"""BuildKit's progress stream: StatusResponse messages, as the docker CLI's progress display reads them.

Over `/build?version=2` each StatusResponse travels base64-encoded in a JSON message
`{"id": "moby.buildkit.trace", "aux": "<base64>"}` (moby builder-next/builder.go; the docker
CLI's tracer unmarshals aux as []byte, which JSON carries as standard base64). A vertex is a
step (`[2/3] RUN …`); it is announced when it starts, again when it completes (with `cached`
or `error`), its output goes as logs (stream 1 stdout, 2 stderr) and transfers as statuses.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dockyard.session.proto import status_pb2

Emit = Callable[[dict[str, Any]], None]
TRACE_ID = "moby.buildkit.trace"


def _ts(ns: int) -> Any:
    from google.protobuf.timestamp_pb2 import Timestamp

    t = Timestamp()
    t.FromNanoseconds(ns)
    return t


@dataclass
class Vertex:
    digest: str
    name: str
    inputs: list[str] = field(default_factory=list)
    started_ns: int = 0
    completed_ns: int = 0
    cached: bool = False
    error: str = ""

    @property
    def done(self) -> bool:
        return self.completed_ns != 0


class Trace:
    """Writes one StatusResponse per change; `emit` carries it to the client."""

    def __init__(self, emit: Emit, *, quiet: bool = False) -> None:
        self._emit = emit
        self._quiet = quiet
        self._seq = itertools.count()
        self._salt = f"{time.time_ns()}"
        # Traces a quiet build holds back: the CLI shows them only when the build fails.
        self.held: list[dict[str, Any]] = []

    def _send(self, resp: status_pb2.StatusResponse) -> None:
        msg = {"id": TRACE_ID, "aux": base64.b64encode(resp.SerializeToString()).decode()}
        if self._quiet:
            self.held.append(msg)
        else:
            self._emit(msg)

    def _vertex_msg(self, v: Vertex) -> status_pb2.Vertex:
        pv = status_pb2.Vertex(digest=v.digest, name=v.name, cached=v.cached, error=v.error)
        pv.inputs.extend(v.inputs)
        if v.started_ns:
            pv.started.CopyFrom(_ts(v.started_ns))
        if v.completed_ns:
            pv.completed.CopyFrom(_ts(v.completed_ns))
        return pv

    def start(self, name: str, inputs: list[str] | None = None, *, cached: bool = False) -> Vertex:
        n = next(self._seq)
        digest = "sha256:" + hashlib.sha256(f"{self._salt}\0{n}\0{name}".encode()).hexdigest()
        v = Vertex(digest, name, list(inputs or []), started_ns=time.time_ns(), cached=cached)
        resp = status_pb2.StatusResponse()
        resp.vertexes.append(self._vertex_msg(v))
        self._send(resp)
        return v

    def complete(self, v: Vertex, *, cached: bool | None = None, error: str = "") -> None:
        if v.done:
            return
        if cached is not None:
            v.cached = cached
        v.error = error
        v.completed_ns = time.time_ns()
        resp = status_pb2.StatusResponse()
        resp.vertexes.append(self._vertex_msg(v))
        self._send(resp)

    def log(self, v: Vertex, data: bytes, stream: int = 1) -> None:
        if not data:
            return
        resp = status_pb2.StatusResponse()
        resp.logs.append(
            status_pb2.VertexLog(
                vertex=v.digest, timestamp=_ts(time.time_ns()), stream=stream, msg=data
            )
        )
        self._send(resp)

    def status(
        self, v: Vertex, ident: str, current: int = 0, total: int = 0, *, done: bool = False
    ) -> None:
        now = time.time_ns()
        st = status_pb2.VertexStatus(
            ID=ident, vertex=v.digest, name=ident, current=current, total=total
        )
        st.timestamp.CopyFrom(_ts(now))
        st.started.CopyFrom(_ts(v.started_ns or now))
        if done:
            st.completed.CopyFrom(_ts(now))
        resp = status_pb2.StatusResponse()
        resp.statuses.append(st)
        self._send(resp)

    def quick(self, name: str, statuses: list[str] | None = None, *, cached: bool = False) -> None:
        """A vertex that starts and completes at once (`exporting to image`, …)."""
        v = self.start(name, cached=cached)
        for s in statuses or []:
            self.status(v, s, done=True)
        self.complete(v)


def human_size(n: int) -> str:
    """go-units HumanSize as BuildKit prints transfers: 1.2kB, 37B (decimal, 4 digits)."""
    units = ["B", "kB", "MB", "GB", "TB"]
    size = float(n)
    i = 0
    while size >= 1000 and i < len(units) - 1:
        size /= 1000
        i += 1
    text = f"{size:.4g}"
    return f"{text}{units[i]}"
