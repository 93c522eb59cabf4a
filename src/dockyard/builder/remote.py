"""ADD's two extras over COPY: remote URLs and local tar archives.

- A URL is downloaded to a file named after the last path component of the URL (or the
  Content-Disposition filename), mode 0600, mtime from Last-Modified when the server sends
  one (moby builder/dockerfile/copy.go `downloadSource`); `--checksum=sha256:...` (BuildKit)
  is verified before anything is copied.
- A local file that is a tar archive, plain or compressed with gzip, bzip2, xz or zstd, is
  extracted into the destination directory instead of being copied (`IsArchivePath`);
  owners and modes come from the archive. Its whiteout entries delete: `.wh.x` removes `x`,
  an opaque marker empties its directory of what was there before, and no `.wh.` file
  remains. That is the image dockerd 20.10's legacy builder makes (its commit re-applies
  the step's diff, whiteouts included; measured). Where its result is broken — a `.wh.`
  entry naming nothing leaves an entry that `ls` cannot stat — dockyard leaves nothing.
"""

from __future__ import annotations

import email.utils
import hashlib
import os
import posixpath
import re
import tarfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from dockyard.diff.applier import ApplyOptions, apply_layer
from dockyard.diff.compression import open_decompressed
from dockyard.errors import BuildFailure, DigestMismatch, InvalidArgument


def is_url(src: str) -> bool:
    return src.startswith(("http://", "https://"))


def _filename(url: str, disposition: str | None) -> str:
    path = urllib.parse.urlparse(url).path
    name = posixpath.basename(path.rstrip("/")) if path not in ("", "/") else ""
    if not name and disposition:
        m = re.search(r'filename="?([^";]+)"?', disposition)
        if m:
            name = posixpath.basename(m.group(1))
    if not name:
        name = "__unnamed__"  # BuildKit's name when the URL has no path
    return urllib.parse.unquote(name)


def fetch_url(url: str, workdir: Path, checksum: str = "") -> Path:
    """Download `url` into `workdir`; returns the file (named as Docker names it)."""
    workdir.mkdir(parents=True, exist_ok=True)
    want = ""
    if checksum:
        algo, _, want = checksum.partition(":")
        if algo != "sha256" or not re.fullmatch(r"[0-9a-f]{64}", want):
            raise InvalidArgument(f"invalid checksum digest format: {checksum}")
    try:
        resp = urllib.request.urlopen(url, timeout=60)
    except urllib.error.HTTPError as exc:
        # moby's remotecontext.GetWithStatusError: the status and the body's start
        body = exc.read(512).decode(errors="replace").strip()
        raise BuildFailure(
            f"failed to GET {url} with status {exc.code} {exc.reason}: {body}"
        ) from None
    except OSError as exc:
        raise BuildFailure(f"failed to GET {url}: {exc}") from None
    with resp:
        if resp.status >= 400:
            raise BuildFailure(f"failed to GET {url} with status {resp.status}")
        name = _filename(url, resp.headers.get("Content-Disposition"))
        out = workdir / name
        h = hashlib.sha256()
        with open(out, "wb") as f:
            while chunk := resp.read(1 << 20):
                h.update(chunk)
                f.write(chunk)
        modified = resp.headers.get("Last-Modified")
    got = h.hexdigest()
    if want and got != want:
        raise DigestMismatch(f"digest mismatch for {url}: expected sha256:{want}, got sha256:{got}")
    os.chmod(out, 0o600)
    if modified:
        try:
            ts = email.utils.parsedate_to_datetime(modified).timestamp()
            os.utime(out, (ts, ts))
        except (TypeError, ValueError):
            pass
    return out


def is_archive(path: Path) -> bool:
    """Whether `path` is a tar archive (possibly compressed): the first header must parse."""
    try:
        with open(path, "rb") as raw:
            stream = open_decompressed(raw)
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                return tar.next() is not None
    except (OSError, tarfile.TarError, EOFError, ValueError, Exception):
        return False


def extract_archive(path: Path, target: Path) -> None:
    """Extract into `target`, a directory of a mounted step root (so no overlay whiteouts)."""
    with open(path, "rb") as f:
        apply_layer(f, target, ApplyOptions(whiteouts=False))
