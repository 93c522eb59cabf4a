"""The instructions that only change the image config, as the legacy builder applies them.

Each handler makes the new config (Docker's `container.Config` shape; the state's own is never
changed) and the comment that goes into the history as `<shell> #(nop)  <comment>` (moby
builder/dockerfile/dispatchers.go; the `%q`/`%v` renderings of Go are reproduced because the
history text is part of the cache key and of what users compare).
"""

from __future__ import annotations

import re
import signal
from dataclasses import replace
from typing import Any

from dockyard.builder.executor import Step
from dockyard.builder.progress import StepInfo
from dockyard.builder.state import StageState
from dockyard.builder.stepcontext import Dispatch, config_step
from dockyard.errors import InvalidArgument
from dockyard.frontend.commands import (
    CmdInstruction,
    EntrypointInstruction,
    EnvInstruction,
    ExposeInstruction,
    HealthcheckInstruction,
    LabelInstruction,
    MaintainerInstruction,
    OnbuildInstruction,
    ShellInstruction,
    StopsignalInstruction,
    UserInstruction,
    VolumeInstruction,
)
from dockyard.frontend.expand import expand_word, expand_words, go_quote, parse_key_values
from dockyard.runtime.process import replace_or_append


def go_quote_list(items: list[str]) -> str:
    return "[" + " ".join(go_quote(i) for i in items) + "]"


def go_duration(ns: int) -> str:
    """Go's `time.Duration.String()` for whole-nanosecond values."""
    if ns == 0:
        return "0s"
    neg = ns < 0
    ns = abs(ns)
    if ns < 1_000_000_000:
        for unit, div in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= div:
                text = f"{ns / div:.9f}".rstrip("0").rstrip(".")
                return ("-" if neg else "") + text + unit
    h, rem = divmod(ns, 3_600_000_000_000)
    m, rem = divmod(rem, 60_000_000_000)
    s = f"{rem / 1e9:.9f}".rstrip("0").rstrip(".") + "s"
    text = (f"{h}h" if h else "") + (f"{m}m" if h or m else "") + s
    return ("-" if neg else "") + text


def parse_ports(specs: list[str]) -> list[str]:
    """`nat.ParsePortSpecs` for EXPOSE: `80`, `80/udp`, `8000-8002/tcp`."""
    out: list[str] = []
    for spec in specs:
        port, _, proto = spec.partition("/")
        proto = (proto or "tcp").lower()
        if proto not in ("tcp", "udp", "sctp"):
            raise InvalidArgument(f"Invalid proto: {proto}")  # go-connections 0.4 (dockerd 20.10)
        # go-connections nat.ParsePortSpec's messages
        lo_s, dash, hi_s = port.partition("-")
        if ":" in port or not lo_s.isdigit() or (dash and not hi_s.isdigit()):
            raise InvalidArgument(f"Invalid containerPort: {port}")
        lo, hi = int(lo_s), int(hi_s) if dash else int(lo_s)
        if lo > 65535 or hi > 65535:
            raise InvalidArgument(f"Invalid containerPort: {port}")
        if hi < lo:
            raise InvalidArgument(f"Invalid range specified for the Port: {port}")
        out.extend(f"{p}/{proto}" for p in range(lo, hi + 1))
    return out


def check_signal(name: str) -> None:
    """moby/signal.ParseSignal: a number or a name with or without SIG."""
    if name.isdigit():
        if int(name) == 0:
            raise InvalidArgument(f"Invalid signal: {name}")
        return
    up = name.upper().removeprefix("SIG")
    if re.fullmatch(r"RTMIN(\+\d+)?|RTMAX(-\d+)?", up):
        return
    if not hasattr(signal, "SIG" + up) or up.startswith("_"):
        raise InvalidArgument(f"Invalid signal: {name}")


def health_config(ins: HealthcheckInstruction) -> dict[str, Any]:
    """Docker's HealthConfig of a HEALTHCHECK (zero durations and retries left out)."""
    out: dict[str, Any] = {"Test": list(ins.test)}
    for key, ns in (
        ("Interval", ins.interval),
        ("Timeout", ins.timeout),
        ("StartPeriod", ins.start_period),
        ("StartInterval", ins.start_interval),
    ):
        if ns:
            out[key] = ns
    if ins.retries:
        out["Retries"] = ins.retries
    return out


