"""mount(2) and umount2(2) called directly, where a `mount` or `umount` process cost ~5-20 ms
(more under load) on every container start and exit (issue 17 row d).

Python has no `os.mount`; the calls go through ctypes, as diff/inroot.py reaches openat2.
An errno becomes an OSError naming the call and its target, in the words `mount` would use.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

MS_RDONLY = 0x1
MS_REMOUNT = 0x20
MS_BIND = 0x1000

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_char_p,
]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]


def mount(
    source: str | Path, target: str | Path, fstype: str | None, flags: int, data: str = ""
) -> None:
    rc = _libc.mount(
        os.fsencode(source),
        os.fsencode(target),
        fstype.encode() if fstype else None,
        flags,
        data.encode() if data else None,
    )
    if rc != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"mount {fstype or 'bind'} on {target}: {os.strerror(e)}")


def umount(target: str | Path) -> None:
    if _libc.umount2(os.fsencode(target), 0) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"umount {target}: {os.strerror(e)}")
