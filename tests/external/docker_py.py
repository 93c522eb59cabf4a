"""docker-py's own integration suite as a test target, against dockyard and the reference dockerd.

Run through `tests/external/docker_py.sh CHECKOUT` (see its header). This driver:

1. makes the images the suite uses (`alpine:3.10`, `alpine:latest`, `busybox:latest`,
   `hello-world:latest`) from Debian's busybox-static, with alpine-like /etc/passwd and
   /etc/group (the exec tests need a `postgres` user and /var/opt), and puts them into a local
   docker-registry serving as the `docker.io` mirror of both daemons, so both see the same bytes;
2. starts each daemon on temporary paths (dockerd inside a network namespace of its own, with
   a second registry process on the same storage there, so its default bridge and iptables
   rules never touch the host's networking);
3. runs the checkout's `tests/integration` with the swarm, service, secret, config, node and
   plugin files left out (they need swarm mode or plugins), with junit output per daemon;
4. writes `summary.json` (per-test outcome on each daemon) and `summary.md` (the counts, and the
   tests that pass on dockerd but not on dockyard) into the output directory.

Both daemons are driven at API 1.41 (dockerd 20.10's highest), so the same tests run on both.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from tests.registry.support import Registry, make_image
from tests.support.daemons import DockyardDaemon, ReferenceDockerd
from tests.support.rootfs import make_busybox_tree

API_VERSION = "1.41"
DESELECTED = [
    "api_swarm_test.py",
    "models_swarm_test.py",
    "api_service_test.py",
    "models_services_test.py",
    "api_secret_test.py",
    "api_config_test.py",
    "models_nodes_test.py",
    "api_plugin_test.py",
]

# Alpine 3.10's own /etc/passwd and /etc/group (the suite runs `whoami` as postgres).
ALPINE_PASSWD = """\
root:x:0:0:root:/root:/bin/ash
bin:x:1:1:bin:/bin:/sbin/nologin
daemon:x:2:2:daemon:/sbin:/sbin/nologin
adm:x:3:4:adm:/var/adm:/sbin/nologin
lp:x:4:7:lp:/var/spool/lpd:/sbin/nologin
sync:x:5:0:sync:/sbin:/bin/sync
shutdown:x:6:0:shutdown:/sbin:/sbin/shutdown
halt:x:7:0:halt:/sbin:/sbin/halt
mail:x:8:12:mail:/var/spool/mail:/sbin/nologin
news:x:9:13:news:/usr/lib/news:/sbin/nologin
uucp:x:10:14:uucp:/var/spool/uucppublic:/sbin/nologin
operator:x:11:0:operator:/root:/sbin/nologin
man:x:13:15:man:/usr/man:/sbin/nologin
postmaster:x:14:12:postmaster:/var/spool/mail:/sbin/nologin
cron:x:16:16:cron:/var/spool/cron:/sbin/nologin
ftp:x:21:21::/var/lib/ftp:/sbin/nologin
sshd:x:22:22:sshd:/dev/null:/sbin/nologin
at:x:25:25:at:/var/spool/cron/atjobs:/sbin/nologin
squid:x:31:31:Squid:/var/cache/squid:/sbin/nologin
xfs:x:33:33:X Font Server:/etc/X11/fs:/sbin/nologin
games:x:35:35:games:/usr/games:/sbin/nologin
postgres:x:70:70::/var/lib/postgresql:/bin/sh
cyrus:x:85:12::/usr/cyrus:/sbin/nologin
vpopmail:x:89:89::/var/vpopmail:/sbin/nologin
ntp:x:123:123:NTP:/var/empty:/sbin/nologin
smmsp:x:209:209:smmsp:/var/spool/mqueue:/sbin/nologin
guest:x:405:100:guest:/dev/null:/sbin/nologin
nobody:x:65534:65534:nobody:/:/sbin/nologin
"""
ALPINE_GROUP = """\
root:x:0:root
bin:x:1:root,bin,daemon
daemon:x:2:root,bin,daemon
sys:x:3:root,bin,adm
adm:x:4:root,adm,daemon
tty:x:5:
disk:x:6:root,adm
lp:x:7:lp
mem:x:8:
kmem:x:9:
wheel:x:10:root
floppy:x:11:root
mail:x:12:mail
news:x:13:news
uucp:x:14:uucp
man:x:15:man
cron:x:16:cron
console:x:17:
audio:x:18:
cdrom:x:19:
dialout:x:20:root
ftp:x:21:
sshd:x:22:
input:x:23:
at:x:25:at
tape:x:26:root
video:x:27:root
netdev:x:28:
readproc:x:30:
squid:x:31:squid
xfs:x:33:xfs
kvm:x:34:kvm
games:x:35:
shadow:x:42:
postgres:x:70:
cdrw:x:80:
usb:x:85:
vpopmail:x:89:
users:x:100:games
ntp:x:123:
nofiles:x:200:
smmsp:x:209:smmsp
locate:x:245:
abuild:x:300:
utmp:x:406:
ping:x:999:
nogroup:x:65533:
nobody:x:65534:
"""

HELLO_C = r"""
#include <unistd.h>
static const char msg[] = "\nHello from Docker!\n"
    "This message shows that your installation appears to be working correctly.\n\n";
