#!/usr/bin/env bash
# Set everything up on a fresh Debian machine (as root) and run the whole test suite:
# lint (ruff), formatting (ruff format --check), types (mypy --strict on src/) and pytest
# (unit tests, and integration tests against real runc, overlayfs, registries and the
# reference dockerd). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Base images for the tests are made offline and cached outside the repository.
export DOCKYARD_TEST_CACHE=${DOCKYARD_TEST_CACHE:-/var/cache/dockyard}
# The Debian base for the differential tests on a real userland (mmdebstrap, made once).
DOCKYARD_BASE_CACHE=$DOCKYARD_TEST_CACHE bash scripts/bookworm-base.sh >/dev/null

echo ">>> ruff check"
.venv/bin/ruff check src tests bench
echo ">>> ruff format --check"
.venv/bin/ruff format --check src tests bench
echo ">>> mypy (strict, src/)"
.venv/bin/mypy
# docker-py's own integration suite (tests/external/docker_py.sh): its tests are in no package
# a registry serves (PyPI's docker-7.1.0.tar.gz and Debian's python-docker_7.1.0.orig.tar.gz
# are the same sdist, without tests/), only in the project's repository, which CI cannot
# reach. So this runs where a checkout of the 7.1.0 tag was put at $DOCKER_PY_CHECKOUT, and
# fails when a test listed in docker_py_expected.txt does not pass; elsewhere it says so.
DOCKER_PY_CHECKOUT=${DOCKER_PY_CHECKOUT:-$DOCKYARD_TEST_CACHE/docker-py-7.1.0}
if [ -f "$DOCKER_PY_CHECKOUT/tests/integration/base.py" ]; then
    echo ">>> docker-py 7.1.0 integration suite against dockyard"
    tests/external/docker_py.sh "$DOCKER_PY_CHECKOUT" --daemon dockyard \
        --out "$DOCKYARD_TEST_CACHE/docker-py-results" --expect tests/external/docker_py_expected.txt
else
    echo ">>> docker-py integration suite SKIPPED: no checkout of docker-py 7.1.0 at" \
        "$DOCKER_PY_CHECKOUT (its tests are not in the PyPI or Debian source packages;" \
        "clone the project's repository at tag 7.1.0 there to run them)"
fi
echo ">>> pytest"
# --durations=25: every CI log names the slowest tests (setup and teardown apart), so a test
# that grows slow shows where the suite's 20-minute budget goes.
# -n 2 (pytest-xdist): two workers, each with its own session daemon and reference dockerd
# (every test daemon has its own root, socket and bridge; subnets are chosen under a host-wide
# lock). Most of a test's time is waiting on runc, dockerd and clients, so two workers on two
# cores finish well ahead of one. --dist loadfile keeps each file on one worker, so a
# module's fixtures are made once. DOCKYARD_TEST_WORKERS=0 runs in one process.
exec .venv/bin/python -m pytest -q -ra --durations=25 -n "${DOCKYARD_TEST_WORKERS:-2}" --dist loadfile "$@"
