"""The environment a container process starts with, as Docker fills it in.

Docker starts from PATH, HOSTNAME and (with a TTY) TERM=xterm, lays the container's Env over
them, and adds HOME from the user's passwd entry when unset (moby container/container.go
CreateDaemonEnvironment, ReplaceOrAppendEnvValues; daemon/oci_linux.go). An entry without `=`
(`docker run -e VAR` with VAR unset in the client's environment: the CLI sends the bare name)
unsets that variable rather than reaching runc, which refuses it.
"""

from __future__ import annotations

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def replace_or_append(defaults: list[str], overrides: list[str]) -> list[str]:
    """moby's ReplaceOrAppendEnvValues: `K=V` replaces K in place or is appended; a bare `K`
    removes K."""
    out = list(defaults)
    for item in overrides:
        key, eq, _ = item.partition("=")
        where = next((i for i, e in enumerate(out) if e.partition("=")[0] == key), None)
        if not eq:
            if where is not None:
                del out[where]
        elif where is None:
            out.append(item)
        else:
            out[where] = item
    return out


def process_env(env: list[str], hostname: str, home: str, *, tty: bool = False) -> list[str]:
    defaults = [f"PATH={DEFAULT_PATH}", f"HOSTNAME={hostname}"]
    if tty:
        defaults.append("TERM=xterm")
    out = replace_or_append(defaults, env)
    if not any(e.startswith("HOME=") for e in out):
        out.append(f"HOME={home}")
    return out
