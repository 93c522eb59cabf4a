"""Docker tools from Debian's trixie suite (scripts/trixie-clients.sh fetches them once):
dockerd 26.1 as the current BuildKit reference, and the buildx and Compose v2 CLI plugins."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

CACHE = Path(os.environ.get("DOCKYARD_TRIXIE_CACHE", "/var/cache/dockyard/trixie-clients"))


@dataclass(frozen=True)
class TrixieTools:
    dockerd: Path
    plugins: Path  # holds docker-buildx and docker-compose
    versions: str

    def docker_config(self, folder: Path) -> Path:
        """A DOCKER_CONFIG folder of the test's own whose cli-plugins/ are trixie's."""
        (folder / "cli-plugins").mkdir(parents=True, exist_ok=True)
        for name in ("docker-buildx", "docker-compose"):
            link = folder / "cli-plugins" / name
            if not link.exists():
                link.symlink_to(self.plugins / name)
        return folder


def trixie_tools() -> TrixieTools | None:
    """The fetched tools, or None (the caller skips, saying scripts/trixie-clients.sh
    has not run or could not reach the mirror)."""
    dockerd = CACHE / "bin" / "dockerd"
    plugins = CACHE / "cli-plugins"
    if not (os.access(dockerd, os.X_OK) and (plugins / "docker-buildx").exists()):
        return None
    if shutil.which("containerd") is None:
        return None
    versions = (CACHE / "VERSIONS").read_text() if (CACHE / "VERSIONS").exists() else ""
    return TrixieTools(dockerd, plugins, versions.strip())
