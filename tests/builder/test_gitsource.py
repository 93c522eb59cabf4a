"""Which ADD sources name a git repository (BuildKit's gitutil.ParseGitRef rules), and the
refs and URLs refused before git runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.builder.gitsource import GitEnv, GitRef, parse_git_ref, redact, resolve
from dockyard.errors import InvalidArgument


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("https://h/o/r.git", GitRef("https://h/o/r.git", "", "")),
        ("https://h/o/r.git#main", GitRef("https://h/o/r.git", "main", "")),
        (
            "http://127.0.0.1:9/r.git#v1:sub/dir",
            GitRef("http://127.0.0.1:9/r.git", "v1", "sub/dir"),
        ),
        ("https://h/r.git#:sub", GitRef("https://h/r.git", "", "sub")),
        ("git://h/r", GitRef("git://h/r", "", "")),
        ("ssh://git@h/r.git#x", GitRef("ssh://git@h/r.git", "x", "")),
        ("git@github.com:o/r.git#dev", GitRef("git@github.com:o/r.git", "dev", "")),
        ("GIT://h/r", GitRef("GIT://h/r", "", "")),
        # not repositories: an http(s) URL without the .git suffix is a download, the rest
        # are context paths
        ("https://h/o/r", None),
        ("https://h/o/r.git/x", None),
        ("https://h/r.tar.gz#x.git", None),
        ("ftp://h/r.git", None),
        ("github.com/o/r", None),
        ("./r.git", None),
        ("../r.git", None),
        ("r.git", None),
        ("dir/file", None),
        ("-oProxyCommand=x@h:p", None),
    ],
)
def test_which_words_are_git_sources(word: str, expected: GitRef | None) -> None:
    assert parse_git_ref(word) == expected


def test_credentials_stay_out_of_messages() -> None:
    assert redact("https://u:secret@h:8/r.git") == "https://h:8/r.git"
    assert parse_git_ref("https://u:secret@h/r.git#x").shown == "https://h/r.git"  # type: ignore[union-attr]


@pytest.mark.parametrize("ref", ["--upload-pack=touch /tmp/pwned", "-x", "r" * 5000])
def test_refs_that_git_could_take_for_options_or_that_are_huge_are_refused(
    ref: str, tmp_path: Path
) -> None:
    with pytest.raises(InvalidArgument, match="invalid git ref"):
        resolve(GitRef("http://127.0.0.1:1/r.git", ref, ""), GitEnv(tmp_path))


def test_a_commit_hash_is_taken_as_is_without_asking_the_remote(tmp_path: Path) -> None:
    sha = "0123456789abcdef0123456789abcdef01234567"
    assert resolve(GitRef("http://127.0.0.1:1/r.git", sha, ""), GitEnv(tmp_path)) == sha


def test_git_runs_without_the_hosts_configuration(tmp_path: Path) -> None:
    env = GitEnv(tmp_path).environ()
    assert env["HOME"] == str(tmp_path)
    assert env["GIT_CONFIG_NOSYSTEM"] == "1" and env["GIT_CONFIG_GLOBAL"] == "/dev/null"
    assert "file" not in env["GIT_ALLOW_PROTOCOL"].split(":")
    assert env["GIT_TERMINAL_PROMPT"] == "0"
