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
echo ">>> pytest"
exec .venv/bin/python -m pytest -q -ra "$@"
