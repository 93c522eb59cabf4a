"""Git repositories as build sources: BuildKit's `ADD https://host/repo.git#ref:subdir`.

Which words name a repository follows BuildKit's gitutil.ParseGitRef: `git://…`,
`ssh://…`, scp-like `user@host:path`, and `http(s)://…` only when the path ends in `.git`
(a bare `github.com/…` is a local path for ADD). The fragment is `#ref:subdir`; ref is a
branch, a tag or a commit, empty for the remote's default branch (HEAD).

The life of a source (BuildKit's source/git: resolve, then fetch only on a cache miss):
`resolve` asks the remote (`git ls-remote`) which commit the ref names — that commit, not
the files, is what the step's cache key holds — and `checkout` fetches that one commit
shallowly into a scratch directory, checks it out (submodules too, recursively, as
BuildKit does), and drops the top `.git` unless `--keep-git-dir=true`. Files get git's
modes (0644, 0755 for executables, links as links) and the checkout's mtimes, as with
BuildKit (measured on dockerd 26.1).

The repository is not trusted: git runs with no system or user configuration, no prompts,
no `file://` or `ext::` transports (a submodule must not read the daemon's own files), a
ref or URL that could be taken for an option is refused, listings are capped, and the
sub-directory is resolved inside the checkout (a `..` or a symlink out stays inside it).
Symlinks in the tree are copied as the links they are, never followed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from dockyard.diff.fsutil import resolve_in_root
from dockyard.errors import BuildFailure, InvalidArgument

_SCHEMES = ("http", "https", "git", "ssh")
_PROTO = re.compile(r"^([A-Za-z0-9]+)://")
# scp-like `git@github.com:owner/repo.git` (sshutil.ParseSCPStyleURL: user@host:path)
_SCP = re.compile(r"^([A-Za-z0-9_.-]+)@([A-Za-z0-9.-]+):(.+)$")
_COMMIT = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
_TIMEOUT = 600  # seconds per git command
_MAX_LISTING = 16 << 20  # bytes of `ls-remote` output read; a remote sending more is refused


@dataclass(frozen=True)
class GitRef:
    """A parsed git source word."""

    remote: str  # the URL without its fragment
    ref: str  # branch, tag or commit; "" for the default branch
    subdir: str  # "" for the repository's root

    @property
    def shown(self) -> str:
        """The remote for messages, without credentials."""
        return redact(self.remote)


def redact(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.password is None and parts.username is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=host))


def parse_git_ref(word: str) -> GitRef | None:
    """The repository `word` names, or None when it is not a git source."""
    if word.startswith(("./", "../", "-")):
        return None
    base, _, fragment = word.partition("#")
    m = _PROTO.match(base)
    if m:
        scheme = m.group(1).lower()
        if scheme not in _SCHEMES:
            return None
        path = urllib.parse.urlsplit(base).path
        if scheme in ("http", "https") and not path.endswith(".git"):
            return None  # BuildKit: an HTTP(S) URL is a repository only with the .git suffix
    elif not _SCP.match(base):
        return None
    ref, _, subdir = fragment.partition(":")
    return GitRef(base, ref, subdir)


@dataclass(frozen=True)
class GitEnv:
    """How git is run: in `home` (an empty scratch directory) with nothing of the host's
    configuration."""

    home: Path

    def environ(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if k in ("PATH", "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY")
            or k in ("NO_PROXY", "SSL_CERT_FILE", "SSL_CERT_DIR", "SSH_AUTH_SOCK")
        }
        env.setdefault("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        env.update(
            HOME=str(self.home),
            GIT_CONFIG_NOSYSTEM="1",
            GIT_CONFIG_GLOBAL="/dev/null",
            GIT_TERMINAL_PROMPT="0",
            GIT_ASKPASS="/bin/false",
            GIT_SSH_COMMAND="ssh -o BatchMode=yes",
            GIT_ALLOW_PROTOCOL="http:https:git:ssh",
            LC_ALL="C",
        )
        return env

    def run(self, cwd: Path, *args: str, limit: int = 0) -> str:
        """Run git; its stderr is the error's text. `limit` caps the output read."""
        argv = ["git", "-c", "protocol.file.allow=never", "-c", "core.hooksPath=/dev/null"]
        try:
            proc = subprocess.Popen(
                [*argv, *args],
                cwd=cwd,
                env=self.environ(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                umask=0o022,
            )
        except FileNotFoundError:
            raise BuildFailure("git is not installed on the daemon's host") from None
        try:
            if limit:
                assert proc.stdout is not None
                out = proc.stdout.read(limit + 1)
                if len(out) > limit:
                    proc.kill()
                    proc.wait()
                    raise _GitError(f"more than {limit >> 20} MiB of refs")
                _, err = proc.communicate(timeout=_TIMEOUT)
            else:
                out, err = proc.communicate(timeout=_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise _GitError(f"git {args[0]} took longer than {_TIMEOUT} s") from None
        if proc.returncode != 0:
            raise _GitError(
                f"git error: exit status {proc.returncode}\nstderr:\n{err.decode(errors='replace')}"
            )
        return out.decode(errors="replace")


class _GitError(Exception):
    pass


def resolve(ref: GitRef, env: GitEnv) -> str:
    """The commit `ref` names on its remote now (BuildKit's gitSource resolve: a commit
    hash is taken as is; a name is looked up with ls-remote, a peeled tag preferred)."""
    if _COMMIT.match(ref.ref):
        return ref.ref
    if ref.ref.startswith("-") or len(ref.ref) > 4096:
        raise InvalidArgument(f"invalid git ref {ref.ref[:100]!r} for {ref.shown}")
    if not ref.ref:
        try:
            out = env.run(
                env.home, "ls-remote", "--symref", "--", ref.remote, "HEAD", limit=_MAX_LISTING
            )
        except _GitError as exc:
            raise BuildFailure(
                f"error fetching default branch for repository {ref.shown}: {exc}"
            ) from None
        for line in out.splitlines():
            sha, _, name = line.partition("\t")
            if name == "HEAD" and _COMMIT.match(sha):
                return sha
        raise BuildFailure(f"repository {ref.shown} has no default branch (HEAD)")
    try:
        out = env.run(
            env.home, "ls-remote", "--", ref.remote, ref.ref, ref.ref + "^{}", limit=_MAX_LISTING
        )
    except _GitError as exc:
        raise BuildFailure(f"failed to list refs of repository {ref.shown}: {exc}") from None
    lines = [line.partition("\t") for line in out.strip().splitlines()]
    found = {name: sha for sha, _, name in lines if _COMMIT.match(sha)}
    for name in (f"refs/tags/{ref.ref}^{{}}", f"refs/tags/{ref.ref}", f"refs/heads/{ref.ref}"):
        if name in found:
            return found[name]
    if ref.ref in found:  # a full name: refs/heads/x, refs/pull/1/head
        return found[ref.ref]
    peeled = [sha for name, sha in found.items() if name.endswith("^{}")]
    if peeled or found:
        return (peeled or list(found.values()))[0]
    raise BuildFailure(f"repository {ref.shown} does not contain ref {ref.ref}")


def checkout(ref: GitRef, commit: str, where: Path, keep_git_dir: bool, env: GitEnv) -> Path:
    """Fetch `commit` of `ref.remote` into `where` (a new directory) and check it out;
    returns the directory to copy (the sub-directory when the ref names one)."""
    where.mkdir(parents=True)
    try:
        env.run(where, "init", "-q")
        env.run(where, "remote", "add", "origin", ref.remote)
        try:
            env.run(where, "fetch", "-q", "--depth=1", "--no-tags", "origin", commit)
        except _GitError:
            # a server that does not serve unadvertised commits: fetch the ref, or everything
            if ref.ref and not _COMMIT.match(ref.ref):
                env.run(where, "fetch", "-q", "--depth=1", "--no-tags", "origin", "--", ref.ref)
            else:
                env.run(where, "fetch", "-q", "--no-tags", "origin")
        env.run(where, "-c", "advice.detachedHead=false", "checkout", "-q", commit)
        if (where / ".gitmodules").is_file():
            env.run(where, "submodule", "update", "--init", "--recursive", "--depth=1")
    except _GitError as exc:
        raise BuildFailure(f"failed to fetch {ref.shown} at {commit}: {exc}") from None
    if keep_git_dir:
        (where / ".git" / "FETCH_HEAD").unlink(missing_ok=True)  # BuildKit's .git has none
    else:
        shutil.rmtree(where / ".git")
    if not ref.subdir or ref.subdir.strip("/") in ("", "."):
        return where
    sub = resolve_in_root(where, "/" + ref.subdir.strip("/"))
    if not sub.is_dir():
        raise BuildFailure(
            f"invalid subdir /{ref.subdir.strip('/')}: no such directory in {ref.shown} at {commit}"
        )
    return sub


def context_ref(word: str) -> GitRef | None:
    """A remote build context naming a repository (`docker build URL`, `/build?remote=`,
    BuildKit's `context` attribute): ADD's forms, and `github.com/owner/repo`, which both
    builders take for a context (moby urlutil.IsGitURL; BuildKit's
    IndistinguishableFromLocal refs are accepted for contexts only)."""
    if word.startswith("github.com/"):
        word = "https://" + word
    return parse_git_ref(word)


def checkout_legacy_context(ref: GitRef, where: Path, env: GitEnv) -> Path:
    """moby 20.10's remotecontext/git Clone: the ref defaults to `master`, a shallow fetch of
    it (all of the ref's history where the server refuses), a checkout by name (a branch
    becomes the checked-out branch) or else of FETCH_HEAD, submodules, and the `.git`
    directory kept in the context; the sub-directory must be a directory inside the clone."""
    name = ref.ref or "master"
    if name.startswith("-") or len(name) > 4096:
        raise InvalidArgument(f"invalid git ref {name[:100]!r} for {ref.shown}")
    where.mkdir(parents=True)
    try:
        env.run(where, "init", "-q")
        env.run(where, "remote", "add", "origin", ref.remote)
    except _GitError as exc:
        raise BuildFailure(f"failed to init repo at {where}: {exc}") from None
    try:
        try:
            env.run(where, "fetch", "-q", "--depth", "1", "origin", "--", name)
        except _GitError:
            env.run(where, "fetch", "-q", "origin", "--", name)
    except _GitError as exc:
        raise BuildFailure(f"error fetching: {exc}") from None
    try:
        try:
            env.run(where, "-c", "advice.detachedHead=false", "checkout", "-q", name)
        except _GitError:
            env.run(where, "-c", "advice.detachedHead=false", "checkout", "-q", "FETCH_HEAD")
        if (where / ".gitmodules").is_file():
            env.run(where, "submodule", "update", "--init", "--recursive", "--depth=1")
    except _GitError as exc:
        raise BuildFailure(f"error checking out {name}: {exc}") from None
    if not ref.subdir:
        return where
    sub = resolve_in_root(where, "/" + ref.subdir.strip("/"))
    if not sub.is_dir():
        raise BuildFailure(f"error setting git context, not a directory: {ref.subdir}")
    return sub


def checkout_buildkit_context(ref: GitRef, where: Path, env: GitEnv, keep_git_dir: bool) -> Path:
    """BuildKit's git context: as ADD's source (the default branch is the remote's HEAD)."""
    return checkout(ref, resolve(ref, env), where, keep_git_dir, env)
