"""gRPC method paths of BuildKit's session services (moby/buildkit session/*.proto)."""

from __future__ import annotations

FILESYNC_DIFFCOPY = "/moby.filesync.v1.FileSync/DiffCopy"
FILESYNC_TARSTREAM = "/moby.filesync.v1.FileSync/TarStream"
FILESEND_DIFFCOPY = "/moby.filesync.v1.FileSend/DiffCopy"
AUTH_CREDENTIALS = "/moby.filesync.v1.Auth/Credentials"
AUTH_FETCH_TOKEN = "/moby.filesync.v1.Auth/FetchToken"
AUTH_GET_TOKEN_AUTHORITY = "/moby.filesync.v1.Auth/GetTokenAuthority"
AUTH_VERIFY_TOKEN_AUTHORITY = "/moby.filesync.v1.Auth/VerifyTokenAuthority"
SECRETS_GET = "/moby.buildkit.secrets.v1.Secrets/GetSecret"
SSH_CHECK_AGENT = "/moby.sshforward.v1.SSH/CheckAgent"
SSH_FORWARD_AGENT = "/moby.sshforward.v1.SSH/ForwardAgent"
HEALTH_CHECK = "/grpc.health.v1.Health/Check"

# gRPC metadata keys of these services
KEY_DIR_NAME = "dir-name"
KEY_INCLUDE = "include-patterns"
KEY_EXCLUDE = "exclude-patterns"
KEY_FOLLOW = "followpaths"
KEY_SSH_ID = "buildkit.ssh.id"
KEY_EXPORTER_ID = "buildkit-attachable-exporter-id"
