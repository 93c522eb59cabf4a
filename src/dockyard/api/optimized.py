"""The daemon process runs under `python -OO` when its -OO bytecode is at hand (issue 17, row h).

-OO drops docstrings and asserts from every module the daemon loads: 1.3 MiB of an idle
daemon's RSS here (fresh daemons, alternating, 3 each: 39.8 -> 38.5 MiB), the docstrings
of aiohttp's, the stdlib's and our modules. Nothing the daemon runs reads a docstring
(argparse is given its texts; aiohttp, attrs, protobuf and dataclasses only write
`__doc__`), and our asserts are type narrowings and import-time self-checks whose failure
would be a bug either way; nothing catches AssertionError.

The switch is a re-exec as `python -OO -m dockyard.api.daemon ARGS`, the process's first
act (the pid stays, so an autostart's or a test's handle on it holds). `dockyard daemon`,
which the CLI's autostart runs too, so also leaves the CLI's modules behind (0.5 MiB). It is made only where the -OO bytecode (`*.opt-2.pyc`: scripts/setup.sh runs
`python -m dockyard.api.optimized` to compile it; the stdlib's comes with the interpreter
where it was built with `make install`, as pyenv's is) exists for the stdlib, aiohttp and dockyard, or where Python may write it:
with PYTHONDONTWRITEBYTECODE set and no such files, every start would compile all of them
from source in memory, slower and with a larger heap than the plain start.
DOCKYARD_DAEMON_OPTIMIZE=0 keeps the plain interpreter (asserts on, for debugging).

The re-exec also starts the daemon with PYTHONMALLOC=malloc: small objects come from glibc's
malloc instead of pymalloc's 1 MiB arenas. pymalloc hands an arena back only once every pool
in it is empty, so after builds, pulls and pushes ~8 MiB of free pools stayed pinned in
partly used arenas; glibc's free chunks are what malloc_trim gives back (api/memtrim.py).
Measured with bench's workloads (full sizes, daemons side by side, runs alternating, shared
machine): after them 66.0 -> 60.2 and 67.2 -> 62.5 MiB; idle 37.7 -> 38.8 MiB (fresh
daemons, 5 each: glibc's per-chunk header on every small object); build rows within the
noise (see the commit). A PYTHONMALLOC the daemon was given is kept. The variable is taken
out of the daemon's environment once it runs (`forget_allocator`), so its children (the
Python monitor and proxy, runc, the build's helpers) start as the daemon was started.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Mapping, MutableMapping


def _bytecode_ready() -> bool:
    if not sys.dont_write_bytecode:
        return True  # the first -OO start writes what is missing
    aiohttp = importlib.util.find_spec("aiohttp")
    if aiohttp is None or aiohttp.origin is None:
        return False
    sources = [
        os.path.join(os.path.dirname(os.__file__), "asyncio", "base_events.py"),  # stdlib
        os.path.join(os.path.dirname(aiohttp.origin), "web_urldispatcher.py"),
        os.path.join(os.path.dirname(__file__), "server.py"),
    ]
    try:
        return all(
            os.path.exists(importlib.util.cache_from_source(src, optimization=2)) for src in sources
        )
    except (NotImplementedError, ValueError):  # no cache tag, or a frozen module
        return False


# set beside PYTHONMALLOC when the re-exec chose the allocator, so the daemon knows to drop both
_CHOSE_ALLOCATOR = "DOCKYARD_DAEMON_CHOSE_MALLOC"


def environment(base: Mapping[str, str]) -> dict[str, str]:
    """The re-exec's environment: `base` with glibc's malloc for small objects, unless
    `base` names an allocator itself."""
    env = dict(base)
    if "PYTHONMALLOC" not in env:
        env["PYTHONMALLOC"] = "malloc"
        env[_CHOSE_ALLOCATOR] = "1"
    return env


def forget_allocator(environ: MutableMapping[str, str]) -> None:
    """Take the re-exec's PYTHONMALLOC out of `environ` (the daemon's os.environ): the
    interpreter read it at start, and the daemon's children should not inherit it."""
    if environ.pop(_CHOSE_ALLOCATOR, None) is not None:
        environ.pop("PYTHONMALLOC", None)


def command(argv: list[str]) -> list[str] | None:
    """The command line to re-exec the daemon with `argv` under -OO, or None to stay in
    this interpreter."""
    if sys.flags.optimize >= 2 or os.environ.get("DOCKYARD_DAEMON_OPTIMIZE") == "0":
        return None
    if not sys.executable or not _bytecode_ready():
        return None
    return [sys.executable, "-OO", "-m", "dockyard.api.daemon", *argv]


# what the daemon loads from site-packages, at idle and after builds, pulls and pushes
PACKAGES = (
    "aiohappyeyeballs",
    "aiohttp",
    "aiosignal",
    "attr",
    "frozenlist",
    "idna",
    "multidict",
    "propcache",
    "typing_extensions",
    "yarl",
    "google.protobuf",
    "h2",
    "hpack",
    "hyperframe",
    "zstandard",
)


def compile_bytecode() -> bool:
    """Write the -OO bytecode of dockyard and of PACKAGES, beside the plain one (which the
    CLI uses); True when every file compiled."""
    import compileall

    ok = bool(
        compileall.compile_dir(os.path.dirname(os.path.dirname(__file__)), quiet=1, optimize=2)
    )
    for name in PACKAGES:
        try:
            spec = importlib.util.find_spec(name)
        except ImportError:
            spec = None
        if spec is None or spec.origin is None:
            continue  # not installed: compiled in memory if it is ever imported
        if spec.submodule_search_locations:
            ok = (
                bool(compileall.compile_dir(os.path.dirname(spec.origin), quiet=1, optimize=2))
                and ok
            )
        else:
            ok = bool(compileall.compile_file(spec.origin, quiet=1, optimize=2)) and ok
    return ok


def reexec(argv: list[str]) -> None:
    """Replace this process with the daemon under -OO (see the module's text), given the
    daemon's arguments; returns only when it stays as it is."""
    new = command(argv)
    if new is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(new[0], new, environment(os.environ))
    except OSError:
        return  # the plain interpreter still serves


if __name__ == "__main__":
    # setup.sh runs under `set -e`: a file some package ships that this Python cannot compile
    # (compileall printed it) costs that module its -OO bytecode, not the set-up
    if not compile_bytecode():
        sys.stderr.write("dockyard: some files were not compiled for -OO (see above)\n")
