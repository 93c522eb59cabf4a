""".dockerignore: reading the file, matching paths, and walking a build context as Docker does.

Ports of `moby/patternmatcher` (pattern compilation, `MatchesOrParentMatches`),
`moby/patternmatcher/ignorefile.ReadAll` (file syntax), the context walk of moby's
`pkg/archive.TarWithOptions`, and the docker CLI's `TrimBuildFilesFromExcludes`.

Rules, as Docker applies them:
- `#` at the very start of a line makes a comment; lines are trimmed; blank lines ignored;
  each pattern is `filepath.Clean`-ed and a leading `/` dropped (`/foo` means `foo`).
- `*` and `?` never match `/`; `[...]` is a character class; `**` matches any number of
  directories (also none); `\\` escapes the next character.
- A pattern matching a directory excludes everything under it.
- `!pattern` re-includes; patterns are read top to bottom and the last one that matches wins.
- The walk does not descend into an excluded directory unless some `!` pattern, read as
  text, starts with that directory's path (so `!dir/keep` lets the walk into `dir`, but
  `!**/keep` does not); the excluded directory itself is not sent.
- The Dockerfile and .dockerignore are always sent (the CLI appends `!Dockerfile` and
  `!.dockerignore` when they are ignored); the daemon then drops them from the context
  after reading them, so `COPY .` does not copy them (`dropped_build_files`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from dockyard.errors import InvalidArgument

__all__ = [
    "IgnoreMatcher",
    "dropped_build_files",
    "find_ignore_file",
    "go_clean",
    "list_context_files",
    "parse_dockerignore",
    "trim_build_files_from_excludes",
]


def go_clean(path: str) -> str:
    """Go's `filepath.Clean` on Linux (unlike `posixpath.normpath`, `//a` becomes `/a`)."""
    if path == "":
        return "."
    rooted = path.startswith("/")
    parts: list[str] = []
    for comp in path.split("/"):
        if comp in ("", "."):
            continue
        if comp == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append("..")
        else:
            parts.append(comp)
    out = "/".join(parts)
    if rooted:
        return "/" + out
    return out or "."


def parse_dockerignore(text: str) -> list[str]:
    """The patterns of a .dockerignore file, as `ignorefile.ReadAll` returns them."""
    out: list[str] = []
    text = text.removeprefix("\ufeff")
    for raw in text.split("\n"):
        # Go's bufio.ScanLines drops a trailing \r.
        raw = raw.removesuffix("\r")
        if raw.startswith("#"):
            continue
        pattern = raw.strip()
        if not pattern:
            continue
        invert = pattern[0] == "!"
        if invert:
            pattern = pattern[1:].strip()
        if pattern:
            pattern = go_clean(pattern)
            if len(pattern) > 1 and pattern[0] == "/":
                pattern = pattern[1:]
        if invert:
            pattern = "!" + pattern
        out.append(pattern)
    return out


class _Kind(Enum):
    EXACT = 1
    PREFIX = 2
    SUFFIX = 3
    REGEXP = 4


# Characters with a regex meaning but none in a filepath.Match pattern.
_REGEX_ESCAPES = frozenset(".+()|{}$")


@dataclass(frozen=True)
class _Pattern:
    cleaned: str
    exclusion: bool
    kind: _Kind
    regex: re.Pattern[str] | None

    def match(self, path: str) -> bool:
        if self.kind is _Kind.EXACT:
            return path == self.cleaned
        if self.kind is _Kind.PREFIX:
            return path.startswith(self.cleaned[:-2])
        if self.kind is _Kind.SUFFIX:
            suffix = self.cleaned[2:]
            if path.endswith(suffix):
                return True
            # `**/foo` also matches `foo` itself.
            return suffix[:1] == "/" and path == suffix[1:]
        assert self.regex is not None
        return self.regex.match(path) is not None


def _check_match_syntax(pattern: str) -> None:
    """Reject what Go's filepath.Match rejects (ErrBadPattern): unclosed or empty classes,
    a class element starting with `-` or `]`, a trailing `\\`."""
    n = len(pattern)

    def bad() -> InvalidArgument:
        return InvalidArgument(f"syntax error in pattern: {pattern}")

    def element(i: int) -> int:
        if i >= n or pattern[i] in "-]":
            raise bad()
        if pattern[i] == "\\":
            i += 1
            if i >= n:
                raise bad()
        return i + 1

    i = 0
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            if i + 1 >= n:
                raise bad()
            i += 2
        elif ch == "[":
            i += 1
            if i < n and pattern[i] == "^":
                i += 1
            count = 0
            while True:
                if i < n and pattern[i] == "]" and count > 0:
                    i += 1
                    break
                i = element(i)
                if i < n and pattern[i] == "-":
                    i = element(i + 1)
                count += 1
        else:
            i += 1


