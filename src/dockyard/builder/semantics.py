"""Where Docker's two builders give a different image for the same Dockerfile.

The step handlers ask a `Semantics` instead of hard-coding one builder's answers, so the
legacy `/build` and BuildKit's API (`/build?version=2`) run the same handlers and executor.
Its `name` is part of every step's cache key: an image made under one semantics is never a
cache hit for the other.

`LEGACY` is Docker 20.10's legacy builder; `BUILDKIT` is BuildKit's Dockerfile frontend as
dockerd 26.1 (BuildKit 0.13) writes it, measured through Debian's 20.10 client with
DOCKER_BUILDKIT=1 (tests/builder/test_buildkit_reference.py; ARCHITECTURE "BuildKit's
semantics"). dockerd 20.10's older BuildKit differs from it in two history texts only: its
COPY/ADD text leaves the `--chown`/`--chmod` flags out, and its HEALTHCHECK text has no
StartInterval.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from dockyard.builder.args import BuildArgs

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class CopyText:
    """What a COPY/ADD history text may name."""

    cmd: str  # COPY or ADD
    chown: str  # as expanded; "" when not given
    chmod: str  # as written; "" when not given
    sources: Sequence[str]  # as expanded; a heredoc as `<<NAME`
    dest: str  # as written (expanded)
    digest_source: str  # the legacy text's `file:<hex>` / `dir:<hex>` / `multi:<hex>`


@dataclass(frozen=True)
class Semantics:
    """The legacy builder's answers; `BUILDKIT` (a subclass instance) gives BuildKit's."""

    name: str = "legacy"
    # WORKDIR: directories it creates belong to the config's USER (BuildKit) or root (legacy).
    workdir_owned_by_user: bool = False
    # RUN under a declared VOLUME: its writes there reach the layer (BuildKit) or not (legacy,
    # which mounts an anonymous volume seeded with the image's content there).
    run_keeps_volume_writes: bool = False
    # The PATH a stage's config gets when its base has none (moby beginStage/setDefaultPath);
    # "" adds none.
    default_path: str = DEFAULT_PATH
    # A RUN, COPY, ADD or WORKDIR that changes nothing: an `empty_layer` history entry and no
    # layer (legacy, measured on 20.10) or a layer all the same, an empty tar (BuildKit).
    keep_empty_layers: bool = False
    # COPY/ADD of a wildcard that matches nothing: an error (legacy) or nothing copied
    # (BuildKit's AllowEmptyWildcard).
    empty_wildcard_copies_nothing: bool = False
    # The `comment` of every history entry the build writes ("" writes none).
    history_comment: str = ""
    # `--label`: one LABEL step per label at the end of the target (legacy) or the labels
    # set on the final image's config, without a history entry (BuildKit).
    labels_as_steps: bool = True
    # The image config: Docker's container.Config with its defaults, `Image` and the
    # top-level `docker_version` (legacy), or the image-spec config with only what is set
    # (BuildKit).
    oci_config: bool = False
    # CMD sets the config's ArgsEscaped (BuildKit's dispatchCmd does, on every platform).
    cmd_sets_args_escaped: bool = False
    # A bare shell-form CMD or ENTRYPOINT: `[shell…]` and nil (legacy) or `[shell…, ""]`
    # (BuildKit).
    empty_shell_form_is_empty_word: bool = False
    # An ARG with a value declared after an ENV of its name wins over it in the steps that
    # follow (BuildKit) or the ENV always wins (legacy).
    args_override_env: bool = False
    # HEALTHCHECK over an inherited one: the durations and retries it leaves unset come from
    # the inherited check (legacy: each step's container is created from the previous image,
    # and moby's daemon/commit.go merge() fills a zero field from the image's) or stay unset
    # (BuildKit sets the config's Healthcheck as written).
    healthcheck_inherits_unset: bool = True
    # COPY/ADD: copied files lose setuid (and setgid with group-exec), as the legacy
    # builder's fixPermissions lchowns every copied entry after the copy and Linux clears
    # the bits on chown; BuildKit's fsutil copy chowns before it sets the mode and keeps them.
    copy_chown_clears_setid: bool = True
    # COPY --chown of a directory: the destination's missing parents are root's (legacy:
    # copyDirectory's CopyWithTar makes them as root; measured on 20.10) or the owner's
    # (BuildKit's copy with CreateDestPath and the chown; measured on 20.10 and 26.1).
    copy_dir_parents_owned_by_root: bool = True
    # --cache-from: an image serves a step when its history matches (legacy, moby's
    # image/cache/cache.go) or only when its inline cache records that step's cache key
    # (BuildKit: its history says `COPY f /f` whatever f holds, so history alone would hit
    # with other content; builder/inlinecache.py).
    cache_from_needs_keys: bool = False
    # `FROM scratch`: the config's WorkingDir ("" leaves it unset; BuildKit's emptyImage
    # sets "/", measured on 20.10's BuildKit and 26.1's)
    scratch_workdir: str = ""
    # A RUN's sandbox: Docker's init layer under the root (/.dockerenv, /etc/mtab), /etc/hosts,
    # /etc/hostname and /etc/resolv.conf bound writable, the container ID as hostname (legacy);
    # or BuildKit's executor's: no init layer, /etc/hosts and /etc/resolv.conf bound read-only,
    # no /etc/hostname (a RUN's write to it stays in the layer), hostname `buildkitsandbox`
    # (measured on dockerd 20.10's BuildKit and 26.1's).
    run_in_buildkit_sandbox: bool = False
    # --cache-from and the local cache: a local hit counts only in the ancestry of an image
    # given (legacy: moby's ImageCache with sources) or always (BuildKit: imports add to
    # the local cache, the solver looks there first).
    cache_from_replaces_local: bool = True
    # RUN and config-only steps run in containers of the engine's, which `rm`/`forcerm`
    # may leave behind (legacy; builder/kept.py) or in none (BuildKit).
    step_containers: bool = True
    # ADD of a git repository (`https://host/repo.git#ref:subdir`, `git@host:repo`): a
    # checkout of the commit the ref names (BuildKit's dockerfile frontend, llb.Git) or, for
    # the legacy builder, nothing special: an http(s) URL is downloaded as a file and any
    # other word is a path in the context (moby 20.10 copy.go; measured on 20.10).
    add_git_sources: bool = False

    # History text (`created_by`): part of what users compare and of the cache key.
    def config_history(self, shell: Sequence[str], comment: str) -> str:
        """A config-only instruction: `/bin/sh -c #(nop)  ENV a=b` (two spaces, as Docker)."""
        return f"{' '.join(shell)} #(nop)  {comment}"

    def workdir_history(self, shell: Sequence[str], workdir: str) -> str:
        """WORKDIR commits a layer in the legacy builder: `/bin/sh -c #(nop) WORKDIR /w`."""
        return f"{' '.join(shell)} #(nop) WORKDIR {workdir}"

    def workdir_is_step(self, workdir: str) -> bool:
        """Whether WORKDIR makes the directory as a step of its own (with a layer when it
        changed something) or only sets the config."""
        return True

    def copy_history(self, shell: Sequence[str], copy: CopyText) -> str:
        """COPY/ADD: Docker writes the flag glued to the digest source
        (`--chown=a:bfile:<digest>`) and a trailing space."""
        flag = f"--chown={copy.chown}" if copy.chown else ""
        return f"{' '.join(shell)} #(nop) {copy.cmd} {flag}{copy.digest_source} in {copy.dest} "

    def run_arg_prefix(
        self, args: BuildArgs, used: Mapping[str, str], values: Mapping[str, str]
    ) -> list[str]:
        """`|N K=V …` before a RUN's command (prependEnvOnCmd): the build args the step gets
        (`used`: declared, not shadowed by ENV); `values` is what `$NAME` is in the step."""
        return args.history_prefix(used) if used else []

    def run_history(self, argv: Sequence[str], arg_prefix: Sequence[str]) -> str:
        """RUN: the command, after `|N K=V …` when build args reach it."""
        return " ".join([*arg_prefix, *argv])

    def expose_comment(self, ports: Sequence[str], parsed: Sequence[str]) -> str:
        """EXPOSE: the words as written (legacy)."""
        return "EXPOSE " + " ".join(ports)

    def healthcheck_comment(self, legacy_text: str, current_text: str) -> str:
        """HEALTHCHECK: Go's `%q` of the config's HealthConfig; Docker 20.10's struct has no
        StartInterval (`legacy_text`), today's has (`current_text`)."""
        return legacy_text

    def onbuild_has_history(self) -> bool:
        return True


