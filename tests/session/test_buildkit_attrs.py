"""BuildKit's frontend attributes as buildx 0.13 sends them, read as BuildOptions
(engine/buildkit_attrs.py): each honoured, passed (no effect on the image) or refused by name."""

from __future__ import annotations

import pytest

from dockyard.engine.buildkit_attrs import frontend_request
from dockyard.errors import NotSupported


def test_honoured_attributes() -> None:
    fe = frontend_request(
        {
            "filename": "Build.df",
            "target": "final",
            "build-arg:A": "1",
            "label:team": "dock",
            "no-cache": "",
            "image-resolve-mode": "pull",
            "add-hosts": "h:10.0.0.1",
            "force-network-mode": "none",
            "cache-imports": '[{"Type":"registry","Attrs":{"ref":"img:cache"}}]',
            "context": "http://buildkit-session/abc",
            "dockerfilekey": "dockerfile",
        },
        entitlements=[],
    )
    o = fe.opts
    assert (o.dockerfile, o.target, o.build_args, o.labels) == (
        "Build.df",
        "final",
        {"A": "1"},
        {"team": "dock"},
    )
    assert o.no_cache and o.pull and o.network == "none" and o.cache_from == ["img:cache"]
    assert fe.context_upload == "http://buildkit-session/abc"


def test_git_facts_of_a_work_tree_pass() -> None:
    # what buildx adds for a context inside a git work tree (build/git.go)
    fe = frontend_request(
        {
            "vcs:source": "https://example.com/x.git",
            "vcs:revision": "0" * 40,
            "vcs:localdir:context": "examples/app",
            "vcs:localdir:dockerfile": "examples/app",
        },
        entitlements=[],
    )
    assert fe.opts.labels == {} and fe.opts.build_args == {}


@pytest.mark.parametrize(
    ("attrs", "words"),
    [
        ({"shm-size": "67108864"}, "--shm-size for builds"),
        ({"no-cache": "build"}, "--no-cache-filter"),
        ({"context:x": "docker-image://busybox"}, "named build context x"),
        ({"attest:provenance": "mode=min"}, "attestations (attest:provenance)"),
        ({"platform": "linux/s390x"}, "build platform linux/s390x"),
        ({"build-arg:BUILDKIT_SYNTAX": "foo/bar"}, "frontend image foo/bar"),
        ({"dockerfilekey": "other"}, "named source other"),
        ({"context": "https://example.com/x.tar"}, "build context https://example.com/x.tar"),
        ({"cache-imports": '[{"Type":"local","Attrs":{"src":"/x"}}]'}, "type=local"),
        ({"some-new-key": "v"}, "build option some-new-key=v"),
    ],
)
def test_refused_by_name(attrs: dict[str, str], words: str) -> None:
    with pytest.raises(NotSupported) as err:
        frontend_request(attrs, entitlements=[])
    assert words in str(err.value) and "not supported" in str(err.value)
