"""`dockyard cp`: docker CLI's copy rules, step for step (docker/cli container/cp.go and
moby pkg/archive copy.go: CopyInfoSourcePath, CopyInfoDestinationPath, PrepareArchiveCopy).

One side is CONTAINER:PATH, the other a local path or `-` (a tar on stdin or stdout). What
is sent and what arrives is a tar named from the source's base name; when the destination
does not exist (or is a file), the archive's top entry is renamed to the destination's base
name and extracted into its parent, so `cp f C:/tmp/new` creates /tmp/new and
`cp C:/dir ./copy` creates ./copy. Local extraction goes through the same in-root applier
as the daemon's (diff.applier over diff.inroot): nothing in the archive can write outside
the destination directory, and the files belong to the user running the command.
"""

from __future__ import annotations

import argparse
import base64
import errno
import json
import os
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from dockyard.cli.client import APIError, Client, quote_name
from dockyard.cli.context import CommandError, Context

_CHUNK = 1 << 16
_MAX_SYMLINKS = 10  # moby CopyInfoDestinationPath's limit


def add_cp(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-a", "--archive", action="store_true", help="Archive mode (copy all uid/gid information)"
    )
    p.add_argument(
        "-L", "--follow-link", action="store_true", help="Always follow symbol link in SRC_PATH"
    )
    p.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="Suppress progress output during copy. Progress output is automatically "
        "suppressed if no terminal is attached",
    )
    p.add_argument("src", metavar="SRC_PATH")
    p.add_argument("dest", metavar="DEST_PATH")


@dataclass
class CopyInfo:
    path: str
    exists: bool = False
    is_dir: bool = False
    rebase_name: str = ""


# paths, as Go's filepath and moby's archive helpers see them -----------------------------
def split_cp_arg(arg: str) -> tuple[str, str]:
    """("", path) for a local path; (container, path) for CONTAINER:PATH."""
    if arg.startswith("/"):
        return "", arg  # an explicit local absolute path
    container, sep, path = arg.partition(":")
    if not sep or container.startswith("."):
        return "", arg  # no ":" or an explicit relative path like ./file:name
    return container, path


def _has_trailing_sep(path: str) -> bool:
    return path.endswith("/")


def _specifies_current_dir(path: str) -> bool:
    return _base(path) == "."


def _clean(path: str) -> str:
    """Go's filepath.Clean."""
    if not path:
        return "."
    clean = os.path.normpath(path)
    return "/" + clean.lstrip("/") if clean.startswith("//") else clean


def _base(path: str) -> str:
    """Go's filepath.Base: trailing separators dropped; "/" for the root, "." for ""."""
    if not path:
        return "."
    stripped = path.rstrip("/")
    return os.path.basename(stripped) if stripped else "/"


def split_path_dir_entry(path: str) -> tuple[str, str]:
    cleaned = _clean(path)
    if _specifies_current_dir(path):
        cleaned += "/."
    return os.path.dirname(cleaned) or ".", _base(cleaned)


def preserve_trailing_dot_or_sep(cleaned: str, original: str) -> str:
    if not _specifies_current_dir(cleaned) and _specifies_current_dir(original):
        if not _has_trailing_sep(cleaned):
            cleaned += "/"
        cleaned += "."
    if not _has_trailing_sep(cleaned) and _has_trailing_sep(original):
        cleaned += "/"
    return cleaned


def resolve_local_path(path: str) -> str:
    return preserve_trailing_dot_or_sep(os.path.abspath(path), path)


def _os_error(op: str, path: str, exc: OSError) -> CommandError:
    # Go's *PathError text: "lstat /x: no such file or directory".
    text = os.strerror(exc.errno) if exc.errno else str(exc)
    return CommandError(f"{op} {path}: {text[:1].lower()}{text[1:]}", 1)


