""".dockerignore reading, matching (moby/patternmatcher test tables) and the context walk."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.errors import InvalidArgument
from dockyard.frontend.dockerignore import (
    IgnoreMatcher,
    dropped_build_files,
    find_ignore_file,
    go_clean,
    list_context_files,
    parse_dockerignore,
    trim_build_files_from_excludes,
)


def test_read_all_as_ignorefile() -> None:
    # patternmatcher/ignorefile TestReadAll.
    content = (
        "test1\n/test2\n/a/file/here\n\nlastfile\n# this is a comment\n! /inverted/abs/path\n!\n! "
    )
    assert parse_dockerignore(content) == [
        "test1",
        "test2",
        "a/file/here",
        "lastfile",
        "!inverted/abs/path",
        "!",
        "!",
    ]


def test_read_all_cleans_and_trims() -> None:
    text = "\ufeff  ./a/../b/  \r\n  # not a comment (leading space)\nc//d\n"
    assert parse_dockerignore(text) == ["b", "# not a comment (leading space)", "c/d"]


@pytest.mark.parametrize(
    ("path", "expected"),
    [("", "."), ("a/./b/", "a/b"), ("//a//b", "/a/b"), ("a/../../b", "../b"), ("/../a", "/a")],
)
def test_go_clean(path: str, expected: str) -> None:
    assert go_clean(path) == expected


# patternmatcher TestMatches (MatchesOrParentMatches): (pattern, text, matches).
SINGLE = [
    ("**", "file", True),
    ("**", "file/", True),
    ("**/", "file", True),
    ("**/", "file/", True),
    ("**", "/", True),
    ("**", "dir/file", True),
    ("**/", "dir/file", True),
    ("**/**", "dir/file", True),
    ("dir/**", "dir/file", True),
    ("dir/**", "dir/dir2/file", True),
    ("**/dir", "dir", True),
    ("**/dir", "dir/file", True),
    ("**/dir2/*", "dir/dir2/file", True),
    ("**/dir2/*", "dir/dir2/file/", True),
    ("**/dir2/**", "dir/dir2/dir3/file", True),
    ("**file", "file", True),
    ("**file", "dir/file", True),
    ("**/file", "dir/dir/file", True),
    ("**/file*", "dir/dir/file.txt", True),
    ("**/file*txt", "dir/dir/file.txt", True),
    ("**/file*.txt*", "dir/dir/file.txt", True),
    ("**/**/*.txt", "dir/dir/file.txt", True),
    ("**/**/*.txt2", "dir/dir/file.txt", False),
    ("**/*.txt", "file.txt", True),
    ("**/**/*.txt", "file.txt", True),
    ("a**/*.txt", "a/file.txt", True),
    ("a**/*.txt", "a/dir/dir/file.txt", True),
    ("a/*.txt", "a/dir/file.txt", False),
    ("a/*.txt", "a/file.txt", True),
    ("a/*.txt**", "a/file.txt", True),
    ("a[b-d]e", "ae", False),
    ("a[b-d]e", "ace", True),
    ("a[b-d]e", "aae", False),
    ("a[^b-d]e", "aze", True),
    (".*", ".foo", True),
    (".*", "foo", False),
    ("abc.def", "abcdef", False),
    ("abc.def", "abc.def", True),
    ("abc.def", "abcZdef", False),
    ("abc?def", "abcZdef", True),
    ("abc?def", "abcdef", False),
    ("**/foo/bar", "foo/bar", True),
    ("**/foo/bar", "dir/dir2/foo/bar", True),
    ("abc/**", "abc", False),
    ("abc/**", "abc/def/ghi", True),
    ("**/.foo", ".foo", True),
    ("**/.foo", "bar.foo", False),
    ("a(b)c/def", "a(b)c/def", True),
    ("a(b)c/def", "a(b)c/xyz", False),
    ("a.|)$(}+{bc", "a.|)$(}+{bc", True),
    ("dist/*.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", True),
    ("a\\\\", "a\\", True),
    ("a\\*b", "a*b", True),
    # Go filepath.Match table, via patternmatcher TestMatch.
    ("*c", "abc", True),
    ("a*", "ab/c", True),  # the parent "ab" matches
    ("a*/b", "a/c/b", False),
    ("a*b*c*d*e*/f", "axbxcxdxe/f", True),
    ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", False),
    ("a*b?c*x", "abxbbxdbxebxczzx", True),
    ("ab[^c]", "abc", False),
    ("a?b", "a☺b", True),
    ("a???b", "a☺b", False),
    ("[a-ζ]*", "\u03b1", True),  # Greek alpha
    ("a?b", "a/b", False),
    ("[\\]a]", "]", True),
    ("[x\\-]", "-", True),
    ("[\\-x]", "a", False),
    ("*x", "xxx", True),
    ("docs", "docs/README.md", True),
    ("docs/", "docs/README.md", True),
]


@pytest.mark.parametrize(("pattern", "text", "expected"), SINGLE)
def test_single_pattern(pattern: str, text: str, expected: bool) -> None:
    assert IgnoreMatcher([pattern]).matches(text) is expected


@pytest.mark.parametrize(
    ("patterns", "text", "expected"),
    [
        (["**", "!util/docker/web"], "util/docker/web/foo", False),
        (["**", "!util/docker/web", "util/docker/web/foo"], "util/docker/web/foo", True),
        (["**", "!dist/*.whl"], "dist/proxy.py-2.4.0rc3-py3-none-any.whl", False),
        (["!fileutils.go", "*.go"], "fileutils.go", True),
        (["*.go", "!fileutils.go"], "fileutils.go", False),
        (["docs", "!docs/README.md"], "docs/README.md", False),
        (["docs/*", "!docs/README.md"], "docs/README.md", False),
        (["*.go"], ".", False),
        ([], "any/path", False),
        (["docs", "  !docs/README.md  "], "docs/README.md", False),
    ],
)
def test_multiple_patterns(patterns: list[str], text: str, expected: bool) -> None:
    assert IgnoreMatcher(patterns).matches(text) is expected


@pytest.mark.parametrize(
    "pattern",
    ["[", "[^", "[^bc", "a[", "\\", "[]a]", "[-]", "[x-]", "[-x]", "[a-b-c]"],
)
def test_bad_patterns(pattern: str) -> None:
    with pytest.raises(InvalidArgument, match="syntax error in pattern"):
        IgnoreMatcher([pattern])


def test_lone_exclamation_is_an_error() -> None:
    with pytest.raises(InvalidArgument, match='illegal exclusion pattern: "!"'):
        IgnoreMatcher(["!"])


def _tree(root: Path, files: list[str]) -> None:
    for f in files:
        p = root / f
        if f.endswith("/"):
            p.mkdir(parents=True, exist_ok=True)
        else:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(f)


def test_walk_excludes_and_reincludes(tmp_path: Path) -> None:
    _tree(
        tmp_path,
        [
            "Dockerfile",
            ".dockerignore",
            "a.go",
            "a.txt",
            "docs/README.md",
            "docs/other.md",
            "node_modules/x/y.js",
            "build/keep/k.txt",
            "build/drop.txt",
            "deep/x/keep.me",
            "empty/",
        ],
    )
    (tmp_path / "link").symlink_to("docs")
    patterns = parse_dockerignore(
        "*.txt\ndocs\n!docs/README.md\nnode_modules\nbuild\n!build/keep\ndeep\n!**/keep.me\n"
    )
    files = list_context_files(tmp_path, IgnoreMatcher(patterns))
    assert files == [
        ".dockerignore",
        "Dockerfile",
        "a.go",
        # `build` itself is excluded; the walk enters it because `!build/keep` starts with it.
        "build/keep",
        "build/keep/k.txt",
        # `docs` is walked for `!docs/README.md`, but not listed.
        "docs/README.md",
        "empty",
        "link",  # a symlink is listed, never followed
    ]
    # `!**/keep.me` does not start with "deep/", so Docker never looks inside `deep`.
    assert "deep/x/keep.me" not in files


def test_walk_without_exceptions_prunes_dirs(tmp_path: Path) -> None:
    _tree(tmp_path, ["Dockerfile", "src/a.py", "src/b.pyc", ".git/HEAD", "sub/.git/x"])
    files = list_context_files(tmp_path, IgnoreMatcher(["**/*.pyc", ".git"]))
    assert files == ["Dockerfile", "src", "src/a.py", "sub", "sub/.git", "sub/.git/x"]


def test_build_files_always_sent(tmp_path: Path) -> None:
    _tree(tmp_path, ["Dockerfile", ".dockerignore", "ci/app.Dockerfile", "x"])
    patterns = ["*", "ci"]
    assert trim_build_files_from_excludes(patterns, "Dockerfile") == [
        "*",
        "ci",
        "!.dockerignore",
        "!Dockerfile",
    ]
    matcher = IgnoreMatcher(patterns).with_build_files("ci/app.Dockerfile")
    assert list_context_files(tmp_path, matcher) == [".dockerignore", "ci/app.Dockerfile"]
    # The daemon drops them from the context after reading them: COPY . does not copy them.
    assert dropped_build_files(patterns, "ci/app.Dockerfile") == [
        ".dockerignore",
        "ci/app.Dockerfile",
    ]
    assert dropped_build_files(["x"], "Dockerfile") == []


def test_find_ignore_file(tmp_path: Path) -> None:
    assert find_ignore_file(tmp_path, "Dockerfile") is None
    (tmp_path / ".dockerignore").write_text("x")
    assert find_ignore_file(tmp_path, "Dockerfile") == tmp_path / ".dockerignore"
    (tmp_path / "ci").mkdir()
    (tmp_path / "ci/app.Dockerfile.dockerignore").write_text("y")
    assert (
        find_ignore_file(tmp_path, "ci/app.Dockerfile")
        == tmp_path / "ci/app.Dockerfile.dockerignore"
    )
    assert find_ignore_file(tmp_path, "Dockerfile") == tmp_path / ".dockerignore"
