"""dockyard: a Docker-compatible image builder and container engine.

`import dockyard` is light (the CLI starts from it); the Python API (dockyard.local) loads
on first use of one of its names: `dockyard.Dockyard(root=...)`, `dockyard.BuildResult`, …
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what type checkers and editors see; at run time __getattr__ loads it
    from dockyard.local import (
        BuildResult,
        BuildStep,
        Container,
        Dockyard,
        Image,
        PushResult,
        RemoteDockyard,
        RootBusy,
        RunResult,
    )

from dockyard.version import __version__

_API = (
    "Dockyard",
    "RootBusy",
    "BuildResult",
    "BuildStep",
    "Container",
    "Image",
    "PushResult",
    "RemoteDockyard",
    "RunResult",
)
__all__ = [
    "BuildResult",
    "BuildStep",
    "Container",
    "Dockyard",
    "Image",
    "PushResult",
    "RemoteDockyard",
    "RootBusy",
    "RunResult",
    "__version__",
]


def __getattr__(name: str) -> Any:
    if name in _API:
        from dockyard import local

        return getattr(local, name)
    raise AttributeError(f"module 'dockyard' has no attribute {name!r}")
