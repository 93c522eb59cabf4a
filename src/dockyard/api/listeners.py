"""The daemon's `--host` addresses, as dockerd takes them: one Unix socket and TCP listeners,
the latter with TLS as dockerd's `--tls`, `--tlsverify`, `--tlscacert`, `--tlscert`,
`--tlskey` (defaults `$DOCKER_CERT_PATH/{ca,cert,key}.pem`, else `~/.docker/…`).

dockerd's rule for TCP: without `--tlsverify` the API is root on this machine for anyone who
can reach the port, so plain (or unauthenticated TLS) TCP is accepted only on loopback
addresses; any other address is refused at start. With `--tlsverify` a client must present a
certificate signed by `--tlscacert` (TLS 1.2 at least, as dockerd's default), or the
handshake fails.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import ssl

    from aiohttp import web


class ListenError(Exception):
    """A `--host` or TLS setting the daemon cannot serve; the message is for the user."""


@dataclass(frozen=True)
class Listeners:
    unix: Path | None
    tcp: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class TLSFiles:
    verify: bool
    ca: Path
    cert: Path
    key: Path


def parse_hosts(hosts: list[str]) -> Listeners:
    unix: Path | None = None
    tcp: list[tuple[str, int]] = []
    for host in hosts:
        if host.startswith("unix://"):
            if unix is not None:
                raise ListenError("only one unix:// host is supported")
            path = host[len("unix://") :]
            if not path:
                raise ListenError(f"invalid host {host!r}: empty socket path")
            unix = Path(path)
        elif host.startswith("tcp://"):
            rest = host[len("tcp://") :].rstrip("/")
            name, sep, port = rest.rpartition(":")
            if not sep or not port.isdigit() or not 0 < int(port) < 65536:
                raise ListenError(f"invalid host {host!r}: use tcp://ADDRESS:PORT")
            tcp.append((name.strip("[]") or "0.0.0.0", int(port)))
        else:
            raise ListenError(f"invalid host {host!r}: use unix:///path or tcp://ADDRESS:PORT")
    return Listeners(unix, tuple(tcp))


def is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def tls_files(
    *, tls: bool, verify: bool, ca: str | None, cert: str | None, key: str | None
) -> TLSFiles | None:
    """The TLS settings if TLS is on (`--tlsverify` implies `--tls`, as in dockerd)."""
    if not (tls or verify):
        return None
    base = Path(os.environ.get("DOCKER_CERT_PATH") or Path.home() / ".docker")
    files = TLSFiles(
        verify,
        Path(ca) if ca else base / "ca.pem",
        Path(cert) if cert else base / "cert.pem",
        Path(key) if key else base / "key.pem",
    )
    for what, path in (("certificate", files.cert), ("key", files.key)):
        if not path.is_file():
            raise ListenError(f"could not load the TLS {what} {path}: no such file")
    if verify and not files.ca.is_file():
        raise ListenError(f"could not read the CA certificate {files.ca}: no such file")
    return files


def check_tcp(listeners: Listeners, tls: TLSFiles | None) -> None:
    """Refuse what dockerd refuses: a TCP API without client verification off loopback."""
    for address, port in listeners.tcp:
        if (tls is None or not tls.verify) and not is_loopback(address):
            shown = f"[{address}]" if ":" in address else address
            raise ListenError(
                f"refusing to listen on tcp://{shown}:{port} without --tlsverify: the API is "
                "root on this machine for anyone who can reach it (plain TCP is only served "
                "on loopback addresses)"
            )


def server_context(files: TLSFiles) -> ssl.SSLContext:
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(files.cert, files.key)
        if files.verify:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(cafile=files.ca)
    except (OSError, ssl.SSLError) as exc:
        raise ListenError(f"could not load the TLS certificates: {exc}") from None
    return ctx


def listen_tcp(address: str, port: int) -> list[socket.socket]:
    """Listening sockets for `address:port` as asyncio's create_server binds them (TCPSite
    did, before the daemon made its sockets itself to keep them across a re-exec,
    api/handoff.py): one per address getaddrinfo gives (a name may give IPv4 and IPv6), with
    SO_REUSEADDR, IPv6 ones IPv6-only."""
    infos = socket.getaddrinfo(address, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    socks: list[socket.socket] = []
    seen: set[tuple[int, object]] = set()
    try:
        for family, kind, proto, _, sockaddr in infos:
            if (family, sockaddr) in seen:
                continue
            seen.add((family, sockaddr))
            sock = socket.socket(family, kind, proto)
            socks.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(sockaddr)
            sock.listen(512)
            sock.setblocking(False)
    except OSError:
        for sock in socks:
            sock.close()
        raise
    return socks


@dataclass
class ListeningSockets:
    """The daemon's listening sockets, bound by the daemon itself (not by aiohttp's TCPSite)
    so that they can outlive a site and be handed to the next process of a re-exec in place
    (api/handoff.py). aiohttp's sites get duplicates (`start_sites`), which stopping a site
    closes: these stay open, listening, for the sites that come after or the next process."""

    unix: socket.socket | None = None
    bound: tuple[int, int] = (0, 0)  # the unix socket file's (st_dev, st_ino)
    tcp: list[tuple[str, int, socket.socket]] = field(default_factory=list)

    def close(self) -> None:
        for sock in [*(s for _, _, s in self.tcp), *([self.unix] if self.unix else [])]:
            sock.close()


async def start_sites(
    runner: web.AppRunner, sockets: ListeningSockets, ssl_context: ssl.SSLContext | None
) -> list[web.BaseSite]:
    """aiohttp's sites on duplicates of `sockets` (stopping one closes its duplicate only)."""
    from aiohttp import web

    sites: list[web.BaseSite] = []
    if sockets.unix is not None:
        sites.append(web.SockSite(runner, _duplicate(sockets.unix), backlog=512))
    for _, _, sock in sockets.tcp:
        sites.append(web.SockSite(runner, _duplicate(sock), ssl_context=ssl_context, backlog=512))
    for site in sites:
        await site.start()
    return sites


def _duplicate(sock: socket.socket) -> socket.socket:
    dup = socket.socket(fileno=os.dup(sock.fileno()))  # os.dup: not inheritable
    dup.setblocking(False)
    return dup
