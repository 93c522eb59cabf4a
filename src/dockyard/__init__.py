"""dockyard: a Docker-compatible image builder and container engine.

`import dockyard` is light (the CLI starts from it); the Python API (dockyard.local) loads
on first use of one of its names: `dockyard.Dockyard(root=...)`, `dockyard.BuildResult`, …
"""

from __future__ import annotations

from dockyard.version import __version__

# typing itself costs ~3 ms of every CLI command's start (it pulls in re and enum); mypy
# honours this name as it does typing.TYPE_CHECKING
TYPE_CHECKING = False

if TYPE_CHECKING:  # what type checkers and editors see; at run time __getattr__ loads it
    from typing import Any

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
