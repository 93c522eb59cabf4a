"""COPY and ADD as build steps: sources gathered and hashed, then copied into the step's root.

Sources come from the context, or from a stage's or image's root (`--from`); heredocs and
ADD's URLs are first written as files into a scratch tree of their own; ADD's git
repositories (BuildKit's semantics, builder/gitsource.py) are resolved to a commit before the
cache probe and checked out there only when the step runs. The cache key sees a
digest per source file (paths, types, modes and contents, not mtimes; copy.file_digests),
and the history carries their combined digest as Docker's does (`file:<hex> in /dest `).
The step mounts no init layer: COPY sees only the image (a COPY into /etc of a scratch image
creates /etc, owned by --chown, as in Docker).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import posixpath
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dockyard.builder.context import BuildContext
from dockyard.builder.copy import (
    CopyOptions,
    CopySource,
    combined_digest,
    copy_into,
    file_digests,
    is_plain_source,
    make_dirs,
    remembered_digests,
    resolve_sources,
)
from dockyard.builder.copylinks import LinkPlan
from dockyard.builder.executor import Step
from dockyard.builder.gitsource import GitEnv, GitRef, checkout, parse_git_ref, resolve
from dockyard.builder.progress import StepInfo
from dockyard.builder.remote import extract_archive, fetch_url, is_archive, is_url
from dockyard.builder.semantics import CopyText, Semantics
from dockyard.builder.state import StageState
from dockyard.builder.stepcontext import Dispatch
from dockyard.diff.fsutil import resolve_in_root
from dockyard.errors import BuildFailure, InvalidArgument
from dockyard.frontend.chmod import Chmod
from dockyard.frontend.commands import AddInstruction, CopyInstruction, FileInstruction
from dockyard.frontend.dockerignore import IgnoreMatcher
from dockyard.frontend.expand import expand_word
from dockyard.frontend.instructions import check_chmod

_HEREDOC = "\0heredoc:"  # marks a source word that names one of the instruction's heredocs


@dataclass(frozen=True)
class _Made:
    """A source written into the scratch tree: a heredoc or a downloaded URL."""

    name: str
    path: Path


@dataclass(frozen=True)
class _Git:
    """A repository ADD checks out: the commit its ref names when the step was keyed."""

    ref: GitRef
    commit: str
    keep_git_dir: bool

    @property
    def key(self) -> str:
        return f"<git {self.ref.shown}#{self.commit}:{self.ref.subdir}>"

    @property
    def digest(self) -> str:
        """What the cache key sees: the commit (as BuildKit's git source key), never the
        checked-out files, whose .git (with --keep-git-dir) differs on every checkout."""
        text = f"{self.ref.remote}\0{self.commit}\0{self.ref.subdir}\0{self.keep_git_dir}"
        return "git:" + hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class _Sources:
    tree: BuildContext  # where the local sources are
    local: list[CopySource]
    extra: BuildContext | None  # the scratch tree of heredocs, downloads and checkouts
    made: list[_Made]
    archives: frozenset[str]  # local sources ADD extracts instead of copying
    digests: dict[str, str]
    gits: list[_Git]

    @property
    def count(self) -> int:
        return len(self.local) + len(self.made) + len(self.gits)

    @property
    def git_env(self) -> GitEnv:
        assert self.extra is not None
        return GitEnv(self.extra.root / "git-home")

    def kind(self) -> str:
        """Docker's history word for what was copied: `file`, `dir` or `multi`."""
        if self.count > 1:
            return "multi"
        if self.gits:
            return "dir"
        single = self.local[0] if len(self.local) == 1 and not self.made else None
        return "dir" if single and single.is_dir else "file"


@dataclass(frozen=True)
class _Flags:
    """COPY/ADD's flags, expanded for this stage."""

    chown: str
    chmod: Chmod | None
    from_ref: str
    parents: bool
    excludes: list[str]
    checksum: str
    link: bool
    keep_git_dir: bool

    @property
    def independent(self) -> bool:
        """`--link` makes the layer on an empty root, unless `--chmod` is given too: BuildKit
        then copies as without --link (dispatchCopy's `cfg.link && cfg.chmod == ""`)."""
        return self.link and self.chmod is None

    @property
    def exclude(self) -> IgnoreMatcher | None:
        return IgnoreMatcher(self.excludes) if self.excludes else None

    def options(self, archives: frozenset[str]) -> dict[str, str]:
        """What else the cache key sees (the content is in the file digests)."""
        return {
            "chown": self.chown,
            "chmod": json.dumps(_chmod_key(self.chmod)),
            "parents": json.dumps(self.parents),
            "exclude": json.dumps(self.excludes),
            "archives": json.dumps(sorted(archives)),
            "from": json.dumps(bool(self.from_ref)),
            "link": json.dumps(self.link),
        }


def _chmod_key(chmod: Chmod | None) -> int | str | None:
    """An octal mode keys as its number (as before symbolic modes), a symbolic one as text."""
    if chmod is None:
        return None
    return chmod.octal if chmod.octal is not None else chmod.text


def _flags(ins: FileInstruction, env: dict[str, str], escape: str, semantics: Semantics) -> _Flags:
    keep_git_dir = isinstance(ins, AddInstruction) and ins.keep_git_dir
    if keep_git_dir and not semantics.add_git_sources:
        # dockerd 20.10's legacy parser does not know the flag (measured)
        raise InvalidArgument("Unknown flag: keep-git-dir")
    chmod = expand_word(ins.chmod, env, escape)
    copy = ins if isinstance(ins, CopyInstruction) else None
    return _Flags(
        chown=expand_word(ins.chown, env, escape),
        chmod=check_chmod(chmod) if chmod else None,
        from_ref=expand_word(copy.from_, env, escape) if copy else "",
        parents=copy.parents if copy else False,
        excludes=[expand_word(x, env, escape) for x in ins.excludes],
        checksum=ins.checksum if isinstance(ins, AddInstruction) else "",
        link=ins.link,
        keep_git_dir=keep_git_dir,
    )


async def dispatch_copy(
    d: Dispatch, ins: FileInstruction, state: StageState, info: StepInfo
) -> StageState:
    cmd = ins.keyword.upper()
    env = state.expand_env()
    *srcs, written_dest = _words(ins, env, d.escape)
    dest = _absolute(written_dest, state.workdir)
    flags = _flags(ins, env, d.escape, d.semantics)
    if flags.independent and flags.chown and not _numeric_owner(flags.chown):
        # The empty root has no /etc/passwd to look a name up in; BuildKit fails the same
        # way, as "invalid user index: -1" (measured on dockerd 26.1's BuildKit 0.13).
        raise BuildFailure(
            f"{cmd} --link --chown={flags.chown}: a --link layer is made on an empty root, "
            "where user and group names cannot be looked up (BuildKit: invalid user index: "
            "-1); give numeric IDs"
        )
    async with contextlib.AsyncExitStack() as stack:
        tree = d.context
        if flags.from_ref:
            layers = await d.source_layers(flags.from_ref)
            tree = BuildContext(await stack.enter_async_context(d.rootfs.image_tree(layers)), None)
        scratch: list[BuildContext] = []

        def extra() -> BuildContext:
            # made for the first heredoc, download or checkout only: most COPYs have none,
            # and a temporary directory made and removed on the loop cost a cached COPY 0.3 ms
            if not scratch:
                root = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=d.scratch)))
                scratch.append(BuildContext(root, None))
            return scratch[0]

        sources = await _gather(ins, srcs, env, d.escape, tree, extra, flags, d.semantics)
        if sources.count > 1 and not dest.endswith("/"):
            raise BuildFailure(
                f"When using {cmd} with more than one source file, the destination must be "
                "a directory and end with a /"
            )
        text = CopyText(
            cmd,
            flags.chown,
            expand_word(ins.chmod, env, d.escape),
            [_shown(w) for w in srcs],
            written_dest,
            f"{sources.kind()}:{combined_digest(sources.digests)}",
        )
        history = d.semantics.copy_history(state.shell, text)

        links = (
            LinkPlan(tree.root, tree.digests)
            if tree.shares_files and not flags.independent
            else None
        )

        async def work(rootfs: Path, _container: str) -> None:
            await asyncio.to_thread(_copy, rootfs, sources, dest, flags, cmd, d.semantics, links)

        step = Step(
            info,
            " ".join([cmd, *ins.args]),
            history,
            options=flags.options(sources.archives),
            files=sources.digests,
            work=work,
            upper_work=links.apply if links is not None else None,
            container=False,
            init_layer=False,
            independent=flags.independent,
        )
        return await d.executor.execute(state, step)


