"""Docker-style random container names (`adjective_surname`), as moby's namesgenerator."""

from __future__ import annotations

import secrets
from collections.abc import Callable

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
