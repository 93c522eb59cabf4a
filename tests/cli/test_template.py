"""The inspect -f subset of Go templates."""

from __future__ import annotations

import pytest

from dockyard.cli.template import TemplateError, render

DOC = {
    "Id": "abc",
    "Config": {"Cmd": ["sh", "-c", "echo <hi>"], "Env": None, "Labels": {"b": "2", "a": "1"}},
    "State": {"ExitCode": 3, "Running": False},
}


def test_paths_and_go_value_formatting() -> None:
    assert render("{{.Id}}", DOC) == "abc"
    assert render("{{.Config.Cmd}}", DOC) == "[sh -c echo <hi>]"
    assert render("{{.State.ExitCode}} {{.State.Running}}", DOC) == "3 false"
    assert render("{{.Config.Labels}}", DOC) == "map[a:1 b:2]"
    assert render("{{.Config.Env}}", DOC) == "<nil>"
    assert render("{{.Nope}}", DOC) == "<no value>"
    assert render("id={{ .Id }}!", DOC) == "id=abc!"


def test_functions() -> None:
    assert render("{{json .Config.Cmd}}", DOC) == '["sh","-c","echo \\u003chi\\u003e"]'
    assert render('{{index .Config.Labels "a"}}', DOC) == "1"
    assert render('{{join .Config.Cmd ","}}', DOC) == "sh,-c,echo <hi>"
    assert render("{{upper .Id}}", DOC) == "ABC"


def test_unsupported_is_an_error() -> None:
    with pytest.raises(TemplateError):
        render("{{range .Config.Cmd}}{{.}}{{end}}", DOC)
    with pytest.raises(TemplateError):
        render("{{printf .Id}}", DOC)
    with pytest.raises(TemplateError):
        render("{{.Id.Sub}}", DOC)
