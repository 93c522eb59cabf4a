"""Packing a build context directory into the tar `POST /build` takes, as the docker CLI does.

Rules copied from docker/cli `cli/command/image/build.go` and `build/context.go`, and moby
`pkg/archive.TarWithOptions`:
- `.dockerignore` excludes are applied here, by the client; the context root is never
  excluded; an excluded directory is still walked when an exception pattern (`!x`) names
  something below it.
- The Dockerfile and `.dockerignore` are always sent (`TrimBuildFilesFromExcludes`).
- A Dockerfile outside the context (or read from stdin) is added under a random name
  `.dockerfile.<20 hex>`, and that name is appended to the sent `.dockerignore` so the
  daemon drops it from the context it builds from (`AddDockerfileToBuildContext`).
- Owners are written as 0:0 (`ChownOpts`), names in lexical walk order.

Paths are strings and BuildContext a plain class: `dockyard build` imports this module on
every run, and dataclasses (with inspect), pathlib and typing cost it ~25 ms of start-up
(`-X importtime`), a half of issue 17's whole budget for a cached build (row b, 50 ms).
"""

from __future__ import annotations

import io  # loaded by the interpreter at start-up anyway
import os
import stat
import time

TYPE_CHECKING = False  # typing costs start-up; mypy honours this name
if TYPE_CHECKING:
    import tarfile  # imported where a tar is made: a session-served build makes none
    from collections.abc import Callable, Iterator

    Matcher = Callable[[str], bool]


class ContextError(Exception):
    """The context or Dockerfile cannot be used (missing, not a directory, unreadable)."""


class BuildContext:
    """What to send: the context root (absolute, resolved), the Dockerfile's name inside the
    tar, the ignore patterns, a Dockerfile from outside the context as (generated name, its
    bytes), and the .dockerignore to send when it differs from the context's."""

    __slots__ = ("dockerfile", "ignore_text", "injected", "patterns", "root")

    def __init__(
        self,
        root: str,
        dockerfile: str,
        patterns: tuple[str, ...],
        injected: tuple[str, bytes] | None = None,
        ignore_text: bytes | None = None,
    ) -> None:
        self.root = root
        self.dockerfile = dockerfile
        self.patterns = patterns
        self.injected = injected
        self.ignore_text = ignore_text

    def __repr__(self) -> str:
        return f"BuildContext({self.root!r}, {self.dockerfile!r}, {self.patterns!r})"


def load_ignore_module() -> tuple[Callable[[str], list[str]], Callable[[list[str]], Matcher]]:
    """parse_dockerignore and a matcher factory from the frontend layer (imported lazily)."""
    try:
        from dockyard.frontend import dockerignore
    except ImportError as exc:  # pragma: no cover - only while the frontend is being written
        raise ContextError(
            f"cannot apply .dockerignore: dockyard.frontend.dockerignore is unavailable ({exc})"
        ) from exc

    def factory(patterns: list[str]) -> Matcher:
        return dockerignore.IgnoreMatcher(patterns).matches

    return dockerignore.parse_dockerignore, factory


def resolve_dockerfile(root: str, dockerfile: str | None) -> str:
    """getDockerfileRelPath: `-f` is relative to the current directory; default in the root.

    Without `-f`, `Dockerfile` is used, or `dockerfile` when only that exists.
    """
    if dockerfile:
        path = os.path.abspath(dockerfile)
    else:
        path = os.path.join(root, "Dockerfile")
        if not os.path.lexists(path) and os.path.lexists(os.path.join(root, "dockerfile")):
            path = os.path.join(root, "dockerfile")
    try:
        real = os.path.realpath(path, strict=True)
    except OSError:
        raise ContextError(f'Cannot locate Dockerfile: "{path}"') from None
    return real