@dataclass(frozen=True)
class BuildKitSemantics(Semantics):
    """BuildKit's Dockerfile frontend (dockerfile2llb's dispatch functions)."""

    name: str = "buildkit"
    workdir_owned_by_user: bool = True
    run_keeps_volume_writes: bool = True
    keep_empty_layers: bool = True
    empty_wildcard_copies_nothing: bool = True
    history_comment: str = "buildkit.dockerfile.v0"
    labels_as_steps: bool = False
    oci_config: bool = True
    cmd_sets_args_escaped: bool = True
    empty_shell_form_is_empty_word: bool = True
    args_override_env: bool = True
    healthcheck_inherits_unset: bool = False
    copy_chown_clears_setid: bool = False
    copy_dir_parents_owned_by_root: bool = False
    cache_from_needs_keys: bool = True
    scratch_workdir: str = "/"
    cache_from_replaces_local: bool = False
    run_in_buildkit_sandbox: bool = True
    step_containers: bool = False
    add_git_sources: bool = True

    def config_history(self, shell: Sequence[str], comment: str) -> str:
        return comment

    def workdir_history(self, shell: Sequence[str], workdir: str) -> str:
        return f"WORKDIR {workdir}"

    def workdir_is_step(self, workdir: str) -> bool:
        # dispatchWorkdir: a Mkdir (and a layer) unless the directory is "/"
        return workdir != "/"

    def copy_history(self, shell: Sequence[str], copy: CopyText) -> str:
        # dispatchCopy's commit message: flags, the sources as written, the destination;
        # --from and --link are not named
        words = [copy.cmd]
        if copy.chown:
            words.append(f"--chown={copy.chown}")
        if copy.chmod:
            words.append(f"--chmod={copy.chmod}")
        return " ".join([*words, *copy.sources, copy.dest]) + " # buildkit"

    def run_arg_prefix(
        self, args: BuildArgs, used: Mapping[str, str], values: Mapping[str, str]
    ) -> list[str]:
        # runCommandString: every ARG of the stage in order (a name declared twice twice),
        # with the value the step sees (an ENV of the same name wins; unset is empty)
        kept = [f"{k}={values.get(k, '')}" for k in args.declared]
        return [f"|{len(kept)}", *kept] if kept else []

    def run_history(self, argv: Sequence[str], arg_prefix: Sequence[str]) -> str:
        return "RUN " + " ".join([*arg_prefix, *argv]) + " # buildkit"

    def expose_comment(self, ports: Sequence[str], parsed: Sequence[str]) -> str:
        # `EXPOSE %v` of a Go map[nat.Port]struct{}: its keys sorted
        return "EXPOSE map[" + " ".join(f"{p}:{{}}" for p in sorted(set(parsed))) + "]"

    def healthcheck_comment(self, legacy_text: str, current_text: str) -> str:
        return current_text

    def onbuild_has_history(self) -> bool:
        # dispatchOnbuild only appends the trigger to the config
        return False


LEGACY = Semantics()
BUILDKIT = BuildKitSemantics()