def healthcheck_comment(hc: dict[str, Any], *, start_interval: bool = False) -> str:
    """`HEALTHCHECK %q` of Docker 20.10's *HealthConfig (Test, Interval, Timeout, StartPeriod,
    Retries): `&{["CMD-SHELL" "x"] "5m0s" "0s" "0s" '\\x03'}`; today's struct has
    StartInterval after StartPeriod (`start_interval`)."""
    retries = int(hc.get("Retries", 0))
    r = f"'\\x{retries:02x}'" if retries < 0x20 or retries == 0x7F else repr(chr(retries))
    durations = [
        "Interval",
        "Timeout",
        "StartPeriod",
        *(["StartInterval"] if start_interval else []),
    ]
    parts = [
        go_quote_list(list(hc["Test"])),
        *(go_quote(go_duration(int(hc.get(k, 0)))) for k in durations),
        r,
    ]
    return "HEALTHCHECK &{" + " ".join(parts) + "}"


# One handler per config-only instruction (moby dispatchers.go): each computes the new
# config and its history comment, and commits through the shared config step.


async def dispatch_env(
    d: Dispatch, ins: EnvInstruction, state: StageState, info: StepInfo
) -> StageState:
    pairs = parse_key_values(ins.rest, "ENV", state.expand_env(), d.escape)
    # A redefined variable keeps its place (moby dispatchEnv and BuildKit's addEnv replace in
    # place; only a new name is appended).
    current = replace_or_append(list(state.config.get("Env") or []), [f"{k}={v}" for k, v in pairs])
    comment = "ENV " + " ".join(f"{k}={v}" for k, v in pairs)
    state = replace(state, arg_overrides=state.arg_overrides - {k for k, _ in pairs})
    return await config_step(d, state, info, comment, state.with_config(Env=current))


async def dispatch_label(
    d: Dispatch, ins: LabelInstruction, state: StageState, info: StepInfo
) -> StageState:
    if ins.literal:  # from `--label`: taken as given
        pairs = list(zip(ins.args[::2], ins.args[1::2], strict=True))
    else:
        pairs = parse_key_values(ins.rest, "LABEL", state.expand_env(), d.escape)
    labels = {**(state.config.get("Labels") or {}), **dict(pairs)}
    comment = "LABEL " + " ".join(f"{k}={v}" for k, v in pairs)
    return await config_step(d, state, info, comment, state.with_config(Labels=labels))


async def dispatch_maintainer(
    d: Dispatch, ins: MaintainerInstruction, state: StageState, info: StepInfo
) -> StageState:
    return await config_step(d, state, info, f"MAINTAINER {ins.name}", author=ins.name)


async def dispatch_expose(
    d: Dispatch, ins: ExposeInstruction, state: StageState, info: StepInfo
) -> StageState:
    env = state.expand_env()
    # instructions.parseExpose sorts the words before they are expanded
    ports = [p for a in sorted(ins.ports) for p in expand_words(a, env, d.escape)]
    parsed = parse_ports(ports)
    exposed = {**(state.config.get("ExposedPorts") or {}), **{p: {} for p in parsed}}
    comment = d.semantics.expose_comment(ports, parsed)
    return await config_step(d, state, info, comment, state.with_config(ExposedPorts=exposed))


async def dispatch_cmd(
    d: Dispatch, ins: CmdInstruction, state: StageState, info: StepInfo
) -> StageState:
    # parseShellDependentCommand + resolveCmdLine: an empty CMD is [] and gets the shell in
    # shell form.
    value = list(ins.args) if ins.json_form else [*state.shell, *ins.args]
    if not ins.json_form and not ins.args and d.semantics.empty_shell_form_is_empty_word:
        value.append("")
    state = replace(state, cmd_set=state.cmd_set or bool(ins.args))
    comment = f"CMD {go_quote_list(value)}"
    config = state.with_config(Cmd=value)
    if d.semantics.cmd_sets_args_escaped:
        config["ArgsEscaped"] = True
    return await config_step(d, state, info, comment, config)


