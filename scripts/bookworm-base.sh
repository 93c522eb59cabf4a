#!/usr/bin/env bash
# Make the Debian bookworm minbase root filesystem tarball once (mmdebstrap, from Debian's
# mirror) and print its path. The main job imports it as debian:bookworm; the tests use it for
# the differential checks on a real Debian userland. Cached outside the repository.
set -euo pipefail
BASE_TAR=${DOCKYARD_BASE_CACHE:-/var/cache/dockyard}/bookworm-minbase.tar
if [ ! -s "$BASE_TAR" ]; then
    echo ">>> making the Debian bookworm base with mmdebstrap (once)" >&2
    mkdir -p "$(dirname "$BASE_TAR")"
    mmdebstrap --quiet --variant=minbase bookworm "$BASE_TAR.tmp.tar" >&2
    mv "$BASE_TAR.tmp.tar" "$BASE_TAR"
fi
echo "$BASE_TAR"
