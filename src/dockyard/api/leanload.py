"""aiohttp imported for the daemon without two costs its import carries (issue 17, row h).

Both are paid at import, before any request, and an idle daemon never uses either:
- aiohttp.connector makes two default SSL contexts at import time, and each loads the
  system's CA bundle (144 certificates here) into OpenSSL's heap. The daemon never uses them:
  the registry client gives aiohttp an SSL context of its own or False (registry/config.py).
  With SSL_CERT_FILE naming an empty file during the import, those two contexts keep only
  the hashed CA directory (SSL_CERT_DIR, /etc/ssl/certs on Debian), which OpenSSL reads one
  certificate at a time when a verification needs it. The override applies to them alone,
  so it holds also where SSL_CERT_FILE is set (it is, on this machine).
- frozenlist's compiled extension is C++ and maps libstdc++. aiohttp uses FrozenList for its
  signal and middleware lists, frozen once at start-up. The pure-Python class that
  FROZENLIST_NO_EXTENSIONS selects does the same job without it.

Measured here (aiohttp.web and sqlite3 in a bare interpreter, after malloc_trim): RSS 37.4 MiB,
35.4 without the two CA loads, 34.3 without libstdc++ as well. Both variables are read once,
at the import. They are set only while it runs and restored after, so the daemon's child
processes and later SSL contexts (a registry's, urllib's for ADD) see the environment as the
daemon was given it.
"""

from __future__ import annotations

import os
import sys


def import_aiohttp() -> None:
    """Import aiohttp's server and client (call it before anything else imports aiohttp)."""
    if "aiohttp" in sys.modules:
        return
    overrides = {"FROZENLIST_NO_EXTENSIONS": "1", "SSL_CERT_FILE": os.devnull}
    saved = {name: os.environ.get(name) for name in overrides}
    os.environ.update(overrides)
    try:
        import aiohttp.web  # noqa: F401
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
