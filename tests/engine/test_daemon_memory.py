"""An idle daemon stays lean (issue 17, row h): the engine and the API app, as a daemon makes
them, load no builder, Dockerfile frontend, registry client (httpx) or tar archive module
until a request needs one; and the API gives freed memory back once it is quiet."""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from dockyard.api import memtrim, optimized
from tests.support.daemons import wait_for_socket

# what the first build, pull/push or save/load loads (2.8, 1.4 and 0.3 MiB of modules), and
# the layer tar code the first layer in or out loads (1.3 MiB of RSS with zstandard)
LAZY = (
    "dockyard.builder.builder",
    "dockyard.frontend.parser",
    "dockyard.registry.client",
    "httpx",
    "tarfile",
    "dockyard.diff.applier",
    "dockyard.diff.differ",
    "zstandard",
    # the request-body decoder with Go's JSON rules (api/decode.py, api/gojson.py), the build
    # cache's df records with the frontend's mount parser and csv, and pull/push with the
    # registry's manifest code: 0.3, 0.23 and 0.2 MiB of RSS
    "dockyard.api.gojson",
    "dockyard.engine.build_cache",
    "csv",
    "dockyard.engine.distribution",
    "dockyard.registry.manifest",
    # the Python monitor (the fallback of the C one) with termios: 0.15 MiB
    "dockyard.runtime.monitor",
    "termios",
    # docker exec's records
    "dockyard.engine.exec",
    # the monitor's, the proxy's and the helper builder's own command lines (the daemon
    # unloads argparse once its flags are parsed, api/leanload.py), and the seccomp
    # profile's loader with importlib.resources: 0.25 and 0.12 MiB of heap
    "argparse",
    "importlib.resources",
    "dockyard.runtime.seccomp",
    # the registry's auth headers (the first pull, push or build) and a kept build step
    "dockyard.registry.auth",
    "dockyard.builder.kept",
)

_PROBE = """
import asyncio, sys
from pathlib import Path
from dockyard.api.leanload import import_aiohttp
import_aiohttp()  # as the daemon does, first
from dockyard.api.server import create_app
from dockyard.engine.engine import Engine

async def main():
    engine = await asyncio.to_thread(Engine, Path(sys.argv[1]))
    try:
        create_app(engine)
        await engine.start()
        print(" ".join(m for m in sys.argv[2:] if m in sys.modules))
    finally:
        await engine.close()

asyncio.run(main())
"""


@pytest.mark.root
def test_an_idle_daemon_loads_no_builder_registry_or_archive_code(engine_root: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(engine_root), *LAZY],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == []


def test_the_registry_client_brings_no_second_http_stack() -> None:
    # aiohttp's client is loaded with aiohttp.web in every daemon; httpx with httpcore, h11
    # and anyio stayed loaded after the first pull (1.5 MiB of RSS)
    probe = "import sys, dockyard.registry.client; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    loaded = set(out.stdout.split())
    assert "aiohttp.client" in loaded
    assert not loaded & {"httpx", "httpcore", "h11", "anyio"}


_LEAN_AIOHTTP = """
import os, sys
from dockyard.api import daemon
# stops at the bad host, once the daemon imported aiohttp and before anything is created
assert daemon.main(["--root", sys.argv[1], "-H", "bogus://x"]) == 1
import aiohttp.connector, mimetypes
from dockyard.registry.config import RegistryConfig
unloaded = "argparse" not in sys.modules
parser = aiohttp.web.ArgumentParser(prog="x")  # aiohttp's stand-in gives the real one
print(
    unloaded,
    type(parser).__module__,
    len(mimetypes.types_map) < 300,  # Python's own map, not /etc/mime.types
    "/etc/mime.types" in mimetypes.knownfiles,
    aiohttp.connector._SSL_CONTEXT_VERIFIED.cert_store_stats()["x509"],
    aiohttp.connector._SSL_CONTEXT_UNVERIFIED.cert_store_stats()["x509"],
    "frozenlist._frozenlist" in sys.modules,
    any("libstdc++" in line for line in open("/proc/self/maps")),
    os.environ.get("SSL_CERT_FILE"),
    "FROZENLIST_NO_EXTENSIONS" in os.environ,
    RegistryConfig()._system().cert_store_stats()["x509"] > 0,
)
"""


