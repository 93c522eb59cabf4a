"""`cp` as the docker CLI does it (issue 19 §4, issue 9 §2) and `.wh.` entries (issue 11 §6).

Our CLI and docker CLI 28 run the same copies against our daemon, each in a directory of its
own and into container paths of their own: exit codes, messages and the resulting trees on
both sides must match. `cp … -` and `cp - …` move tar streams. An archive holding `.wh.`
entries copied into a running container gives what the reference dockerd 20.10 gives.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.conftest import Clients
from tests.containers.helpers import docker_ok, wait_for
from tests.interop.conftest import DOCKER_CLIS, Side

pytestmark = pytest.mark.root

SETUP = (
    "mkdir -p /d/sub /out; echo hi > /d/f; echo s > /d/sub/s; ln -s /d/f /lnk; ln -s d /dl;"
    " ln -s ../../etc /d/up; touch /ready; sleep 1000"
)


def _started(clients: Clients) -> str:
    cid = docker_ok(clients, "run", "-d", "--network", "none", "busybox", "sh", "-c", SETUP)
    wait_for(lambda: clients.docker("exec", cid.strip(), "test", "-e", "/ready").returncode == 0)
    return cid.strip()


# (argv with {c} for the container and {t} for this side's container dir)
CASES = [
    "cp {c}:/d/f newname",
    "cp {c}:/d newdir",
    "cp {c}:/d/f nonexist/x",
    "cp {c}:/d newname",
    "cp {c}:/d/f newdir2/",
    "cp {c}:/lnk lnkcopy",
    "cp -L {c}:/lnk lnkcopy2",
    "cp {c}:/dl/ dlcopy",
    "cp {c}:/d/. dotcopy",
    "cp {c}:/d/. newdir",
    "cp {c}:/d/f .",
    "cp {c}:/nosuch here",
    "cp lf {c}:{t}/newfile",
    "cp lf {c}:{t}/",
    "cp newdir {c}:{t}/newdir",
    "cp newdir/. {c}:{t}/dotted",
    "cp lf {c}:/dev/null",
    "cp lf {c}:{t}/nodir/",
    "cp newdir {c}:{t}/newfile",
    "cp nosuch {c}:{t}/",
    "cp lf {c}:/nonexist/x",
    "cp lf lf2",
    "cp {c}:/d {c}:/e",
    "cp -a lf {c}:{t}/owned",
]


def _tree(root: Path) -> list[str]:
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            p = Path(dirpath, name)
            st = p.lstat()
            kind = "l" if p.is_symlink() else "d" if p.is_dir() else "f"
            extra = os.readlink(p) if p.is_symlink() else ("" if p.is_dir() else p.read_bytes())
            out.append(f"{kind} {oct(st.st_mode & 0o7777)} {p.relative_to(root)} {extra!r}")
        dirnames.sort()
    return sorted(out)


def _clean_stderr(text: str, where: Path) -> str:
    text = text.replace(str(where), "W")
    # docker CLI 28 logs its tar writer's teardown when the copy is refused early.
    return "\n".join(
        line for line in text.splitlines() if not re.match(r'time=".*" level=error', line)
    )


def test_cp_matches_the_docker_cli(clients: Clients, tmp_path: Path) -> None:
    if not os.path.exists(DOCKER_CLIS["28"]):
        pytest.skip("docker CLI 28 is not installed")
    cid = _started(clients)
    try:
        seen: dict[str, list[str]] = {}
        for who in ("docker", "dockyard"):
            work = tmp_path / who
            work.mkdir()
            (work / "lf").write_text("local\n")
            docker_ok(clients, "exec", cid, "mkdir", f"/out/{who}")
            log = []
            for case in CASES:
                args = case.format(c=cid, t=f"/out/{who}").split()
                if who == "docker":
                    argv = [DOCKER_CLIS["28"], *args]
                else:
                    argv = [sys.executable, "-m", "dockyard.cli.main", *args]
                proc = subprocess.run(
                    argv, env=clients.daemon.env(), cwd=work, capture_output=True, timeout=60
                )
                err = _clean_stderr(proc.stderr.decode(errors="replace"), work)
                log.append(f"{case} -> {proc.returncode} {err!r}")
            log += _tree(work)
            inside = docker_ok(clients, "exec", cid, "sh", "-c", f"cd /out/{who} && ls -lnR .")
            log += [re.sub(r"\w{3} +\d+ \d\d:\d\d", "<DATE>", line) for line in inside.splitlines()]
            seen[who] = log
        assert "\n".join(seen["dockyard"]) == "\n".join(seen["docker"])
        # Spot checks that the table above means what it should (issue 19 §4).
        assert "cp lf {c}:{t}/newfile -> 0 ''" in seen["docker"]
        assert (tmp_path / "dockyard" / "newname").read_text() == "hi\n"
        assert (tmp_path / "dockyard" / "newdir" / "sub" / "s").read_text() == "s\n"
    finally:
        clients.docker("rm", "-f", cid)


def test_cp_streams_tar_through_stdout_and_stdin(clients: Clients, tmp_path: Path) -> None:
    cid = _started(clients)
    env = clients.daemon.env()
    cli = [sys.executable, "-m", "dockyard.cli.main"]
    try:
        out = subprocess.run(
            [*cli, "cp", f"{cid}:/d", "-"], env=env, cwd=tmp_path, capture_output=True, timeout=60
        )
        assert out.returncode == 0, out.stderr
        names = tarfile.open(fileobj=io.BytesIO(out.stdout)).getnames()
        assert names == ["d", "d/f", "d/sub", "d/sub/s", "d/up"], names
        # Twice, with a symlink the first copy could have left: no local file named "-".
        again = subprocess.run(
            [*cli, "cp", f"{cid}:/lnk", "-"], env=env, cwd=tmp_path, capture_output=True
        )
        assert again.returncode == 0
        assert not os.path.lexists(tmp_path / "-")
        member = tarfile.open(fileobj=io.BytesIO(again.stdout)).getmembers()[0]
        assert (member.name, member.issym(), member.linkname) == ("lnk", True, "/d/f")
        # A tar back into another directory, through stdin (not /d's: its `up` link would
        # point above the destination, which docker refuses too: test_cp_matches_…).
        sub = subprocess.run([*cli, "cp", f"{cid}:/d/sub", "-"], env=env, capture_output=True)
        docker_ok(clients, "exec", cid, "mkdir", "/back")
        back = subprocess.run(
            [*cli, "cp", "-", f"{cid}:/back"], env=env, input=sub.stdout, capture_output=True
        )
        assert back.returncode == 0, back.stderr
        assert docker_ok(clients, "exec", cid, "cat", "/back/sub/s") == "s\n"
        escaping = subprocess.run(
            [*cli, "cp", "-", f"{cid}:/back"], env=env, input=out.stdout, capture_output=True
        )
        assert escaping.returncode == 1
        assert b'invalid symlink "/back/d/up" -> "../../etc"' in escaping.stderr
        refused = subprocess.run(
            [*cli, "cp", "-", f"{cid}:/back/new"], env=env, input=sub.stdout, capture_output=True
        )
        assert refused.returncode == 1
        assert refused.stderr.decode() == f'destination "{cid}:/back/new" must be a directory\n'
    finally:
        clients.docker("rm", "-f", cid)


def _whiteout_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in (
            (".wh.x", b""),
            ("a/.wh.y", b""),
            ("o/.wh..wh..opq", b""),
            ("o/new", b"n"),
            (".wh.missing", b""),
            (".wh..wh.plnk", b""),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1_000_000
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _ready(side: Side, cid: str) -> bool:
    return side.docker("28", "exec", cid, "test", "-e", "/t/o/old").returncode == 0


@pytest.mark.dockerd
def test_cp_of_whiteout_entries_matches_dockerd(ours: Side, theirs: Side) -> None:
    listings = {}
    for side in (ours, theirs):
        cid = side.ok(
            "28",
            "run",
            "-d",
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            "mkdir -p /t/a /t/o; echo 1 > /t/x; echo 2 > /t/a/y; echo 3 > /t/o/old; sleep 1000",
        ).strip()
        try:
            wait_for(lambda s=side, c=cid: _ready(s, c))
            proc = subprocess.run(
                [DOCKER_CLIS["28"], "cp", "-", f"{cid}:/t"],
                env=side.env,
                input=_whiteout_tar(),
                capture_output=True,
                timeout=60,
            )
            assert proc.returncode == 0, proc.stderr
            listings[side.name] = side.ok(
                "28", "exec", cid, "sh", "-c", "cd /t && find . | sort | xargs ls -ldn"
            )
        finally:
            side.docker("28", "rm", "-f", cid)
    strip = re.compile(r"\w{3} +\d+ +(\d\d:\d\d|\d{4})")
    mine, ref = (strip.sub("<DATE>", listings[n]) for n in ("dockyard", "dockerd"))
    assert mine == ref
    assert "./.wh.x" in ref and "./x" in ref  # dockerd keeps both: a plain file, no deletion


OWNERS = (
    "echo bob:x:1234:1234::/:/bin/sh >> /etc/passwd; echo bobs:x:1234: >> /etc/group;"
    " mkdir -p /t/sub; echo a > /t/f; echo b > /t/b; chown 1000:1000 /t/f; chown 1234:1234 /t/b;"
    " chown 65534:65534 /t/sub; chown 0:5 /t; touch /ready; sleep 1000"
)


@pytest.mark.dockerd
def test_cp_out_names_owners_as_dockerd(ours: Side, theirs: Side) -> None:
    """issue 19 §6: dockerd 20.10 names owners from the container's passwd and group (a uid
    only the container knows gets its name; gid 5, the host's tty, stays nameless)."""
    headers = {}
    for side in (ours, theirs):
        cid = side.ok("28", "run", "-d", "--network", "none", "busybox", "sh", "-c", OWNERS)
        cid = cid.strip()
        try:
            wait_for(
                lambda s=side, c=cid: (
                    s.docker("28", "exec", c, "test", "-e", "/ready").returncode == 0
                )
            )
            proc = subprocess.run(
                [DOCKER_CLIS["28"], "cp", f"{cid}:/t", "-"],
                env=side.env,
                capture_output=True,
                timeout=60,
            )
            assert proc.returncode == 0, proc.stderr
            with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
                headers[side.name] = sorted(
                    (m.name, m.uid, m.gid, m.uname, m.gname) for m in tar.getmembers()
                )
        finally:
            side.docker("28", "rm", "-f", cid)
    assert headers["dockyard"] == headers["dockerd"]
    assert ("t/b", 1234, 1234, "bob", "bobs") in headers["dockerd"]


