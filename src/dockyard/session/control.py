"""BuildKit's control API as buildx's docker driver speaks it on `/grpc`: method paths and caps.

buildx (0.13) runs every build as a gateway client (moby/buildkit client/build.go): it calls
`Control.Solve` with no frontend and no definition, and meanwhile, on the same connection,
`LLBBridge.Ping` and `LLBBridge.Solve{Frontend: "dockerfile.v0", FrontendOpt: …}`, then
`LLBBridge.Return` with the result; the gateway calls name their build by the
`buildkit-controlapi-buildid` metadata key (client/buildid). Progress for the build's ref
comes from `Control.Status`. The engine's glue is engine/grpc_build.py.
"""

from __future__ import annotations

CONTROL = "/moby.buildkit.v1.Control/"
SOLVE = CONTROL + "Solve"
STATUS = CONTROL + "Status"
LIST_WORKERS = CONTROL + "ListWorkers"
INFO = CONTROL + "Info"
DISK_USAGE = CONTROL + "DiskUsage"
PRUNE = CONTROL + "Prune"
LISTEN_BUILD_HISTORY = CONTROL + "ListenBuildHistory"
UPDATE_BUILD_HISTORY = CONTROL + "UpdateBuildHistory"
CONTROL_SESSION = CONTROL + "Session"

BRIDGE = "/moby.buildkit.v1.frontend.LLBBridge/"
BRIDGE_PING = BRIDGE + "Ping"
BRIDGE_SOLVE = BRIDGE + "Solve"
BRIDGE_RETURN = BRIDGE + "Return"
BRIDGE_INPUTS = BRIDGE + "Inputs"
BRIDGE_WARN = BRIDGE + "Warn"
BRIDGE_EVALUATE = BRIDGE + "Evaluate"
# What a gateway client may ask that we do not do, with the feature it belongs to.
BRIDGE_UNSUPPORTED = {
    BRIDGE + "ResolveImageConfig": "resolving image configs for gateway frontends",
    BRIDGE + "ResolveSourceMeta": "resolving source metadata for gateway frontends",
    BRIDGE + "ReadFile": "reading files of build results (gateway frontends)",
    BRIDGE + "ReadDir": "reading directories of build results (gateway frontends)",
    BRIDGE + "StatFile": "stat of build results (gateway frontends)",
    BRIDGE + "NewContainer": "containers of gateway frontends (buildx debug)",
    BRIDGE + "ReleaseContainer": "containers of gateway frontends (buildx debug)",
    BRIDGE + "ExecProcess": "processes of gateway frontends (buildx debug)",
}

HEALTH_CHECK = "/grpc.health.v1.Health/Check"

BUILD_ID_KEY = "buildkit-controlapi-buildid"

DOCKERFILE_FRONTEND = "dockerfile.v0"

# The frontend API capabilities we answer Ping with (frontend/gateway/pb/caps.go): a result
# is handed back with Return, refs travel as Ref messages and several may be returned.
FRONTEND_CAPS = (
    "solve.base",
    "solve.inlinereturn",
    "return",
    "returnmap",
    "proto.refarray",
    "gateway.evaluate",
    "gateway.warnings",
)

# The worker's id and labels, as moby's builder-next worker names them (worker/worker.go).
WORKER_ID = "dockyard"
LABEL_EXECUTOR = "org.mobyproject.buildkit.worker.executor"
LABEL_HOSTNAME = "org.mobyproject.buildkit.worker.hostname"
LABEL_SNAPSHOTTER = "org.mobyproject.buildkit.worker.snapshotter"
LABEL_HOST_GATEWAY = "org.mobyproject.buildkit.worker.moby.host-gateway-ip"

# Exporter response keys (exporter/containerimage/exptypes).
RESP_IMAGE_DIGEST = "containerimage.digest"
RESP_CONFIG_DIGEST = "containerimage.config.digest"
RESP_IMAGE_NAME = "image.name"
META_IMAGE_CONFIG = "containerimage.config"