def test_the_daemon_imports_aiohttp_without_its_ca_loads_libstdcxx_mime_types_or_argparse(
    tmp_path: Path,
) -> None:
    # aiohttp's import-time default SSL contexts (the CA bundle twice) and frozenlist's C++
    # extension: 3.2 MiB of an idle daemon's RSS; /etc/mime.types and argparse: 0.75 MiB
    bundle = tmp_path / "ca.pem"
    bundle.write_bytes(Path(ssl.get_default_verify_paths().openssl_cafile).read_bytes())
    env = {**os.environ, "SSL_CERT_FILE": str(bundle)}
    env.pop("FROZENLIST_NO_EXTENSIONS", None)
    out = subprocess.run(
        [sys.executable, "-c", _LEAN_AIOHTTP, str(tmp_path / "root")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    # no CA loaded by aiohttp, no C++ runtime; the environment as given, and the registry's
    # own context (made after) still reads the user's bundle
    assert out.stdout.split() == [
        *("True", "argparse", "True", "True"),
        *("0", "0", "False", "False", str(bundle), "False", "True"),
    ]
    assert not (tmp_path / "root").exists()


def test_the_trimmer_trims_once_requests_stop() -> None:
    calls: list[int] = []

    def trim(pad: int) -> int:
        calls.append(pad)
        return 1

    async def main() -> None:
        trimmer = memtrim.QuietTrimmer(delay=0.05, trim=trim)
        for _ in range(5):  # a burst of requests: one trim, after the last
            trimmer.started(False)
            trimmer.ended(False)
            await asyncio.sleep(0.01)
        assert calls == []
        await asyncio.sleep(0.1)
        assert calls == [0]
        # a build in flight: the short requests ending around it (its session's, a ps) do
        # not trim; its own end does, `delay` later (~35 ms of malloc_trim on the loop
        # mid-build before). A long light request (events) holds nothing off.
        trimmer.started(False)  # docker events, for good
        trimmer.started(True)
        for _ in range(3):
            trimmer.started(False)
            trimmer.ended(False)
            await asyncio.sleep(0.1)
        assert calls == [0]
        trimmer.ended(True)
        await asyncio.sleep(0.1)
        assert calls == [0, 0]  # which routes are heavy: tests/api/test_memtrim.py

    asyncio.run(main())


_ARENAS = """
import sys, threading
from dockyard.api import memtrim

if sys.argv[1] == "limited":
    memtrim.limit_arenas()  # as the daemon calls it
start = threading.Barrier(6)

def work():
    start.wait()  # all six at once: each malloc without a free arena makes a new one
    keep.append([bytes(600) for _ in range(2000)])

keep = []
threads = [threading.Thread(target=work) for _ in range(6)]
for t in threads:
    t.start()
for t in threads:
    t.join()
# a glibc thread arena is a heap aligned on HEAP_MAX_SIZE (64 MiB): its rw start, then the
# rest of its reservation PROT_NONE right after it
maps = [line.split() for line in open("/proc/self/maps")]
heaps = 0
for cur, nxt in zip(maps, maps[1:]):
    lo, hi = (int(x, 16) for x in cur[0].split("-"))
    if lo % (64 << 20) == 0 and cur[1] == "rw-p" and len(cur) == 5:
        if nxt[1] == "---p" and int(nxt[0].split("-")[0], 16) == hi:
            heaps += 1
print(heaps)
"""


@pytest.mark.parametrize("mode", ["limited", "default"])
def test_the_daemon_limits_mallocs_arenas(mode: str) -> None:
    out = subprocess.run(
        [sys.executable, "-c", _ARENAS, mode], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    heaps = int(out.stdout)
    if mode == "limited":
        assert heaps == 0  # the main arena (brk) only
    else:
        assert heaps >= 2  # what glibc does unasked (the daemon calls limit_arenas)


_SOCKET_GID = """
import sys
from pathlib import Path
from dockyard.api.daemon import socket_gid
files = Path(sys.argv[1])
print(
    socket_gid("dockyard-test", files),
    socket_gid("root", files),  # not in that file: getent, through nsswitch.conf
    socket_gid("no-such-group-here", files),
    any("libnss_" in line for line in open("/proc/self/maps")),
)
"""


def test_the_socket_group_is_looked_up_without_loading_nss_modules(tmp_path: Path) -> None:
    # glibc's NSS modules stay mapped once loaded (libnss_systemd and libcap: 0.36 MiB of an
    # idle daemon's RSS); the group file is read first, then getent in a child, as dockerd does
    group = tmp_path / "group"
    group.write_text("wheel:x:10:\ndockyard-test:x:4242:alice\n")
    out = subprocess.run(
        [sys.executable, "-c", _SOCKET_GID, str(group)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["4242", "0", "0", "False"]


@pytest.mark.root
@pytest.mark.parametrize(
    "entry", [["-m", "dockyard.api.daemon"], ["-m", "dockyard.cli.main", "daemon"]]
)
def test_the_daemon_process_reexecs_itself_under_OO(tmp_path: Path, entry: list[str]) -> None:
    # no docstrings or asserts: 1.3 MiB of an idle daemon's RSS; `dockyard daemon` (what the
    # autostart runs) leaves the CLI's modules behind as well (api/optimized.py)
    if optimized.command([]) is None:
        pytest.skip("no -OO bytecode here: run `python -m dockyard.api.optimized` (setup.sh does)")
    sock = tmp_path / "d.sock"
    log = tmp_path / "log"
    args = ["--root", str(tmp_path / "root"), "--host", f"unix://{sock}"]
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, *entry, *args], stdout=out, stderr=out)
    try:
        wait_for_socket(sock, proc, log)
        argv = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")[:-1]
        assert argv[1:] == [b"-OO", b"-m", b"dockyard.api.daemon", *(a.encode() for a in args)]
        # and with glibc's malloc for small objects, which malloc_trim can give back: ~6 MiB
        # of the RSS after bench's workloads (api/optimized.py); the environment execve gave
        if "PYTHONMALLOC" not in os.environ:
            started = Path(f"/proc/{proc.pid}/environ").read_bytes().split(b"\0")
            assert b"PYTHONMALLOC=malloc" in started
        env = {**os.environ, "DOCKYARD_HOST": f"unix://{sock}", "DOCKYARD_ROOT": args[1]}
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "dockyard.cli.main",
                "version",
                "--format",
                "{{.Server.Version}}",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0 and out.stdout.strip(), out.stderr
    finally:
        proc.terminate()
        proc.wait(timeout=30)


_COMMAND = "from dockyard.api import optimized; print(optimized.command([]))"


@pytest.mark.parametrize(
    ("env", "expect_oo"),
    [
        # the bytecode is missing and may not be written: every start would compile it all
        ({"PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": "EMPTY"}, False),
        # the first start under -OO writes it
        ({"PYTHONPYCACHEPREFIX": "EMPTY"}, True),
        ({"DOCKYARD_DAEMON_OPTIMIZE": "0"}, False),
    ],
)
def test_the_daemon_stays_in_the_plain_interpreter_without_OO_bytecode(
    tmp_path: Path, env: dict[str, str], expect_oo: bool
) -> None:
    full = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    full.update({k: str(tmp_path) if v == "EMPTY" else v for k, v in env.items()})
    out = subprocess.run(
        [sys.executable, "-c", _COMMAND], capture_output=True, text=True, timeout=60, env=full
    )
    assert out.returncode == 0, out.stderr
    assert ("'-OO'" in out.stdout) is expect_oo, out.stdout


def test_the_daemon_keeps_a_given_allocator_and_its_children_get_none_it_chose() -> None:
    chosen = optimized.environment({"PATH": "/bin"})
    assert chosen["PYTHONMALLOC"] == "malloc"
    optimized.forget_allocator(chosen)
    assert chosen == {"PATH": "/bin"}
    # a PYTHONMALLOC the daemon was started with (debugging: pymalloc_debug) stays, also
    # for its children
    given = optimized.environment({"PYTHONMALLOC": "pymalloc_debug"})
    assert given == {"PYTHONMALLOC": "pymalloc_debug"}
    optimized.forget_allocator(given)
    assert given == {"PYTHONMALLOC": "pymalloc_debug"}
