"""Build arguments with the legacy builder's scoping (moby builder/dockerfile/buildargs.go).

- `--build-arg` values override an ARG's default; an ARG without a default and without a
  value is declared but unset.
- ARGs before the first FROM ("meta args") are visible to FROM lines; inside a stage an ARG
  must be declared again (`ARG NAME`) to be used, and then takes the meta value by default.
- Each stage starts with no declared args (`ResetAllowed`); the proxy variables are usable
  without a declaration when given with `--build-arg`, and are kept out of the history.
- A `--build-arg` that no ARG in any built stage declares is reported as not consumed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

BUILTIN_ARGS = frozenset(
    {
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "FTP_PROXY",
        "ftp_proxy",
        "NO_PROXY",
        "no_proxy",
        "ALL_PROXY",
        "all_proxy",
    }
)


@dataclass
class BuildArgs:
    from_options: dict[str, str]
    allowed: dict[str, str | None] = field(default_factory=dict)
    meta: dict[str, str | None] = field(default_factory=dict)
    referenced: set[str] = field(default_factory=set)
    # the stage's ARG names in the order declared, a name declared twice twice (BuildKit's
    # RUN history lists them so)
    declared: tuple[str, ...] = ()

    def for_stage(self) -> BuildArgs:
        """A copy for a new stage: meta args kept, declarations reset, references shared."""
        return BuildArgs(dict(self.from_options), {}, dict(self.meta), self.referenced)

    def with_arg(self, key: str, value: str | None) -> BuildArgs:
        """A copy that declares `key` (an ARG step); the referenced set stays the build's."""
        out = BuildArgs(
            self.from_options,
            {**self.allowed, key: value},
            self.meta,
            self.referenced,
            (*self.declared, key),
        )
        self.referenced.add(key)
        return out

    def add_arg(self, key: str, value: str | None) -> None:
        self.allowed[key] = value
        self.referenced.add(key)

    def add_meta(self, key: str, value: str | None) -> None:
        self.meta[key] = value

    def _get(self, key: str, mapping: dict[str, str | None]) -> str | None:
        if key in self.from_options:
            return self.from_options[key]
        default = mapping.get(key)
        if default is None:
            return self.meta.get(key)
        return default

    def _all(self, mapping: dict[str, str | None]) -> dict[str, str]:
        out: dict[str, str] = {}
        for key in [*mapping, *sorted(BUILTIN_ARGS - mapping.keys())]:
            if key not in mapping and key not in self.from_options:
                continue
            value = self._get(key, mapping)
            if value is not None:
                out[key] = value
        return out

    def all_allowed(self) -> dict[str, str]:
        return self._all(self.allowed)

    def all_meta(self) -> dict[str, str]:
        return self._all(self.meta)

    def filter_allowed(self, env: dict[str, str]) -> dict[str, str]:
        """Declared args not shadowed by an ENV of the same name (ENV wins, as in Docker)."""
        return {k: v for k, v in self.all_allowed().items() if k not in env}

    def history_prefix(self, used: Mapping[str, str]) -> list[str]:
        """`|N k=v ...` that the legacy builder puts before a RUN's command in the history
        (prependEnvOnCmd): undeclared proxy args are left out, the rest sorted."""
        kept = sorted(
            f"{k}={v}" for k, v in used.items() if k in self.allowed or k not in BUILTIN_ARGS
        )
        return [f"|{len(kept)}", *kept]

    def unused(self) -> list[str]:
        return sorted(
            k for k in self.from_options if k not in self.referenced and k not in BUILTIN_ARGS
        )
