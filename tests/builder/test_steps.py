"""Fast tests of the builder's logic on fakes (no root, no runc, no overlay): the history
text of every instruction, cache keys and their explanation, progress events, semantics."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest

from dockyard.builder.cachelog import StepInputs, explain_miss
from dockyard.builder.semantics import BUILDKIT, Semantics
from dockyard.errors import BuildFailure, DockyardError
from tests.builder.fakes import FakeBuild, RecordingProgress


@pytest.fixture
def fb(tmp_path: Path) -> FakeBuild:
    return FakeBuild(tmp_path)


def _text(messages: list[dict[str, Any]]) -> str:
    return "".join(str(m.get("stream", "")) for m in messages)


def _checks(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m["aux"]["cache"] for m in messages if "cache" in m.get("aux", {})]


ALL = """\
FROM busybox
ARG A=1
ENV E=$A F="x y"
LABEL l=$A
RUN echo $A > /a
WORKDIR /w
WORKDIR sub
COPY --chown={uid}:{gid} f ./
USER daemon
EXPOSE 90-91/udp 80
VOLUME /v
SHELL ["/bin/sh", "-ec"]
STOPSIGNAL SIGKILL
HEALTHCHECK --interval=5m --retries=3 CMD echo ok
ONBUILD RUN echo trig
MAINTAINER me
CMD ["x"]
ENTRYPOINT echo
"""


def test_history_text_of_every_instruction(fb: FakeBuild) -> None:
    import os

    uid, gid = os.getuid(), os.getgid()
    image_id, _ = fb.build(ALL.format(uid=uid, gid=gid), {"f": "f\n"})
    history = [re.sub(r"file:[0-9a-f]{64}", "file:<hash>", h) for h in fb.history(image_id)]
    assert history == [
        "base",
        "/bin/sh -c #(nop)  ARG A=1",
        "/bin/sh -c #(nop)  ENV E=1 F=x y",
        "/bin/sh -c #(nop)  LABEL l=1",
        "|1 A=1 /bin/sh -c echo $A > /a",
        "/bin/sh -c #(nop) WORKDIR /w",
        "/bin/sh -c #(nop) WORKDIR /w/sub",
        f"/bin/sh -c #(nop) COPY --chown={uid}:{gid}file:<hash> in ./ ",
        "/bin/sh -c #(nop)  USER daemon",
        "/bin/sh -c #(nop)  EXPOSE 80 90-91/udp",
        "/bin/sh -c #(nop)  VOLUME [/v]",
        "/bin/sh -ec #(nop)  SHELL [/bin/sh -ec]",  # the new shell names itself, as Docker
        "/bin/sh -ec #(nop)  STOPSIGNAL SIGKILL",
        '/bin/sh -ec #(nop)  HEALTHCHECK &{["CMD-SHELL" "echo ok"] "5m0s" "0s" "0s" \'\\x03\'}',
        "/bin/sh -ec #(nop)  ONBUILD RUN echo trig",
        "/bin/sh -ec #(nop)  MAINTAINER me",
        '/bin/sh -ec #(nop)  CMD ["x"]',
        '/bin/sh -ec #(nop)  ENTRYPOINT ["/bin/sh" "-ec" "echo"]',
    ]
    cfg = fb.images.config(image_id)
    empty = [bool(h.get("empty_layer")) for h in cfg.history]
    # the fake RUN writes nothing: no layer, as Docker records `RUN true`
    assert [i for i, e in enumerate(empty) if not e] == [0, 5, 6, 7]
    c = cfg.container_config
    assert (c["WorkingDir"], c["User"], c["Cmd"], c["StopSignal"]) == (
        "/w/sub",
        "daemon",
        ["x"],  # a CMD of this stage survives ENTRYPOINT
        "SIGKILL",
    )
    assert cfg.doc["author"] == "me"
    (run,) = fb.runner.runs
    assert run.argv == ["/bin/sh", "-c", "echo $A > /a"]
    assert run.env == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                       "E=1", "F=x y", "A=1"]  # fmt: skip
    assert (run.workdir, run.network) == ("/", "host")


def test_a_second_build_hits_every_step_and_runs_nothing(fb: FakeBuild) -> None:
    df = "FROM busybox\nENV A=1\nRUN make\nWORKDIR /w\nCOPY f /f\n"
    first, msgs = fb.build(df, {"f": "1"})
    assert "Using cache" not in _text(msgs)
    again, msgs = fb.build(df, {"f": "1"})
    assert again == first
    assert _text(msgs).count(" ---> Using cache\n") == 4
    assert len(fb.runner.runs) == 1 and len(fb.rootfs.mounted) == 3
    # no init layer for COPY: it sees only the image
    assert [init for _, init in fb.rootfs.mounted] == [True, True, False]


def test_build_args_reach_the_key_only_through_what_they_change(fb: FakeBuild) -> None:
    df = "FROM busybox\nARG A\nCOPY f /f\nRUN true\n"
    fb.build(df, {"f": "1"}, build_args={"A": "1"})
    _, msgs = fb.build(df, {"f": "1"}, build_args={"A": "2"}, explain_cache=True)
    checks = _checks(msgs)
    assert [c["hit"] for c in checks] == [True, True, False]  # ARG, COPY hit; RUN sees A
    assert checks[2]["reasons"] == [
        "build arg A changed: '1' -> '2'",
        "instruction changed: '|1 A=1 /bin/sh -c true' -> '|1 A=2 /bin/sh -c true'",
    ]


def test_the_network_in_the_key_is_the_effective_one(fb: FakeBuild) -> None:
    df = "FROM busybox\nRUN fetch\n"
    fb.build(df)
    _, msgs = fb.build(df, network="host", explain_cache=True)
    assert [c["hit"] for c in _checks(msgs)] == [True]
    _, msgs = fb.build(df, network="none", explain_cache=True)
    assert _checks(msgs)[0]["reasons"] == ["network changed: 'host' -> 'none'"]
    # the flag spelling the same network is the same step (the history shows no flags)
    _, msgs = fb.build("FROM busybox\nRUN --network=host fetch\n", explain_cache=True)
    assert [c["hit"] for c in _checks(msgs)] == [True]
    _, msgs = fb.build("FROM busybox\nRUN --network=none fetch\n", explain_cache=True)
    assert [c["hit"] for c in _checks(msgs)] == [True]
    assert [r.network for r in fb.runner.runs] == ["host", "none"]


def test_every_input_of_the_key_is_named_when_it_changes() -> None:
    base = StepInputs(
        "sha256:aa",
        "RUN x",
        {"A": "1"},
        {"f": "sha256:11"},
        history="/bin/sh -c x",
        options={"network": "host"},
        config={"Env": ["A=1"]},
        author="me",
        semantics="legacy",
    )
    changed = {
        "parent": "sha256:bb",
        "instruction": "RUN y",
        "files": {"f": "sha256:22"},
        "history": "/bin/sh -c y",
        "options": {"network": "none"},
        "config": {"Env": ["A=2"]},
        "author": "you",
        "semantics": "buildkit",
    }
    fields = {f.name for f in dataclasses.fields(StepInputs)}
    assert fields - changed.keys() == {"args"}  # every other field is an input of the key
    gone = "inputs unchanged but the cached image is gone (removed or pruned)"
    for name, value in changed.items():
        new = dataclasses.replace(base, **{name: value})
        assert new.key() != base.key(), name
        reasons = explain_miss(base, new, no_cache=False)
        assert reasons != [gone] and len(reasons) == 1, (name, reasons)
    # build args alone are not an input: they reach the key through the instruction
    assert dataclasses.replace(base, args={"A": "2"}).key() == base.key()
    assert explain_miss(base, base, False) == [gone]
    # a record of the previous key format cannot be compared: it explains nothing
    assert StepInputs.from_json(base.to_json()) == base
    assert StepInputs.from_json({"parent": "sha256:aa", "instruction": "RUN x"}) is None


def test_semantics_are_part_of_the_key_and_render_the_history(fb: FakeBuild) -> None:
    df = "FROM busybox\nENV A=1\n"
    fb.build(df)

    class Other(Semantics):
        def config_history(self, shell: Any, comment: str) -> str:
            return comment

    image_id, msgs = fb.build(df, semantics=Other(name="other"), explain_cache=True)
    assert _checks(msgs)[0]["reasons"] == ["builder changed: legacy -> other"]
    assert fb.history(image_id)[-1] == "ENV A=1"


def test_progress_events_of_a_step(fb: FakeBuild) -> None:
    fb.runner.output = b"made\n"
    df = "FROM busybox\nRUN make\nCOPY f /f\n"
    (fb.context / "f").write_text("1")
    p = RecordingProgress()
    fb.build_with(df, p)
    assert p.kinds("FROM busybox") == ["started", "done"]
    assert p.kinds("RUN make") == ["started", "running", "log", "removed", "done"]
    assert p.kinds("COPY f /f") == ["started", "done"]  # no container for COPY
    assert p.events[0] == ("planned", "", ([0], 3))
    assert [e[0] for e in p.events[-3:]] == ["stage_finished", "stages_ended", "finished"]
    p = RecordingProgress()
    fb.build_with(df, p)
    assert p.kinds("RUN make") == ["started", "cached"]


def test_a_failed_step_names_its_line(fb: FakeBuild) -> None:
    fb.runner.code = 3
    p = RecordingProgress()
    with pytest.raises(BuildFailure) as err:
        fb.build_with("FROM busybox\n\nRUN exit 3\n", p)
    message = "Dockerfile:3: The command '/bin/sh -c exit 3' returned a non-zero code: 3"
    assert str(err.value) == message
    assert p.kinds("RUN exit 3") == ["started", "running", "error"]
    assert ("error", "RUN exit 3", message) in p.events
    assert not fb.images.tags.keys() - {"docker.io/library/busybox:latest"}
    # its container stays (rm without forcerm; builder/kept.py), running the step's command
    [kept] = fb.containers.kept
    assert (kept.exit_code, kept.config["Cmd"]) == (3, ["/bin/sh", "-c", "exit 3"])
    assert kept.id == next(e[2] for e in p.events if e[0] == "running")


@pytest.mark.parametrize(
    ("options", "kept", "removed"),
    [
        ({}, [], ["ENV A=1", "RUN make"]),
        ({"force_rm": True}, [], ["ENV A=1", "RUN make"]),
        ({"rm": False}, ["ENV A=1", "RUN make"], []),
        ({"rm": False, "semantics": BUILDKIT}, [], ["ENV A=1", "RUN make"]),
    ],
)
def test_rm_and_forcerm_decide_which_step_containers_stay(
    fb: FakeBuild, options: dict[str, Any], kept: list[str], removed: list[str]
) -> None:
    """A build that succeeds: rm (the default) and forcerm remove every step's container,
    rm=false keeps RUN's (Exited (0)) and config steps' (Created); COPY has none."""
    (fb.context / "f").write_text("1")
    p = RecordingProgress()
    fb.build_with("FROM busybox\nENV A=1\nRUN make\nCOPY f /f\n", p, **options)
    commands = {
        "ENV A=1": ["/bin/sh", "-c", "#(nop) ", "ENV A=1"],
        "RUN make": ["/bin/sh", "-c", "make"],
    }
    got = [(k.config["Cmd"], k.exit_code) for k in fb.containers.kept]
    assert got == [(commands[t], 0 if t.startswith("RUN") else None) for t in kept]
    assert [e[1] for e in p.events if e[0] == "removed"] == removed


def test_a_bad_flag_fails_before_any_step_runs(fb: FakeBuild) -> None:
    # Parse-time checks (Docker parses the whole file first): even in a stage the target
    # does not need, and before the first RUN has run.
    for df, line in (
        ("FROM busybox\nRUN echo first\nRUN --network=bridge x\n", 3),
        ("FROM busybox AS unused\nRUN --security=lax x\nFROM busybox\nRUN echo first\n", 2),
    ):
        with pytest.raises(DockyardError) as err:
            fb.build(df)
        assert str(err.value).startswith(f"Dockerfile:{line}: unsupported "), str(err.value)
    assert fb.runner.runs == []


def test_refusals_of_what_dockyard_cannot_do_name_the_step(fb: FakeBuild) -> None:
    (fb.context / "f").write_text("f")
    for df, message in (
        ("FROM busybox\nRUN --device=/dev/fuse x\n", "RUN --device is not supported"),
        ("FROM busybox\nADD --keep-git-dir f /f\n", "Unknown flag: keep-git-dir"),
        ("FROM busybox\nRUN --security=insecure x\n", "needs the security.insecure entitlement"),
        ("FROM busybox\nADD --checksum=sha256:aa f /f\n", "checksum can't be specified for non"),
    ):
        with pytest.raises(BuildFailure) as err:
            fb.build(df)
        assert str(err.value).startswith("Dockerfile:2: "), str(err.value)
        assert message in str(err.value)
    assert fb.runner.runs == []


def test_the_semantics_knobs_change_what_a_step_does(fb: FakeBuild) -> None:
    import os

    df = "FROM busybox\nVOLUME /v\nUSER 1234:5678\nWORKDIR /a/b\nRUN touch /v/f\n"
    fb.build(df)
    assert fb.rootfs.written[-2] == {"/a": (0, 0), "/a/b": (0, 0)}  # legacy: root's
    assert [b.destination for b in fb.runner.runs[-1].binds] == ["/v"]  # an anonymous volume
    buildkit_like = Semantics(name="bk", workdir_owned_by_user=True, run_keeps_volume_writes=True)
    if os.geteuid() == 0:  # chown to another user needs root
        fb.build(df, semantics=buildkit_like)
        assert fb.rootfs.written[-2] == {"/a": (1234, 5678), "/a/b": (1234, 5678)}
        assert fb.runner.runs[-1].binds == ()
    no_path = Semantics(name="no-path", default_path="")
    image_id, _ = fb.build("FROM scratch\nENV A=1\n", semantics=no_path)
    assert fb.images.config(image_id).container_config["Env"] == ["A=1"]
    image_id, _ = fb.build("FROM scratch\nENV A=1\n")
    assert fb.images.config(image_id).container_config["Env"][0].startswith("PATH=")


def test_buildkit_history_layers_and_config(fb: FakeBuild) -> None:
    """BUILDKIT's answers on fakes (measured on dockerd 20.10/26.1 by
    test_buildkit_reference.py): history texts, a layer for every RUN/COPY/WORKDIR even when
    empty, no ONBUILD entry, the image-spec config, ARG declared after ENV winning."""
    import os

    from dockyard.builder.semantics import BUILDKIT

    uid, gid = os.getuid(), os.getgid()
    df = ALL.format(uid=uid, gid=gid) + "ENV A=env\nARG A\nRUN echo $A\nWORKDIR /\nCMD\n"
    image_id, _ = fb.build(df, {"f": "f\n"}, semantics=BUILDKIT, build_args={"A": "7"})
    cfg = fb.images.config(image_id)
    assert fb.history(image_id) == [
        "base",
        "ARG A=1",  # the Dockerfile's value, not --build-arg's
        "ENV E=7 F=x y",
        "LABEL l=7",
        "RUN |1 A=7 /bin/sh -c echo $A > /a # buildkit",
        "WORKDIR /w",
        "WORKDIR /w/sub",
        f"COPY --chown={uid}:{gid} f ./ # buildkit",
        "USER daemon",
        "EXPOSE map[80/tcp:{} 90/udp:{} 91/udp:{}]",
        "VOLUME [/v]",
        "SHELL [/bin/sh -ec]",
        "STOPSIGNAL SIGKILL",
        'HEALTHCHECK &{["CMD-SHELL" "echo ok"] "5m0s" "0s" "0s" "0s" \'\\x03\'}',
        "MAINTAINER me",
        'CMD ["x"]',
        'ENTRYPOINT ["/bin/sh" "-ec" "echo"]',
        "ENV A=env",
        "ARG A",
        "RUN |2 A=7 A=7 /bin/sh -ec echo $A # buildkit",
        "WORKDIR /",
        'CMD ["/bin/sh" "-ec" ""]',
    ]
    assert {h.get("comment") for h in cfg.history[1:]} == {"buildkit.dockerfile.v0"}
    layers = [i for i, h in enumerate(cfg.history) if not h.get("empty_layer")]
    assert layers == [0, 4, 5, 6, 7, 19]  # the empty RUNs too; not WORKDIR /
    assert len(cfg.diff_ids) == len(layers)
    assert fb.runner.runs[-1].env[-1] == "A=7"  # the ARG after ENV wins
    assert sorted(cfg.doc["config"]) == [
        "ArgsEscaped", "Cmd", "Entrypoint", "Env", "ExposedPorts", "Healthcheck", "Labels",
        "OnBuild", "Shell", "StopSignal", "User", "Volumes", "WorkingDir",
    ]  # fmt: skip
    assert "docker_version" not in cfg.doc and "author" not in cfg.history[-1]
    # the same Dockerfile under the legacy semantics hits none of these steps
    _, msgs = fb.build(df, {"f": "f\n"}, build_args={"A": "7"})
    assert "Using cache" not in _text(msgs)


def test_copy_link_makes_its_layer_on_an_empty_root_and_reuses_it_on_another_base(
    fb: FakeBuild,
) -> None:
    """COPY --link (BuildKit's MergeOp of a copy into scratch): the work never sees the
    parent, and after the base changes the step is a cache hit whose layer is the same one,
    stacked on the new parent; the next step, whose parent changed, runs again."""
    df = "FROM busybox\nARG B\nRUN make $B\nCOPY --link f /usr/f\nCOPY g /g\n"
    first, msgs = fb.build(df, {"f": "1", "g": "2"}, build_args={"B": "1"})
    assert "Using cache" not in _text(msgs)
    assert len(fb.rootfs.empty_roots) == 1  # the --link step, with its parents recorded
    second, msgs = fb.build(df, {"f": "1", "g": "2"}, build_args={"B": "2"})
    text = _text(msgs)
    assert text.count(" ---> Using cache\n") == 2, text  # ARG B and the --link step
    assert "COPY --link f /usr/f\n ---> Using cache\n" in text, text
    assert len(fb.rootfs.empty_roots) == 1  # not made again
    a, b = fb.images.config(first).diff_ids, fb.images.config(second).diff_ids
    assert first != second
    assert a[-2] == b[-2]  # the --link layer is the same layer
    assert fb.rootfs.stacked == [(tuple(b[:-2]), a[-2])]
    # --chmod turns --link off, as BuildKit's dispatchCopy does
    fb.build("FROM busybox\nCOPY --link --chmod=600 f /h\n", {"f": "1"})
    assert len(fb.rootfs.empty_roots) == 1


def test_copy_link_refuses_owner_names(fb: FakeBuild) -> None:
    with pytest.raises(DockyardError, match="invalid user index: -1"):
        fb.build("FROM busybox\nCOPY --link --chown=daemon f /f\n", {"f": "1"})


def test_a_cached_copy_hops_to_a_thread_once_and_makes_no_scratch_directory(
    fb: FakeBuild, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cached COPY's sources are resolved and hashed in one worker thread (each hop costs
    a wake-up), and the scratch directory of heredocs and downloads is made only for those."""
    import asyncio
    import tempfile

    df = "FROM busybox\nCOPY f g /d/\n"
    fb.build(df, {"f": "1", "g": "2"})
    hops: list[object] = []
    made: list[object] = []
    to_thread, temporary = asyncio.to_thread, tempfile.TemporaryDirectory

    async def counted(fn: Any, *args: Any, **kwargs: Any) -> Any:
        hops.append(fn)
        return await to_thread(fn, *args, **kwargs)

    def counted_dir(*args: Any, **kwargs: Any) -> Any:
        made.append(kwargs)
        return temporary(*args, **kwargs)

    monkeypatch.setattr(asyncio, "to_thread", counted)
    monkeypatch.setattr(tempfile, "TemporaryDirectory", counted_dir)
    _, msgs = fb.build(df, {"f": "1", "g": "2"})
    assert "COPY f g /d/\n ---> Using cache\n" in _text(msgs)
    assert len(hops) == 1, hops
    assert made == []
    # a heredoc still gets its scratch file, and its body is in the key
    hd = "FROM busybox\nCOPY <<EOT /h\n{}\nEOT\n"
    first, _ = fb.build(hd.format("one"))
    assert len(made) == 1
    again, msgs = fb.build(hd.format("one"))
    assert again == first and "Using cache" in _text(msgs)
    other, _ = fb.build(hd.format("two"))
    assert other != first


def test_a_run_without_new_mount_points_removes_no_stubs_in_a_thread(
    fb: FakeBuild, monkeypatch: pytest.MonkeyPatch
) -> None:
    """runc makes a stub for a mount point the root lacks, and the step removes it in a
    worker thread; a RUN with none (most) waits for no thread's wake-up."""
    import asyncio

    from dockyard.builder import mounts

    stub_hops: list[object] = []
    to_thread = asyncio.to_thread

    async def counted(fn: Any, *args: Any, **kwargs: Any) -> Any:
        if fn is mounts.remove_stubs:
            stub_hops.append(args)
        return await to_thread(fn, *args, **kwargs)

    monkeypatch.setattr(asyncio, "to_thread", counted)
    fb.build("FROM busybox\nRUN echo plain\n")
    assert stub_hops == []
    fb.build("FROM busybox\nRUN --mount=type=tmpfs,target=/new/mnt echo mounted\n")
    assert len(stub_hops) == 1  # /new is a stub runc makes


def test_a_cached_copy_from_a_kept_context_takes_its_digests_on_the_loop(
    fb: FakeBuild, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kept context (a session's synced copy) remembers COPY's digests whole while it is
    unchanged: a cached rebuild resolves its few plain sources and takes them with no worker
    thread at all; a wildcard, or a change of the tree, goes through the thread again."""
    import asyncio

    from dockyard.builder.context import BuildContext
    from dockyard.builder.digests import DigestIndex
    from dockyard.builder.state import BuildOptions

    (fb.context / "f").write_text("1")
    (fb.context / "g").write_text("2")
    index = DigestIndex()
    hops: list[object] = []
    to_thread = asyncio.to_thread

    async def counted(fn: Any, *args: Any, **kwargs: Any) -> Any:
        hops.append(fn)
        return await to_thread(fn, *args, **kwargs)

    def build(dockerfile: str) -> tuple[str, str]:
        (fb.context / "Dockerfile").write_text(dockerfile)
        ctx = BuildContext(fb.context, None, digests=index)
        messages: list[dict[str, Any]] = []
        image = asyncio.run(fb.builder.build(ctx, BuildOptions(), messages.append))
        return image, _text(messages)

    monkeypatch.setattr(asyncio, "to_thread", counted)
    first, _ = build("FROM busybox\nCOPY f g /d/\n")
    assert hops  # hashed in a thread the first time
    hops.clear()
    again, text = build("FROM busybox\nCOPY f g /d/\n")
    assert again == first and "Using cache" in text
    assert hops == []
    build("FROM busybox\nCOPY [fg] /d/\n")
    hops.clear()
    build("FROM busybox\nCOPY [fg] /d/\n")
    assert len(hops) == 1  # a wildcard is expanded in the thread
    hops.clear()
    (fb.context / "g").write_text("3")
    index.tree_changed()  # as a sync that changed the tree says
    changed, text = build("FROM busybox\nCOPY f g /d/\n")
    assert changed != first and len(hops) >= 1
