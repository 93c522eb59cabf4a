#!/bin/sh
# Regenerate the protobuf modules of BuildKit's session and control API from our .proto files
# (written from BuildKit's and fsutil's public sources: field numbers are wire facts).
# Needs grpcio-tools: .venv/bin/pip install -e '.[proto]'
set -eu
cd "$(dirname "$0")/../src/dockyard/session"
PY="${PYTHON:-../../../.venv/bin/python}"
"$PY" -m grpc_tools.protoc -Iproto --python_out=proto --pyi_out=proto proto/*.proto
