"""`system df --verbose`'s build cache table from a fixed /system/df document (pure logic;
test_flag_runs_vs_docker.py compares the whole output with docker CLI 28 on a daemon)."""

from __future__ import annotations

from dockyard.cli.disk_usage import render, verbose_document

NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z


def _rec(ident: str, last_used: str | None, in_use: bool = False, size: int = 1500) -> dict:
    return {
        "ID": ident,
        "Parents": None,
        "Type": "exec.cachemount",
        "Description": "cached mount from exec",
        "InUse": in_use,
        "Shared": False,
        "Size": size,
        "CreatedAt": "2027-01-15T07:00:00.120000Z",
        "LastUsedAt": last_used,
        "UsageCount": 2,
    }


def test_cache_rows_sort_by_last_use_and_mark_the_one_in_use() -> None:
    doc = {
        "BuildCache": [
            _rec("c" * 32, "2027-01-15T07:59:00Z"),
            _rec("b" * 32, "2027-01-15T07:30:00Z", in_use=True),
            _rec("a" * 32, None),
        ]
    }
    rows = verbose_document(doc, trunc=True, now=NOW).cache
    # buildCacheSort: never used first, then oldest use first
    assert [r.ID() for r in rows] == ["a" * 12, "b" * 12 + "*", "c" * 12]
    assert [r.LastUsedSince() for r in rows] == ["", "30 minutes ago", "About a minute ago"]
    assert rows[0].CreatedAt() == "2027-01-15 07:00:00.12 +0000 UTC"
    assert rows[1].Size() == "1.5kB"
    text = render(doc, None, verbose=True, now=NOW)
    # the total is the CLI's own sum of the records not shared; one tabwriter per table
    assert text.endswith(
        "\nBuild cache usage: 4.5kB\n\n"
        "CACHE ID        CACHE TYPE        SIZE      CREATED          LAST USED            "
        "USAGE     SHARED\n"
        "aaaaaaaaaaaa    exec.cachemount   1.5kB     59 minutes ago                        "
        "2         false\n"
        "bbbbbbbbbbbb*   exec.cachemount   1.5kB     59 minutes ago   30 minutes ago       "
        "2         false\n"
        "cccccccccccc    exec.cachemount   1.5kB     59 minutes ago   About a minute ago   "
        "2         false\n"
    )


def test_a_dangling_image_shows_as_none() -> None:
    doc = {
        "Images": [
            {
                "Id": "sha256:" + "1" * 64,
                "RepoTags": ["<none>:<none>"],
                "RepoDigests": ["<none>@<none>"],
                "Created": NOW,
                "Size": 3,
                "SharedSize": 0,
                "Containers": 0,
            },
            {
                "Id": "sha256:" + "2" * 64,
                "RepoTags": ["docker.io/library/x:1"],
                "RepoDigests": [],
                "Created": NOW,
                "Size": 3,
                "SharedSize": -1,
                "Containers": -1,
            },
        ]
    }
    rows = verbose_document(doc, trunc=True, now=NOW).images
    assert [(r.Repository(), r.Tag()) for r in rows] == [("<none>", "<none>"), ("x", "1")]
    assert (rows[1].SharedSize(), rows[1].UniqueSize(), rows[1].Containers()) == (
        "N/A",
        "N/A",
        "N/A",
    )
