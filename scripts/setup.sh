#!/usr/bin/env bash
# Set up dockyard on a fresh Debian machine (as root): system packages, the virtual
# environment at .venv (made with the machine's python3), and `dockyard` on PATH.
# Idempotent: a second run only checks what is there.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)

PACKAGES=(runc busybox-static mmdebstrap iptables iproute2 util-linux docker-registry apache2-utils openssl gcc libc6-dev docker-compose)
if [ "${DOCKYARD_WITH_DOCKERD:-1}" = 1 ]; then
    PACKAGES+=(docker.io)   # the reference dockerd for differential tests only
fi
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo ">>> installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # docker.io's maintainer scripts try to start a service; PID 1 is not systemd here,
    # so a policy-rc.d that refuses service starts keeps the install quiet and harmless.
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    rm -f /usr/sbin/policy-rc.d
fi

if [ ! -x .venv/bin/python ]; then
    echo ">>> creating .venv"
    python3 -m venv .venv
fi
if ! .venv/bin/python -c "import dockyard, aiohttp, httpx, rich, zstandard, h2, google.protobuf, pytest, ruff, mypy" 2>/dev/null \
   || [ pyproject.toml -nt .venv/.installed ]; then
    echo ">>> installing dockyard into .venv"
    .venv/bin/pip install -q --disable-pip-version-check -e ".[test]"
    touch .venv/.installed
fi
# The per-container monitor and port proxy and --init's binary are small C programs
# (src/dockyard/runtime/data/*.c): built here next to the interpreter, named by source hash.
.venv/bin/python -m dockyard.runtime.native --dir .venv/bin >/dev/null
# Bytecode for every module, written once here: where PYTHONDONTWRITEBYTECODE=1 is set (these
# machines' sessions set it), Python reads .pyc files but never writes them, so each CLI
# command compiled its modules from source again: ~30 ms of CPU in every `dockyard run`
# (issue 17 row d). A module edited later is compiled in memory as before.
.venv/bin/python -m compileall -q src/dockyard >/dev/null
# And the daemon's bytecode for `python -OO`, which it re-execs itself under when that is at
# hand (api/optimized.py: no docstrings or asserts, 1.3 MiB of its idle RSS, issue 17 row h).
.venv/bin/python -m dockyard.api.optimized >/dev/null
# The `dockyard` command: cli/launcher.py's script in place of pip's console script (which
# imports `re` and starts Python with `site`: ~9 ms of CPU of every command here; the
# launcher runs `python -S` with site's paths written in). Rewritten on every run, as pip
# puts its own script back when it reinstalls.
.venv/bin/python -m dockyard.cli.launcher .venv/bin/dockyard
ln -sf "$REPO/.venv/bin/dockyard" /usr/local/bin/dockyard
if [ "${DOCKYARD_WITH_DOCKERD:-1}" = 1 ]; then
    # dockerd 26.1, buildx and Compose v2 from trixie, for the BuildKit tests (they skip,
    # saying so, when this could not fetch them)
    bash scripts/trixie-clients.sh || echo ">>> warning: trixie's docker tools not fetched; their tests will skip"
fi
echo ">>> dockyard is set up ($(command -v dockyard))"
