#!/usr/bin/env bash
# The main job, on a fresh Debian machine as root: set everything up, build the founding
# example (examples/redis-image) and run it: a redis server on the host network, asked
# `redis-cli ping` from a second container of the same image. Prints PONG, leaves nothing
# running, exits 0. A second run shows " ---> Using cache" and works the same.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

ROOT=${DOCKYARD_ROOT:-/var/lib/dockyard}
SOCK=${DOCKYARD_HOST:-unix:///run/dockyard/dockyard.sock}
SOCK=${SOCK#unix://}
IMAGE=dockyard-example/redis
SERVER=dockyard-example-redis

daemon_was_running=0
if .venv/bin/python -c "import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])" "$SOCK" 2>/dev/null; then
    daemon_was_running=1
fi

cleanup() {
    dockyard rm -f "$SERVER" >/dev/null 2>&1 || true
    if [ "$daemon_was_running" = 0 ] && [ -f "$ROOT/daemon.pid" ]; then
        pid=$(cat "$ROOT/daemon.pid")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
}
trap cleanup EXIT

# The base image: a Debian bookworm minbase root filesystem, made once and cached.
if ! dockyard inspect --type image debian:bookworm >/dev/null 2>&1; then
    BASE_TAR=$(bash scripts/bookworm-base.sh)
    echo ">>> importing the base as debian:bookworm"
    dockyard import "$BASE_TAR" debian:bookworm
fi

echo ">>> dockyard build -t $IMAGE examples/redis-image"
dockyard build -t "$IMAGE" examples/redis-image

if (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; then
    echo "port 6379 on this host is already in use; stop that redis first" >&2
    exit 1
fi
dockyard rm -f "$SERVER" >/dev/null 2>&1 || true
echo ">>> dockyard run -d --network host --name $SERVER $IMAGE"
dockyard run -d --network host --name "$SERVER" "$IMAGE" >/dev/null
echo ">>> dockyard run --rm --network host $IMAGE redis-cli ping"
for _ in $(seq 50); do
    if reply=$(dockyard run --rm --network host "$IMAGE" redis-cli ping 2>/dev/null) && [ "$reply" = PONG ]; then
        echo "$reply"
        dockyard stop "$SERVER" >/dev/null
        dockyard rm "$SERVER" >/dev/null
        exit 0
    fi
    sleep 0.2
done
echo "redis did not answer PONG; server logs:" >&2
dockyard logs "$SERVER" >&2 || true
exit 1