def _numeric_owner(chown: str) -> bool:
    return all(part.isdigit() for part in chown.split(":"))


def _words(ins: FileInstruction, env: dict[str, str], escape: str) -> list[str]:
    """The source and destination words, expanded; a heredoc source stays a marker."""
    names = {h.name for h in ins.heredocs}
    words: list[str] = []
    for a in ins.args:
        name = a.lstrip("<-").strip("'\"")
        if not ins.json_form and a.startswith("<<") and name in names:
            words.append(_HEREDOC + name)
        else:
            words.append(expand_word(a, env, escape))
    return words


def _shown(word: str) -> str:
    """A source word as a history text names it (a heredoc as `<<NAME`)."""
    return "<<" + word.removeprefix(_HEREDOC) if word.startswith(_HEREDOC) else word


def _absolute(dest: str, workdir: str) -> str:
    """A relative destination is under WORKDIR; a trailing `/` (or `.`) says "directory"."""
    if dest.startswith("/"):
        return dest
    trailing = dest.endswith("/") or dest in (".", "./")
    out = posixpath.join(workdir, dest)
    return out + "/" if trailing and not out.endswith("/") else out


async def _gather(
    ins: FileInstruction,
    srcs: list[str],
    env: dict[str, str],
    escape: str,
    tree: BuildContext,
    extra: Callable[[], BuildContext],
    flags: _Flags,
    semantics: Semantics,
) -> _Sources:
    cmd = ins.keyword.upper()
    local: list[str] = []
    made: list[_Made] = []
    gits: list[_Git] = []
    for src in srcs:
        git = parse_git_ref(src) if semantics.add_git_sources else None
        if src.startswith(_HEREDOC):
            made.append(
                _heredoc_file(ins, src.removeprefix(_HEREDOC), env, escape, extra(), len(made))
            )
        elif git is not None:
            if cmd != "ADD":
                raise BuildFailure("source can't be a git ref for COPY")
            if flags.checksum:
                raise InvalidArgument("checksum can't be specified for non-HTTP(S) sources")
            git_env = GitEnv(extra().root / "git-home")
            git_env.home.mkdir(exist_ok=True)
            commit = await asyncio.to_thread(resolve, git, git_env)
            gits.append(_Git(git, commit, flags.keep_git_dir))
        elif cmd == "ADD" and is_url(src):
            # the legacy builder downloads `https://host/repo.git` as a file like any URL
            where = extra().root / f"u{len(made)}"
            path = await asyncio.to_thread(fetch_url, src, where, flags.checksum)
            made.append(_Made(path.name, path))
        else:
            if flags.checksum:
                raise InvalidArgument("checksum can't be specified for non-HTTP(S) sources")
            local.append(src)
    scratch = extra() if made or gits else None
    unpacks = isinstance(ins, AddInstruction) and ins.unpack is not False

    def local_sources() -> tuple[list[CopySource], dict[str, str], frozenset[str]]:
        # one worker thread for the lot: each hop to a thread costs a cached COPY a wake-up,
        # 0.2 ms on a quiet machine and milliseconds on a busy one (measured here)
        sources = (
            resolve_sources(
                tree, local, cmd, flags.parents, semantics.empty_wildcard_copies_nothing
            )
            if local
            else []
        )
        probe = CopyOptions(parents=flags.parents, exclude=flags.exclude)
        digests = file_digests(tree, sources, probe)
        if scratch is not None and made:
            made_sources = [CopySource(os.path.relpath(m.path, scratch.root), False) for m in made]
            for m, x in zip(made, file_digests(scratch, made_sources).values(), strict=False):
                digests[f"<{m.name}>"] = x
        archives = frozenset(
            s.rel for s in sources if unpacks and not s.is_dir and is_archive(tree.root / s.rel)
        )
        return sources, digests, archives

    remembered = None
    inline = tree.digests is not None and not made and not unpacks
    if inline and len(local) <= _INLINE_SOURCES and all(map(is_plain_source, local)):
        # a kept context's cached rebuild: a few lstat calls and the whole answer the digest
        # index remembers, on the loop (no thread's wake-up or GIL hand-over)
        sources = resolve_sources(
            tree, local, cmd, flags.parents, semantics.empty_wildcard_copies_nothing
        )
        probe = CopyOptions(parents=flags.parents, exclude=flags.exclude)
        remembered = remembered_digests(tree, sources, probe)
    if remembered is not None:
        digests, archives = remembered, frozenset[str]()
    else:
        sources, digests, archives = await asyncio.to_thread(local_sources)
    for g in gits:
        digests[g.key] = g.digest
    return _Sources(tree, sources, scratch, made, archives, digests, gits)


