"""Test registries: the CNCF distribution server (`docker-registry`) on 127.0.0.1 with a
temporary config (anonymous, htpasswd Basic, Bearer token from a tiny issuer, TLS), a raw
uploader that puts images into it without dockyard's code, and a proxy that breaks blob bodies.

`htpasswd` comes from Debian's apache2-utils (bcrypt hashes, which the registry requires);
JWTs are RS256-signed with the openssl CLI, the signing certificate travelling in `x5c`.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import http.client
import io
import json
import shutil
import socket
import ssl
import subprocess
import tarfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


def make_cert(dirpath: Path, name: str = "cert") -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1/localhost (its own CA)."""
    dirpath.mkdir(parents=True, exist_ok=True)
    key, cert = dirpath / f"{name}.key", dirpath / f"{name}.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
        ],
        check=True,
        capture_output=True,
    )
    return key, cert


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenIssuer:
    """A token endpoint as Docker Hub's auth server: Basic credentials in, a JWT granting the
    requested scopes out (all of them for the known user, pull only when anonymous if allowed)."""

    def __init__(
        self,
        base: Path,
        users: dict[str, str],
        service: str = "test-registry",
        anonymous_pull: bool = False,
    ) -> None:
        self.key, self.cert = make_cert(base, "token")
        der = subprocess.run(
            ["openssl", "x509", "-in", str(self.cert), "-outform", "DER"],
            check=True,
            capture_output=True,
        ).stdout
        self.x5c = base64.b64encode(der).decode()
        self.users = users
        self.service = service
        self.anonymous_pull = anonymous_pull
        self.requests: list[dict[str, Any]] = []
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                from urllib.parse import parse_qs, urlparse

                q = parse_qs(urlparse(self.path).query)
                user = ""
                auth = self.headers.get("Authorization", "")
                if auth.startswith("Basic "):
                    u, _, p = base64.b64decode(auth[6:]).decode().partition(":")
                    if issuer.users.get(u) != p:
                        self.send_response(401)
                        self.end_headers()
                        return
                    user = u
                scopes = q.get("scope", [])
                issuer.requests.append({"user": user, "scopes": scopes})
                access = []
                for scope in scopes:
                    typ, name, actions = scope.split(":")
                    granted = (
                        actions.split(",")
                        if user
                        else (["pull"] if issuer.anonymous_pull and "pull" in actions else [])
                    )
                    access.append({"type": typ, "name": name, "actions": granted})
                token = issuer.sign(user, access)
                body = json.dumps(
                    {"token": token, "access_token": token, "expires_in": 300}
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def sign(self, user: str, access: list[dict[str, Any]]) -> str:
        now = int(time.time())
        header = {"alg": "RS256", "typ": "JWT", "x5c": [self.x5c]}
        claims = {
            "iss": "test-issuer",
            "sub": user,
            "aud": self.service,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        sig = subprocess.run(
            ["openssl", "dgst", "-sha256", "-sign", str(self.key)],
            input=signing_input.encode(),
            check=True,
            capture_output=True,
        ).stdout
        return f"{signing_input}.{_b64(sig)}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Registry:
    """docker-registry on 127.0.0.1:port with storage under `base`."""

    base: Path
    auth: str = "none"  # none | htpasswd | token
    users: dict[str, str] = field(default_factory=dict)
    tls: bool = False
    anonymous_pull: bool = False
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    issuer: TokenIssuer | None = None
    cert: Path | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}"

    @property
    def storage(self) -> Path:
        return self.base / "storage"

    def start(self) -> Registry:
        self.base.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        lines = [
            "version: 0.1",
            "log: {level: warn, accesslog: {disabled: true}}",
            f"storage: {{filesystem: {{rootdirectory: {self.storage}}}, delete: {{enabled: true}}}}",
            "http:",
            f"  addr: 127.0.0.1:{self.port}",
            "  secret: dockyard-test",
        ]
        if self.tls:
            key, self.cert = make_cert(self.base, "tls")
            lines += ["  tls:", f"    certificate: {self.cert}", f"    key: {key}"]
        if self.auth == "htpasswd":
            htpasswd = self.base / "htpasswd"
            for i, (user, password) in enumerate(self.users.items()):
                subprocess.run(
                    ["htpasswd", "-Bb" + ("c" if i == 0 else ""), str(htpasswd), user, password],
                    check=True,
                    capture_output=True,
                )
            lines += ["auth:", "  htpasswd:", "    realm: basic-realm", f"    path: {htpasswd}"]
        elif self.auth == "token":
            self.issuer = TokenIssuer(
                self.base / "issuer", self.users, anonymous_pull=self.anonymous_pull
            )
            lines += [
                "auth:",
                "  token:",
                f"    realm: {self.issuer.realm}",
                f"    service: {self.issuer.service}",
                "    issuer: test-issuer",
                f"    rootcertbundle: {self.issuer.cert}",
            ]
        cfg = self.base / "config.yml"
        cfg.write_text("\n".join(lines) + "\n")
        log = open(self.base / "registry.log", "ab")
        self.proc = subprocess.Popen(
            ["docker-registry", "serve", str(cfg)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError((self.base / "registry.log").read_text())
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("registry did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self.issuer:
            self.issuer.close()
            self.issuer = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def blob_file(self, digest: str) -> Path:
        hexd = digest.removeprefix("sha256:")
        return self.storage / "docker/registry/v2/blobs/sha256" / hexd[:2] / hexd / "data"

    # raw client (independent of dockyard's code) ------------------------------------------
    def client(self, user: str = "", scope: str = "") -> httpx.Client:
        headers = {}
        if self.auth == "htpasswd" and user:
            raw = f"{user}:{self.users[user]}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
        elif self.auth == "token" and self.issuer is not None:
            typ, name, actions = scope.split(":")
            token = self.issuer.sign(
                user, [{"type": typ, "name": name, "actions": actions.split(",")}]
            )
            headers["Authorization"] = f"Bearer {token}"
        verify: Any = ssl.create_default_context(cafile=str(self.cert)) if self.cert else False
        return httpx.Client(base_url=self.url, headers=headers, verify=verify, timeout=30)

    def put_image(self, repo: str, tag: str, image: RegImage, user: str = "") -> str:
        """Upload blobs and manifest with plain HTTP calls; returns the manifest digest."""
        with self.client(user, f"repository:{repo}:pull,push") as c:
            for digest, data in [(image.config_digest, image.config), *image.blobs]:
                r = c.post(f"/v2/{repo}/blobs/uploads/")
                assert r.status_code == 202, r.text
                loc = r.headers["location"]
                url = httpx.URL(loc).copy_merge_params({"digest": digest})
                r = c.put(url, content=data, headers={"Content-Type": "application/octet-stream"})
                assert r.status_code == 201, r.text
            r = c.put(
                f"/v2/{repo}/manifests/{tag}",
                content=image.manifest,
                headers={"Content-Type": image.manifest_type},
            )
            assert r.status_code == 201, r.text
            return str(r.headers["docker-content-digest"])

    def put_raw_manifest(
        self, repo: str, tag: str, raw: bytes, media_type: str, user: str = ""
    ) -> str:
        with self.client(user, f"repository:{repo}:pull,push") as c:
            r = c.put(
                f"/v2/{repo}/manifests/{tag}", content=raw, headers={"Content-Type": media_type}
            )
            assert r.status_code == 201, r.text
            return str(r.headers["docker-content-digest"])


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 1700000000
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@dataclass
class RegImage:
    config: bytes
    blobs: list[tuple[str, bytes]]  # compressed layer digest, bytes
    diff_ids: list[str]
    manifest: bytes
    manifest_type: str
    arch: str

    @property
    def config_digest(self) -> str:
        return sha(self.config)

    @property
    def image_id(self) -> str:
        return self.config_digest


def make_image(
    layers: list[bytes],
    *,
    compress: str = "gzip",
    oci: bool = False,
    cmd: list[str] | None = None,
    arch: str = "amd64",
) -> RegImage:
    """An image from uncompressed layer tars (gzip or zstd blobs)."""
    blobs, diff_ids, descs = [], [], []
    for tar in layers:
        diff_ids.append(sha(tar))
        if compress == "zstd":
            import zstandard

            data = zstandard.ZstdCompressor().compress(tar)
            mt = "application/vnd.oci.image.layer.v1.tar+zstd"
        else:
            data = gzip.compress(tar, mtime=0)
            mt = (
                "application/vnd.oci.image.layer.v1.tar+gzip"
                if oci
                else "application/vnd.docker.image.rootfs.diff.tar.gzip"
            )
        blobs.append((sha(data), data))
        descs.append({"mediaType": mt, "size": len(data), "digest": sha(data)})
    config = json.dumps(
        {
            "architecture": arch,
            "os": "linux",
            "created": "2024-01-01T00:00:00Z",
            "config": {
                "Cmd": cmd or ["/bin/sh"],
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            },
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "test"} for _ in layers],
        }
    ).encode()
    oci = oci or compress == "zstd"
    manifest_type = (
        "application/vnd.oci.image.manifest.v1+json"
        if oci
        else "application/vnd.docker.distribution.manifest.v2+json"
    )
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json"
                if oci
                else "application/vnd.docker.container.image.v1+json",
                "size": len(config),
                "digest": sha(config),
            },
            "layers": descs,
        },
        indent=3,
    ).encode()
    return RegImage(config, blobs, diff_ids, manifest, manifest_type, arch)


