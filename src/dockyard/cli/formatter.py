"""docker/cli's formatter: `--format` as `table …`, `json`, or a custom Go template.

cli/command/formatter/formatter.go: a `table` format loses its prefix and is written through
a tabwriter (minwidth 10, padding 3) under a header made by running the same template on the
column names (with `templates.HeaderFunctions`); `json` means `{{json .}}`; the literal
two-character `\\t` and `\\n` of a shell argument become a tab and a newline; each item's
output ends with a newline. Imported only when a command is given `--format`.
"""

from __future__ import annotations

from dockyard.cli.context import CommandError
from dockyard.cli.gotemplate import HEADER_FUNCS, Context, Template, TemplateError

TYPE_CHECKING = False  # typing itself costs ~1.5 ms of start-up; mypy honours this name

if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any


class HeaderContext(Context):
    """The header row's data: docker's SubHeaderContext (field → column name, and `Label`)."""

    def __init__(self, names: dict[str, str]) -> None:
        self.names = names

    def __getattr__(self, name: str) -> Any:
        names = self.__dict__.get("names", {})
        if name in names:
            return lambda: names[name]
        raise AttributeError(name)

    def Label(self, name: str) -> str:
        # SubHeaderContext.Label: the last dotted part, with - and _ as spaces
        return name.split(".")[-1].replace("-", " ").replace("_", " ")


def tabwrite(text: str, minwidth: int = 10, padding: int = 3) -> str:
    """Go's text/tabwriter with docker's settings (NewWriter(out, 10, 1, 3, ' ', 0)).

    A cell ends at a tab; a line's text after its last tab is not aligned. Consecutive lines
    holding a cell in the same column form a block whose width is the widest cell plus the
    padding, at least `minwidth` (tabwriter.go format()).
    """
    lines = text.split("\n")
    cells = [line.split("\t") for line in lines]
    out: list[str] = []
    widths: list[int] = []

    def write(line0: int, line1: int) -> None:
        for i in range(line0, line1):
            row = cells[i]
            parts = []
            for j, cell in enumerate(row):
                if j < len(widths) and j < len(row) - 1:
                    parts.append(cell.ljust(widths[j]))
                else:
                    parts.append(cell)
            out.append("".join(parts))

    def fmt(line0: int, line1: int) -> None:
        column = len(widths)
        this = line0
        while this < line1:
            if column >= len(cells[this]) - 1:
                this += 1
                continue
            write(line0, this)
            line0 = this
            width = minwidth
            while this < line1 and column < len(cells[this]) - 1:
                width = max(width, len(cells[this][column]) + padding)
                this += 1
            widths.append(width)
            fmt(line0, this)
            widths.pop()
            line0 = this
        write(line0, line1)

    fmt(0, len(cells))
    return "\n".join(out)


def prepare(fmt: str) -> tuple[str, bool]:
    """(template text, is_table) as formatter.Context.preFormat makes them."""
    table = fmt.startswith("table")
    final = fmt[len("table") :] if table else ("{{json .}}" if fmt == "json" else fmt)
    final = final.strip(" ").replace("\\t", "\t").replace("\\n", "\n")
    return final, table


def parse(text: str) -> Template:
    try:
        return Template(text)
    except TemplateError as exc:
        raise CommandError(f"template parsing error: {exc}") from None


def write(fmt: str, items: Iterable[Context], header: dict[str, str]) -> str:
    """The whole output of a list command for `fmt` (formatter.Context.Write)."""
    text, table = prepare(fmt)
    tmpl = parse(text)
    body = []
    for item in items:
        try:
            body.append(tmpl.execute(item) + "\n")
        except TemplateError as exc:
            raise CommandError(f"template parsing error: {exc}") from None
    if not table:
        return "".join(body)
    try:
        head = tmpl.execute(HeaderContext(header), HEADER_FUNCS)
    except TemplateError:
        head = ""  # docker ignores a header that does not render
    return tabwrite(head + "\n" + "".join(body))


def validate(fmt: str, empty: Context) -> None:
    """docker ps/images parse the raw `--format` and run it once on an empty context first,
    so a bad template fails even when there is nothing to list."""
    try:
        tmpl = Template(fmt)
    except TemplateError as exc:
        raise CommandError(f"failed to parse template: {exc}") from None
    try:
        tmpl.execute(empty)
    except TemplateError as exc:
        raise CommandError(f"failed to execute template: {exc}") from None