# COPY's sources resolved on the loop at most (each a few lstat calls) before a thread does it
_INLINE_SOURCES = 16


def _heredoc_file(
    ins: FileInstruction, name: str, env: dict[str, str], escape: str, extra: BuildContext, n: int
) -> _Made:
    h = next(x for x in ins.heredocs if x.name == name)
    body = expand_word_text(h.body, env, escape) if h.expand else h.body
    path = extra.root / f"h{n}" / posixpath.basename(name)
    path.parent.mkdir()
    path.write_text(body)
    os.chmod(path, 0o644)
    return _Made(posixpath.basename(name), path)


def _copy(
    rootfs: Path,
    sources: _Sources,
    dest: str,
    flags: _Flags,
    cmd: str,
    semantics: Semantics,
    links: LinkPlan | None = None,
) -> None:
    uid, gid = chown_ids(rootfs, flags.chown) if flags.chown else (0, 0)
    opts = CopyOptions(
        uid,
        gid,
        flags.chmod,
        flags.parents,
        flags.exclude,
        chown_clears_setid=semantics.copy_chown_clears_setid,
        dir_parents_owned_by_root=semantics.copy_dir_parents_owned_by_root,
        preserve_owners=bool(flags.from_ref) and not flags.chown,
        second_mtimes=sources.tree.second_mtimes,
    )
    plain = [s for s in sources.local if s.rel not in sources.archives]
    if links is not None:
        links.rootfs = rootfs
    if plain:
        copy_into(sources.tree, plain, rootfs, dest, opts, cmd, links)
    for s in sources.local:
        if s.rel in sources.archives:
            # BuildKit makes the destination with the --chown owner, the legacy builder as root
            dest_dir = make_dirs(rootfs, dest, opts.for_dir_parents())[0]
            extract_archive(sources.tree.root / s.rel, dest_dir)
    for m in sources.made:
        assert sources.extra is not None
        src = CopySource(os.path.relpath(m.path, sources.extra.root), False)
        copy_into(sources.extra, [src], rootfs, dest, opts, cmd)
    for n, g in enumerate(sources.gits):
        # BuildKit copies the checkout's root into the destination (llb.Copy of "/" with
        # CreateDestPath): the destination is a directory, with or without a trailing /
        assert sources.extra is not None
        where = sources.extra.root / f"g{n}"
        top = checkout(g.ref, g.commit, where, g.keep_git_dir, sources.git_env)
        copy_into(BuildContext(top, None), [CopySource("", True)], rootfs, dest, opts, cmd)


