"""Compare two saved images file by file (the differential tests' yardstick).

`load_saved(tar_bytes)` reads a `docker save` archive (Docker 20.10's `<id>/layer.tar` layout
or the OCI-layout one), applies the layers in order with whiteouts into an in-memory tree,
and returns it with the config. `tree` maps path -> (type, mode, uid, gid, content digest or
link target, hardlink group leader); hardlink groups are named by their first path.
"""

from __future__ import annotations

import hashlib
import io
import json
import posixpath
import tarfile
from dataclasses import dataclass
from typing import Any

Entry = tuple[str, int, int, int, str, str]


@dataclass
class SavedImage:
    config: dict[str, Any]
    tree: dict[str, Entry]
    layer_count: int

    def config_fields(self) -> dict[str, Any]:
        c = self.config.get("config") or {}
        keys = (
            "Env",
            "Cmd",
            "Entrypoint",
            "WorkingDir",
            "User",
            "ExposedPorts",
            "Volumes",
            "Labels",
            "StopSignal",
            "Healthcheck",
            "Shell",
            "OnBuild",
        )
        return {k: c.get(k) or None for k in keys}

    def empty_layer_flags(self) -> list[bool]:
        return [bool(h.get("empty_layer")) for h in self.config.get("history") or []]


def _kind(m: tarfile.TarInfo) -> str:
    if m.isdir():
        return "dir"
    if m.issym():
        return "symlink"
    if m.islnk():
        return "hardlink"
    if m.isfile():
        return "file"
    if m.ischr():
        return "char"
    if m.isblk():
        return "block"
    if m.isfifo():
        return "fifo"
    return "other"


def _apply(tree: dict[str, Entry], links: dict[str, str], layer: tarfile.TarFile) -> None:
    for m in layer:
        name = posixpath.normpath("/" + m.name)
        base = posixpath.basename(name)
        parent = posixpath.dirname(name)
        if base == ".wh..wh..opq":
            for p in [p for p in tree if p.startswith(parent.rstrip("/") + "/")]:
                del tree[p]
            continue
        if base.startswith(".wh."):
            gone = posixpath.join(parent, base[4:])
            for p in [p for p in tree if p == gone or p.startswith(gone + "/")]:
                del tree[p]
            continue
        kind = _kind(m)
        if name in tree and not (kind == "dir" and tree[name][0] == "dir"):
            for p in [p for p in tree if p == name or p.startswith(name + "/")]:
                del tree[p]
        if kind == "hardlink":
            target = posixpath.normpath("/" + m.linkname)
            leader = links.get(target, target)
            t = tree[target]
            tree[name] = (t[0], t[1], t[2], t[3], t[4], leader)
            links[name] = leader
            continue
        content = ""
        if kind == "file":
            f = layer.extractfile(m)
            assert f is not None
            content = hashlib.sha256(f.read()).hexdigest()
        elif kind == "symlink":
            content = m.linkname
        elif kind in ("char", "block"):
            content = f"{m.devmajor}:{m.devminor}"
        tree[name] = (kind, m.mode & 0o7777, m.uid, m.gid, content, "")


def load_saved(data: bytes) -> SavedImage:
    outer = tarfile.open(fileobj=io.BytesIO(data))
    files = {posixpath.normpath(m.name): m for m in outer.getmembers()}

    def read(name: str) -> bytes:
        f = outer.extractfile(files[posixpath.normpath(name)])
        assert f is not None
        return f.read()

    manifest = json.loads(read("manifest.json"))[0]
    config = json.loads(read(manifest["Config"]))
    tree: dict[str, Entry] = {}
    links: dict[str, str] = {}
    for layer_name in manifest["Layers"]:
        with tarfile.open(fileobj=io.BytesIO(read(layer_name))) as layer:
            _apply(tree, links, layer)
    # Normalise hardlink groups: a file that is the leader of a group is marked too.
    leaders = {e[5] for e in tree.values() if e[5]}
    for p in leaders:
        if p in tree:
            e = tree[p]
            tree[p] = (e[0], e[1], e[2], e[3], e[4], p)
    return SavedImage(config, tree, len(manifest["Layers"]))


def diff_trees(a: dict[str, Entry], b: dict[str, Entry]) -> list[str]:
    out = []
    for p in sorted(a.keys() | b.keys()):
        if a.get(p) != b.get(p):
            out.append(f"{p}: {a.get(p)} != {b.get(p)}")
    return out
