"""The environment a container process starts with, as Docker fills it in.

Docker adds PATH when the image sets none, HOSTNAME always, and HOME from the user's passwd
entry when unset (moby daemon/oci_linux.go and container/container.go CreateDaemonEnvironment).
"""

from __future__ import annotations

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def process_env(env: list[str], hostname: str, home: str) -> list[str]:
    keys = {e.split("=", 1)[0] for e in env}
    out = [] if "PATH" in keys else [f"PATH={DEFAULT_PATH}"]
    out.append(f"HOSTNAME={hostname}")
    out.extend(e for e in env if not e.startswith("HOSTNAME="))
    if "HOME" not in keys:
        out.append(f"HOME={home}")
    return out