def expand_word_text(text: str, env: dict[str, str], escape: str) -> str:
    """Heredoc bodies are expanded like a double-quoted word (BuildKit expands `$VAR` in
    unquoted heredocs of COPY/ADD)."""
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "$" and i + 1 < len(text):
            j = i + 1
            if text[j] == "{":
                k = text.find("}", j)
                if k != -1:
                    out.append(expand_word(text[i : k + 1], env, escape))
                    i = k + 1
                    continue
            elif text[j] == "_" or text[j].isalpha():
                k = j
                while k < len(text) and (text[k] == "_" or text[k].isalnum()):
                    k += 1
                out.append(env.get(text[j:k], ""))
                i = k
                continue
        if ch == "\\" and i + 1 < len(text) and text[i + 1] == "$":
            out.append("$")
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def chown_ids(rootfs: Path, chown: str) -> tuple[int, int]:
    """The legacy builder's parseChownFlag: `user` alone means `user:user`; names are looked
    up in the image's /etc/passwd and /etc/group (an error when absent), numbers taken as is."""
    parts = chown.split(":")
    if len(parts) > 2:
        raise InvalidArgument(f"invalid chown string format: {chown}")
    user, group = (parts[0], parts[0]) if len(parts) == 1 else (parts[0], parts[1])

    def lookup(name: str, path: str, what: str, kind: str) -> int:
        if name.isdigit():
            return int(name)
        try:
            lines = resolve_in_root(rootfs, path).read_text(errors="replace").splitlines()
        except OSError:
            raise InvalidArgument(
                f"can't find {what} for {kind} {name}: no such file {path}"
            ) from None
        for line in lines:
            fields = line.split(":")
            if len(fields) >= 3 and fields[0] == name and fields[2].isdigit():
                return int(fields[2])
        raise InvalidArgument(f"can't find {what} for {kind} {name}: no such {kind} in {path}")

    return lookup(user, "/etc/passwd", "uid", "user"), lookup(group, "/etc/group", "gid", "group")
