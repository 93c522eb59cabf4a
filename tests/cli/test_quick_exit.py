"""cli/main.py: the launcher's `run` and `start` end with os._exit once stdout and stderr are
flushed (no interpreter teardown after the container is gone); other commands exit as usual."""

from __future__ import annotations

import pytest

from dockyard.cli import main


class Exited(Exception):
    pass


def _launch(monkeypatch: pytest.MonkeyPatch, ran: str) -> tuple[str, int]:
    def fake_main() -> int:
        main._ran = ran
        return 3

    def fake_exit(code: int) -> None:
        raise Exited("os._exit", code)

    monkeypatch.setattr(main, "main", fake_main)
    monkeypatch.setattr("os._exit", fake_exit)
    monkeypatch.setattr(main, "_launched", False)
    monkeypatch.setattr(main, "_ran", "")
    try:
        main.launch()
    except Exited as e:
        return e.args[0], e.args[1]
    except SystemExit as e:
        return "sys.exit", int(e.code or 0)
    raise AssertionError("launch() returned")


@pytest.mark.parametrize("cmd", ["run", "start"])
def test_run_and_start_skip_the_interpreter_teardown(
    monkeypatch: pytest.MonkeyPatch, cmd: str
) -> None:
    assert _launch(monkeypatch, cmd) == ("os._exit", 3)


@pytest.mark.parametrize("cmd", ["build", "ps", ""])
def test_other_commands_exit_as_usual(monkeypatch: pytest.MonkeyPatch, cmd: str) -> None:
    assert _launch(monkeypatch, cmd) == ("sys.exit", 3)