int main(void) { write(1, msg, sizeof msg - 1); return 0; }
"""


def tar_of(tree: Path) -> bytes:
    """An uncompressed layer tar of `tree`, sorted, owners root, fixed mtimes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(tree.rglob("*")):
            info = tar.gettarinfo(str(path), arcname=str(path.relative_to(tree)))
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = 1700000000
            if info.isfile():
                with open(path, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
    return buf.getvalue()


def alpine_like_tree(root: Path, version: str) -> Path:
    make_busybox_tree(root)
    (root / "etc" / "passwd").write_text(ALPINE_PASSWD)
    (root / "etc" / "group").write_text(ALPINE_GROUP)
    for d in ("var/opt", "var/lib/postgresql", "home", "mnt", "opt", "srv", "run"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "etc" / "os-release").write_text(
        f'NAME="Alpine Linux"\nID=alpine\nVERSION_ID={version}\n'
    )
    return root


def hello_tree(root: Path, work: Path) -> Path:
    root.mkdir(parents=True)
    src = work / "hello.c"
    src.write_text(HELLO_C)
    subprocess.run(
        ["gcc", "-static", "-Os", "-s", "-o", str(root / "hello"), str(src)],
        check=True,
        capture_output=True,
    )
    return root


def seed_registry(reg: Registry, work: Path) -> None:
    # Two images, as on Docker Hub: tags of one image would make the suite's
    # `prune_images(dangling=False)` untag alpine:3.10 (dockerd untags a reference when
    # another one names the same image) and every later test would miss it.
    alpine310 = tar_of(alpine_like_tree(work / "alpine310", "3.10.9"))
    alpine = tar_of(alpine_like_tree(work / "alpine", "3.20.3"))
    busybox_root = make_busybox_tree(work / "busybox")
    busybox = tar_of(busybox_root)
    hello = tar_of(hello_tree(work / "hello", work))
    images = {
        ("library/alpine", "3.10"): make_image([alpine310], cmd=["/bin/sh"]),
        ("library/alpine", "latest"): make_image([alpine], cmd=["/bin/sh"]),
        ("library/busybox", "latest"): make_image([busybox], cmd=["sh"]),
        ("library/hello-world", "latest"): make_image([hello], cmd=["/hello"]),
    }
    for (repo, tag), image in images.items():
        reg.put_image(repo, tag, image)


@dataclass
class NetnsDockerd:
    """The reference dockerd in a network namespace of its own, with its own registry process
    (same storage, read only) answering on the namespace's 127.0.0.1."""

    base: Path
    registry: Registry
    name: str = ""
    dockerd: ReferenceDockerd | None = None
    reg_proc: subprocess.Popen[bytes] | None = None

    def start(self) -> str:
        self.name = f"dpyref{os.getpid()}"
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        prefix = ["nsenter", f"--net=/run/netns/{self.name}"]
        subprocess.run([*prefix, "ip", "link", "set", "lo", "up"], check=True)
        log = open(self.base / "registry-ns.log", "ab")
        self.reg_proc = subprocess.Popen(
            [*prefix, "docker-registry", "serve", str(self.registry.base / "config.yml")],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        self.dockerd = ReferenceDockerd(
            self.base / "dockerd",
            netns=self.name,
            extra_args=["--registry-mirror", self.registry.url],
        ).start()
        return self.dockerd.host

    def cleanup(self) -> None:
        if self.dockerd is not None:
            self.dockerd.cleanup()
        if self.reg_proc is not None:
            self.reg_proc.terminate()
            self.reg_proc.wait(10)
        if self.name:
            subprocess.run(["ip", "netns", "delete", self.name], capture_output=True)


def suite_python(cache: Path) -> Path:
    """A virtual environment with docker 7.1.0 (the checkout's release), paramiko and pytest."""
    venv = cache / "docker-py-7.1.0-venv"
    py = venv / "bin" / "python"
    if not py.exists():
        # The machine's python3, not ours: this venv must not see dockyard's packages.
        subprocess.run(["python3", "-m", "venv", str(venv)], check=True)
    # Already satisfied requirements cost no network; the suite imports paramiko
    # (tests/helpers.py) and websocket-client (attach over a websocket).
    subprocess.run(
        [str(venv / "bin/pip"), "install", "-q", "docker[ssh,websockets]==7.1.0", "pytest"],
        check=True,
    )
    return py


def pull_images(py: Path, host: str) -> None:
    code = (
        "import docker\n"
        f"c = docker.APIClient(base_url={host!r}, version={API_VERSION!r}, timeout=300)\n"
        "for ref in ('alpine:3.10', 'alpine:latest', 'busybox:latest', 'hello-world:latest'):\n"
        "    c.pull(ref)\n"
        "    c.inspect_image(ref)\n"
    )
    subprocess.run([str(py), "-c", code], check=True)


def suite_files(checkout: Path) -> list[str]:
    base = checkout / "tests" / "integration"
    files = sorted(str(p.relative_to(checkout)) for p in base.rglob("*_test.py"))
    return [f for f in files if Path(f).name not in DESELECTED]


def run_suite(
    py: Path,
    checkout: Path,
    host: str,
    junit: Path,
    log: Path,
    extra: list[str],
    config: Path,
    paths: list[str] | None = None,
) -> float:
    """One pytest process per file, as docker-py's own Makefile runs them: a test in
    credentials/utils_test.py rebinds `os.environ` to a plain dict, and every test after it
    in the same process would lose DOCKER_HOST and talk to /var/run/docker.sock."""
    # The context tests write a context store beside the client's config file (or, with no
    # config file, under the working directory): give them a config directory of their own.
    shutil.rmtree(config, ignore_errors=True)
    config.mkdir(parents=True)
    (config / "config.json").write_text("{}\n")
    env = dict(os.environ)
    env.update(DOCKER_HOST=host, DOCKER_TEST_API_VERSION=API_VERSION, DOCKER_CONFIG=str(config))
    env.pop("DOCKER_TLS_VERIFY", None)
    env.pop("DOCKER_CERT_PATH", None)
    shutil.rmtree(junit, ignore_errors=True)
    junit.mkdir(parents=True)
    start = time.monotonic()
    with open(log, "ab") as out:
        for i, path in enumerate(paths or suite_files(checkout)):
            argv = [str(py), "-m", "pytest", path, "-p", "no:cacheprovider", "-v"]
            argv += [f"--junitxml={junit}/{i:02d}.xml", "-o", "junit_family=xunit2", *extra]
            out.write(f"\n>>> {path}\n".encode())
            out.flush()
            subprocess.run(argv, cwd=checkout, env=env, stdout=out, stderr=subprocess.STDOUT)
    return time.monotonic() - start


def outcomes(junit: Path) -> dict[str, str]:
    """test id → passed | failed | error | skipped | xfailed, from a directory of junit files."""
    result: dict[str, str] = {}
    cases = [c for f in sorted(junit.glob("*.xml")) for c in ET.parse(f).getroot().iter("testcase")]
    for case in cases:
        name = f"{case.get('classname')}::{case.get('name')}"
        outcome = "passed"
        for child in case:
            if child.tag == "failure":
                outcome = "failed"
            elif child.tag == "error":
                outcome = "error"
            elif child.tag == "skipped":
                kind = child.get("type", "")
                outcome = "xfailed" if kind == "pytest.xfail" else "skipped"
        if outcome == "error" and name in result:
            continue  # a teardown error after a recorded outcome
        result[name] = outcome
    return result


def summarise(out: Path, runs: dict[str, dict[str, str]], seconds: dict[str, float]) -> str:
    counts = {
        daemon: {k: sum(1 for v in res.values() if v == k) for k in sorted(set(res.values()))}
        for daemon, res in runs.items()
    }
    lines = ["# docker-py 7.1.0 integration suite", ""]
    for daemon, c in counts.items():
        total = sum(c.values())
        parts = ", ".join(f"{n} {k}" for k, n in c.items())
        lines.append(f"- {daemon}: {total} tests: {parts} ({seconds[daemon]:.0f} s)")
    regressions: list[str] = []
    if "dockerd" in runs and "dockyard" in runs:
        ref, ours = runs["dockerd"], runs["dockyard"]
        regressions = sorted(
            t for t, v in ref.items() if v == "passed" and ours.get(t) not in ("passed",)
        )
        lines += ["", f"## Passed on dockerd, not on dockyard ({len(regressions)})", ""]
        lines += [f"- {t} ({ours.get(t, 'missing')})" for t in regressions]
        better = sorted(t for t, v in ours.items() if v == "passed" and ref.get(t) != "passed")
        lines += ["", f"## Passed on dockyard, not on dockerd ({len(better)})", ""]
        lines += [f"- {t} ({ref.get(t, 'missing')})" for t in better]
    text = "\n".join(lines) + "\n"
    (out / "summary.md").write_text(text)
    doc = {
        "api_version": API_VERSION,
        "counts": counts,
        "seconds": seconds,
        "regressions": regressions,
        "tests": {
            t: {d: runs[d].get(t, "missing") for d in runs}
            for t in sorted(set().union(*runs.values()))
        },
    }
    (out / "summary.json").write_text(json.dumps(doc, indent=1) + "\n")
    return text


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkout", type=Path, help="a checkout of docker/docker-py at 7.1.0")
    ap.add_argument("--daemon", choices=["dockyard", "dockerd", "both"], default="both")
    ap.add_argument("--out", type=Path, default=Path("docker-py-results"))
    ap.add_argument(
        "--expect",
        type=Path,
        help="a file of test IDs that must pass on dockyard (CI): exit 1 if one does not, "
        "after running it once more on its own (the suite has timing-sensitive tests)",
    )
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    args = ap.parse_args(argv[: len(argv) - len(extra) - (1 if extra or "--" in argv else 0)])
    args.pytest_args = extra
    checkout = args.checkout.resolve()
    if not (checkout / "tests" / "integration" / "base.py").exists():
        ap.error(f"{checkout} is not a docker-py checkout (no tests/integration/base.py)")
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    cache = Path(os.environ.get("DOCKYARD_TEST_CACHE", "/var/cache/dockyard"))
    cache.mkdir(parents=True, exist_ok=True)
    py = suite_python(cache)
    daemons = ["dockerd", "dockyard"] if args.daemon == "both" else [args.daemon]
    if "dockerd" in daemons and not ReferenceDockerd.available():
        print("dockerd is not installed: running against dockyard only", file=sys.stderr)
        daemons.remove("dockerd")

    work = Path(tempfile.mkdtemp(prefix="dpy-", dir="/tmp"))
    registry = Registry(work / "registry").start()
    runs: dict[str, dict[str, str]] = {}
    seconds: dict[str, float] = {}
    try:
        seed_registry(registry, work / "images")
        for name in daemons:
            junit = out / f"junit-{name}"
            ref: NetnsDockerd | None = None
            ours: DockyardDaemon | None = None
            try:
                if name == "dockerd":
                    ref = NetnsDockerd(work / "ref", registry)
                    (work / "ref").mkdir()
                    host = ref.start()
                else:
                    ours = DockyardDaemon(
                        work / "dy", extra_args=["--registry-mirror", registry.url]
                    ).start()
                    host = ours.host
                pull_images(py, host)
                for old in out.glob(f"pytest-{name}*.log"):
                    old.unlink()
                shutil.rmtree(out / f"junit-{name}-rerun", ignore_errors=True)
                print(f">>> docker-py suite against {name} ({host})", flush=True)
                seconds[name] = run_suite(
                    py,
                    checkout,
                    host,
                    junit,
                    out / f"pytest-{name}.log",
                    args.pytest_args,
                    work / f"docker-config-{name}",
                )
                runs[name] = outcomes(junit)
                if name == "dockyard" and args.expect:
                    rerun(py, checkout, host, runs[name], expected(args.expect), out, work)
            finally:
                for log in work.glob(f"{'ref' if name == 'dockerd' else 'dy'}/**/*.log"):
                    shutil.copy(log, out / f"{name}-{log.name}")
                if ref is not None:
                    ref.cleanup()
                if ours is not None:
                    ours.cleanup()
        print(summarise(out, runs, seconds))
    finally:
        registry.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    if args.expect and "dockyard" in runs:
        missing = sorted(t for t in expected(args.expect) if runs["dockyard"].get(t) != "passed")
        for t in missing:
            print(f"REGRESSION: {t} ({runs['dockyard'].get(t, 'missing')})")
        if missing:
            return 1
        print(f"docker-py suite: all {len(expected(args.expect))} expected tests passed")
    return 0


def expected(path: Path) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def node_id(checkout: Path, test: str) -> str:
    """`tests.integration.api_build_test.BuildTest::test_x` → pytest's node ID."""
    dotted, _, name = test.partition("::")
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        path = "/".join(parts[:i]) + ".py"
        if (checkout / path).exists():
            return "::".join([path, *parts[i:], name])
    return test


def rerun(
    py: Path,
    checkout: Path,
    host: str,
    results: dict[str, str],
    want: list[str],
    out: Path,
    work: Path,
) -> None:
    """Run each expected test that did not pass once more, alone; record what it did."""
    for test in [t for t in want if results.get(t) != "passed"]:
        junit = out / "junit-dockyard-rerun" / test.replace("::", ".")
        run_suite(
            py,
            checkout,
            host,
            junit,
            out / "pytest-dockyard-rerun.log",
            [],
            work / "docker-config-rerun",
            paths=[node_id(checkout, test)],
        )
        again = outcomes(junit).get(test)
        if again == "passed":
            results[test] = "passed"
            print(f"passed when run again: {test}")


if __name__ == "__main__":
    sys.exit(main())
