"""--chmod's symbolic modes (frontend/chmod.py) against chmod(1) itself: for each mode and
each spec, GNU chmod run on a real file with a umask of 0 (BuildKit applies symbolic modes
with umask 0) gives the permission bits our `Chmod.apply` computes. Where BuildKit's rules
(BSD setmode, through tonistiigi/dchapes-mode) and GNU's differ, the BSD answer is checked on
its own: `=` keeps the sticky bit unless `t` is written, copying a class (`u=g`) keeps
setuid/setgid, and `X` looks at the mode before the spec, not after earlier clauses."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from dockyard.frontend.chmod import ChmodError, parse_chmod

SPECS = [
    "u+x",
    "go-w",
    "a=r",
    "+x",
    "u=rwx,g=rx,o=",
    "a-x,u+s",
    "g+s",
    "ug+s,o-rwx",
    "+t",
    "a+t",
    "u=g",
    "g=u-w",
    "o=u",
    "u+x-w",
    "a+X",
    "u-s",
    "=",
    "u=",
    "+",
]
MODES = [0o644, 0o755, 0o600, 0o4755, 0o2711, 0o1777, 0o000, 0o640]
SPECIAL = stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX


@pytest.mark.parametrize("spec", SPECS)
def test_symbolic_modes_give_what_chmod_gives(tmp_path: Path, spec: str) -> None:
    f = tmp_path / "f"
    f.touch()
    parsed = parse_chmod(spec)
    old = os.umask(0)
    try:
        for mode in MODES:
            os.chmod(f, mode)
            proc = subprocess.run(["chmod", spec, str(f)], capture_output=True, text=True)
            assert proc.returncode == 0, proc.stderr
            expected = stat.S_IMODE(os.lstat(f).st_mode)
            got = parsed.apply(stat.S_IFREG | mode, False)
            if mode & SPECIAL:  # the special bits: BSD's rules, below
                expected, got = expected & 0o777, got & 0o777
            assert oct(got) == oct(expected), f"{spec} on {oct(mode)}"
    finally:
        os.umask(old)


def test_capital_x_and_the_sticky_bit_follow_bsd_setmode() -> None:
    # X: execute for a directory, or a file that had an execute bit before the spec
    assert parse_chmod("a+X").apply(stat.S_IFDIR | 0o600, True) == 0o711
    assert parse_chmod("a+X").apply(stat.S_IFREG | 0o600, False) == 0o600
    assert parse_chmod("a+X").apply(stat.S_IFREG | 0o700, False) == 0o711
    # `t` for `o` alone is ignored by BSD's setmode, which BuildKit uses (GNU sets it)
    assert parse_chmod("o+t").apply(stat.S_IFREG | 0o644, False) == 0o644
    # `=` keeps the sticky bit unless `t` is written; copying a class keeps setuid/setgid
    assert parse_chmod("=").apply(stat.S_IFREG | 0o1777, False) == 0o1000
    assert parse_chmod("a=r").apply(stat.S_IFDIR | 0o1777, True) == 0o1444
    assert parse_chmod("u=").apply(stat.S_IFREG | 0o4755, False) == 0o055
    assert parse_chmod("u=g").apply(stat.S_IFREG | 0o4755, False) == 0o4555
    assert parse_chmod("a=rt").apply(stat.S_IFREG | 0o4755, False) == 0o1444
    # X sees the mode before the spec: `=rw` first does not take it away
    assert parse_chmod("=rw,+X").apply(stat.S_IFREG | 0o755, False) == 0o777
    assert parse_chmod("=rw,+X").apply(stat.S_IFREG | 0o644, False) == 0o666
    # octal stays the mode as given, setuid and sticky included
    assert parse_chmod("4755").apply(stat.S_IFREG | 0o600, False) == 0o4755


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ("8", "it should be octal string and between 0 and 07777"),
        ("77777", "it should be octal string and between 0 and 07777"),
        ("64a", "it should be octal string and between 0 and 07777"),
        ("u", "invalid syntax"),
        ("u+q", "invalid syntax"),
        ("x+u", "invalid syntax"),
        ("u+x,", "invalid syntax"),
    ],
)
def test_bad_values_are_refused_in_buildkits_words(spec: str, why: str) -> None:
    with pytest.raises(ChmodError) as e:
        parse_chmod(spec)
    assert str(e.value) == f"invalid chmod parameter: '{spec}'. {why}"
