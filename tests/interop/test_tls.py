"""A remote daemon over mutual TLS, as dockerd serves one: `dockyard daemon --host
tcp://127.0.0.1:PORT --tlsverify --tlscacert … --tlscert … --tlskey …`, reached by the docker
CLI (DOCKER_HOST, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH), the docker SDK and our own CLI —
attach and exec hijacks, stdin's half-close and builds included — while a client without a
certificate from the daemon's CA is refused, and plain TCP off loopback is refused at start.

The certificates are made here with openssl: a CA, the daemon's (SAN IP:127.0.0.1), a client's
signed by the CA, and a rogue client's signed by another CA.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import IS_ROOT, short_tmp, write_context
from tests.interop.conftest import DOCKER_CLIS
from tests.registry.support import free_port
from tests.support.daemons import DockyardDaemon
from tests.support.rootfs import busybox_rootfs_tar

pytestmark = pytest.mark.root


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _ca(d: Path, name: str) -> None:
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
             f"/CN={name}", "-keyout", f"{name}-key.pem", "-out", f"{name}.pem", cwd=d)  # fmt: skip


def _signed(d: Path, ca: str, name: str, ext: str) -> None:
    (d / f"{name}.ext").write_text(ext)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
             "-keyout", f"{name}-key.pem", "-out", f"{name}.csr", cwd=d)  # fmt: skip
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey",
             f"{ca}-key.pem", "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext",
             "-out", f"{name}.pem", cwd=d)  # fmt: skip


def _cert_dir(base: Path, name: str, ca: str, client: str) -> Path:
    """A DOCKER_CERT_PATH: ca.pem, cert.pem, key.pem."""
    out = base / name
    out.mkdir()
    (out / "ca.pem").write_bytes((base / f"{ca}.pem").read_bytes())
    (out / "cert.pem").write_bytes((base / f"{client}.pem").read_bytes())
    (out / "key.pem").write_bytes((base / f"{client}-key.pem").read_bytes())
    return out


@pytest.fixture(scope="module")
def certs() -> Iterator[Path]:
    d = short_tmp("tls-")
    try:
        _ca(d, "ca")
        _ca(d, "rogue-ca")
        _signed(d, "ca", "server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
        _signed(d, "ca", "client", "extendedKeyUsage=clientAuth\n")
        _signed(d, "rogue-ca", "rogue", "extendedKeyUsage=clientAuth\n")
        _cert_dir(d, "good", "ca", "client")
        _cert_dir(d, "bad", "ca", "rogue")
        yield d
    finally:
        subprocess.run(["rm", "-rf", str(d)])


@pytest.fixture(scope="module")
def remote(certs: Path) -> Iterator[tuple[DockyardDaemon, str]]:
    if not IS_ROOT:
        pytest.skip("needs root")
    port = free_port()
    tcp = f"tcp://127.0.0.1:{port}"
    d = DockyardDaemon(
        short_tmp("dytls-"),
        extra_args=[
            "--host",
            tcp,
            "--tlsverify",
            "--tlscacert",
            str(certs / "ca.pem"),
            "--tlscert",
            str(certs / "server.pem"),
            "--tlskey",
            str(certs / "server-key.pem"),
        ],
    ).start()
    try:
        subprocess.run(
            [sys.executable, "-m", "dockyard.cli.main", "import", str(busybox_rootfs_tar()),
             "busybox:latest"],
            env=d.env(), check=True, capture_output=True,
        )  # fmt: skip
        yield d, tcp
    finally:
        d.cleanup()


def _env(remote: tuple[DockyardDaemon, str], cert_path: Path | None) -> dict[str, str]:
    daemon, tcp = remote
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "DOCKYARD_"))}
    env.update(DOCKER_HOST=tcp, DOCKER_BUILDKIT="0", DOCKER_CONFIG=str(daemon.base / "cfg"))
    env["DOCKYARD_ROOT"] = str(daemon.root)
    if cert_path is not None:
        env.update(DOCKER_TLS_VERIFY="1", DOCKER_CERT_PATH=str(cert_path))
    return env


def _run(argv: list[str], env: dict[str, str], stdin: bytes | None = None) -> tuple[int, str]:
    proc = subprocess.run(argv, env=env, input=stdin, capture_output=True, timeout=120)
    return proc.returncode, (proc.stdout + proc.stderr).decode(errors="replace")


DOCKER = DOCKER_CLIS["28"]
DOCKYARD = [sys.executable, "-m", "dockyard.cli.main"]


@pytest.mark.parametrize("client", ["docker", "dockyard"])
def test_clis_work_over_mutual_tls(
    remote: tuple[DockyardDaemon, str], certs: Path, client: str, tmp_path: Path
) -> None:
    if client == "docker" and not os.path.exists(DOCKER):
        pytest.skip("docker CLI 28 is not installed")
    cli = [DOCKER] if client == "docker" else DOCKYARD
    env = _env(remote, certs / "good")
    rc, out = _run([*cli, "version", "--format", "{{.Server.Os}}"], env)
    assert (rc, out.strip()) == (0, "linux"), out
    # attach hijack: output and exit code
    rc, out = _run([*cli, "run", "--rm", "--network=none", "busybox", "sh", "-c",
                    "echo over-tls; exit 3"], env)  # fmt: skip
    assert (rc, out) == (3, "over-tls\n")
    # stdin, then its end (a TLS close_notify): the output after it still arrives
    rc, out = _run([*cli, "run", "-i", "--rm", "--network=none", "busybox", "sh", "-c",
                    "cat; echo after-eof"], env, stdin=b"in\n")  # fmt: skip
    assert (rc, out) == (0, "in\nafter-eof\n")
    name = f"tls-{client}"
    _run([*cli, "rm", "-f", name], env)
    rc, out = _run([*cli, "run", "-d", "--name", name, "--network=none", "busybox", "sleep",
                    "60"], env)  # fmt: skip
    assert rc == 0, out
    try:
        rc, out = _run([*cli, "exec", "-i", name, "sh", "-c", "cat; echo done"], env, b"x\n")
        assert (rc, out) == (0, "x\ndone\n")
    finally:
        _run([*cli, "rm", "-f", name], env)
    write_context(tmp_path, "FROM busybox\nRUN echo built > /b\nCMD cat /b\n")
    rc, out = _run([*cli, "build", "-q", "-t", f"tls-built-{client}", str(tmp_path)], env)
    assert rc == 0, out
    rc, out = _run([*cli, "run", "--rm", "--network=none", f"tls-built-{client}"], env)
    assert (rc, out) == (0, "built\n")


def test_docker_sdk_over_mutual_tls(
    remote: tuple[DockyardDaemon, str], certs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import docker

    # requests prefers these bundles over the client's own CA when they are set
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    from docker.tls import TLSConfig

    _, tcp = remote
    good = certs / "good"
    tls = TLSConfig(
        client_cert=(str(good / "cert.pem"), str(good / "key.pem")),
        ca_cert=str(good / "ca.pem"),
        verify=True,
    )
    client = docker.DockerClient(base_url=tcp.replace("tcp://", "https://"), tls=tls)
    try:
        assert client.ping()
        out = client.containers.run("busybox", ["echo", "sdk"], remove=True, network_mode="none")
        assert out == b"sdk\n"
        c = client.containers.run("busybox", ["sleep", "60"], detach=True, network_mode="none")
        try:
            code, (so, se) = c.exec_run(["sh", "-c", "echo o; echo e >&2"], demux=True)
            assert (code, so, se) == (0, b"o\n", b"e\n")
            sock = c.attach_socket(params={"stdout": 1, "stream": 1, "logs": 1})
            sock.close()
        finally:
            c.remove(force=True)
        write_context(tmp_path, "FROM busybox\nRUN echo sdk-built > /b\n")
        _, logs = client.images.build(path=str(tmp_path), tag="tls-sdk-built")
        assert any("Successfully built" in str(m.get("stream", "")) for m in logs)
    finally:
        client.close()


def test_clients_without_a_valid_certificate_are_refused(
    remote: tuple[DockyardDaemon, str], certs: Path
) -> None:
    _, tcp = remote
    port = int(tcp.rpartition(":")[2])
    if os.path.exists(DOCKER):
        for cert_path in (certs / "bad", None):
            env = _env(remote, cert_path)
            if cert_path is None:
                # TLS without a client certificate
                env.update(DOCKER_TLS="1", DOCKER_CERT_PATH=str(certs / "none"))
            rc, out = _run([DOCKER, "ps"], env)
            assert rc != 0 and "CONTAINER" not in out, out
    rc, out = _run([*DOCKYARD, "ps"], _env(remote, certs / "bad"))
    assert rc != 0 and "error during connect" in out, out
    # plain HTTP on the TLS port: no API answer
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n")
        s.settimeout(10)
        try:
            answer = s.recv(4096)
        except OSError:
            answer = b""
    assert b"OK" not in answer


def test_plain_tcp_is_refused_off_loopback_and_served_on_it(tmp_path: Path) -> None:
    if not IS_ROOT:
        pytest.skip("needs root")
    port = free_port()
    proc = subprocess.run(
        [sys.executable, "-m", "dockyard.api.daemon", "--root", str(tmp_path / "r"),
         "--host", f"tcp://0.0.0.0:{port}"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "refusing to listen on tcp://0.0.0.0" in proc.stderr, proc.stderr
    assert not (tmp_path / "r").exists()  # refused before anything was made
    d = DockyardDaemon(short_tmp("dyplain-"), extra_args=["--host", f"tcp://127.0.0.1:{port}"])
    d.start()
    try:
        env = {**d.env(), "DOCKER_HOST": f"tcp://127.0.0.1:{port}"}
        env.pop("DOCKYARD_HOST")
        rc, out = _run([*DOCKYARD, "version", "--format", "{{.Server.Os}}"], env)
        assert (rc, out.strip()) == (0, "linux")
    finally:
        d.cleanup()