def prepare_context(
    context_dir: str,
    dockerfile: str | None,
    parse: Callable[[str], list[str]],
    dockerfile_bytes: bytes | None = None,
) -> BuildContext:
    """Resolve the context root, the Dockerfile and the ignore patterns.

    `dockerfile_bytes` is a Dockerfile read from stdin (`-f -`): it is injected like one
    that lies outside the context.
    """
    root = os.path.realpath(os.path.abspath(context_dir))
    if not os.path.isdir(root):
        raise ContextError(f"context must be a directory: {root}")
    ignore_path = os.path.join(root, ".dockerignore")
    try:
        with open(ignore_path, "rb") as f:
            ignore_text: bytes | None = f.read()
    except FileNotFoundError:
        ignore_text = None
    except OSError as exc:
        raise ContextError(f"cannot read {ignore_path}: {exc}") from exc
    patterns = parse(ignore_text.decode("utf-8", "replace")) if ignore_text is not None else []

    injected: tuple[str, bytes] | None = None
    if dockerfile_bytes is not None:
        content = dockerfile_bytes
        rel = ""
    else:
        df = resolve_dockerfile(root, dockerfile)
        rel = os.path.relpath(df, root)
        content = b""
        if rel == ".." or rel.startswith("../"):
            with open(df, "rb") as f:
                content = f.read()
    if rel == "" or rel == ".." or rel.startswith("../"):
        name = ".dockerfile." + os.urandom(10).hex()  # secrets.token_hex's bytes
        injected = (name, content)
        base = ignore_text if ignore_text is not None else b".dockerignore"
        ignore_text = base + b"\n" + name.encode() + b"\n"
        rel = name
    return BuildContext(root, rel, tuple(patterns), injected, ignore_text)


def keep_patterns(ctx: BuildContext, make_matcher: Callable[[list[str]], Matcher]) -> list[str]:
    """TrimBuildFilesFromExcludes: re-include `.dockerignore` and the Dockerfile if excluded."""
    patterns = list(ctx.patterns)
    if not patterns:
        return patterns
    matches = make_matcher(patterns)
    if matches(".dockerignore"):
        patterns.append("!.dockerignore")
    if ctx.injected is None and matches(ctx.dockerfile):
        patterns.append("!" + ctx.dockerfile)
    return patterns


def _must_walk_excluded_dir(rel: str, patterns: list[str]) -> bool:
    """TarWithOptions: an excluded directory is entered only if an exception lies below it."""
    prefix = rel + "/"
    return any(p.startswith("!") and (p[1:] + "/").startswith(prefix) for p in patterns)


def iter_context_files(root: str, patterns: list[str], matches: Matcher) -> Iterator[str]:
    """Relative paths (with `/`) to put in the tar, in the order docker's walk visits them."""
    use_patterns = bool(patterns)

    def walk(rel_dir: str) -> Iterator[str]:
        full = os.path.join(root, rel_dir) if rel_dir else root
        try:
            names = sorted(os.listdir(full))
        except OSError as exc:
            raise ContextError(f"can't stat '{full}': {exc.strerror}") from exc
        for name in names:
            rel = f"{rel_dir}/{name}" if rel_dir else name
            try:
                st = os.lstat(os.path.join(root, rel))
            except FileNotFoundError:
                continue
            is_dir = stat.S_ISDIR(st.st_mode)
            if use_patterns and matches(rel):
                if is_dir and _must_walk_excluded_dir(rel, patterns):
                    yield from walk(rel)
                continue
            yield rel
            if is_dir:
                yield from walk(rel)

    yield from walk("")


