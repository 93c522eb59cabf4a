"""Start the disk write of a file's dirty pages without waiting for it.

`sync_file_range(fd, off, n, SYNC_FILE_RANGE_WRITE)` queues the range for writeback and
returns (sync_file_range(2)); it is no durability promise, which the commit's fsync still
gives, but by the time that fsync runs the disk has written all but the tail. A 512 MiB
layer's commit fsync took 0.30 s after the writes and 0.01 s with this every 8 MiB, with the
writes themselves no slower (bench row e). Python's os module has no sync_file_range, so
it goes through ctypes, as snapshot/mountcall.py reaches mount(2).
"""

from __future__ import annotations

import ctypes

_SYNC_FILE_RANGE_WRITE = 2
_libc = ctypes.CDLL(None, use_errno=True)
_sync_file_range = getattr(_libc, "sync_file_range", None)
if _sync_file_range is not None:
    _sync_file_range.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    _sync_file_range.restype = ctypes.c_int

# How much is written between two starts: large enough that the calls cost nothing, small
# enough that the disk starts early and a commit's fsync waits for little.
INTERVAL = 8 << 20


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Queue `length` bytes of `fd` from `offset` for writeback. Best effort: a filesystem
    that cannot (tmpfs, a pipe) returns an error, and the commit's fsync does the work."""
    if _sync_file_range is not None:
        _sync_file_range(fd, offset, length, _SYNC_FILE_RANGE_WRITE)
