"""The last listing a kept context was synced to, remembered so an unchanged one costs nothing.

A cached rebuild's sync used to parse the client's 5,000 STAT packets, stat the kept tree's
5,000 entries and compare the two, only to find nothing to do: 150 ms of the daemon's CPU
of a 5,000-file context (py-spy, bench row f), more than BuildKit's whole rebuild. The kept
tree is the daemon's own (contexts.py: one sync at a time, nothing else writes it, a layer
that shares its files links them and never writes them), so once a sync has made the tree
match a listing, the same listing again, byte for byte, finds the same tree: nothing is
parsed, stat'ed, requested or written. The memo holds digests of the listing's raw STAT
packets in groups (a few hundred bytes, never the listing itself); a group that differs
is noticed while the listing is still arriving, so the kept tree's stat walk can start
then. The memo lives in memory only (a restarted daemon compares the tree once), is
forgotten before a sync touches the tree and set again only when a sync has finished.
BuildKit trusts its kept copy the same way (its content-hash cache is not re-checked
against the files).
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field

GROUP = 256  # STAT packets per digest


def _group_digest(raws: list[bytes]) -> bytes:
    # the lengths first: the packets' boundaries are part of what is compared
    lens = struct.pack(f"<{len(raws)}I", *map(len, raws))
    return hashlib.sha256(lens + b"".join(raws)).digest()


@dataclass
class ListingMemo:
    """What the kept tree matches, if anything is known (`groups` empty: nothing)."""

    groups: list[bytes] = field(default_factory=list)
    count: int = 0  # STAT packets
    whole_seconds: bool = False  # stored for the legacy builder (wholeseconds.py)
    entries: int = 0  # SyncResult's, as that sync found them
    disk_bytes: int = 0

    def known(self) -> bool:
        return bool(self.groups)

    def forget(self) -> None:
        self.groups = []
        self.count = 0


class ListingDigest:
    """The digests of a listing as its packets arrive, and whether they still follow `memo`'s."""

    def __init__(self, memo: ListingMemo | None, whole_seconds: bool) -> None:
        self.memo = memo
        self.groups: list[bytes] = []
        self.count = 0
        self._group: list[bytes] = []
        self.matching = memo is not None and memo.known() and memo.whole_seconds == whole_seconds

    def add(self, raw: bytes) -> bool:
        """One more STAT packet; False once the listing differs from the memo's."""
        self._group.append(raw)
        self.count += 1
        if len(self._group) == GROUP:
            self._close_group()
        return self.matching

    def _close_group(self) -> None:
        digest = _group_digest(self._group)
        self._group = []
        j = len(self.groups)
        self.groups.append(digest)
        if self.matching:
            assert self.memo is not None
            self.matching = j < len(self.memo.groups) and self.memo.groups[j] == digest

    def end(self) -> bool:
        """The listing is complete: is it the memo's?"""
        if self._group or not self.groups:
            self._close_group()
        if self.matching:
            assert self.memo is not None
            self.matching = self.count == self.memo.count and len(self.groups) == len(
                self.memo.groups
            )
        return self.matching

    def remember(self, memo: ListingMemo, whole_seconds: bool, entries: int, disk: int) -> None:
        memo.groups = self.groups
        memo.count = self.count
        memo.whole_seconds = whole_seconds
        memo.entries = entries
        memo.disk_bytes = disk
