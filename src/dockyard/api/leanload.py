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

- mimetypes' first use reads /etc/mime.types (2,286 lines on Debian) into two tables, and
  aiohttp.web_fileresponse makes a MimeTypes at import. The daemon serves no files by name
  and gives every client body its content type, so nothing guesses a type: with
  `mimetypes.knownfiles` empty during the import, the tables hold Python's built-in map.
- aiohttp.web imports argparse's ArgumentParser for its own `python -m aiohttp.web`. The
  daemon parses its flags with argparse, then unloads it (unload_argparse), and aiohttp.web
  gets a stand-in that imports the real argparse when called.
  Together 0.8 MiB of traced heap at idle (tracemalloc: mimetypes 0.39, argparse with
  gettext 0.5).

Measured here (aiohttp.web and sqlite3 in a bare interpreter, after malloc_trim): RSS 37.4 MiB,
35.4 without the two CA loads, 34.3 without libstdc++ as well. Both variables are read once,
at the import. They are set only while it runs and restored after, so the daemon's child
processes and later SSL contexts (a registry's, urllib's for ADD) see the environment as the
daemon was given it.
"""

from __future__ import annotations

import importlib
import os
import sys
import types
from typing import Any


def unload_argparse() -> None:
    """Drop argparse once the daemon's flags are parsed (into no argparse object): the next
    `import argparse` loads it again."""
    sys.modules.pop("argparse", None)


def _argument_parser(*args: Any, **kwargs: Any) -> Any:
    sys.modules.pop("argparse", None)  # the stand-in, if it is still there
    import argparse

    return argparse.ArgumentParser(*args, **kwargs)


def _argparse_stand_in() -> types.ModuleType:
    """A module named argparse whose ArgumentParser imports the real one when called; any
    other name loads the real module at once (PEP 562's module __getattr__)."""
    module = types.ModuleType("argparse")

    def real(name: str) -> Any:
        if name.startswith("__"):  # the import system's probes (__path__: a package?)
            raise AttributeError(name)
        if sys.modules.get("argparse") is module:
            del sys.modules["argparse"]
        return getattr(importlib.import_module("argparse"), name)

    module.ArgumentParser = _argument_parser  # type: ignore[attr-defined]
    module.__getattr__ = real  # type: ignore[method-assign]
    return module


def import_aiohttp() -> None:
    """Import aiohttp's server and client (call it before anything else imports aiohttp)."""
    if "aiohttp" in sys.modules:
        return
    overrides = {"FROZENLIST_NO_EXTENSIONS": "1", "SSL_CERT_FILE": os.devnull}
    saved = {name: os.environ.get(name) for name in overrides}
    os.environ.update(overrides)
    import mimetypes

    known = mimetypes.knownfiles
    mimetypes.knownfiles = []
    stand_in = None
    if "argparse" not in sys.modules:
        stand_in = sys.modules["argparse"] = _argparse_stand_in()
    try:
        import aiohttp.web  # noqa: F401
    finally:
        mimetypes.knownfiles = known
        if stand_in is not None and sys.modules.get("argparse") is stand_in:
            del sys.modules["argparse"]
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
