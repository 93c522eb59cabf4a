"""The per-container /etc/hostname, /etc/hosts and /etc/resolv.conf, bind-mounted by runc.

They live in the container's state directory, not in its root filesystem, so nothing a
container or a build step does to them lands in a layer (the init layer holds the empty mount
points). With the host network Docker copies the host's files and uses its hostname.
"""

from __future__ import annotations

import socket
from pathlib import Path

from dockyard.runtime.spec import BindMount

HOSTS_LOCAL = (
    "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n"
    "ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"
)


def write_etc_files(state_dir: Path, hostname: str, host_network: bool) -> tuple[BindMount, ...]:
    state_dir.mkdir(parents=True, exist_ok=True)
    if host_network:
        hostname = socket.gethostname()
        hosts = Path("/etc/hosts").read_text()
    else:
        hosts = HOSTS_LOCAL
    try:
        resolv = Path("/etc/resolv.conf").read_text()
    except OSError:
        resolv = ""
    (state_dir / "hostname").write_text(hostname + "\n")
    (state_dir / "hosts").write_text(hosts)
    (state_dir / "resolv.conf").write_text(resolv)
    return (
        BindMount(state_dir / "hostname", "/etc/hostname"),
        BindMount(state_dir / "hosts", "/etc/hosts"),
        BindMount(state_dir / "resolv.conf", "/etc/resolv.conf"),
    )


def effective_hostname(hostname: str, host_network: bool) -> str:
    return socket.gethostname() if host_network else hostname
