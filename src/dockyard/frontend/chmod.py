"""COPY/ADD `--chmod`: an octal mode, or a symbolic one as chmod(1) writes it.

BuildKit's Dockerfile frontend takes symbolic modes since dockerfile 1.14 (moby/buildkit
165f8b441; fsutil applies them per copied entry with a umask of 0, BSD setmode's rules):
`u+x`, `go-w`, `a=r`, `=rw,+X`, `u=g` … Each copied file and directory gets the clauses
applied to its own mode; symlinks keep theirs. dockerd 26.1's BuildKit 0.13 and 20.10's 0.8
accept such a value and ignore it (their frontend parses octal only and drops what fails,
measured); dockyard applies it, as BuildKit does since, rather than ignore a setting.

Grammar (POSIX chmod): `clause[,clause…]`, a clause is `[ugoa]*` then one or more actions,
an action is an operator `+`, `-` or `=` then either permission letters `[rwxXst]*` or one
class to copy (`u`, `g` or `o`). No `who` means all three classes (umask 0). `X` is execute
for a directory or for a file that had an execute bit before. `s` is setuid for `u` and
setgid for `g`; `t` is the sticky bit unless the clause names only `o`. `=` clears the
classes' rwx (and setuid for `u`, setgid for `g`; the sticky bit only when `t` is written).
"""

from __future__ import annotations

import stat
from dataclasses import dataclass

_SHIFT = {"u": 6, "g": 3, "o": 0}
_LETTERS = frozenset("rwxXst")


class ChmodError(ValueError):
    """A --chmod value that is neither octal nor a valid symbolic mode."""


@dataclass(frozen=True)
class _Action:
    op: str  # "+", "-" or "="
    perms: str  # letters of rwxXst, or "" with `copy`
    copy: str = ""  # "u", "g" or "o": the class whose bits are copied


@dataclass(frozen=True)
class _Clause:
    classes: str  # some of "ugo"
    who_written: bool  # False: no `who` was written (all classes)
    actions: tuple[_Action, ...]


@dataclass(frozen=True)
class Chmod:
    """A parsed --chmod: `octal` when numeric, else the symbolic clauses."""

    text: str
    octal: int | None = None
    clauses: tuple[_Clause, ...] = ()

    def apply(self, mode: int, is_dir: bool) -> int:
        """The permission bits (with setuid/setgid/sticky) an entry of `mode` gets."""
        if self.octal is not None:
            return self.octal
        original = stat.S_IMODE(mode)
        new = original
        for clause in self.clauses:
            for action in clause.actions:
                new = _apply_action(clause, action, original, new, is_dir)
        return new


def _class_bits(classes: str, rwx: int) -> int:
    return sum(rwx << _SHIFT[c] for c in classes)


def _apply_action(clause: _Clause, action: _Action, original: int, new: int, is_dir: bool) -> int:
    classes = clause.classes
    clear = _class_bits(classes, 0o7)
    if action.copy:
        value = _class_bits(classes, (new >> _SHIFT[action.copy]) & 0o7)
        special = 0
    else:
        rwx = 0
        special = 0
        for ch in action.perms:
            if ch == "r":
                rwx |= 0o4
            elif ch == "w":
                rwx |= 0o2
            elif ch == "x":
                rwx |= 0o1
            elif ch == "X":
                if is_dir or original & 0o111:
                    rwx |= 0o1
            elif ch == "s":
                special |= (stat.S_ISUID if "u" in classes else 0) | (
                    stat.S_ISGID if "g" in classes else 0
                )
            elif ch == "t" and (not clause.who_written or classes != "o"):
                special |= stat.S_ISVTX
        value = _class_bits(classes, rwx)
        if action.op == "=":
            clear |= (stat.S_ISUID if "u" in classes else 0) | (
                stat.S_ISGID if "g" in classes else 0
            )
            if "t" in action.perms:
                clear |= stat.S_ISVTX
    if action.op == "+":
        return new | value | special
    if action.op == "-":
        return new & ~(value | special)
    return (new & ~clear) | value | special


def _invalid(text: str, why: str) -> ChmodError:
    return ChmodError(f"invalid chmod parameter: '{text}'. {why}")


def parse_chmod(text: str) -> Chmod:
    """A --chmod value; the errors are BuildKit's (dockerfile 1.14+) words."""
    if text[:1].isdigit():
        try:
            mode = int(text, 8)
        except ValueError:
            mode = -1
        if not 0 <= mode <= 0o7777:
            raise _invalid(text, "it should be octal string and between 0 and 07777")
        return Chmod(text, octal=mode)
    clauses: list[_Clause] = []
    for part in text.split(","):
        i = 0
        while i < len(part) and part[i] in "ugoa":
            i += 1
        who = part[:i]
        classes = "ugo" if not who or "a" in who else "".join(c for c in "ugo" if c in who)
        actions: list[_Action] = []
        rest = part[i:]
        if not rest or rest[0] not in "+-=":
            raise _invalid(text, "invalid syntax")
        while rest:
            op, rest = rest[0], rest[1:]
            if op not in "+-=":
                raise _invalid(text, "invalid syntax")
            if rest[:1] in ("u", "g", "o"):
                actions.append(_Action(op, "", rest[0]))
                rest = rest[1:]
                continue
            j = 0
            while j < len(rest) and rest[j] in _LETTERS:
                j += 1
            actions.append(_Action(op, rest[:j]))
            rest = rest[j:]
        clauses.append(_Clause(classes, bool(who), tuple(actions)))
    return Chmod(text, clauses=tuple(clauses))
