"""Go text/template as docker's --format runs it (cli/gotemplate.py); docker CLI 28 is the
reference in tests/cli/test_format_vs_docker.py."""

from __future__ import annotations

import pytest

from dockyard.cli.gotemplate import TemplateError, render

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
    # docker's json function turns HTML escaping off (templates.go SetEscapeHTML(false))
    assert render("{{json .Config.Cmd}}", DOC) == '["sh","-c","echo <hi>"]'
    assert render('{{index .Config.Labels "a"}}', DOC) == "1"
    assert render('{{join .Config.Cmd ","}}', DOC) == "sh,-c,echo <hi>"
    assert render("{{upper .Id}}", DOC) == "ABC"


def test_control_flow_variables_and_pipelines() -> None:
    assert render("{{range .Config.Cmd}}[{{.}}]{{end}}", DOC) == "[sh][-c][echo <hi>]"
    assert render("{{range $i, $c := .Config.Cmd}}{{$i}}{{end}}", DOC) == "012"
    assert render("{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}", DOC) == "a=1;b=2;"
    assert render("{{range .Config.Env}}x{{else}}none{{end}}", DOC) == "none"
    assert (
        render("{{if .State.Running}}up{{else if eq .State.ExitCode 3}}three{{end}}", DOC)
        == "three"
    )
    assert render("{{with .Config}}{{len .Cmd}}{{end}}", DOC) == "3"
    assert render("{{$x := .Id}}{{$x = upper $x}}{{$x}}", DOC) == "ABC"
    assert render('{{.Id | printf "%5s|"}}', DOC) == "  abc|"
    assert render('{{- " x " -}}\n{{/* comment */}}', DOC) == " x "
    assert render("a {{- .Id -}} b", DOC) == "aabcb"
    assert render('{{print 1 2 "s" 3}} {{println .Id}}', DOC) == "1 2s3 abc\n"
    assert render("{{range 5}}{{if eq . 3}}{{break}}{{end}}{{.}}{{end}}", DOC) == "012"
    assert render('{{pad .Id 2 1}}|{{truncate .Id 2}}|{{title "a b"}}', DOC) == "  abc |ab|A B"
    assert render('{{json .Missing}} {{index .Config.Labels "zz"}}', DOC) == "null <nil>"


def test_errors_are_reported_as_go_does() -> None:
    with pytest.raises(TemplateError, match='function "nope" not defined'):
        render("{{nope .Id}}", DOC)
    with pytest.raises(TemplateError, match="can't evaluate field Sub in type string"):
        render("{{.Id.Sub}}", DOC)
    with pytest.raises(TemplateError, match="unexpected EOF"):
        render("{{if .Id}}x", DOC)
    with pytest.raises(TemplateError, match="not supported"):
        render('{{template "x"}}', DOC)