class _Sink(io.RawIOBase):
    """A write-only file whose data is collected for a generator to hand out in chunks."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0
        self.total = 0

    def writable(self) -> bool:
        return True

    def write(self, b: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        data = bytes(b)
        self.parts.append(data)
        self.size += len(data)
        self.total += len(data)
        return len(data)

    def take(self) -> bytes:
        data = b"".join(self.parts)
        self.parts.clear()
        self.size = 0
        return data


def _reg_info(name: str, size: int, mtime: float) -> tarfile.TarInfo:
    import tarfile

    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o600
    info.mtime = int(mtime)
    return info


def _tar_info(path: str, rel: str, links: dict[tuple[int, int], str]) -> tarfile.TarInfo | None:
    """A header from lstat, without tarfile's per-file passwd/group lookups.

    Like moby's FileInfoHeader: mtime truncated to seconds, owner 0:0, no names; a second
    path to an inode already sent becomes a hardlink.
    """
    import tarfile

    st = os.lstat(path)
    info = tarfile.TarInfo(rel)
    info.mode = stat.S_IMODE(st.st_mode)
    info.mtime = int(st.st_mtime)
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    mode = st.st_mode
    if stat.S_ISREG(mode):
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in links:
            info.type = tarfile.LNKTYPE
            info.linkname = links[key]
        else:
            if st.st_nlink > 1:
                links[key] = rel
            info.type = tarfile.REGTYPE
            info.size = st.st_size
    elif stat.S_ISDIR(mode):
        info.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(mode):
        info.type = tarfile.SYMTYPE
        info.linkname = os.readlink(path)
    elif stat.S_ISFIFO(mode):
        info.type = tarfile.FIFOTYPE
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    else:  # sockets cannot be archived; docker skips them too
        return None
    return info


def tar_stream(
    ctx: BuildContext, matches: Matcher, patterns: list[str], chunk_size: int = 1 << 16
) -> Iterator[bytes]:
    """The context as a tar, produced in chunks while the files are read (never in RAM)."""
    import tarfile

    sink = _Sink()
    tar = tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT)
    now = time.time()
    links: dict[tuple[int, int], str] = {}
    seen_ignore = False
    for rel in iter_context_files(ctx.root, patterns, matches):
        path = os.path.join(ctx.root, rel)
        if rel == ".dockerignore" and ctx.injected is not None and ctx.ignore_text is not None:
            seen_ignore = True
            info = _reg_info(rel, len(ctx.ignore_text), now)
            tar.addfile(info, io.BytesIO(ctx.ignore_text))
            continue
        try:
            header = _tar_info(path, rel, links)
        except FileNotFoundError:
            continue
        if header is None:
            continue
        if header.isreg():
            try:
                with open(path, "rb") as f:
                    tar.addfile(header, f)
            except PermissionError:
                raise ContextError(f"no permission to read from '{path}'") from None
        else:
            tar.addfile(header)
        if sink.size >= chunk_size:
            yield sink.take()
    if ctx.injected is not None:
        name, content = ctx.injected
        tar.addfile(_reg_info(name, len(content), now), io.BytesIO(content))
        if not seen_ignore and ctx.ignore_text is not None:
            info = _reg_info(".dockerignore", len(ctx.ignore_text), now)
            tar.addfile(info, io.BytesIO(ctx.ignore_text))
    # Go's archive/tar (the docker CLI's) ends a tar with two zero blocks; Python's pads it
    # to a 10 KiB record as well. Sending that padding made "Sending build context" say
    # 10.24kB where docker says 2.048kB for a one-file context.
    end = tar.offset + 2 * tarfile.BLOCKSIZE
    tar.close()
    data = sink.take()
    extra = sink.total - end
    if extra > 0:
        data = data[:-extra]
    if data:
        yield data


def prepare(
    context_dir: str,
    dockerfile: str | None = None,
    dockerfile_bytes: bytes | None = None,
    ignore: tuple[Callable[[str], list[str]], Callable[[list[str]], Matcher]] | None = None,
) -> tuple[BuildContext, list[str], Matcher]:
    """The context resolved, the exclude patterns to send it with (the Dockerfile and
    .dockerignore kept), and their matcher."""
    if ignore is None:
        if os.path.lexists(os.path.join(context_dir, ".dockerignore")):
            ignore = load_ignore_module()
        else:  # nothing to match: no need for the frontend's matcher
            ignore = (lambda _text: [], lambda _patterns: lambda _rel: False)
    parse, factory = ignore
    ctx = prepare_context(context_dir, dockerfile, parse, dockerfile_bytes)
    patterns = keep_patterns(ctx, factory)
    matches = factory(patterns) if patterns else (lambda _rel: False)
    return ctx, patterns, matches


def pack(
    context_dir: str,
    dockerfile: str | None = None,
    dockerfile_bytes: bytes | None = None,
    ignore: tuple[Callable[[str], list[str]], Callable[[list[str]], Matcher]] | None = None,
) -> tuple[BuildContext, Iterator[bytes]]:
    """Prepare and stream a context: (what was resolved, tar chunks)."""
    ctx, patterns, matches = prepare(context_dir, dockerfile, dockerfile_bytes, ignore)
    return ctx, tar_stream(ctx, matches, patterns)


def is_archive(head: bytes) -> bool:
    """DetectArchiveReader: gzip/bzip2/xz/zstd magic or a ustar header."""
    if head.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd")):
        return True
    return len(head) >= 262 and head[257:262] == b"ustar"


def single_dockerfile_tar(content: bytes) -> bytes:
    """A context made only of a Dockerfile (`build -` with a Dockerfile on stdin)."""
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(_reg_info("Dockerfile", len(content), time.time()), io.BytesIO(content))
        end = tar.offset + 2 * tarfile.BLOCKSIZE
    return buf.getvalue()[:end]  # no record padding, as Go's archive/tar (see tar_stream)
