"""`Dockyard.connect(host)`: the Python API's calls through a daemon's Engine API.

A root has one writer: when a daemon serves it, a script reaches the same engine through the
daemon's socket instead, with the same calls and the same typed results as the in-process
`Dockyard` (local/dockyard.py). Each call is one Engine API request (what `docker` sends for
it), so what the daemon does is exactly what it does for the docker CLI or SDK; errors come
back as the `dockyard.errors` class of the HTTP status, with the daemon's message.

The build sends the context as the docker CLI's legacy build does (a tar, `.dockerignore`
applied by the client) and reads the steps' results from the legacy stream (`Step N/M`,
` ---> Using cache`, ` ---> Running in`, the step's output, ` ---> ID`).
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import re
import socket
import struct
import tarfile
import urllib.parse
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from dockyard.errors import (
    BuildFailure,
    Conflict,
    DockyardError,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from dockyard.local.calls import create_body, push_target, run_container, split_import_reference
from dockyard.local.models import (
    BuildResult,
    BuildStep,
    Container,
    Image,
    PushResult,
    RunResult,
)

API_VERSION = "1.44"
_ERRORS: dict[int, type[DockyardError]] = {
    400: InvalidArgument,
    404: NotFound,
    409: Conflict,
    503: Unavailable,
}
_STEP = re.compile(r"^Step (\d+)/\d+ : (.*)$")
_DONE = re.compile(r"^ ---> ([0-9a-f]{12})$")
_COLOUR = re.compile(rb"\x1b\[(91|0)m")  # the legacy stream paints stderr red


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


def _registry_auth(username: str, password: str) -> dict[str, str]:
    if not username:
        return {}
    doc = json.dumps({"username": username, "password": password}).encode()
    return {"X-Registry-Auth": base64.urlsafe_b64encode(doc).decode()}


class RemoteDockyard:
    """The daemon at `host` (`unix:///path` or a socket path), with `Dockyard`'s calls."""

    mode = "daemon"

    def __init__(self, host: str, *, timeout: float = 600) -> None:
        path = host.removeprefix("unix://")
        if "://" in path:
            raise InvalidArgument(f"host {host!r}: only unix:// sockets are supported")
        self.host = f"unix://{path}"
        self._path = path
        self._timeout = timeout
        self._call("GET", "/_ping")  # a daemon that is not there fails here, by name

    def close(self) -> None:
        """Nothing to release: every call is a connection of its own."""

    def __enter__(self) -> RemoteDockyard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # the wire ---------------------------------------------------------------------------
    def _open(
        self,
        method: str,
        path: str,
        query: Sequence[tuple[str, str]] = (),
        body: bytes | BinaryIO | None = None,
        headers: dict[str, str] | None = None,
    ) -> http.client.HTTPResponse:
        target = f"/v{API_VERSION}{path}"
        if query:
            target += "?" + urllib.parse.urlencode(list(query))
        conn = _UnixConnection(self._path, self._timeout)
        hdrs = dict(headers or {})
        if isinstance(body, bytes):
            hdrs.setdefault("Content-Type", "application/json")
        elif body is not None:
            hdrs.setdefault("Content-Type", "application/x-tar")
        try:
            conn.request(method, target, body=body, headers=hdrs)
            resp = conn.getresponse()
        except OSError as e:
            conn.close()
            raise Unavailable(f"cannot reach the dockyard daemon at {self.host}: {e}") from e
        if resp.status >= 400:
            data = resp.read()
            conn.close()
            try:
                message = str(json.loads(data).get("message", ""))
            except ValueError:
                message = data.decode(errors="replace").strip()
            raise _ERRORS.get(resp.status, DockyardError)(message)
        return resp

    def _call(
        self,
        method: str,
        path: str,
        query: Sequence[tuple[str, str]] = (),
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        resp = self._open(method, path, query, data, headers)
        raw = resp.read()
        resp.close()
        if not raw or resp.getheader("Content-Type", "").startswith("text/"):
            return raw.decode(errors="replace")
        return json.loads(raw)

    def _stream(
        self,
        method: str,
        path: str,
        query: Sequence[tuple[str, str]] = (),
        body: bytes | BinaryIO | None = None,
        headers: dict[str, str] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """A JSON message stream (build, pull, push, load); an `error` message raises."""
        resp = self._open(method, path, query, body, headers)
        try:
            decoder = json.JSONDecoder()
            buf = ""
            for line in resp:
                buf += line.decode(errors="replace")
                while True:
                    buf = buf.lstrip()
                    if not buf:
                        break
                    try:
                        msg, end = decoder.raw_decode(buf)
                    except ValueError:
                        break
                    buf = buf[end:]
                    if msg.get("error"):
                        raise _stream_error(path, str(msg["error"]))
                    yield msg
        finally:
            resp.close()

    # images -----------------------------------------------------------------------------
    def build(
        self,
        path: str | os.PathLike[str],
        *,
        tag: str | Sequence[str] = (),
        dockerfile: str = "Dockerfile",
        build_args: dict[str, str] | None = None,
        labels: dict[str, str] | None = None,
        target: str = "",
        no_cache: bool = False,
        network: str = "default",
    ) -> BuildResult:
        """`Dockyard.build` through the daemon's legacy `/build`."""
        root = Path(path).absolute()
        if not root.is_dir():
            raise InvalidArgument(f"build context {root} is not a directory")
        tags = [tag] if isinstance(tag, str) else list(tag)
        query = [("t", t) for t in tags] + [("dockerfile", dockerfile), ("rm", "1")]
        query += [
            ("buildargs", json.dumps(build_args or {})),
            ("labels", json.dumps(labels or {})),
            ("networkmode", network),
        ]
        if target:
            query.append(("target", target))
        if no_cache:
            query.append(("nocache", "1"))
        context = _context_tar(root, dockerfile)
        steps: list[dict[str, Any]] = []
        image_id = ""
        for msg in self._stream("POST", "/build", query, context):
            if "aux" in msg and "ID" in msg["aux"]:
                image_id = str(msg["aux"]["ID"])
            text = msg.get("stream")
            if text is not None:
                _read_build_text(str(text), steps)
        return BuildResult(
            image_id, tags, self._steps(steps, root, dockerfile), self._layers(image_id)
        )

    def _layers(self, image_id: str) -> list[str]:
        doc = self._call("GET", f"/images/{image_id}/json")
        return list(doc.get("RootFS", {}).get("Layers") or [])

    def _steps(self, raw: list[dict[str, Any]], root: Path, dockerfile: str) -> list[BuildStep]:
        lines = _instruction_lines(root / dockerfile)
        out: list[BuildStep] = []
        had = 0
        for s in raw:
            image_id = self._call("GET", f"/images/{s['short']}/json")["Id"] if s["short"] else ""
            is_from = s["text"].split(None, 1)[0].upper() == "FROM" if s["text"].strip() else False
            layers = self._layers(image_id) if image_id else []
            if is_from:
                had = len(layers)
            added = layers[-1] if len(layers) > had and not is_from else None
            had = len(layers)
            output = _COLOUR.sub(b"", bytes(s["output"]))
            line = lines.pop(s["text"], [0])[0] if s["text"] in lines else 0
            out.append(
                BuildStep(s["number"], s["text"], line, s["cached"], image_id, added, output)
            )
        return out

    def image(self, name: str) -> Image:
        doc = self._call("GET", f"/images/{_quote(name)}/json")
        return Image(
            str(doc["Id"]),
            list(doc.get("RepoTags") or []),
            list(doc.get("RepoDigests") or []),
            list(doc.get("RootFS", {}).get("Layers") or []),
            dict(doc.get("Config") or {}),
        )

    def images(self) -> list[Image]:
        """What `docker images` lists (the same listing as in-process: engine/image_list.py)."""
        return [self.image(str(s["Id"])) for s in self._call("GET", "/images/json")]

    def tag(self, source: str, target: str) -> None:
        repo, tag = _split_tag(target)
        self._call("POST", f"/images/{_quote(source)}/tag", [("repo", repo), ("tag", tag)])

    def remove_image(self, name: str, *, force: bool = False) -> list[dict[str, str]]:
        query = [("force", "1")] if force else []
        return list(self._call("DELETE", f"/images/{_quote(name)}", query))

    def pull(
        self, reference: str, *, username: str = "", password: str = "", platform: str = ""
    ) -> Image:
        # `latest` when it names neither a tag nor a digest, as Dockyard.pull
        ref = reference if re.search(r"(:[^/]*|@.*)$", reference) else f"{reference}:latest"
        query = [("fromImage", ref)] + ([("platform", platform)] if platform else [])
        auth = _registry_auth(username, password)
        for _ in self._stream("POST", "/images/create", query, headers=auth):
            pass
        return self.image(ref)

    def push(self, reference: str, *, username: str = "", password: str = "") -> PushResult:
        name, tag = push_target(reference)
        digest = ""
        auth = _registry_auth(username, password) or {"X-Registry-Auth": "e30="}  # {}
        for msg in self._stream(
            "POST", f"/images/{_quote(name)}/push", [("tag", tag)], headers=auth
        ):
            digest = str(msg.get("aux", {}).get("Digest", digest))
        return PushResult(f"{name}:{tag}", digest)

    def import_image(self, path: str | os.PathLike[str], reference: str = "") -> Image:
        repo, tag = split_import_reference(reference)
        query = [("fromSrc", "-"), ("repo", repo), ("tag", tag)]
        image_id = ""
        with open(path, "rb") as f:
            for msg in self._stream("POST", "/images/create", query, f):
                image_id = str(msg.get("status", image_id))
        return self.image(image_id)

    def save(self, names: Sequence[str], path: str | os.PathLike[str]) -> None:
        resp = self._open("GET", "/images/get", [("names", n) for n in names])
        try:
            with open(path, "wb") as out:
                while chunk := resp.read(1 << 20):
                    out.write(chunk)
        finally:
            resp.close()

    def load(self, path: str | os.PathLike[str]) -> list[str]:
        """The IDs of the images loaded (`Loaded image: NAME` names are resolved)."""
        ids: list[str] = []
        with open(path, "rb") as f:
            for msg in self._stream("POST", "/images/load", [("quiet", "1")], f):
                for text in str(msg.get("stream", "")).splitlines():
                    if text.startswith("Loaded image ID: "):
                        ids.append(text.removeprefix("Loaded image ID: "))
                    elif text.startswith("Loaded image: "):
                        ids.append(self.image(text.removeprefix("Loaded image: ")).id)
        return list(dict.fromkeys(ids))

    # containers -------------------------------------------------------------------------
    def create(
        self,
        image: str,
        command: Sequence[str] | None = None,
        *,
        name: str | None = None,
        env: dict[str, str] | None = None,
        workdir: str = "",
        user: str = "",
        network: str = "bridge",
        volumes: dict[str, str] | None = None,
        labels: dict[str, str] | None = None,
    ) -> Container:
        body = create_body(image, command, env, workdir, user, network, volumes, labels)
        query = [("name", name)] if name else []
        created = self._call("POST", "/containers/create", query, body)
        return self.container(str(created["Id"]))

    def container(self, name_or_id: str) -> Container:
        doc = self._call("GET", f"/containers/{_quote(name_or_id)}/json")
        return Container(doc["Id"], doc["Name"].lstrip("/"), doc["Config"]["Image"])

    def start(self, container: Container | str) -> None:
        self._call("POST", f"/containers/{_id(container)}/start")

    def wait(self, container: Container | str) -> int:
        doc = self._call(
            "POST", f"/containers/{_id(container)}/wait", [("condition", "not-running")]
        )
        return int(doc["StatusCode"])

    def stop(self, container: Container | str, *, timeout: int | None = None) -> None:
        query = [("t", str(timeout))] if timeout is not None else []
        self._call("POST", f"/containers/{_id(container)}/stop", query)

    def remove(self, container: Container | str, *, force: bool = False) -> None:
        self._call("DELETE", f"/containers/{_id(container)}", [("force", "1")] if force else [])

    def logs(self, container: Container | str) -> tuple[bytes, bytes]:
        resp = self._open(
            "GET", f"/containers/{_id(container)}/logs", [("stdout", "1"), ("stderr", "1")]
        )
        try:
            return _demux(resp)
        finally:
            resp.close()

    def run(
        self,
        image: str,
        command: Sequence[str] | None = None,
        *,
        remove: bool = True,
        **create: Any,
    ) -> RunResult:
        """`Dockyard.run`: create, start, wait, logs (and remove), as requests."""
        return run_container(self, image, command, remove, create)


def _quote(name: str) -> str:
    return urllib.parse.quote(name, safe="/:@")


def _id(container: Container | str) -> str:
    return _quote(container.id if isinstance(container, Container) else container)


def _split_tag(reference: str) -> tuple[str, str]:
    repo, sep, tag = reference.rpartition(":")
    if sep and "/" not in tag:
        return repo, tag
    return reference, ""


def _stream_error(path: str, message: str) -> DockyardError:
    """A stream's `error` message as the in-process call raises it."""
    if path == "/build":
        return BuildFailure(message)
    if "not found" in message or "manifest unknown" in message:
        return NotFound(message)
    return DockyardError(message)


def _read_build_text(text: str, steps: list[dict[str, Any]]) -> None:
    """One `stream` message of the legacy build: a step's start, its result, or output."""
    for line in text.splitlines(keepends=True):
        bare = line.rstrip("\n")
        if m := _STEP.match(bare):
            steps.append(
                {
                    "number": int(m[1]),
                    "text": m[2],
                    "cached": False,
                    "short": "",
                    "output": bytearray(),
                    "running": False,
                }
            )
        elif not steps:
            continue
        elif bare == " ---> Using cache":
            steps[-1]["cached"] = True
        elif bare.startswith(" ---> Running in "):
            steps[-1]["running"] = True
        elif m := _DONE.match(bare):
            steps[-1]["short"] = m[1]
            steps[-1]["running"] = False
        elif bare.startswith("Removing intermediate container "):
            steps[-1]["running"] = False
        elif steps[-1]["running"]:
            steps[-1]["output"].extend(line.encode())


def _instruction_lines(path: Path) -> dict[str, list[int]]:
    """Each instruction's first line as written → the Dockerfile lines it starts on."""
    from dockyard.frontend.parser import parse_dockerfile

    try:
        parsed = parse_dockerfile(path.read_text(), filename=path.name)
    except (OSError, DockyardError):
        return {}
    out: dict[str, list[int]] = {}
    for ins in parsed.instructions:
        out.setdefault(ins.original, []).append(ins.line)
    return out


def _context_tar(root: Path, dockerfile: str) -> bytes:
    """The context as the docker CLI sends it: a tar with .dockerignore'd paths left out
    (the Dockerfile and .dockerignore always go: the daemon drops them itself if excluded)."""
    from dockyard.frontend.dockerignore import IgnoreMatcher, parse_dockerignore

    ignore = root / ".dockerignore"
    patterns = parse_dockerignore(ignore.read_text(errors="replace")) if ignore.is_file() else []
    matcher = IgnoreMatcher(patterns)
    keep = {dockerfile, ".dockerignore"}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for dirpath, dirnames, filenames in os.walk(root):
            rel_dir = os.path.relpath(dirpath, root)
            for d in list(dirnames):
                rel = os.path.normpath(os.path.join(rel_dir, d))
                if matcher.matches(rel) and not matcher.may_reinclude_under(rel):
                    dirnames.remove(d)
                else:
                    tar.add(os.path.join(dirpath, d), rel, recursive=False)
            for f in filenames:
                rel = os.path.normpath(os.path.join(rel_dir, f))
                if rel in keep or not matcher.matches(rel):
                    tar.add(os.path.join(dirpath, f), rel, recursive=False)
    return buf.getvalue()


def _demux(resp: http.client.HTTPResponse) -> tuple[bytes, bytes]:
    """A non-TTY log stream: 8-byte headers (stream, 0, 0, 0, size) before each frame."""
    out, err = bytearray(), bytearray()
    while head := resp.read(8):
        kind, size = struct.unpack(">BxxxL", head)
        data = resp.read(size)
        (err if kind == 2 else out).extend(data)
    return bytes(out), bytes(err)
