"""The trash: removal is a rename out of view, the deletion happens in a reaper thread."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from dockyard.content import trash as trash_module
from dockyard.content.trash import Trash


def _tree(root: Path, n: int = 50) -> Path:
    root.mkdir()
    for i in range(n):
        (root / f"f{i}").write_bytes(b"x" * 100)
    (root / "sub").mkdir()
    (root / "sub" / "g").write_text("g")
    return root


def test_put_moves_out_of_view_and_the_reaper_deletes_it(tmp_path: Path) -> None:
    t = Trash(tmp_path / "trash")
    victim = _tree(tmp_path / "victim")
    assert t.put(victim)
    assert not victim.exists()
    assert t.wait_empty(30)
    assert list(t.dir.iterdir()) == []
    assert not t.put(tmp_path / "absent")
    t.close()


def test_the_caller_does_not_wait_for_the_deletion(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    t = Trash(tmp_path / "trash")
    started, release = threading.Event(), threading.Event()
    real_rmtree = trash_module.shutil.rmtree

    def slow_rmtree(path: Path) -> None:
        started.set()
        assert release.wait(30)
        real_rmtree(path)

    monkeypatch.setattr(trash_module.shutil, "rmtree", slow_rmtree)
    victim = _tree(tmp_path / "victim")
    assert t.put(victim)  # returns while the reaper is held in its rmtree
    assert started.wait(30)
    assert not victim.exists() and not t.wait_empty(0)
    second = tmp_path / "file"
    second.write_text("x")
    assert t.put(second)  # put while the reaper works: picked up on its next round
    release.set()
    assert t.wait_empty(30)
    assert list(t.dir.iterdir()) == []
    t.close()


def test_what_a_crash_left_in_the_trash_goes_at_the_next_start(tmp_path: Path) -> None:
    (tmp_path / "trash").mkdir()
    _tree(tmp_path / "trash" / "leftover")
    t = Trash(tmp_path / "trash")
    assert t.wait_empty(30)
    assert list(t.dir.iterdir()) == []
    t.close()


def test_close_stops_the_reaper(tmp_path: Path) -> None:
    t = Trash(tmp_path / "trash")
    f = tmp_path / "f"
    f.write_text("x")
    t.put(f)
    t.close()
    assert t._thread is not None and not t._thread.is_alive()
