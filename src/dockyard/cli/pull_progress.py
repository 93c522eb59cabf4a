"""Showing a pull or push stream: one rich progress bar per layer on a terminal, and on
anything else the lines the docker CLI prints (jsonmessage.Display skips progress updates
off a terminal). `rich` is imported only here, inside the function that draws."""

from __future__ import annotations

from collections.abc import Iterable

TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import IO, Any

_DONE = ("Pull complete", "Already exists", "Pushed", "Layer already exists", "Download complete")


def _is_layer(msg: dict[str, Any]) -> bool:
    return bool(msg.get("id")) and "progressDetail" in msg


def _line(msg: dict[str, Any]) -> str:
    ident = msg.get("id")
    status = str(msg.get("status", ""))
    return f"{ident}: {status}" if ident else status


def show_plain(messages: Iterable[dict[str, Any]], out: IO[str]) -> dict[str, Any]:
    """Docker's non-terminal rendering; returns the last `aux`."""
    aux: dict[str, Any] = {}
    for msg in messages:
        if isinstance(msg.get("aux"), dict):
            aux = msg["aux"]
        detail = msg.get("progressDetail") or {}
        if detail.get("total") or detail.get("current"):
            continue
        if msg.get("status"):
            out.write(_line(msg) + "\n")
            out.flush()
    return aux


def show_rich(messages: Iterable[dict[str, Any]], out: IO[str]) -> dict[str, Any]:
    """A bar per layer (`id`), its status as the description; other statuses as lines."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    aux: dict[str, Any] = {}
    console = Console(file=out, highlight=False)
    columns = (
        TextColumn("{task.fields[ident]}"),
        TextColumn("{task.description:<20}"),
        BarColumn(bar_width=40),
        DownloadColumn(),
    )
    with Progress(*columns, console=console, transient=False, refresh_per_second=8) as bars:
        tasks: dict[str, Any] = {}
        for msg in messages:
            if isinstance(msg.get("aux"), dict):
                aux = msg["aux"]
            if not _is_layer(msg):
                if msg.get("status"):
                    bars.console.print(_line(msg), markup=False)
                continue
            ident = str(msg["id"])
            status = str(msg.get("status", ""))
            if ident not in tasks:
                tasks[ident] = bars.add_task(status, ident=f"{ident}:", total=None)
            task = tasks[ident]
            detail = msg.get("progressDetail") or {}
            if detail.get("total"):
                bars.update(
                    task,
                    description=status,
                    completed=int(detail.get("current", 0)),
                    total=int(detail["total"]),
                )
            elif status in _DONE or status.startswith("Mounted from"):
                total = bars.tasks[task].total or 1
                bars.update(task, description=status, total=total, completed=total)
            else:
                bars.update(task, description=status)
    return aux


def show(messages: Iterable[dict[str, Any]], out: IO[str]) -> dict[str, Any]:
    try:
        tty = out.isatty()
    except (AttributeError, ValueError):
        tty = False
    return show_rich(messages, out) if tty else show_plain(messages, out)
