"""dockyard's Python API: the engine in this process, without a daemon.

    import dockyard

    with dockyard.Dockyard(root="/tmp/my-root") as dy:
        result = dy.build("path/to/context", tag="app:1")
        for step in result.steps:
            print(step.number, step.instruction, "cached" if step.cached else step.layer)
        run = dy.run("app:1", ["cat", "/greeting"])
        print(run.exit_code, run.stdout)

See docs/PYTHON_API.md. One writer per root: a root a daemon serves raises `RootBusy`;
`Dockyard.connect(host)` makes the same calls through that daemon's socket, and
`Dockyard.open(root)` picks whichever of the two the root allows.
"""

from dockyard.local.dockyard import DEFAULT_HOST, DEFAULT_ROOT, Dockyard, RootBusy
from dockyard.local.models import BuildResult, BuildStep, Container, Image, PushResult, RunResult
from dockyard.local.remote import RemoteDockyard

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_ROOT",
    "BuildResult",
    "BuildStep",
    "Container",
    "Dockyard",
    "Image",
    "PushResult",
    "RemoteDockyard",
    "RootBusy",
    "RunResult",
]
