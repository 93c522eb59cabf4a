"""The inline cache's record (builder/inlinecache.py) on plain values."""

from __future__ import annotations

import json

from dockyard.builder.inlinecache import CONFIG_KEY, keys_of_chain, recorded_keys, with_keys


def test_keys_land_on_the_entry_each_step_added() -> None:
    # base with 2 entries; steps adding entries 3 and 4; a quiet step (a label) adding none
    chain = [(4, 4, "k-label"), (4, 3, "k4"), (3, 2, "k3"), (2, 0, None)]
    assert keys_of_chain(4, chain) == ["", "", "k3", "k4"]


def test_record_round_trip_and_foreign_shapes() -> None:
    raw = json.dumps({"architecture": "amd64", "history": []}).encode()
    doc = json.loads(with_keys(raw, ["", "k"]))
    assert doc["architecture"] == "amd64" and recorded_keys(doc) == ["", "k"]
    assert recorded_keys({}) is None
    assert recorded_keys({CONFIG_KEY: {"layers": []}}) is None  # not ours: no cache source
    assert recorded_keys({"moby.buildkit.cache.v0": "e30="}) is None