def _compile(cleaned: str, exclusion: bool) -> _Pattern:
    reg = ["^"]
    kind = _Kind.EXACT
    i = 0
    pos = 0
    n = len(cleaned)
    while pos < n:
        ch = cleaned[pos]
        pos += 1
        if ch == "*":
            if pos < n and cleaned[pos] == "*":
                pos += 1
                # `**/` is treated as `**`.
                if pos < n and cleaned[pos] == "/":
                    pos += 1
                if pos >= n:
                    # `**` at the end matches everything below, as in .gitignore.
                    if kind is _Kind.EXACT:
                        kind = _Kind.PREFIX
                    else:
                        reg.append(".*")
                        kind = _Kind.REGEXP
                else:
                    reg.append("(.*/)?")
                    kind = _Kind.REGEXP
                if i == 0:
                    kind = _Kind.SUFFIX
            else:
                reg.append("[^/]*")
                kind = _Kind.REGEXP
        elif ch == "?":
            reg.append("[^/]")
            kind = _Kind.REGEXP
        elif ch in _REGEX_ESCAPES:
            reg.append("\\" + ch)
        elif ch == "\\":
            if pos < n:
                reg.append(re.escape(cleaned[pos]))
                pos += 1
                kind = _Kind.REGEXP
            else:
                reg.append("\\\\")
        elif ch in "[]":
            reg.append(ch)
            kind = _Kind.REGEXP
        else:
            reg.append(ch)
        i += 1
    regex: re.Pattern[str] | None = None
    if kind is _Kind.REGEXP:
        reg.append("$")
        try:
            regex = re.compile("".join(reg))
        except re.error as e:
            raise InvalidArgument(f"syntax error in pattern: {cleaned}: {e}") from None
    return _Pattern(cleaned, exclusion, kind, regex)


class IgnoreMatcher:
    """Decides whether a context path is excluded by .dockerignore patterns.

    Patterns are the strings `parse_dockerignore` returns (or build-time excludes); they are
    trimmed and cleaned again, as `patternmatcher.New` does.
    """

    def __init__(self, patterns: Sequence[str]) -> None:
        self.source = list(patterns)
        self._patterns: list[_Pattern] = []
        for p in patterns:
            p = p.strip()
            if not p:
                continue
            p = go_clean(p)
            exclusion = p[0] == "!"
            if exclusion:
                if len(p) == 1:
                    raise InvalidArgument('illegal exclusion pattern: "!"')
                p = p[1:]
            _check_match_syntax(p)
            self._patterns.append(_compile(p, exclusion))
        self.has_exclusions = any(p.exclusion for p in self._patterns)

    def matches(self, relpath: str) -> bool:
        """True if `relpath` (slash-separated, relative to the context) is excluded."""
        path = go_clean(relpath)
        if path == ".":
            # Docker never lets the context root itself be excluded.
            return False
        parent = os.path.dirname(path) or "."
        parent_dirs = parent.split("/")
        matched = False
        for pat in self._patterns:
            # An include pattern cannot change an already-excluded path and vice versa.
            if pat.exclusion != matched:
                continue
            hit = pat.match(path)
            if not hit and parent != ".":
                for i in range(len(parent_dirs)):
                    if pat.match("/".join(parent_dirs[: i + 1])):
                        hit = True
                        break
            if hit:
                matched = not pat.exclusion
        return matched

    def may_reinclude_under(self, reldir: str) -> bool:
        """Whether the context walk must enter an excluded directory (archive.go's textual
        prefix test on `!` patterns)."""
        dir_slash = reldir + "/"
        return any(p.exclusion and (p.cleaned + "/").startswith(dir_slash) for p in self._patterns)

    def with_build_files(self, dockerfile_relpath: str = "Dockerfile") -> IgnoreMatcher:
        """A matcher that also never excludes the Dockerfile and .dockerignore (CLI rule)."""
        return IgnoreMatcher(trim_build_files_from_excludes(self.source, dockerfile_relpath))


def trim_build_files_from_excludes(patterns: Sequence[str], dockerfile_relpath: str) -> list[str]:
    """docker/cli `TrimBuildFilesFromExcludes`: re-include .dockerignore and the Dockerfile."""
    out = list(patterns)
    matcher = IgnoreMatcher(out)
    if matcher.matches(".dockerignore"):
        out.append("!.dockerignore")
    df = dockerfile_relpath.replace(os.sep, "/")
    if IgnoreMatcher(out).matches(df):
        out.append("!" + df)
    return out


def dropped_build_files(patterns: Sequence[str], dockerfile_relpath: str) -> list[str]:
    """Which of .dockerignore and the Dockerfile the daemon removes from the context after
    reading them (moby `remotecontext.removeDockerfile`): those the patterns exclude."""
    matcher = IgnoreMatcher(patterns)
    return [f for f in (".dockerignore", dockerfile_relpath) if matcher.matches(f)]


def list_context_files(root: Path, matcher: IgnoreMatcher) -> list[str]:
    """Relative paths (files, directories, symlinks, ...) that a build would send, sorted.

    Symlinks are listed, never followed. Excluded directories are not entered unless an
    exception pattern names something inside them; such a directory is itself not listed.
    """
    out: list[str] = []

    def walk(abs_dir: str, rel_dir: str) -> None:
        try:
            entries = sorted(os.scandir(abs_dir), key=lambda e: e.name)
        except OSError as e:
            raise InvalidArgument(f"cannot read build context directory {abs_dir}: {e}") from None
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            is_dir = entry.is_dir(follow_symlinks=False)
            if matcher.matches(rel):
                if is_dir and matcher.has_exclusions and matcher.may_reinclude_under(rel):
                    walk(entry.path, rel)
                continue
            out.append(rel)
            if is_dir:
                walk(entry.path, rel)

    walk(str(root), "")
    return sorted(out)


def find_ignore_file(context: Path, dockerfile_relpath: str) -> Path | None:
    """The ignore file that applies: `<Dockerfile>.dockerignore` beside the Dockerfile (BuildKit
    and the docker CLI since 23.0) wins over `.dockerignore` at the context root."""
    specific = context / (dockerfile_relpath + ".dockerignore")
    if dockerfile_relpath and specific.is_file():
        return specific
    generic = context / ".dockerignore"
    if generic.is_file():
        return generic
    return None