async def dispatch_entrypoint(
    d: Dispatch, ins: EntrypointInstruction, state: StageState, info: StepInfo
) -> StageState:
    # An empty ENTRYPOINT is nil (no shell, stored as null); BuildKit's is the shell and "".
    value: list[str] | None = None
    if ins.args:
        value = list(ins.args) if ins.json_form else [*state.shell, *ins.args]
    elif not ins.json_form and d.semantics.empty_shell_form_is_empty_word:
        value = [*state.shell, ""]
    config = state.with_config(Entrypoint=value)
    if not state.cmd_set:
        # An ENTRYPOINT drops a CMD inherited from the base (dispatchers.go)
        config["Cmd"] = None
    comment = f"ENTRYPOINT {go_quote_list(value or [])}"
    return await config_step(d, state, info, comment, config)


async def dispatch_user(
    d: Dispatch, ins: UserInstruction, state: StageState, info: StepInfo
) -> StageState:
    user = expand_word(ins.user, state.expand_env(), d.escape)
    return await config_step(d, state, info, f"USER {user}", state.with_config(User=user))


async def dispatch_volume(
    d: Dispatch, ins: VolumeInstruction, state: StageState, info: StepInfo
) -> StageState:
    env = state.expand_env()
    vols = [expand_word(a, env, d.escape) for a in ins.paths]
    if any(not v.strip() for v in vols):
        raise InvalidArgument("VOLUME specified can not be an empty string")
    volumes = {**(state.config.get("Volumes") or {}), **{v: {} for v in vols}}
    comment = "VOLUME [" + " ".join(vols) + "]"
    return await config_step(d, state, info, comment, state.with_config(Volumes=volumes))


async def dispatch_shell(
    d: Dispatch, ins: ShellInstruction, state: StageState, info: StepInfo
) -> StageState:
    comment = "SHELL [" + " ".join(ins.shell) + "]"
    return await config_step(d, state, info, comment, state.with_config(Shell=list(ins.shell)))


async def dispatch_stopsignal(
    d: Dispatch, ins: StopsignalInstruction, state: StageState, info: StepInfo
) -> StageState:
    sig = expand_word(ins.signal, state.expand_env(), d.escape)
    check_signal(sig)
    return await config_step(d, state, info, f"STOPSIGNAL {sig}", state.with_config(StopSignal=sig))


async def dispatch_healthcheck(
    d: Dispatch, ins: HealthcheckInstruction, state: StageState, info: StepInfo
) -> StageState:
    hc = health_config(ins)
    # the history text is the instruction's own check, before any merge (moby commits with
    # the comment made from the dispatched config)
    comment = d.semantics.healthcheck_comment(
        healthcheck_comment(hc), healthcheck_comment(hc, start_interval=True)
    )
    inherited = state.config.get("Healthcheck")
    if d.semantics.healthcheck_inherits_unset and isinstance(inherited, dict):
        hc = inherit_unset(hc, inherited)
    return await config_step(d, state, info, comment, state.with_config(Healthcheck=hc))


def inherit_unset(hc: dict[str, Any], inherited: dict[str, Any]) -> dict[str, Any]:
    """moby's merge() of a container's Healthcheck with its image's: each zero field
    (Test, Interval, Timeout, StartPeriod, Retries) is taken from the image's check."""
    out = dict(hc)
    for key in ("Test", "Interval", "Timeout", "StartPeriod", "Retries"):
        if not out.get(key) and inherited.get(key):
            out[key] = inherited[key]
    return out


async def dispatch_onbuild(
    d: Dispatch, ins: OnbuildInstruction, state: StageState, info: StepInfo
) -> StageState:
    triggers = [*(state.config.get("OnBuild") or []), ins.trigger]
    comment = f"ONBUILD {ins.trigger}"
    config = state.with_config(OnBuild=triggers)
    if not d.semantics.onbuild_has_history():
        return await d.executor.execute(state, Step(info, comment, None, config=config))
    return await config_step(d, state, info, comment, config)
