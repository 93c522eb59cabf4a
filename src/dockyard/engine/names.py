"""Container names: Docker's rule for a valid one, and random ones (`adjective_surname`) as
moby's namesgenerator makes them."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable

from dockyard.errors import InvalidArgument

# moby daemon/names: `^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$` (ASCII only, two characters at least,
# one optional leading slash). fullmatch, because Python's `$` also matches before a
# trailing newline.
_VALID_NAME = re.compile(r"/?[a-zA-Z0-9][a-zA-Z0-9_.-]+")


def valid_name(name: str) -> str:
    """`name` without its leading slash, or InvalidArgument in dockerd's words."""
    if not _VALID_NAME.fullmatch(name):
        raise InvalidArgument(
            f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )
    return name.removeprefix("/")


_LEFT = (
    "admiring",
    "agitated",
    "amazing",
    "bold",
    "brave",
    "busy",
    "charming",
    "clever",
    "cool",
    "dazzling",
    "eager",
    "elastic",
    "epic",
    "festive",
    "focused",
    "gallant",
    "gifted",
    "happy",
    "hopeful",
    "jolly",
    "keen",
    "kind",
    "loving",
    "modest",
    "nifty",
    "optimistic",
    "pensive",
    "quirky",
    "relaxed",
    "serene",
    "sharp",
    "stoic",
    "sweet",
    "tender",
    "vibrant",
    "wizardly",
    "youthful",
    "zealous",
)
_RIGHT = (
    "albattani",
    "babbage",
    "bohr",
    "curie",
    "darwin",
    "dijkstra",
    "einstein",
    "euclid",
    "fermat",
    "feynman",
    "galileo",
    "hamilton",
    "hopper",
    "hypatia",
    "kepler",
    "knuth",
    "lamport",
    "lovelace",
    "mccarthy",
    "meitner",
    "newton",
    "noether",
    "pascal",
    "ritchie",
    "shannon",
    "thompson",
    "torvalds",
    "turing",
    "wozniak",
    "yonath",
)


def random_name(taken: Callable[[str], bool]) -> str:
    for attempt in range(100):
        name = f"{secrets.choice(_LEFT)}_{secrets.choice(_RIGHT)}"
        if attempt > 10:
            name += str(secrets.randbelow(10))
        if not taken(name):
            return name
    return f"container_{secrets.token_hex(4)}"
