"""The instructions that only change the image config, as the legacy builder applies them.

Each function edits the config (Docker's `container.Config` shape) in place and returns the
comment that goes into the history as `<shell> #(nop)  <comment>` (moby
builder/dockerfile/dispatchers.go; the `%q`/`%v` renderings of Go are reproduced because the
history text is part of the cache key and of what users compare).
"""

from __future__ import annotations

import re
import signal
from collections.abc import Mapping
from typing import Any

from dockyard.errors import InvalidArgument
from dockyard.frontend.expand import expand_word, expand_words, go_quote, parse_key_values
from dockyard.frontend.instructions import go_duration_ns
from dockyard.frontend.parser import Instruction


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
            raise InvalidArgument(f"invalid proto: {proto}")
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


def healthcheck(ins: Instruction) -> dict[str, Any]:
    typ = ins.args[0].upper()
    if typ == "NONE":
        return {"Test": ["NONE"]}
    test = ["CMD", *ins.args[1:]] if ins.json_form else ["CMD-SHELL", ins.args[1]]
    out: dict[str, Any] = {"Test": test}
    for flag, key in (
        ("interval", "Interval"),
        ("timeout", "Timeout"),
        ("start-period", "StartPeriod"),
        ("start-interval", "StartInterval"),
    ):
        value = ins.flag(flag)
        if value:
            ns = go_duration_ns(value)
            if ns:
                out[key] = ns
    retries = ins.flag("retries")
    if retries and int(retries):
        out["Retries"] = int(retries)
    return out


def healthcheck_comment(hc: dict[str, Any]) -> str:
    """`HEALTHCHECK %q` of Docker 20.10's *HealthConfig (Test, Interval, Timeout, StartPeriod,
    Retries): `&{["CMD-SHELL" "x"] "5m0s" "0s" "0s" '\\x03'}`."""
    retries = int(hc.get("Retries", 0))
    r = f"'\\x{retries:02x}'" if retries < 0x20 or retries == 0x7F else repr(chr(retries))
    parts = [
        go_quote_list(list(hc["Test"])),
        go_quote(go_duration(int(hc.get("Interval", 0)))),
        go_quote(go_duration(int(hc.get("Timeout", 0)))),
        go_quote(go_duration(int(hc.get("StartPeriod", 0)))),
        r,
    ]
    return "HEALTHCHECK &{" + " ".join(parts) + "}"


def apply_metadata(
    ins: Instruction,
    cfg: dict[str, Any],
    env: Mapping[str, str],
    escape: str,
    shell: list[str],
    cmd_set: bool,
) -> tuple[str, bool]:
    """Apply one metadata instruction to `cfg`; return (history comment, cmd_set)."""
    kw = ins.keyword
    if kw == "env":
        pairs = parse_key_values(ins.rest, "ENV", env, escape)
        current = list(cfg.get("Env") or [])
        for k, v in pairs:
            current = [e for e in current if e.partition("=")[0] != k] + [f"{k}={v}"]
        cfg["Env"] = current
        return "ENV " + " ".join(f"{k}={v}" for k, v in pairs), cmd_set
    if kw == "label":
        if ins.rest:
            pairs = parse_key_values(ins.rest, "LABEL", env, escape)
        else:  # from `--label`: taken as given
            pairs = list(zip(ins.args[::2], ins.args[1::2], strict=True))
        labels = dict(cfg.get("Labels") or {})
        labels.update(pairs)
        cfg["Labels"] = labels
        return "LABEL " + " ".join(f"{k}={v}" for k, v in pairs), cmd_set
    if kw == "maintainer":
        return f"MAINTAINER {ins.args[0]}", cmd_set
    if kw == "expose":
        # instructions.parseExpose sorts the words before they are expanded
        ports = [p for a in sorted(ins.args) for p in expand_words(a, env, escape)]
        exposed = dict(cfg.get("ExposedPorts") or {})
        for port in parse_ports(ports):
            exposed[port] = {}
        cfg["ExposedPorts"] = exposed
        return "EXPOSE " + " ".join(ports), cmd_set
    if kw in ("cmd", "entrypoint"):
        # parseShellDependentCommand + resolveCmdLine: an empty ENTRYPOINT is nil (no shell,
        # stored as null); an empty CMD is [] and gets the shell in shell form.
        if kw == "entrypoint" and not ins.args:
            value: list[str] | None = None
        else:
            value = list(ins.args) if ins.json_form else [*shell, *ins.args]
        if kw == "cmd":
            cfg["Cmd"] = value
            return f"CMD {go_quote_list(value or [])}", cmd_set or bool(ins.args)
        cfg["Entrypoint"] = value
        if not cmd_set:
            # An ENTRYPOINT drops a CMD inherited from the base (dispatchers.go)
            cfg["Cmd"] = None
        return f"ENTRYPOINT {go_quote_list(value or [])}", cmd_set
    if kw == "user":
        cfg["User"] = expand_word(ins.args[0], env, escape)
        return f"USER {cfg['User']}", cmd_set
    if kw == "volume":
        vols: list[str] = []
        for a in ins.args:
            vols.append(expand_word(a, env, escape))
        volumes = dict(cfg.get("Volumes") or {})
        for v in vols:
            if not v.strip():
                raise InvalidArgument("VOLUME specified can not be an empty string")
            volumes[v] = {}
        cfg["Volumes"] = volumes
        return "VOLUME [" + " ".join(vols) + "]", cmd_set
    if kw == "shell":
        cfg["Shell"] = list(ins.args)
        return "SHELL [" + " ".join(ins.args) + "]", cmd_set
    if kw == "stopsignal":
        sig = expand_word(ins.args[0], env, escape)
        check_signal(sig)
        cfg["StopSignal"] = sig
        return f"STOPSIGNAL {sig}", cmd_set
    if kw == "healthcheck":
        hc = healthcheck(ins)
        cfg["Healthcheck"] = hc
        return healthcheck_comment(hc), cmd_set
    if kw == "onbuild":
        trigger = ins.args[0]
        cfg["OnBuild"] = [*(cfg.get("OnBuild") or []), trigger]
        return f"ONBUILD {trigger}", cmd_set
    raise InvalidArgument(f"{kw.upper()} is not a metadata instruction")