def _eval_symlinks(path: str) -> str:
    """Go's filepath.EvalSymlinks: every link resolved; the path must exist."""
    try:
        os.stat(path)
    except OSError as e:
        raise _os_error("lstat", path, e) from None
    return os.path.realpath(path)


def get_rebase_name(path: str, resolved: str) -> tuple[str, str]:
    rebase = ""
    if _specifies_current_dir(path) and not _specifies_current_dir(resolved):
        resolved += "/."
    if _has_trailing_sep(path) and not _has_trailing_sep(resolved):
        resolved += "/"
    if _base(path) != _base(resolved):
        rebase = _base(path)
    return resolved, rebase


def copy_info_source_path(path: str, follow_link: bool) -> CopyInfo:
    if follow_link:
        resolved, rebase = get_rebase_name(path, _eval_symlinks(path))
    else:
        dir_path, base_path = os.path.split(path)
        resolved = _eval_symlinks(dir_path or ".").rstrip("/") + "/" + base_path
        rebase = ""
        if _has_trailing_sep(path) and _base(path) != _base(resolved):
            rebase = _base(path)
    try:
        st = os.lstat(resolved)
    except OSError as e:
        raise _os_error("lstat", resolved, e) from None
    return CopyInfo(resolved, True, stat.S_ISDIR(st.st_mode), rebase)


def copy_info_destination_path(path: str) -> CopyInfo:
    original = path
    try:
        st: os.stat_result | None = os.lstat(path)
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise _os_error("lstat", path, e) from None
    n = 0
    while st is not None and stat.S_ISLNK(st.st_mode):
        if n > _MAX_SYMLINKS:
            raise CommandError(f"too many symlinks in {original}", 1)
        n += 1
        target = os.readlink(path)
        if not target.startswith("/"):
            target = os.path.join(split_path_dir_entry(path)[0], target)
        path = target
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            st = None
    if st is None:
        parent = split_path_dir_entry(path)[0]
        try:
            pst = os.stat(parent)
        except OSError as e:
            raise _os_error("stat", parent, e) from None
        if not stat.S_ISDIR(pst.st_mode):
            raise CommandError("not a directory", 1)
        return CopyInfo(path)
    return CopyInfo(path, True, stat.S_ISDIR(st.st_mode))


def prepare_archive_copy(src: CopyInfo, dst: CopyInfo) -> tuple[str, tuple[str, str] | None]:
    """(directory to extract into, (old base, new base) to rename the top entry, if any)."""
    dst_dir, dst_base = split_path_dir_entry(dst.path)
    _, src_base = split_path_dir_entry(src.path)
    if src.rebase_name:
        src_base = src.rebase_name
    if dst.exists and dst.is_dir:
        return dst.path, None
    if dst.exists and src.is_dir:
        raise CommandError("cannot copy directory", 1)
    asserts_dir = _has_trailing_sep(dst.path) or _specifies_current_dir(dst.path)
    if not dst.exists and not src.is_dir and asserts_dir:
        raise CommandError("no such directory", 1)
    return dst_dir, (src_base, dst_base)


def validate_output_path(path: str) -> None:
    parent = os.path.dirname(_clean(path))
    if parent not in ("", ".") and not os.path.exists(parent):
        raise CommandError(f'invalid output path: directory "{parent}" does not exist', 1)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    except OSError as e:
        raise _os_error("stat", path, e) from None
    if stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode):
        return
    why = (
        "got a device"
        if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)
        else ("got an irregular file")
    )
    raise CommandError(
        f'invalid output path: "{path}" must be a directory or a regular file: {why}', 1
    )


def human_size(n: float) -> str:
    """go-units HumanSizeWithPrecision(n, 3), as docker's "Successfully copied" line."""
    units = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"]
    i = 0
    while n >= 1000 and i < len(units) - 1:
        n /= 1000
        i += 1
    return f"{n:.3g}{units[i]}"


# the daemon side ---------------------------------------------------------------------------
def _archive(container: str) -> str:
    return f"/containers/{quote_name(container)}/archive"


