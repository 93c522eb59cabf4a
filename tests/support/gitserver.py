"""A git server for tests on 127.0.0.1: git's own `git http-backend` (smart HTTP) behind a
small threaded HTTP server that runs it as a CGI program, serving bare repositories made
from trees the test writes. dockerd (20.10's legacy builder, 26.1's BuildKit) runs on the
host, so it reaches the same server as dockyard.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

BACKEND = "/usr/lib/git-core/git-http-backend"

# Fixed identity and dates: the same commits (hashes) on every run.
_GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.invalid",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.invalid",
    "GIT_AUTHOR_DATE": "2021-02-03T04:05:06Z",
    "GIT_COMMITTER_DATE": "2021-02-03T04:05:06Z",
    "GIT_CONFIG_NOSYSTEM": "1",
    "HOME": "/nonexistent",
}


def git(cwd: Path, *args: str, date: str = "") -> str:
    env = {**os.environ, **_GIT_ENV}
    if date:
        env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = date
    proc = subprocess.run(
        ["git", "-c", "protocol.file.allow=always", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {proc.stderr}")
    return proc.stdout.strip()


def available() -> bool:
    return shutil.which("git") is not None and os.access(BACKEND, os.X_OK)


def _handler(root: Path) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def _cgi(self) -> None:
            path, _, query = self.path.partition("?")
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "GIT_PROJECT_ROOT": str(root),
                "GIT_HTTP_EXPORT_ALL": "1",
                "REQUEST_METHOD": self.command,
                "PATH_INFO": path,
                "QUERY_STRING": query,
                "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                "CONTENT_LENGTH": str(length),
                "REMOTE_ADDR": "127.0.0.1",
                "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
                "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
            }
            proc = subprocess.run([BACKEND], input=body, env=env, capture_output=True, timeout=120)
            head, _, payload = proc.stdout.partition(b"\r\n\r\n")
            if not _:
                head, _, payload = proc.stdout.partition(b"\n\n")
            status = 200
            headers: list[tuple[str, str]] = []
            for line in head.decode("latin-1").splitlines():
                name, _, value = line.partition(":")
                if name.lower() == "status":
                    status = int(value.strip().split()[0])
                elif name:
                    headers.append((name, value.strip()))
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = _cgi
        do_POST = _cgi

    return Handler


@dataclass
class GitServer:
    """Bare repositories under `root`, served at `http://127.0.0.1:PORT/<name>.git`."""

    root: Path
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    started: float = 0.0  # when the server started (the repositories are younger)

    def start(self) -> GitServer:
        self.started = time.time()
        self.root.mkdir(parents=True, exist_ok=True)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.root))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    @property
    def base(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def url(self, name: str) -> str:
        return f"{self.base}/{name}.git"

    def repo(self, name: str) -> Path:
        """A working repository whose commits `publish` pushes to the served bare one."""
        work = self.root / "work" / name
        work.mkdir(parents=True, exist_ok=True)
        if not (work / ".git").exists():
            git(work, "init", "-q", "-b", "main")
        bare = self.root / f"{name}.git"
        if not bare.exists():
            git(self.root, "init", "-q", "--bare", "-b", "main", str(bare))
        return work

    def publish(self, name: str, *refs: str) -> None:
        work = self.root / "work" / name
        git(work, "push", "-q", "--force", str(self.root / f"{name}.git"), *(refs or ("--all",)))
        git(work, "push", "-q", "--force", "--tags", str(self.root / f"{name}.git"))

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