def index_of(entries: list[tuple[RegImage, str, str]], oci: bool = True) -> tuple[bytes, str]:
    """A manifest list / OCI index over (image, os, arch)."""
    mt = (
        "application/vnd.oci.image.index.v1+json"
        if oci
        else "application/vnd.docker.distribution.manifest.list.v2+json"
    )
    doc = {
        "schemaVersion": 2,
        "mediaType": mt,
        "manifests": [
            {
                "mediaType": img.manifest_type,
                "size": len(img.manifest),
                "digest": sha(img.manifest),
                "platform": {"os": os_, "architecture": arch},
            }
            for img, os_, arch in entries
        ],
    }
    return json.dumps(doc).encode(), mt


class BreakingProxy:
    """An HTTP proxy in front of a registry that cuts the first `breaks` blob bodies it relays
    after `cut` bytes; with `kill`, it also stops listening then (a server killed mid-layer).
    With `breaks=0` it only relays, and `requests` counts what clients asked for."""

    def __init__(self, upstream_port: int, cut: int, breaks: int = 1, kill: bool = False) -> None:
        self.kill = kill
        self.dead = False
        self.upstream_port = upstream_port
        self.cut = cut
        self.breaks = breaks
        self.ranges: list[str] = []
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request relayed
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_HEAD(self) -> None:
                self._relay()

            def do_GET(self) -> None:
                self._relay()

            def _relay(self) -> None:
                if proxy.dead:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                proxy.requests.append((self.command, self.path))
                conn = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                if "/blobs/" in self.path and "Range" in self.headers:
                    proxy.ranges.append(self.headers["Range"])
                conn.request(self.command, self.path, headers=headers)
                resp = conn.getresponse()
                body = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection"):
                        self.send_header(k, v)
                self.end_headers()
                cut_now = (
                    "/blobs/" in self.path
                    and self.command == "GET"
                    and resp.status == 200
                    and len(body) > proxy.cut
                    and proxy.breaks != 0
                )
                if cut_now:
                    if proxy.breaks > 0:
                        proxy.breaks -= 1
                    self.wfile.write(body[: proxy.cut])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    if proxy.kill:
                        # The server dies with the connection: nothing answers any more.
                        proxy.dead = True
                        proxy.server.socket.close()
                    return
                if self.command != "HEAD":
                    self.wfile.write(body)

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
