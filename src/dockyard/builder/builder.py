"""The builder: walks a parsed Dockerfile, one image per step, as Docker's legacy builder.

Per step: compute the cache key (parent image ID + the instruction as expanded + for COPY a
checksum of the source files); a hit reuses the cached image and starts or mounts nothing. A
miss runs the step: RUN in a temporary container (StepRunner), COPY and WORKDIR on a mounted
overlay, metadata instructions as config-only images (`empty_layer` history entries). Every
step's image is recorded with its parent, so the cache and `rmi`'s parent pruning work as in
Docker. Progress leaves only through `emit` (Docker's JSON message shapes); nothing prints.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import posixpath
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockyard.builder.context import BuildContext
from dockyard.builder.copy import copy_into, files_under, resolve_sources
from dockyard.builder.runner import StepProcess, StepRunner
from dockyard.diff.fsutil import mkdir_in_root
from dockyard.errors import BuildFailure, DockyardError, InvalidArgument, NotSupported
from dockyard.frontend.expand import expand_word, expand_words, parse_key_values
from dockyard.frontend.parser import Instruction, parse_dockerfile
from dockyard.image.config import (
    HistoryEntry,
    ImageConfig,
    build_image_config,
    normalize_container_config,
    now_rfc3339,
)
from dockyard.runtime.users import resolve_user
from dockyard.snapshot.overlay import OverlaySnapshotter
from dockyard.store.images import ImageStore
from dockyard.store.layers import LayerStore

Emit = Callable[[dict[str, Any]], None]
DEFAULT_SHELL = ["/bin/sh", "-c"]
_SUPPORTED = {
    "from", "run", "cmd", "entrypoint", "env", "workdir", "label", "expose", "copy",
    "maintainer",
}


@dataclass
class BuildOptions:
    dockerfile: str = "Dockerfile"
    tags: list[str] = field(default_factory=list)
    no_cache: bool = False
    quiet: bool = False
    build_args: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    target: str = ""


@dataclass
class StageState:
    """The image a stage has reached: its ID, config and layers."""

    image_id: str | None
    parent_cfg: ImageConfig | None
    config: dict[str, Any]
    diff_ids: list[str]
    history: list[dict[str, Any]]
    cmd_set: bool = False

    @property
    def env(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for item in self.config.get("Env") or []:
            k, _, v = item.partition("=")
            out[k] = v
        return out

    def set_env(self, key: str, value: str) -> None:
        env = [e for e in self.config.get("Env") or [] if e.partition("=")[0] != key]
        env.append(f"{key}={value}")
        self.config["Env"] = env


class StepError(BuildFailure):
    """A failed step; carries the Dockerfile line for the message."""


class Builder:
    def __init__(
        self,
        images: ImageStore,
        layers: LayerStore,
        snapshots: OverlaySnapshotter,
        runner: StepRunner,
        scratch_dir: Path,
    ) -> None:
        self.images = images
        self.layers = layers
        self.snapshots = snapshots
        self.runner = runner
        self.scratch_dir = scratch_dir

    async def build(self, ctx: BuildContext, opts: BuildOptions, emit: Emit) -> str:
        text = ctx.read_dockerfile(opts.dockerfile)
        dockerfile = parse_dockerfile(text, filename=posixpath.basename(opts.dockerfile))
        instructions = list(dockerfile.instructions)
        self._check_supported(instructions, opts.dockerfile)
        say: Emit = (lambda _m: None) if opts.quiet else emit
        total = len(instructions)
        state: StageState | None = None
        escape = dockerfile.escape
        for index, ins in enumerate(instructions, start=1):
            say({"stream": f"Step {index}/{total} : {ins.original}\n"})
            try:
                state = await self._step(ctx, ins, state, opts, say, escape)
            except DockyardError as exc:
                raise StepError(f"{opts.dockerfile}:{ins.line}: {exc}") from exc
        if state is None or state.image_id is None:
            raise BuildFailure(f"{opts.dockerfile}: no image was built")
        image_id = state.image_id
        if opts.labels:
            state.config["Labels"] = {**(state.config.get("Labels") or {}), **opts.labels}
            image_id = self._commit(state, "", empty_layer=True, cache_key=None, record=False)
        emit({"aux": {"ID": image_id}})
        if opts.quiet:
            emit({"stream": f"{image_id}\n"})
        else:
            emit({"stream": f"Successfully built {image_id.removeprefix('sha256:')[:12]}\n"})
        for tag in opts.tags:
            self.images.tag(image_id, tag)
            if not opts.quiet:
                from dockyard.store.images import familiar

                emit({"stream": f"Successfully tagged {familiar(ImageStore.normalize_tag(tag))}\n"})
        return image_id

    @staticmethod
    def _check_supported(instructions: list[Instruction], filename: str) -> None:
        if not instructions:
            raise BuildFailure(f"{filename}: the Dockerfile cannot be empty")
        for ins in instructions:
            if ins.keyword not in _SUPPORTED:
                raise NotSupported(
                    f"{filename}:{ins.line}: {ins.keyword.upper()} is not supported by dockyard yet"
                )
            if ins.heredocs:
                raise NotSupported(f"{filename}:{ins.line}: heredocs are not supported yet")
            allowed = {"copy": {"chown"}, "from": set()}.get(ins.keyword, set())
            for name, _ in ins.flags:
                if name not in allowed:
                    raise NotSupported(
                        f"{filename}:{ins.line}: {ins.keyword.upper()} --{name} is not supported yet"
                    )

    # steps -------------------------------------------------------------------------------
    async def _step(
        self,
        ctx: BuildContext,
        ins: Instruction,
        state: StageState | None,
        opts: BuildOptions,
        say: Emit,
        escape: str,
    ) -> StageState:
        if ins.keyword == "from":
            return self._from(ins, say, escape)
        if state is None:
            raise InvalidArgument("no build stage in current context")
        env = state.env
        kw = ins.keyword
        if kw == "run":
            await self._run(ins, state, opts, say)
        elif kw == "copy":
            await self._copy(ctx, ins, state, opts, say, env, escape)
        elif kw == "workdir":
            await self._workdir(ins, state, opts, say, env, escape)
        else:
            self._metadata(ins, state, opts, say, env, escape)
        return state

    def _from(self, ins: Instruction, say: Emit, escape: str) -> StageState:
        name = expand_word(ins.args[0], {}, escape)
        if name == "scratch":
            return StageState(None, None, normalize_container_config({}), [], [])
        image = self.images.get(name)
        say({"stream": f" ---> {_short(image.id)}\n"})
        cfg = dict(image.config.container_config)
        return StageState(
            image.id,
            image.config,
            cfg,
            list(image.config.diff_ids),
            image.config.history,
            cmd_set=False,
        )

    def _cache_key(self, state: StageState, description: str, extra: str = "") -> str:
        h = hashlib.sha256()
        h.update(json.dumps([state.image_id or "scratch", description, extra,
                             state.config]).encode())
        return "sha256:" + h.hexdigest()

    def _try_cache(self, key: str, opts: BuildOptions, state: StageState, say: Emit) -> bool:
        if opts.no_cache:
            return False
        cached = self.images.meta.cache_lookup(key)
        if cached is None or not self.images.meta.has_image(cached):
            return False
        cfg = self.images.config(cached)
        state.image_id = cached
        state.parent_cfg = cfg
        state.config = dict(cfg.container_config)
        state.diff_ids = list(cfg.diff_ids)
        state.history = cfg.history
        say({"stream": " ---> Using cache\n"})
        say({"stream": f" ---> {_short(cached)}\n"})
        return True

    def _commit(
        self,
        state: StageState,
        created_by: str,
        *,
        empty_layer: bool,
        cache_key: str | None,
        new_diff_id: str | None = None,
        record: bool = True,
    ) -> str:
        created = now_rfc3339()
        if new_diff_id is not None:
            state.diff_ids = [*state.diff_ids, new_diff_id]
        history = list(state.history)
        if created_by:
            history.append(HistoryEntry(created, created_by, empty_layer).to_json())
        container_config = dict(state.config)
        container_config["Image"] = state.image_id or ""
        raw = build_image_config(
            container_config=container_config,
            diff_ids=state.diff_ids,
            history=history,
            created=created,
            parent=state.parent_cfg,
        )
        image_id = self.images.put(raw, parent=state.image_id, cache_key=cache_key)
        state.image_id = image_id
        state.parent_cfg = ImageConfig.from_bytes(raw)
        state.history = history
        state.config = dict(state.parent_cfg.container_config)
        del record
        return image_id

    # metadata instructions ---------------------------------------------------------------
    def _metadata(
        self,
        ins: Instruction,
        state: StageState,
        opts: BuildOptions,
        say: Emit,
        env: dict[str, str],
        escape: str,
    ) -> None:
        kw = ins.keyword
        cfg = state.config
        if kw == "env":
            pairs = parse_key_values(ins.rest, "ENV", env, escape)
            for k, v in pairs:
                state.set_env(k, v)
                env[k] = v
            comment = "ENV " + " ".join(f"{k}={v}" for k, v in pairs)
        elif kw == "label":
            pairs = parse_key_values(ins.rest, "LABEL", env, escape)
            labels = dict(cfg.get("Labels") or {})
            labels.update(pairs)
            cfg["Labels"] = labels
            comment = "LABEL " + " ".join(f"{k}={v}" for k, v in pairs)
        elif kw == "maintainer":
            comment = f"MAINTAINER {ins.rest}"
        elif kw == "expose":
            ports = [p for a in ins.args for p in expand_words(a, env, escape)]
            exposed = dict(cfg.get("ExposedPorts") or {})
            for port in ports:
                if "/" not in port:
                    port = f"{port}/tcp"
                exposed[port.lower()] = {}
            cfg["ExposedPorts"] = exposed
            comment = "EXPOSE " + " ".join(ports)
        elif kw in ("cmd", "entrypoint"):
            value = list(ins.args) if ins.json_form else [*self._shell(state), ins.args[0]]
            if kw == "cmd":
                cfg["Cmd"] = value
                state.cmd_set = True
            else:
                cfg["Entrypoint"] = value
                if not state.cmd_set:
                    # An ENTRYPOINT drops a CMD inherited from the base (Docker, dispatchers.go)
                    cfg["Cmd"] = None
            comment = f"{kw.upper()} [{' '.join(json.dumps(a) for a in value)}]"
        else:  # pragma: no cover - _check_supported filters
            raise NotSupported(f"{kw.upper()} is not supported yet")
        created_by = f"{' '.join(self._shell(state))} #(nop)  {comment}"
        key = self._cache_key(state, created_by)
        if self._try_cache(key, opts, state, say):
            return
        cid = secrets.token_hex(32)
        say({"stream": f" ---> Running in {_short(cid)}\n"})
        image_id = self._commit(state, created_by, empty_layer=True, cache_key=key)
        say({"stream": f"Removing intermediate container {_short(cid)}\n"})
        say({"stream": f" ---> {_short(image_id)}\n"})

    @staticmethod
    def _shell(state: StageState) -> list[str]:
        return list(state.config.get("Shell") or DEFAULT_SHELL)

    # steps with a container -----------------------------------------------------------------
    async def _with_rootfs(
        self, state: StageState, cid: str, work: Callable[[Path], Any]
    ) -> str:
        """Mount the parent's layers under a new upper dir, run `work`, commit the layer."""
        chain = self.layers.chain_for(state.diff_ids)
        snapshot = self.layers.new_active()
        rootfs = self.scratch_dir / cid / "rootfs"
        mounted = False
        try:
            await asyncio.to_thread(
                self.snapshots.mount, rootfs, chain.lowers_top_first, snapshot
            )
            mounted = True
            result = work(rootfs)
            if asyncio.iscoroutine(result):
                await result
            await asyncio.to_thread(self.snapshots.unmount, rootfs)
            mounted = False
            layer = await asyncio.to_thread(
                self.layers.commit_active, snapshot, list(state.diff_ids)
            )
            return layer.diff_id
        except BaseException:
            if mounted:
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(self.snapshots.unmount, rootfs)
            self.layers.discard_active(snapshot)
            raise
        finally:
            with contextlib.suppress(OSError):
                rootfs.rmdir()
                rootfs.parent.rmdir()

    async def _run(
        self, ins: Instruction, state: StageState, opts: BuildOptions, say: Emit
    ) -> None:
        argv = list(ins.args) if ins.json_form else [*self._shell(state), ins.args[0]]
        created_by = " ".join(argv)
        key = self._cache_key(state, created_by)
        if self._try_cache(key, opts, state, say):
            return
        cid = secrets.token_hex(32)
        say({"stream": f" ---> Running in {_short(cid)}\n"})
        proc = StepProcess(
            argv=argv,
            env=list(state.config.get("Env") or []),
            workdir=state.config.get("WorkingDir") or "/",
            user=state.config.get("User") or "",
        )
        exit_code = 0

        def on_output(data: bytes) -> None:
            say({"stream": data.decode(errors="replace")})

        async def work(rootfs: Path) -> None:
            nonlocal exit_code
            exit_code = await self.runner.run(cid, rootfs, proc, on_output)
            if exit_code != 0:
                cmd = json.dumps(argv) if ins.json_form else created_by
                raise BuildFailure(
                    f"The command '{cmd}' returned a non-zero code: {exit_code}"
                )

        diff_id = await self._with_rootfs(state, cid, work)
        say({"stream": f"Removing intermediate container {_short(cid)}\n"})
        image_id = self._commit(
            state, created_by, empty_layer=False, cache_key=key, new_diff_id=diff_id
        )
        say({"stream": f" ---> {_short(image_id)}\n"})

    async def _copy(
        self,
        ctx: BuildContext,
        ins: Instruction,
        state: StageState,
        opts: BuildOptions,
        say: Emit,
        env: dict[str, str],
        escape: str,
    ) -> None:
        words = [expand_word(a, env, escape) for a in ins.args]
        if len(words) < 2:
            raise InvalidArgument("COPY requires at least two arguments")
        *srcs, dest = words
        workdir = state.config.get("WorkingDir") or "/"
        if not dest.startswith("/"):
            trailing = dest.endswith("/") or dest in (".", "./")
            dest = posixpath.join(workdir, dest)
            if trailing and not dest.endswith("/"):
                dest += "/"
        sources = await asyncio.to_thread(resolve_sources, ctx, srcs)
        files = await asyncio.to_thread(files_under, ctx, sources)
        digest = await asyncio.to_thread(ctx.checksum, files)
        kind = "multi" if len(sources) > 1 else ("dir" if sources[0].is_dir else "file")
        chown = ins.flag("chown") or ""
        created_by = f"{' '.join(self._shell(state))} #(nop) COPY {kind}:{digest} in {dest} "
        key = self._cache_key(state, created_by, chown)
        if self._try_cache(key, opts, state, say):
            return
        cid = secrets.token_hex(32)

        def work(rootfs: Path) -> None:
            uid = gid = 0
            if chown:
                user = resolve_user(rootfs, chown)
                uid, gid = user.uid, user.gid
                if ":" not in chown:
                    gid = uid if chown.isdigit() else user.gid
            copy_into(ctx, sources, rootfs, dest, uid, gid)

        async def threaded(rootfs: Path) -> None:
            await asyncio.to_thread(work, rootfs)

        diff_id = await self._with_rootfs(state, cid, threaded)
        image_id = self._commit(
            state, created_by, empty_layer=False, cache_key=key, new_diff_id=diff_id
        )
        say({"stream": f" ---> {_short(image_id)}\n"})

    async def _workdir(
        self,
        ins: Instruction,
        state: StageState,
        opts: BuildOptions,
        say: Emit,
        env: dict[str, str],
        escape: str,
    ) -> None:
        path = expand_word(ins.args[0] if ins.args else ins.rest, env, escape)
        current = state.config.get("WorkingDir") or "/"
        workdir = posixpath.normpath(posixpath.join(current, path))
        state.config["WorkingDir"] = workdir
        created_by = f"{' '.join(self._shell(state))} #(nop) WORKDIR {workdir}"
        key = self._cache_key(state, created_by)
        if self._try_cache(key, opts, state, say):
            return
        cid = secrets.token_hex(32)
        say({"stream": f" ---> Running in {_short(cid)}\n"})

        def work(rootfs: Path) -> None:
            mkdir_in_root(rootfs, workdir)

        diff_id = await self._with_rootfs(state, cid, work)
        say({"stream": f"Removing intermediate container {_short(cid)}\n"})
        image_id = self._commit(
            state, created_by, empty_layer=False, cache_key=key, new_diff_id=diff_id
        )
        say({"stream": f" ---> {_short(image_id)}\n"})


def _short(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]