def stat_path(client: Client, container: str, path: str) -> dict[str, Any] | None:
    """HEAD /archive: the X-Docker-Container-Path-Stat header, or None when not found."""
    try:
        resp = client.request("HEAD", _archive(container), {"path": path})
    except APIError as e:
        if e.status == 404:
            return None
        raise
    resp.close()
    raw = resp.headers.get("x-docker-container-path-stat", "")
    info: dict[str, Any] = json.loads(base64.b64decode(raw)) if raw else {}
    return info


_GO_DIR = 1 << 31
_GO_SYMLINK = 1 << 27
_GO_DEVICE = 1 << 26
_GO_IRREGULAR = 1 << 19


class _Body:
    """A daemon response as a file for the applier (`read(n)`), counting what it read."""

    def __init__(self, resp: Any) -> None:
        self._resp = resp
        self._buf = b""
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self._buf) < n:
            chunk = self._resp.read1(_CHUNK)
            if not chunk:
                break
            self._buf += chunk
        out, self._buf = (self._buf, b"") if n < 0 else (self._buf[:n], self._buf[n:])
        self.count += len(out)
        return out


# the command -------------------------------------------------------------------------------
def cmd_cp(ctx: Context, args: argparse.Namespace) -> int:
    src_c, src = split_cp_arg(args.src)
    dst_c, dst = split_cp_arg(args.dest)
    if src_c and dst_c:
        raise CommandError("copying between containers is not supported", 1)
    if not src_c and not dst_c:
        raise CommandError("must specify at least one container source", 1)
    quiet = args.quiet or not ctx.err.isatty()
    if src_c:
        return _copy_from(ctx, src_c, src, dst, args.follow_link, quiet)
    return _copy_to(ctx, src, dst_c, dst, args.archive, args.follow_link, quiet)


def _copy_from(ctx: Context, container: str, src: str, dst: str, follow: bool, quiet: bool) -> int:
    if dst != "-":
        dst = resolve_local_path(dst)
    validate_output_path(dst)
    client = ctx.client
    rebase_name = ""
    if follow:
        info = stat_path(client, container, src)
        if info is not None and int(info.get("mode", 0)) & _GO_SYMLINK:
            target = str(info.get("linkTarget") or "")
            if not target.startswith("/"):
                target = os.path.join(split_path_dir_entry(src)[0], target)
            src, rebase_name = get_rebase_name(src, target)
    resp = client.request("GET", _archive(container), {"path": src})
    try:
        raw = resp.headers.get("x-docker-container-path-stat", "")
        info = json.loads(base64.b64decode(raw)) if raw else {}
        if dst == "-":
            out = ctx.out.buffer if hasattr(ctx.out, "buffer") else sys.stdout.buffer
            ctx.out.flush()
            while chunk := resp.read1(_CHUNK):
                out.write(chunk)
            out.flush()
            return 0
        src_info = CopyInfo(src, True, bool(int(info.get("mode", 0)) & _GO_DIR), rebase_name)
        body = _Body(resp)
        _extract_local(body, src_info, dst)
    finally:
        resp.close()
    if not quiet:
        ctx.warn(f"Successfully copied {human_size(body.count)} to {dst}")
    return 0


def _extract_local(body: _Body, src_info: CopyInfo, dst: str) -> None:
    from dockyard.diff.applier import ApplyOptions, apply_layer
    from dockyard.diff.inroot import Root
    from dockyard.errors import DockyardError

    dst_info = copy_info_destination_path(dst)
    dst_dir, rename = prepare_archive_copy(src_info, dst_info)
    if src_info.rebase_name and rename is None:
        _, old = split_path_dir_entry(src_info.path)
        rename = (old, src_info.rebase_name)
    elif src_info.rebase_name and rename is not None:
        _, old = split_path_dir_entry(src_info.path)
        rename = (old, rename[1])
    # moby's CopyTo: Untar with NoLchown (the user's own files) and NoOverwriteDirNonDir.
    opts = ApplyOptions(
        chown=False,
        no_overwrite_dir_nondir=True,
        whiteouts_as_files=True,
        confine_symlinks=True,
        rebase=rename,
        where=dst_dir,
    )
    try:
        with Root.at(dst_dir) as root:
            apply_layer(body, root, opts)  # type: ignore[arg-type]
    except DockyardError as e:
        raise CommandError(str(e), 1) from None
    except OSError as e:
        raise _os_error("open", dst_dir, e) from None


