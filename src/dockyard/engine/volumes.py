"""Local volumes: a directory per volume under `<root>/volumes/<name>/_data`, as Docker's.

Lifecycle: create (explicit, or implicitly by a container's `-v name:/x` or an image VOLUME,
which gets an anonymous volume named by 64 hex digits) → seeded once from the image's contents
at the mount point when first mounted while empty (unless `nocopy`) → removed by `volume rm`,
`volume prune`, or with its container (`rm -v`, `--rm`) when anonymous. A volume in use by a
container cannot be removed. Metadata is a small JSON file beside `_data`. A removed volume
is renamed into the trash (the engine's `trash/volumes`) and deleted in the background
(content/trash.py), so removing a big one never holds the caller.
"""

from __future__ import annotations

import builtins
import json
import os
import secrets
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dockyard.content.trash import Trash
from dockyard.engine.events import EventBus
from dockyard.engine.filters import labels_match
from dockyard.engine.hostconfig import VOLUME_NAME
from dockyard.errors import Conflict, InvalidArgument, NotFound, NotSupported, RuntimeFailure
from dockyard.image.config import now_rfc3339
from dockyard.rootperms import DIR_MODE
from dockyard.statefile import write_json

UsersOf = Callable[[str], list[str]]


class VolumeStore:
    def __init__(
        self,
        root: Path,
        users_of: UsersOf,
        events: EventBus | None = None,
        *,
        trash: Trash | None = None,
    ) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._users_of = users_of
        self.events = events or EventBus()
        self.trash = trash or Trash(root / ".trash")

    def _dir(self, name: str) -> Path:
        return self.root / name

    def path(self, name: str) -> Path:
        return self._dir(name) / "_data"

    def exists(self, name: str) -> bool:
        return (self._dir(name) / "meta.json").exists()

    def create(
        self,
        name: str = "",
        *,
        driver: str = "local",
        labels: dict[str, str] | None = None,
        options: dict[str, str] | None = None,
        anonymous: bool = False,
    ) -> dict[str, Any]:
        if driver not in ("", "local"):
            # dockerd looks the driver up as a plugin and answers 404 when none is found;
            # dockyard has no volume plugins, so every other driver is one it cannot find.
            raise NotFound(f'error looking up volume plugin {driver}: plugin "{driver}" not found')
        if options:
            raise NotSupported("volume driver options (-o) are not supported by dockyard yet")
        if not name:
            name, anonymous = secrets.token_hex(32), True
        elif not VOLUME_NAME.match(name):
            raise InvalidArgument(
                f'"{name}" includes invalid characters for a local volume name, only '
                '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed'
            )
        if self.exists(name):
            return self.inspect(name)  # Docker: creating an existing volume returns it
        d = self._dir(name)
        # Only _data is the container's (bind-mounted: its ancestors' modes never reach
        # the container); volumes/NAME, with meta.json, is root's alone (rootperms.py).
        d.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        (d / "_data").mkdir(exist_ok=True)
        os.chmod(d / "_data", 0o755)
        meta = {
            "Name": name,
            "Driver": "local",
            "CreatedAt": now_rfc3339(),
            "Labels": labels or {},
            "Options": options or {},
            "Scope": "local",
            "Anonymous": anonymous,
            "Seeded": False,
        }
        write_json(d / "meta.json", meta)
        self.events.publish("volume", "create", name, {"driver": "local"})
        return self.inspect(name)

    def _meta(self, name: str) -> dict[str, Any]:
        try:
            meta: dict[str, Any] = json.loads((self._dir(name) / "meta.json").read_text())
        except FileNotFoundError:
            raise NotFound(f"get {name}: no such volume") from None
        return meta

    def inspect(self, name: str) -> dict[str, Any]:
        meta = self._meta(name)
        labels = dict(meta.get("Labels") or {})
        if meta.get("Anonymous"):
            labels.setdefault("com.docker.volume.anonymous", "")
        return {
            "Name": meta["Name"],
            "Driver": "local",
            "Mountpoint": str(self.path(name)),
            "CreatedAt": meta["CreatedAt"],
            "Labels": labels,
            "Options": meta.get("Options") or None,
            "Scope": "local",
        }

    def list(
        self, filters: dict[str, builtins.list[str]] | None = None
    ) -> builtins.list[dict[str, Any]]:
        out = []
        for d in sorted(self.root.iterdir()) if self.root.exists() else []:
            if not (d / "meta.json").exists():
                continue
            vol = self.inspect(d.name)
            if filters and not self._matches(vol, filters):
                continue
            out.append(vol)
        return out

    def _matches(self, vol: dict[str, Any], filters: dict[str, builtins.list[str]]) -> bool:
        for key, values in filters.items():
            if key == "name" and not any(v in vol["Name"] for v in values):
                return False
            if key == "dangling":
                dangling = not self._users_of(vol["Name"])
                if any((v.lower() in ("true", "1")) != dangling for v in values):
                    return False
            if key == "label" and not labels_match(vol["Labels"], values):
                return False
            if key == "driver" and "local" not in values:
                return False
        return True

    def remove(self, name: str, *, force: bool = False) -> None:
        if not self.exists(name):
            if force:
                return
            raise NotFound(f"get {name}: no such volume")
        users = self._users_of(name)
        if users:
            raise Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]")
        self.trash.put(self._dir(name))
        self.events.publish("volume", "destroy", name, {"driver": "local"})

    def prune(self, all_: bool = False) -> tuple[builtins.list[str], int]:
        """Docker 23+: prune removes unused anonymous volumes unless `all` is set."""
        removed: builtins.list[str] = []
        size = 0
        for vol in self.list():
            name = vol["Name"]
            if self._users_of(name):
                continue
            if not all_ and not self._meta(name).get("Anonymous"):
                continue
            size += _du(self.path(name))
            self.trash.put(self._dir(name))
            self.events.publish("volume", "destroy", name, {"driver": "local"})
            removed.append(name)
        self.events.publish("volume", "prune", "", {"reclaimed": str(size)})
        return removed, size

    def seed(self, name: str, source: Path) -> None:
        """Copy the image's contents at the mount point into a new, still empty volume."""
        meta = self._meta(name)
        if meta.get("Seeded"):
            return
        data = self.path(name)
        if source.is_dir() and not any(data.iterdir()):
            proc = subprocess.run(
                ["cp", "-a", "--", f"{source}/.", f"{data}/"], capture_output=True, text=True
            )
            if proc.returncode != 0:
                raise RuntimeFailure(f"copying image data into volume {name}: {proc.stderr}")
            # Docker gives the volume root the image directory's owner and mode.
            st = source.stat()
            os.chown(data, st.st_uid, st.st_gid)
            os.chmod(data, st.st_mode & 0o7777)
        meta["Seeded"] = True
        write_json(self._dir(name) / "meta.json", meta)

    def is_anonymous(self, name: str) -> bool:
        try:
            return bool(self._meta(name).get("Anonymous"))
        except NotFound:
            return False


def _du(path: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total
