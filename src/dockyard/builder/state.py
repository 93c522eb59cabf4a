"""A stage's state between steps, and the options of a whole build.

`StageState` is immutable: a step returns a new state (`dataclasses.replace`), so a step that
fails leaves the state it started from untouched, with nothing to restore. Its `config` dict is
never mutated in place either; a handler that changes the config builds a new dict.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dockyard.builder.args import BuildArgs
from dockyard.builder.semantics import LEGACY, Semantics
from dockyard.image.config import ImageConfig, normalize_container_config
from dockyard.registry.auth import Credentials

DEFAULT_SHELL = ("/bin/sh", "-c")


@dataclass
class BuildOptions:
    dockerfile: str = "Dockerfile"
    tags: list[str] = field(default_factory=list)
    no_cache: bool = False
    quiet: bool = False
    build_args: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    target: str = ""
    cache_from: list[str] = field(default_factory=list)
    explain_cache: bool = False
    allow_insecure: bool = False
    pull: bool = False
    network: str = "default"  # --network of `docker build`: RUN's default network
    shm_size: int = 0  # --shm-size: /dev/shm of RUN containers (0: Docker's 64 MiB)
    # --add-host: (name, address) lines for RUN's /etc/hosts; not part of any cache key
    extra_hosts: list[tuple[str, str]] = field(default_factory=list)
    # `dockyard build --secret` / `--ssh`: secret contents by id, and agent sockets on this
    # host by id. Never logged, never part of a cache key (BuildKit keys on the id only).
    secrets: dict[str, bytes] = field(default_factory=dict, repr=False)
    ssh: dict[str, str] = field(default_factory=dict)
    # The client's registry logins by server address (X-Registry-Config, or the session's),
    # for pulling a missing or `--pull`ed base.
    registry_auth: dict[str, Credentials] = field(default_factory=dict, repr=False)
    # Which builder's results the build gives (the legacy /build: the legacy builder's).
    semantics: Semantics = LEGACY
    # `rm` / `forcerm` of the legacy /build: which steps' containers stay (builder/kept.py)
    rm: bool = True
    force_rm: bool = False


def shell_of(config: Mapping[str, Any]) -> list[str]:
    return list(config.get("Shell") or DEFAULT_SHELL)


def effective_network(mode: str) -> str:
    """What a RUN's network really is: builds use the host's network unless told `none` or a
    user-defined network's name, so `default` and `host` are the same step (and the same
    cache key; issue 19)."""
    if mode in ("", "default", "bridge", "host"):
        return "host"
    return mode


@dataclass(frozen=True)
class StageState:
    """The image a stage has reached: its ID, config and layers, plus the stage's ARGs."""

    image_id: str | None
    parent_cfg: ImageConfig | None
    config: dict[str, Any]
    diff_ids: tuple[str, ...]
    history: tuple[dict[str, Any], ...]
    args: BuildArgs
    cmd_set: bool = False  # a CMD of this stage (an ENTRYPOINT then keeps it)
    author: str = ""
    # BuildKit: build args declared after an ENV of the same name, which win over it in
    # the steps (its ARG adds to the step's environment; the legacy builder's ENV always wins)
    arg_overrides: frozenset[str] = frozenset()

    @classmethod
    def scratch(cls, args: BuildArgs) -> StageState:
        return cls(None, None, normalize_container_config({}), (), (), args)

    @classmethod
    def of_image(cls, image_id: str, cfg: ImageConfig, args: BuildArgs) -> StageState:
        return cls(
            image_id,
            cfg,
            dict(cfg.container_config),
            tuple(cfg.diff_ids),
            tuple(cfg.history),
            args,
            author=str(cfg.doc.get("author", "")),
        )

    @property
    def env(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for item in self.config.get("Env") or []:
            k, _, v = item.partition("=")
            out[k] = v
        return out

    def build_args_seen(self) -> dict[str, str]:
        """The declared build args a step gets: those no ENV shadows, and those declared
        after the ENV of their name (`arg_overrides`)."""
        env = self.env
        return {
            k: v
            for k, v in self.args.all_allowed().items()
            if k not in env or k in self.arg_overrides
        }

    def expand_env(self) -> dict[str, str]:
        """What `$VAR` sees in an instruction: ENV first, then declared build args."""
        return {**self.env, **self.build_args_seen()}

    def step_env(self) -> list[str]:
        """A RUN's environment: the config's, then the build args it gets."""
        seen = self.build_args_seen()
        env = [e for e in self.config.get("Env") or [] if e.partition("=")[0] not in seen]
        return [*env, *(f"{k}={v}" for k, v in seen.items())]

    @property
    def shell(self) -> list[str]:
        return shell_of(self.config)

    @property
    def workdir(self) -> str:
        return str(self.config.get("WorkingDir") or "/")

    def with_config(self, **changes: Any) -> dict[str, Any]:
        """A copy of the config with `changes` applied (the state's own stays as it is)."""
        return {**self.config, **changes}
