"""The `dockyard` launcher scripts/setup.sh installs: `python -m dockyard.cli.launcher PATH`.

pip's console script for `dockyard` runs `import re` (to strip a `-script.py` suffix from
argv[0], a Windows matter) and starts the interpreter with `site` (the .pth files of the
venv): ~9 ms of CPU before our code runs, more than the work of a `dockyard ps`. This
writes the same kind of script (the venv's interpreter in its first line, then the
import of the entry point) with `-S` and the paths `site` would have added, computed here
once: the venv's site-packages and the checkout's `src` (what the editable install's
.pth adds). cli/main.py runs `site` itself before any command that leaves its lean
path, so those see the interpreter as `site` leaves it.
"""

from __future__ import annotations

import os
import sys

import dockyard

TEMPLATE = """#!{python} -S
# dockyard's launcher, written by `python -m dockyard.cli.launcher` (scripts/setup.sh):
# -S skips `site` (cli/main.py runs it for the commands that need it).
import sys
sys.path += {paths!r}
from dockyard.cli.main import launch
launch()
"""


def script(python: str = sys.executable) -> str:
    """The launcher's text for this interpreter and this installation of dockyard."""
    import site
    import sysconfig

    # site's order: site-packages, then what a .pth file there adds (the checkout's src)
    paths: list[str] = []
    for extra in [sysconfig.get_paths()["purelib"], *site.getsitepackages()]:
        if extra not in paths and os.path.isdir(extra):
            paths.append(extra)
    src = os.path.dirname(os.path.dirname(os.path.abspath(dockyard.__file__)))
    if src not in paths:
        paths.append(src)
    return TEMPLATE.format(python=python, paths=paths)


def write(path: str, python: str = sys.executable) -> None:
    """Write the launcher at path (atomically: a running `dockyard` may be reading it)."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(script(python))
    os.chmod(tmp, 0o755)
    os.replace(tmp, path)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.stderr.write("usage: python -m dockyard.cli.launcher PATH\n")
        sys.exit(2)
    write(sys.argv[1])
