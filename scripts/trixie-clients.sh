#!/usr/bin/env bash
# Fetch BuildKit-era Docker tools from Debian's trixie suite for the tests, without touching
# the machine's apt sources or installed packages (shared/reference/pitfalls.md, "Getting
# buildx and Compose v2"): a private sources list, lists and cache under $CACHE, then
# `apt-get download` and `dpkg-deb -x`. Leaves, under $CACHE (default
# /var/cache/dockyard/trixie-clients):
#   bin/dockerd            docker.io 26.1's daemon (the differential tests' second reference)
#   cli-plugins/docker-buildx, cli-plugins/docker-compose
#                          copy (or point DOCKER_CONFIG's cli-plugins/ at) these for docker CLI 28
#   VERSIONS               what was fetched
# Idempotent: a second run with everything in place does nothing. Needs root and the network
# to the machine's Debian mirror; on failure the tests that need these tools skip.
set -euo pipefail
CACHE=${DOCKYARD_TRIXIE_CACHE:-/var/cache/dockyard/trixie-clients}
PACKAGES=(docker.io docker-buildx docker-compose)

if [ -x "$CACHE/bin/dockerd" ] && [ -x "$CACHE/cli-plugins/docker-buildx" ] \
   && [ -x "$CACHE/cli-plugins/docker-compose" ] && [ -s "$CACHE/VERSIONS" ]; then
    exit 0
fi

# The mirror the machine's own sources name (deb822 or one-line format).
MIRROR=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*debian\)$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1)
if [ -z "$MIRROR" ]; then
    MIRROR=$(sed -n 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\([^[:space:]]*debian\)[[:space:]].*/\2/p' \
        /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | head -n1)
fi
MIRROR=${MIRROR:-http://deb.debian.org/debian}
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

work="$CACHE/apt"
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/debs" "$CACHE/bin" "$CACHE/cli-plugins"
echo "deb [signed-by=$KEYRING] $MIRROR trixie main" > "$work/sources.list"
APT=(apt-get -q -o "Dir::Etc::sourcelist=$work/sources.list" -o "Dir::Etc::sourceparts=-"
     -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache"
     -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root")
echo ">>> trixie package lists from $MIRROR (private apt configuration under $work)"
"${APT[@]}" update >/dev/null
(cd "$work/debs" && rm -f ./*.deb && "${APT[@]}" download "${PACKAGES[@]}" >/dev/null)

extract="$work/extract"
rm -rf "$extract" && mkdir -p "$extract"
for deb in "$work"/debs/*.deb; do
    dpkg-deb -x "$deb" "$extract"
done
install -m 0755 "$extract/usr/sbin/dockerd" "$CACHE/bin/dockerd"
for plugin in docker-buildx docker-compose; do
    install -m 0755 "$extract/usr/libexec/docker/cli-plugins/$plugin" "$CACHE/cli-plugins/$plugin"
done
{
    for deb in "$work"/debs/*.deb; do
        dpkg-deb -f "$deb" Package Version | sed 's/^[^:]*: //' | paste -sd' '
    done
} > "$CACHE/VERSIONS.tmp"
mv "$CACHE/VERSIONS.tmp" "$CACHE/VERSIONS"
rm -rf "$extract" "$work/debs"
echo ">>> trixie clients in $CACHE: $(paste -sd';' "$CACHE/VERSIONS")"
