"""Where Docker's two builders give a different image for the same Dockerfile.

The step handlers ask a `Semantics` instead of hard-coding the legacy builder's answers, so
BuildKit's API (`/build?version=2`) can run the same handlers and executor with BuildKit's
answers. Its `name` is part of every step's cache key: an image made under one semantics is
never a cache hit for the other.

Differences measured against dockerd 20.10 (../shared/reference/pitfalls.md, "BuildKit's
clients"): a WORKDIR created after USER is owned by that user under BuildKit (legacy: root);
RUN's writes under a declared VOLUME are kept by BuildKit (the legacy builder mounts an
anonymous volume there and drops them); the history text reads `RUN |N K=V /bin/sh -c … #
buildkit` and `ENV …` under BuildKit where the legacy builder writes `/bin/sh -c #(nop) …`.
Only the legacy answers are implemented and tested here; BuildKit's come with its API.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Semantics:
    """The legacy builder's answers; a subclass (or another instance) gives BuildKit's."""

    name: str = "legacy"
    # WORKDIR: directories it creates belong to the config's USER (BuildKit) or root (legacy).
    workdir_owned_by_user: bool = False
    # RUN under a declared VOLUME: its writes there reach the layer (BuildKit) or not (legacy,
    # which mounts an anonymous volume seeded with the image's content there).
    run_keeps_volume_writes: bool = False
    # The PATH a stage's config gets when its base has none (moby beginStage/setDefaultPath);
    # "" adds none.
    default_path: str = DEFAULT_PATH

    # History text (`created_by`): part of what users compare and of the cache key.
    def config_history(self, shell: Sequence[str], comment: str) -> str:
        """A config-only instruction: `/bin/sh -c #(nop)  ENV a=b` (two spaces, as Docker)."""
        return f"{' '.join(shell)} #(nop)  {comment}"

    def workdir_history(self, shell: Sequence[str], workdir: str) -> str:
        """WORKDIR commits a layer in the legacy builder: `/bin/sh -c #(nop) WORKDIR /w`."""
        return f"{' '.join(shell)} #(nop) WORKDIR {workdir}"

    def copy_history(
        self, shell: Sequence[str], cmd: str, chown: str, source: str, dest: str
    ) -> str:
        """COPY/ADD: `source` is `file:<digest>`, `dir:<digest>` or `multi:<digest>`. Docker
        writes the flag glued to it (`--chown=a:bfile:<digest>`) and a trailing space."""
        flag = f"--chown={chown}" if chown else ""
        return f"{' '.join(shell)} #(nop) {cmd} {flag}{source} in {dest} "

    def run_history(self, argv: Sequence[str], arg_prefix: Sequence[str]) -> str:
        """RUN: the command, after `|N K=V …` when build args reach it (prependEnvOnCmd)."""
        return " ".join([*arg_prefix, *argv])


LEGACY = Semantics()
