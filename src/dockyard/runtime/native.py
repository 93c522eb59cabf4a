"""Small C programs that ship as source (runtime/data/*.c) and are compiled on this host.

- `dockyard-init` (`--init`) runs inside containers, whose images may have no libc: static.
- `dockyard-monitor` and `dockyard-portproxy` run once per container, beside it, for as long
  as it runs: a Python process costs ~13 MiB of PSS each, these cost a few hundred KiB
  (bench/RESULTS.md, "per running container").

A binary is named after a hash of its source and build flags (`dockyard-monitor-<12 hex>`), so
an edited source is never served by a stale build. It is looked for next to the interpreter
(where `scripts/setup.sh` builds all of them: `python -m dockyard.runtime.native --dir
.venv/bin`) and in the caller's cache directory, and built into the cache directory on first
use. Building needs gcc; without it `find_or_build` says so with `NativeBuildError`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path


class NativeBuildError(Exception):
    """A native helper could not be built (no compiler, or the compiler failed)."""


@dataclass(frozen=True)
class Program:
    name: str
    flags: tuple[str, ...]

    def source(self) -> str:
        from importlib import resources  # at the first build only (not in an idle daemon)

        return resources.files("dockyard.runtime").joinpath(f"data/{self.name}.c").read_text()

    def file_name(self) -> str:
        digest = hashlib.sha256()
        digest.update(self.source().encode())
        digest.update("\0".join(self.flags).encode())
        return f"{self.name}-{digest.hexdigest()[:12]}"


# Static: no loader, no relocations, no libc pages of its own to dirty — the smallest
# resident set for a process that idles beside a container (measured: ~0.3 MiB PSS).
INIT = Program("dockyard-init", ("-static", "-O2"))
MONITOR = Program("dockyard-monitor", ("-static", "-O2"))
PORTPROXY = Program("dockyard-portproxy", ("-static", "-O2"))
PROGRAMS = (INIT, MONITOR, PORTPROXY)


def find(program: Program, cache_dir: Path | None = None) -> Path | None:
    """The built binary of `program` if one exists next to the interpreter or in `cache_dir`."""
    name = program.file_name()
    dirs = [Path(sys.executable).parent]
    if cache_dir is not None:
        dirs.append(cache_dir)
    for d in dirs:
        candidate = d / name
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def build(program: Program, out_dir: Path) -> Path:
    """Compile `program` into `out_dir` (atomically: concurrent builders are harmless)."""
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        raise NativeBuildError(f"{program.name} needs a C compiler (gcc) to be built")
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / program.file_name()
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".build-") as tmp:
        src = Path(tmp) / f"{program.name}.c"
        src.write_text(program.source())
        out = Path(tmp) / program.name
        proc = subprocess.run(
            [gcc, *program.flags, "-o", str(out), str(src)], capture_output=True, text=True
        )
        if proc.returncode != 0:
            raise NativeBuildError(f"building {program.name} failed: {proc.stderr.strip()}")
        out.replace(target)
    return target


def find_or_build(program: Program, cache_dir: Path) -> Path:
    found = find(program, cache_dir)
    return found if found is not None else build(program, cache_dir)


_found: dict[tuple[str, Path], Path | None] = {}


def known_command(program: Program, cache_dir: Path, env_var: str) -> list[str] | None:
    """`command`'s answer when it needs no build (a binary found before, still there): the
    caller can skip a worker thread (issue 17 row d: one per container start)."""
    if os.environ.get(env_var) == "python":
        return None
    binary = _found.get((program.name, cache_dir))
    return [str(binary)] if binary is not None and binary.exists() else None


def command(program: Program, cache_dir: Path, python_module: str, env_var: str) -> list[str]:
    """argv[0:n] to run `program`: its binary (built into `cache_dir` on first use), or the
    Python module that does the same where it cannot be built or `env_var`=python says so
    (tests compare the two)."""
    if os.environ.get(env_var) != "python":
        key = (program.name, cache_dir)
        if key not in _found:
            try:
                _found[key] = find_or_build(program, cache_dir)
            except NativeBuildError:
                _found[key] = None
        binary = _found[key]
        if binary is not None and binary.exists():
            return [str(binary)]
        _found.pop(key, None)
    return [sys.executable, "-m", python_module]


def main(argv: list[str] | None = None) -> int:
    import argparse  # the command line's: not in a daemon, which imports this module

    parser = argparse.ArgumentParser(
        prog="dockyard.runtime.native", description="Build dockyard's C helpers."
    )
    parser.add_argument("--dir", type=Path, default=Path(sys.executable).parent)
    args = parser.parse_args(argv)
    for program in PROGRAMS:
        existing = args.dir / program.file_name()
        if not os.access(existing, os.X_OK):
            existing = build(program, args.dir)
        # Builds of older sources; processes still running them keep their inode.
        for stale in args.dir.glob(f"{program.name}-????????????"):
            if stale != existing:
                stale.unlink(missing_ok=True)
        print(existing)
    return 0


if __name__ == "__main__":
    sys.exit(main())
