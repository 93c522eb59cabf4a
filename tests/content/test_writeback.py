"""A blob being written is sent to the disk as it goes, not all at the commit's fsync.

Checked with cachestat(2) (Linux 6.5), which counts a file's dirty pages: without the
writeback started every 8 MiB, 32 MiB written through a BlobWriter stay dirty until the
commit (the kernel's own writeback waits 30 s, or for GiBs of dirty memory).
"""

from __future__ import annotations

import ctypes
import errno
import os
from pathlib import Path

import pytest

from dockyard.content.store import ContentStore
from dockyard.content.writeback import INTERVAL, start_writeback

_SYS_CACHESTAT = 451  # x86_64 and the generic table alike
_PAGE = os.sysconf("SC_PAGE_SIZE")


class _Range(ctypes.Structure):
    _fields_ = [("off", ctypes.c_uint64), ("len", ctypes.c_uint64)]


class _Stat(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_uint64)
        for name in ("cache", "dirty", "writeback", "evicted", "recently_evicted")
    ]


_libc = ctypes.CDLL(None, use_errno=True)


def dirty_pages(fd: int, offset: int, length: int) -> int:
    rng, st = _Range(offset, length), _Stat()
    if _libc.syscall(_SYS_CACHESTAT, fd, ctypes.byref(rng), ctypes.byref(st), 0) != 0:
        e = ctypes.get_errno()
        if e == errno.ENOSYS:
            pytest.skip("no cachestat(2) on this kernel")
        raise OSError(e, "cachestat")
    return int(st.dirty)


def written_file(path: Path, mib: int) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    block = os.urandom(1 << 20)
    for _ in range(mib):
        os.write(fd, block)
    return fd


def test_a_blob_is_written_back_while_it_is_written(tmp_path: Path) -> None:
    # The control: plain writes leave the pages dirty here (else the check below proves
    # nothing: a filesystem without writeback, or one flushed by someone else's load).
    fd = written_file(tmp_path / "control", 32)
    try:
        if dirty_pages(fd, 0, 24 << 20) < (16 << 20) // _PAGE:
            pytest.skip("this filesystem does not keep written pages dirty")
    finally:
        os.close(fd)

    store = ContentStore(tmp_path / "store")
    block = os.urandom(1 << 20)
    with store.writer() as w:
        for _ in range(32):
            w.write(block)
        ingest = next((tmp_path / "store" / "ingest").iterdir())
        fd = os.open(ingest, os.O_RDONLY)
        try:
            # Everything up to the last 8 MiB boundary has been queued for the disk.
            assert dirty_pages(fd, 0, (32 << 20) - INTERVAL) < 64
        finally:
            os.close(fd)
        w.commit()


def test_writeback_is_best_effort_where_a_file_has_no_pages_to_write() -> None:
    r, wr = os.pipe()
    try:
        start_writeback(r, 0, INTERVAL)  # ESPIPE from the kernel: ignored, not raised
    finally:
        os.close(r)
        os.close(wr)
