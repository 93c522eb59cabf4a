#!/usr/bin/env bash
# docker-py's own integration suite (tests/integration of docker/docker-py 7.1.0) against
# dockyard and the reference dockerd 20.10, with the same images from a local registry mirror.
#
#   tests/external/docker_py.sh PATH-TO-DOCKER-PY-CHECKOUT [--daemon dockyard|dockerd|both]
#                               [--out DIR] [-- PYTEST-ARGS...]
#
# PATH is a checkout of the 7.1.0 release tag (the PyPI sdist has no tests), e.g.
#   git clone https://github.com/docker/docker-py && git -C docker-py checkout 7.1.0
# Needs root, runc, docker-registry, gcc, busybox-static (scripts/setup.sh installs them) and,
# for the reference run, Debian's docker.io. Each daemon runs on temporary paths; dockerd runs
# in a network namespace of its own. The swarm, service, secret, config, node and plugin test
# files are deselected (swarm mode, plugins), nothing else. Results go to DIR (default
# ./docker-py-results): junit-<daemon>/ (one file per test file), pytest-<daemon>.log, summary.json (per-test
# outcome on each daemon) and summary.md (counts; tests passing on dockerd but not dockyard).
# The suite runs in a venv of its own (docker 7.1.0, paramiko, pytest) cached under
# $DOCKYARD_TEST_CACHE (default /var/cache/dockyard).
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
[ $# -ge 1 ] || { sed -n '2,17p' "$0"; exit 2; }
PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}" exec "$here/.venv/bin/python" -m tests.external.docker_py "$@"
