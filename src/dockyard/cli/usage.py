"""docker CLI 28's usage errors in its words and exit codes (cobra, pflag and docker's
cli/required.go): a flag error exits 125 ("unknown flag: --x", "flag needs an argument",
"invalid argument"), a wrong number of arguments or an unknown command exits 1, each followed
by the command's usage line and where to read its help. Imported only when a command line is
wrong: `main` turns argparse's complaints into a `UsageError` through `translate`.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence

PROGRAM = "dockyard"

# cobra's Use line of each command, as docker CLI 28's `--help` prints it after "docker "
# (an alias shows its canonical command: `container list` is `container ls`); a management
# command's is its bare name (volume's alone says COMMAND), as its usage errors print it.
USE: dict[str, str] = {
    "build": "build [OPTIONS] PATH | URL | -",
    "run": "run [OPTIONS] IMAGE [COMMAND] [ARG...]",
    "create": "create [OPTIONS] IMAGE [COMMAND] [ARG...]",
    "ps": "ps [OPTIONS]",
    "images": "images [OPTIONS] [REPOSITORY[:TAG]]",
    "inspect": "inspect [OPTIONS] NAME|ID [NAME|ID...]",
    "tag": "tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
    "rmi": "rmi [OPTIONS] IMAGE [IMAGE...]",
    "rm": "rm [OPTIONS] CONTAINER [CONTAINER...]",
    "logs": "logs [OPTIONS] CONTAINER",
    "stop": "stop [OPTIONS] CONTAINER [CONTAINER...]",
    "kill": "kill [OPTIONS] CONTAINER [CONTAINER...]",
    "start": "start [OPTIONS] CONTAINER [CONTAINER...]",
    "wait": "wait CONTAINER [CONTAINER...]",
    "exec": "exec [OPTIONS] CONTAINER COMMAND [ARG...]",
    "attach": "attach [OPTIONS] CONTAINER",
    "restart": "restart [OPTIONS] CONTAINER [CONTAINER...]",
    "pause": "pause CONTAINER [CONTAINER...]",
    "unpause": "unpause CONTAINER [CONTAINER...]",
    "rename": "rename CONTAINER NEW_NAME",
    "top": "top CONTAINER [ps OPTIONS]",
    "port": "port CONTAINER [PRIVATE_PORT[/PROTO]]",
    "diff": "diff CONTAINER",
    "export": "export [OPTIONS] CONTAINER",
    "commit": "commit [OPTIONS] CONTAINER [REPOSITORY[:TAG]]",
    "cp": (
        "cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n\t{prog} cp [OPTIONS] SRC_PATH|- "
        "CONTAINER:DEST_PATH"
    ),
    "stats": "stats [OPTIONS] [CONTAINER...]",
    "update": "update [OPTIONS] CONTAINER [CONTAINER...]",
    "network": "network",
    "network create": "network create [OPTIONS] NETWORK",
    "network ls": "network ls [OPTIONS]",
    "network rm": "network rm NETWORK [NETWORK...]",
    "network inspect": "network inspect [OPTIONS] NETWORK [NETWORK...]",
    "network connect": "network connect [OPTIONS] NETWORK CONTAINER",
    "network disconnect": "network disconnect [OPTIONS] NETWORK CONTAINER",
    "network prune": "network prune [OPTIONS]",
    "volume": "volume COMMAND",
    "volume create": "volume create [OPTIONS] [VOLUME]",
    "volume ls": "volume ls [OPTIONS]",
    "volume inspect": "volume inspect [OPTIONS] VOLUME [VOLUME...]",
    "volume rm": "volume rm [OPTIONS] VOLUME [VOLUME...]",
    "volume prune": "volume prune [OPTIONS]",
    "import": "import [OPTIONS] file|URL|- [REPOSITORY[:TAG]]",
    "history": "history [OPTIONS] IMAGE",
    "save": "save [OPTIONS] IMAGE [IMAGE...]",
    "load": "load [OPTIONS]",
    "pull": "pull [OPTIONS] NAME[:TAG|@DIGEST]",
    "push": "push [OPTIONS] NAME[:TAG]",
    "login": "login [OPTIONS] [SERVER]",
    "logout": "logout [SERVER]",
    "version": "version [OPTIONS]",
    "info": "info [OPTIONS]",
    "events": "events [OPTIONS]",
    "system": "system",
    "system df": "system df [OPTIONS]",
    "system events": "system events [OPTIONS]",
    "system info": "system info [OPTIONS]",
    "system prune": "system prune [OPTIONS]",
    "context": "context",
    "context create": "context create [OPTIONS] CONTEXT",
    "context update": "context update [OPTIONS] CONTEXT",
    "context ls": "context ls [OPTIONS]",
    "context list": "context ls [OPTIONS]",
    "context inspect": "context inspect [OPTIONS] [CONTEXT] [CONTEXT...]",
    "context rm": "context rm CONTEXT [CONTEXT...]",
    "context remove": "context rm CONTEXT [CONTEXT...]",
    "context use": "context use CONTEXT",
    "context show": "context show",
    "context export": "context export [OPTIONS] CONTEXT [FILE|-]",
    "context import": "context import CONTEXT FILE|-",
    "container": "container",
    "container attach": "container attach [OPTIONS] CONTAINER",
    "container commit": "container commit [OPTIONS] CONTAINER [REPOSITORY[:TAG]]",
    "container cp": (
        "container cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n\t"
        "{prog} cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH"  # sic: docker's second line
    ),
    "container create": "container create [OPTIONS] IMAGE [COMMAND] [ARG...]",
    "container diff": "container diff CONTAINER",
    "container exec": "container exec [OPTIONS] CONTAINER COMMAND [ARG...]",
    "container export": "container export [OPTIONS] CONTAINER",
    "container kill": "container kill [OPTIONS] CONTAINER [CONTAINER...]",
    "container logs": "container logs [OPTIONS] CONTAINER",
    "container pause": "container pause CONTAINER [CONTAINER...]",
    "container port": "container port CONTAINER [PRIVATE_PORT[/PROTO]]",
    "container rename": "container rename CONTAINER NEW_NAME",
    "container restart": "container restart [OPTIONS] CONTAINER [CONTAINER...]",
    "container run": "container run [OPTIONS] IMAGE [COMMAND] [ARG...]",
    "container start": "container start [OPTIONS] CONTAINER [CONTAINER...]",
    "container stats": "container stats [OPTIONS] [CONTAINER...]",
    "container stop": "container stop [OPTIONS] CONTAINER [CONTAINER...]",
    "container top": "container top CONTAINER [ps OPTIONS]",
    "container unpause": "container unpause CONTAINER [CONTAINER...]",
    "container update": "container update [OPTIONS] CONTAINER [CONTAINER...]",
    "container wait": "container wait CONTAINER [CONTAINER...]",
    "container inspect": "container inspect [OPTIONS] CONTAINER [CONTAINER...]",
    "container ls": "container ls [OPTIONS]",
    "container list": "container ls [OPTIONS]",
    "container ps": "container ls [OPTIONS]",
    "container prune": "container prune [OPTIONS]",
    "container rm": "container rm [OPTIONS] CONTAINER [CONTAINER...]",
    "container remove": "container rm [OPTIONS] CONTAINER [CONTAINER...]",
    "image": "image",
    "image build": "image build [OPTIONS] PATH | URL | -",
    "image history": "image history [OPTIONS] IMAGE",
    "image import": "image import [OPTIONS] file|URL|- [REPOSITORY[:TAG]]",
    "image load": "image load [OPTIONS]",
    "image pull": "image pull [OPTIONS] NAME[:TAG|@DIGEST]",
    "image push": "image push [OPTIONS] NAME[:TAG]",
    "image save": "image save [OPTIONS] IMAGE [IMAGE...]",
    "image tag": "image tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
    "image inspect": "image inspect [OPTIONS] IMAGE [IMAGE...]",
    "image ls": "image ls [OPTIONS] [REPOSITORY[:TAG]]",
    "image list": "image ls [OPTIONS] [REPOSITORY[:TAG]]",
    "image prune": "image prune [OPTIONS]",
    "image rm": "image rm [OPTIONS] IMAGE [IMAGE...]",
    "image remove": "image rm [OPTIONS] IMAGE [IMAGE...]",
}


class UsageError(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def _path(parser: argparse.ArgumentParser) -> list[str]:
    return parser.prog.split()[1:]


def command_path(path: Sequence[str]) -> str:
    """cmd.CommandPath(): the canonical command (an alias's own name is not shown)."""
    use = USE.get(" ".join(path))
    words = use.split()[: len(path)] if use else list(path)
    return " ".join([PROGRAM, *words])


def use_line(path: Sequence[str]) -> str:
    use = USE.get(" ".join(path))
    return f"{PROGRAM} {use.format(prog=PROGRAM)}" if use else " ".join([PROGRAM, *path])


def flag_error(path: Sequence[str], text: str) -> UsageError:
    """cli.FlagErrorFunc: pflag's message, the usage line, status 125."""
    where = command_path(path) if path else PROGRAM
    usage = use_line(path) if path else f"{PROGRAM} [OPTIONS] COMMAND [ARG...]"
    return UsageError(
        f"{text}\n\nUsage:  {usage}\n\nRun '{where} --help' for more information", 125
    )


def unknown_flag(path: Sequence[str], word: str) -> UsageError:
    if word.startswith("--"):
        return flag_error(path, f"unknown flag: {word.split('=', 1)[0]}")
    return flag_error(path, f"unknown shorthand flag: {word[1]!r} in {word}")


# Commands whose arguments cobra's own ExactArgs checks (its wording, no usage line).
COBRA_EXACT = {"context use"}


def arity_error(path: Sequence[str], low: int, high: int | None, count: int = 0) -> UsageError:
    """cli/required.go's validators, each with its own wording (RequiresMaxArgs' "SRun" is
    docker's own typo, kept: scripts compare this text)."""
    if " ".join(path) in COBRA_EXACT:
        return UsageError(f"accepts {low} arg(s), received {count}", 1)
    cmd = command_path(path)
    usage = use_line(path)

    def plural(n: int) -> str:
        return "argument" if n == 1 else "arguments"

    if high == 0:
        text, see = f"'{cmd}' accepts no arguments", "Run"
    elif high is None:
        text, see = f"'{cmd}' requires at least {low} {plural(low)}", "See"
    elif low == high:
        text, see = f"'{cmd}' requires {low} {plural(low)}", "Run"
    elif low == 0:
        text, see = f"'{cmd}' requires at most {high} {plural(high)}", "SRun"
    else:
        text, see = f"'{cmd}' requires at least {low} and at most {high} {plural(high)}", "Run"
    return UsageError(
        f"{PROGRAM}: {text}\n\nUsage:  {usage}\n\n{see} '{cmd} --help' for more information", 1
    )


def unknown_command(path: Sequence[str], word: str) -> UsageError:
    if not path:
        return UsageError(
            f"{PROGRAM}: unknown command: {PROGRAM} {word}\n\n"
            f"Run '{PROGRAM} --help' for more information",
            1,
        )
    cmd = command_path(path)
    return UsageError(
        f"{PROGRAM}: unknown command: {cmd} {word}\n\nUsage:  {use_line(path)}\n\n"
        f"Run '{cmd} --help' for more information",
        1,
    )


def _flag_label(action: argparse.Action) -> str:
    """pflag names a flag "-n, --last" (shorthand first) or "--last"."""
    longs = [o for o in action.option_strings if o.startswith("--") and "=" not in o]
    shorts = [o for o in action.option_strings if len(o) == 2 and o[0] == "-"]
    label = longs[-1] if longs else action.option_strings[0]  # stop's --time is an alias
    return f"{shorts[0]}, {label}" if shorts and longs else label


_PARSE_ERRORS = {int: "strconv.ParseInt", float: "strconv.ParseFloat"}


def _action(parser: argparse.ArgumentParser, names: str) -> argparse.Action | None:
    for name in names.split("/"):
        found = parser._option_string_actions.get(name)
        if found is not None:
            return found
    return None


def _spelled(action: argparse.Action, argv: Sequence[str]) -> str:
    """The spelling of the flag the user typed last (`-n` or `--last`)."""
    for word in reversed(argv):
        if word in action.option_strings:
            return word
    return action.option_strings[0]


def after(path: Sequence[str], argv: Sequence[str]) -> list[str]:
    """The words after the command's own (global options such as -H come before them)."""
    i = 0
    for word in path:
        if word in argv[i:]:  # an alias typed is not the path's word: it stays in the rest
            i = argv.index(word, i) + 1
    return list(argv[i:])


def first_unknown_flag(parser: argparse.ArgumentParser, words: Sequence[str]) -> str | None:
    """The first word that is a flag this parser does not know, as pflag finds it (it parses
    every flag before the arguments are counted)."""
    for word in words:
        if word == "--":
            return None
        if not word.startswith("-") or word == "-":
            continue
        name = word.split("=", 1)[0]
        if name in parser._option_string_actions:
            continue
        if not word.startswith("--") and word[:2] in parser._option_string_actions:
            continue  # -n5, -it: a short flag with its value or its neighbours
        return word
    return None


def translate(
    parser: argparse.ArgumentParser,
    message: str,
    argv: Sequence[str],
    low_high: tuple[int, int | None],
) -> UsageError:
    """argparse's complaint (ArgumentParser.error's message) as docker CLI 28's error."""
    path = _path(parser)
    if m := re.match(r"argument (\S+): expected one argument", message):
        action = _action(parser, m.group(1))
        if action is not None:
            word = _spelled(action, argv)
            if word.startswith("--"):
                return flag_error(path, f"flag needs an argument: {word}")
            return flag_error(path, f"flag needs an argument: {word[1]!r} in {word}")
    m = re.match(r"argument (\S+): invalid (\w+) value: '(.*)'$", message) or re.match(
        r"argument (\S+): ignored (explicit) argument '(.*)'$", message
    )
    if m and (action := _action(parser, m.group(1))) is not None:
        value = m.group(3)
        kind = getattr(action, "type", None)
        if m.group(2) == "explicit":  # a value given to a boolean flag
            why = f'strconv.ParseBool: parsing "{value}": invalid syntax'
        elif kind in _PARSE_ERRORS:
            why = f'{_PARSE_ERRORS[kind]}: parsing "{value}": invalid syntax'
        else:
            why = "invalid value"
        label = _flag_label(action)
        return flag_error(path, f'invalid argument "{value}" for "{label}" flag: {why}')
    if m := re.match(r"argument COMMAND: invalid choice: '(.*?)'", message):
        return unknown_command(path, m.group(1))
    if message.startswith("the following arguments are required"):
        unknown = first_unknown_flag(parser, after(path, argv))
        if unknown is not None:
            return unknown_flag(path, unknown)
        return arity_error(path, *low_high)
    return flag_error(path, message)
