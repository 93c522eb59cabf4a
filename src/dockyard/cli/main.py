"""The `dockyard` command: the common commands through a lean parser, the rest through argparse.

Start-up is on every user's hot path: a `dockyard ps` is ~1 ms of daemon work, and was
~45 ms of CPU of ours against docker CLI 28's ~20. So the common commands (cli/lean.py: ps,
images, inspect, version, run, start, stop, rm, logs, ...) are parsed from flag tables made
from the argparse parsers (cli/leanspecs.py) and run with nothing but the stdlib's C pieces
(`_socket`, `_json`) and their own command module; argparse, `re`, `socket`, `json`, `enum`
and `typing` stay unloaded. Anything the lean parser is not sure of (help, a usage error, an
unusual spelling) goes to cli/commandline.py, argparse with docker's rules, as before.

The launcher that scripts/setup.sh installs (cli/launcher.py) starts Python with `-S`: no
`site` (~4 ms) and no `re` (pip's console script imports it); the fallback runs `site`
first, so every other command sees the interpreter as it always does.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing itself costs ~1.5 ms of start-up; mypy honours this name

if TYPE_CHECKING:
    from typing import NoReturn

_launched = False  # started by the installed launcher, without `site` (launch())
_ran = ""  # the command main() ran through the lean path, if any

# Commands whose process may end with os._exit once their output is flushed (launch()):
# the interpreter's own exit tears down every module and object first, ~1.5-2 ms of CPU
# (30 `python -S` runs importing run's modules: 17.3 -> 15.6 and 15.9 -> 13.7 ms), at the
# end of every `dockyard run`, after the container is gone (issue 17 row d). They register
# no atexit work, keep no file open for writing but stdout and stderr (attach.py writes the
# container's output to the fds themselves), and their threads are daemon threads, which
# the interpreter's exit does not wait for either.
_QUICK_EXIT = frozenset({"run", "start"})


def main(argv: list[str] | None = None) -> int:
    global _ran
    args_list = list(sys.argv[1:] if argv is None else argv)
    from dockyard.cli import lean

    parsed = lean.parse(args_list)
    if parsed is None:
        if _launched and "site" not in sys.modules:
            import site

            site.main()  # what Python without -S runs at start (.pth files, site-packages)
        from dockyard.cli import commandline

        return commandline.main(args_list)
    if isinstance(parsed, str):
        sys.stdout.write(parsed)
        return 0
    from dockyard.cli.dispatch import execute

    args, handler = parsed
    code = execute(args, handler)
    _ran = str(getattr(args, "cmd", ""))
    return code


def launch() -> NoReturn:
    """The installed launcher's entry point (cli/launcher.py)."""
    global _launched
    _launched = True
    code = main()
    if _ran in _QUICK_EXIT:
        _quick_exit(code)
    sys.exit(code)


def _quick_exit(code: int) -> None:
    """os._exit(code) once stdout and stderr are flushed; a flush that fails returns, and
    the caller's sys.exit reports it as the interpreter would."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:
        return
    import os

    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
