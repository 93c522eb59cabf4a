"""What a parsed Dockerfile instruction is: the parser's raw form and the typed, checked ones.

`Instruction` is the parser's node after continuation joining and flag extraction (BuildKit's
`parser.Node`); `parse_dockerfile` returns the typed subclass of each instruction (BuildKit's
`instructions.*Command`), its flags already checked and parsed into fields, so the builder
reads `RunInstruction.network` rather than a flag string. Words that the build expands
(`$VAR`) stay unexpanded here: their values are known only while the stage runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_RE_LEADING_TABS = re.compile(r"^\t+", re.MULTILINE)


@dataclass(frozen=True)
class Heredoc:
    """A here-document attached to RUN/COPY/ADD (`<<EOF`, `<<-EOF`, `<<"EOF"`).

    `content` is the text between the marker line and the delimiter, line endings included,
    exactly as BuildKit stores it; `body` applies the `<<-` tab stripping. `expand` is False
    when any part of the delimiter was quoted (then `$VAR` in the body stays literal).
    """

    name: str
    content: str
    expand: bool
    chomp: bool
    fd: int = 0

    @property
    def body(self) -> str:
        return _RE_LEADING_TABS.sub("", self.content) if self.chomp else self.content


@dataclass(frozen=True)
class Instruction:
    """One instruction, after continuation joining and flag extraction.

    args: for exec (JSON) form the array items; for RUN/CMD/ENTRYPOINT shell form one element,
    the rest of the line; FROM/EXPOSE and non-JSON COPY/ADD/VOLUME split on whitespace as
    Docker does; ENV/LABEL flattened raw pairs `(k1, v1, k2, v2, ...)` with quotes still in;
    ARG the raw words; MAINTAINER/USER/WORKDIR/STOPSIGNAL the rest of the line; HEALTHCHECK
    `(TYPE, *command)`; ONBUILD one element, the trigger text (plus its heredocs), which is
    what Docker stores in the image config. `rest` is the argument text after the flags.
    """

    keyword: str
    args: tuple[str, ...]
    json_form: bool
    flags: tuple[tuple[str, str | None], ...]
    original: str
    line: int
    end_line: int
    heredocs: tuple[Heredoc, ...] = ()
    rest: str = ""

    def flag(self, name: str) -> str | None:
        """The last value given for --name (bare boolean flags read as "true")."""
        found: str | None = None
        for k, v in self.flags:
            if k == name:
                found = "true" if v is None else v
        return found

    def flag_values(self, name: str) -> list[str]:
        return [v or "" for k, v in self.flags if k == name]


# The typed instructions. Every field has a default because a dataclass subclass of
# `Instruction` (whose last fields have defaults) must; `instructions.typed` fills them all.


@dataclass(frozen=True)
class FromInstruction(Instruction):
    base: str = ""
    stage_name: str = ""  # lower-cased `AS name`, "" without one
    platform: str = ""  # --platform, unexpanded


@dataclass(frozen=True)
class ArgInstruction(Instruction):
    """`rest` holds the `NAME[=default]` words, expanded while the stage runs."""


@dataclass(frozen=True)
class RunInstruction(Instruction):
    mounts: tuple[str, ...] = ()  # --mount specs, unexpanded (checked when they hold no $)
    network: str = ""  # --network: "default", "none", "host"; "" for the build's
    security: str = "sandbox"  # --security: "sandbox" or "insecure"
    devices: tuple[str, ...] = ()  # --device (BuildKit syntax; dockyard refuses it)


@dataclass(frozen=True)
class FileInstruction(Instruction):
    """COPY and ADD: what both take."""

    sources: tuple[str, ...] = ()
    dest: str = ""
    chown: str = ""
    chmod: str = ""
    link: bool = False
    excludes: tuple[str, ...] = ()


@dataclass(frozen=True)
class CopyInstruction(FileInstruction):
    from_: str = ""  # --from: a stage or an image
    parents: bool = False


@dataclass(frozen=True)
class AddInstruction(FileInstruction):
    checksum: str = ""  # --checksum of a URL source
    unpack: bool | None = None  # --unpack; None: extract local archives (Docker's default)
    keep_git_dir: bool = False


@dataclass(frozen=True)
class WorkdirInstruction(Instruction):
    path: str = ""


@dataclass(frozen=True)
class EnvInstruction(Instruction):
    """`rest` holds the `K=V` pairs, expanded while the stage runs."""


@dataclass(frozen=True)
class LabelInstruction(Instruction):
    literal: bool = False  # from `--label`: `args` are the pair as given, never expanded


@dataclass(frozen=True)
class MaintainerInstruction(Instruction):
    name: str = ""


@dataclass(frozen=True)
class ExposeInstruction(Instruction):
    ports: tuple[str, ...] = ()  # unexpanded words


@dataclass(frozen=True)
class CmdInstruction(Instruction):
    """`args` and `json_form`: the command, exec or shell form."""


@dataclass(frozen=True)
class EntrypointInstruction(Instruction):
    """`args` and `json_form`: the command, exec or shell form (none: ENTRYPOINT is reset)."""


@dataclass(frozen=True)
class UserInstruction(Instruction):
    user: str = ""


@dataclass(frozen=True)
class VolumeInstruction(Instruction):
    paths: tuple[str, ...] = ()


@dataclass(frozen=True)
class ShellInstruction(Instruction):
    shell: tuple[str, ...] = ()


@dataclass(frozen=True)
class StopsignalInstruction(Instruction):
    signal: str = ""


@dataclass(frozen=True)
class HealthcheckInstruction(Instruction):
    """Docker's HealthConfig: `test` is `("NONE",)`, `("CMD", *argv)` or `("CMD-SHELL", cmd)`;
    durations in nanoseconds, 0 when not given."""

    test: tuple[str, ...] = ()
    interval: int = 0
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0


@dataclass(frozen=True)
class OnbuildInstruction(Instruction):
    trigger: str = ""  # as stored in the image config: the text after ONBUILD