TYPES = (
    "mkdir -p /t/d; echo a > /t/d/f; chmod 640 /t/d/f; ln /t/d/f /t/d/hard; ln -s f /t/d/l;"
    " mkfifo /t/d/p; chmod 700 /t/d; touch /ready; sleep 1000"
)


def _modes(data: bytes, under: str) -> list[tuple[str, str, bytes]]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return sorted((m.name, oct(m.mode), m.type) for m in tar if m.name.startswith(under))


@pytest.mark.dockerd
def test_archive_modes_carry_file_type_bits_as_dockerd(ours: Side, theirs: Side) -> None:
    """GET /archive (`cp` out) and export write modes as Docker's archive package does, with
    the stat(2) file-type bits (moby fillGo18FileTypeBits): 0o100640, 0o40700, 0o120777."""
    got: dict[str, tuple[object, object]] = {}
    for side in (ours, theirs):
        cid = side.ok("28", "run", "-d", "--network", "none", "busybox", "sh", "-c", TYPES)
        cid = cid.strip()
        try:
            wait_for(
                lambda s=side, c=cid: (
                    s.docker("28", "exec", c, "test", "-e", "/ready").returncode == 0
                )
            )
            cp = subprocess.run(
                [DOCKER_CLIS["28"], "cp", f"{cid}:/t/d", "-"],
                env=side.env,
                capture_output=True,
                timeout=60,
            )
            assert cp.returncode == 0, cp.stderr
            export = subprocess.run(
                [DOCKER_CLIS["28"], "export", cid], env=side.env, capture_output=True, timeout=120
            )
            assert export.returncode == 0, export.stderr
            got[side.name] = (_modes(cp.stdout, "d"), _modes(export.stdout, "t/"))
        finally:
            side.docker("28", "rm", "-f", cid)
    assert got["dockyard"] == got["dockerd"]
    assert ("d/f", "0o100640", tarfile.REGTYPE) in got["dockerd"][0]
    assert ("d", "0o40700", tarfile.DIRTYPE) in got["dockerd"][0]
