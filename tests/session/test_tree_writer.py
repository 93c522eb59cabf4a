"""TreeWriter.finish (session/filesync.py): the received files put in place, each stat'ed once
for both what the digest index and ClientTimes remember of it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from dockyard.session.filesync import TreeWriter, _Entry
from dockyard.session.wholeseconds import ClientTimes

MTIME = 1_700_000_000_123_456_789  # not a whole second: the legacy path stores it truncated
DIGEST = "sha256:" + "ab" * 32


def _file(path: str, size: int = 5) -> _Entry:
    return _Entry(path, stat.S_IFREG | 0o644, 0, 0, size, MTIME, "", (0, 0), {})


def _listing() -> list[_Entry]:
    return [
        _Entry("d", stat.S_IFDIR | 0o755, 0, 0, 0, MTIME, "", (0, 0), {}),
        _file("d/a"),
        _file("d/b"),
        _Entry("d/c", stat.S_IFREG | 0o644, 0, 0, 5, MTIME, "d/a", (0, 0), {}, hardlink=True),
        _file("e"),
    ]


def _sync(tree: Path, times: ClientTimes | None) -> tuple[TreeWriter, list[int]]:
    w = TreeWriter(tree, tree.parent / "staging", times)
    for e in _listing():
        w.add(e)
    w.scan()
    want = w.plan()
    for i in want:
        Path(w.staged(i)).write_bytes(b"hello")
        w.digests[i] = DIGEST
    return w, want


@pytest.mark.parametrize("whole_seconds", [True, False], ids=["legacy", "buildkit"])
def test_finish_stats_each_received_file_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, whole_seconds: bool
) -> None:
    tree = tmp_path / "tree"
    times = ClientTimes(tmp_path / "times.json") if whole_seconds else None
    w, want = _sync(tree, times)
    assert [w.entries[i].path for i in want] == ["d/a", "d/b", "e"]
    stats: list[str] = []
    real = os.lstat

    def counting(path: str | os.PathLike[str], *args: object, **kw: object) -> os.stat_result:
        if str(path).startswith(f"{tree}/"):
            stats.append(os.path.relpath(path, tree))
        return real(path, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "lstat", counting)  # filesync calls os.lstat
    w.finish()
    monkeypatch.undo()
    # one lstat per received file, after its hardlinks are made; the legacy path's
    # ClientTimes once took a second one of each, right after its rename
    assert {p: stats.count(p) for p in ("d/a", "d/b", "e")} == {"d/a": 1, "d/b": 1, "e": 1}
    # the digest index sees every file as it is now: d/a's ctime moved with its hardlink
    assert {p: (st, v) for p, (st, v) in w.received.items()} == {
        p: (os.lstat(tree / p), DIGEST) for p in ("d/a", "d/b", "d/c", "e")
    }
    stored = os.lstat(tree / "d/a").st_mtime_ns
    assert stored == (MTIME - MTIME % 10**9 if whole_seconds else MTIME)
    if times is None:
        return
    # what the next sync compares: the client's nanosecond mtime of every stored file, so the
    # same listing again fetches nothing
    again = ClientTimes(tmp_path / "times.json")
    for p in ("d/a", "d/b", "e"):
        assert again.client_mtime(p, os.lstat(tree / p)) == MTIME
    w2, want2 = _sync(tree, again)
    assert want2 == []
    assert w2.finish() == []
