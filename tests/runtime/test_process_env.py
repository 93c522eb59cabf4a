"""The process environment as dockerd builds it (measured against dockerd 20.10)."""

from __future__ import annotations

from dockyard.runtime.process import DEFAULT_PATH, process_env, replace_or_append


def test_defaults_then_container_env_with_home_last() -> None:
    assert process_env(["A=1"], "h", "/root") == [
        f"PATH={DEFAULT_PATH}",
        "HOSTNAME=h",
        "A=1",
        "HOME=/root",
    ]


def test_tty_adds_term_and_env_replaces_defaults_in_place() -> None:
    env = process_env(["PATH=/x", "TERM=vt100", "HOME=/h"], "h", "/root", tty=True)
    assert env == ["PATH=/x", "HOSTNAME=h", "TERM=vt100", "HOME=/h"]


def test_a_bare_name_unsets_and_never_reaches_runc() -> None:
    # `docker run -e NOPE -e PATH -e HOSTNAME` with none of them set in the client's
    # environment: dockerd runs the process with only HOME (it adds HOME when missing).
    assert process_env(["NOPE", "PATH", "HOSTNAME", "HOME"], "h", "/root") == ["HOME=/root"]


def test_replace_or_append_keeps_positions() -> None:
    assert replace_or_append(["A=1", "B=2"], ["B=3", "C=4", "A"]) == ["B=3", "C=4"]