def _copy_to(
    ctx: Context,
    src: str,
    container: str,
    dst: str,
    copy_uid_gid: bool,
    follow: bool,
    quiet: bool,
) -> int:
    if src != "-":
        src = resolve_local_path(src)
    client = ctx.client
    dst_info = CopyInfo(dst)
    info = stat_path(client, container, dst)
    if info is not None and int(info.get("mode", 0)) & _GO_SYMLINK:
        target = str(info.get("linkTarget") or "")
        if not target.startswith("/"):
            target = os.path.join(split_path_dir_entry(dst)[0], target)
        dst_info.path = target
        info = stat_path(client, container, target)
    if info is not None:
        mode = int(info.get("mode", 0))
        if mode & (_GO_DEVICE | _GO_IRREGULAR):
            why = "got a device" if mode & _GO_DEVICE else "got an irregular file"
            raise CommandError(
                f'destination "{container}:{dst}" must be a directory or a regular file: {why}',
                1,
            )
        dst_info.exists, dst_info.is_dir = True, bool(mode & _GO_DIR)
    query = {"path": "", "noOverwriteDirNonDir": "true"}
    if copy_uid_gid:
        query["copyUIDGID"] = "true"
    if src == "-":
        if not dst_info.is_dir:
            raise CommandError(f'destination "{container}:{dst}" must be a directory', 1)
        query["path"] = dst_info.path
        client.call("PUT", _archive(container), query, body=_stdin_chunks(), headers=_TAR)
        return 0
    src_info = copy_info_source_path(src, follow)
    dst_dir, rename = prepare_archive_copy(src_info, dst_info)
    _, src_base = split_path_dir_entry(src_info.path)
    arcname = rename[1] if rename is not None else (src_info.rebase_name or src_base)
    query["path"] = dst_dir
    with _source_tar(src_info.path, arcname) as spool:
        size = spool.seek(0, os.SEEK_END)
        spool.seek(0)
        client.call("PUT", _archive(container), query, body=_file_chunks(spool), headers=_TAR)
    if not quiet:
        ctx.warn(f"Successfully copied {human_size(size)} to {container}:{dst}")
    return 0


_TAR = {"Content-Type": "application/x-tar"}


def _stdin_chunks() -> Iterator[bytes]:
    stream = sys.stdin.buffer
    while chunk := stream.read(_CHUNK):
        yield chunk


def _file_chunks(f: IO[bytes]) -> Iterator[bytes]:
    while chunk := f.read(_CHUNK):
        yield chunk


def _source_tar(path: str, arcname: str) -> IO[bytes]:
    """moby TarResourceRebase: the entry `path` (a tree for a directory) named `arcname`,
    spooled (in memory up to 16 MiB) so a failure shows before anything is sent."""
    import tempfile

    from dockyard.diff.treetar import write_tree

    source_dir, source_base = split_path_dir_entry(path)
    spool = tempfile.SpooledTemporaryFile(16 << 20)
    try:
        fd = os.open(source_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        spool.close()
        raise _os_error("open", source_dir, e) from None
    try:
        name = "." if source_base in (".", "/") else source_base
        write_tree(fd, name, arcname, spool)
    except OSError as e:
        spool.close()
        if e.errno == errno.EACCES:
            raise _os_error("open", path, e) from None
        raise
    finally:
        os.close(fd)
    return spool
