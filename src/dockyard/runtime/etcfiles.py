"""The per-container /etc/hostname, /etc/hosts and /etc/resolv.conf, bind-mounted by runc.

They live in the container's state directory, not in its root filesystem, so nothing a
container or a build step does to them lands in a layer (the init layer holds the empty mount
points). With the host network Docker copies the host's files and uses its hostname.

On a bridge network Docker drops the host's loopback nameservers (unreachable from another
network namespace); dockyard never falls back to public resolvers when none is left (issue
5), the file then carries only the search and options lines. `--dns`, `--dns-search` and
`--dns-option` replace the host's values; `--add-host` lines follow the container's own.
The hosts file is rewritten in place (same inode) when network peers change, so a running
container sees the new entries through its bind mount.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from pathlib import Path

from dockyard.runtime.spec import BindMount

HOSTS_LOCAL = (
    "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n"
    "ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"
)


def resolv_conf(
    host_text: str,
    *,
    host_network: bool,
    dns: Sequence[str] = (),
    search: Sequence[str] = (),
    options: Sequence[str] = (),
) -> str:
    if host_network and not (dns or search or options):
        return host_text
    servers: list[str] = []
    host_search: list[str] = []
    host_options: list[str] = []
    for line in host_text.splitlines():
        parts = line.split()
        if not parts or parts[0].startswith(("#", ";")):
            continue
        if parts[0] == "nameserver" and len(parts) > 1:
            servers.append(parts[1])
        elif parts[0] in ("search", "domain"):
            host_search = parts[1:]
        elif parts[0] == "options":
            host_options = parts[1:]
    if not host_network:
        servers = [s for s in servers if not s.startswith("127.") and s != "::1"]
    lines = [f"nameserver {s}" for s in (list(dns) or servers)]
    if search or host_search:
        lines.append("search " + " ".join(list(search) or host_search))
    if options or host_options:
        lines.append("options " + " ".join(list(options) or host_options))
    return "\n".join(lines) + "\n"


def hosts_file(
    *,
    host_network: bool,
    own: Sequence[tuple[str, str]] = (),
    extra: Sequence[tuple[str, str]] = (),
) -> str:
    """/etc/hosts: the base entries, then `own` (address, names), then --add-host lines."""
    if host_network:
        try:
            text = Path("/etc/hosts").read_text()
        except OSError:
            text = HOSTS_LOCAL
    else:
        text = HOSTS_LOCAL
    if text and not text.endswith("\n"):
        text += "\n"
    for addr, names in own:
        text += f"{addr}\t{names}\n"
    for name, addr in extra:
        text += f"{addr}\t{name}\n"
    return text


def rewrite_in_place(path: Path, text: str) -> None:
    """Replace a bind-mounted file's contents without changing its inode."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def write_etc_files(
    state_dir: Path,
    hostname: str,
    host_network: bool,
    *,
    dns: Sequence[str] = (),
    dns_search: Sequence[str] = (),
    dns_options: Sequence[str] = (),
    extra_hosts: Sequence[tuple[str, str]] = (),
    own_hosts: Sequence[tuple[str, str]] = (),
) -> tuple[BindMount, ...]:
    state_dir.mkdir(parents=True, exist_ok=True)
    if host_network:
        hostname = socket.gethostname()
    try:
        host_resolv = Path("/etc/resolv.conf").read_text()
    except OSError:
        host_resolv = ""
    resolv = resolv_conf(
        host_resolv, host_network=host_network, dns=dns, search=dns_search, options=dns_options
    )
    hosts = hosts_file(host_network=host_network, own=own_hosts, extra=extra_hosts)
    (state_dir / "hostname").write_text(hostname + "\n")
    rewrite_in_place(state_dir / "hosts", hosts)
    (state_dir / "resolv.conf").write_text(resolv)
    # Docker's order (daemon/container_operations_unix.go): resolv.conf, hostname, hosts.
    return (
        BindMount(state_dir / "resolv.conf", "/etc/resolv.conf"),
        BindMount(state_dir / "hostname", "/etc/hostname"),
        BindMount(state_dir / "hosts", "/etc/hosts"),
    )


# BuildKit's executor names every RUN's sandbox so (executor/oci/hosts.go defaultHostname)
BUILDKIT_HOSTNAME = "buildkitsandbox"


def write_buildkit_etc_files(
    state_dir: Path,
    host_network: bool,
    *,
    dns: Sequence[str] = (),
    extra_hosts: Sequence[tuple[str, str]] = (),
) -> tuple[BindMount, ...]:
    """A BuildKit RUN's /etc files: /etc/resolv.conf and an /etc/hosts of its own (the
    sandbox's name on localhost, then --add-host lines), both bound read-only; no
    /etc/hostname (measured on dockerd 20.10's and 26.1's BuildKit: a write to /etc/hosts
    fails with EROFS, /etc/hostname is the image's own file)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    try:
        host_resolv = Path("/etc/resolv.conf").read_text()
    except OSError:
        host_resolv = ""
    resolv = resolv_conf(host_resolv, host_network=host_network, dns=dns)
    hosts = f"127.0.0.1\tlocalhost {BUILDKIT_HOSTNAME}\n::1\tlocalhost ip6-localhost ip6-loopback\n"
    for name, addr in extra_hosts:
        hosts += f"{addr}\t{name}\n"
    (state_dir / "hosts").write_text(hosts)
    (state_dir / "resolv.conf").write_text(resolv)
    return (
        BindMount(state_dir / "resolv.conf", "/etc/resolv.conf", readonly=True),
        BindMount(state_dir / "hosts", "/etc/hosts", readonly=True),
    )


def effective_hostname(hostname: str, host_network: bool) -> str:
    return socket.gethostname() if host_network else hostname
