"""A context the client uploads through its session (`docker build - < context.tar` with buildx).

buildx serves the tar from stdin with BuildKit's upload provider and names it as the context
`http://buildkit-session/<id>`; the daemon pulls it with `/moby.upload.v1.Upload/Pull`, the
URL's path and host in the `urlpath`/`urlhost` metadata, as BytesMessages until the end of the
call (moby/buildkit session/upload).
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING

from dockyard.errors import BuildFailure, InvalidArgument
from dockyard.session.h2grpc import GrpcError

if TYPE_CHECKING:
    from dockyard.session.manager import Session

UPLOAD_PULL = "/moby.upload.v1.Upload/Pull"
SESSION_URL_HOST = "buildkit-session"


def is_session_url(value: str) -> bool:
    return value.startswith(f"http://{SESSION_URL_HOST}/")


async def pull(session: Session, url: str, dest: Path) -> int:
    """Write the upload named by `url` to `dest`; returns its size."""
    from dockyard.session.proto import session_pb2

    parsed = urllib.parse.urlparse(url)
    if parsed.hostname != SESSION_URL_HOST:
        raise InvalidArgument(f"invalid upload URL {url}")
    if not session.supports(UPLOAD_PULL):
        raise BuildFailure(f"failed to read the context: {UPLOAD_PULL} not served by the client")
    call = session.conn.open(UPLOAD_PULL, {"urlpath": [parsed.path], "urlhost": [parsed.netloc]})
    size = 0
    try:
        await call.close_send()
        with open(dest, "wb") as f:
            while (raw := await call.recv()) is not None:
                data = session_pb2.BytesMessage.FromString(raw).data
                size += len(data)
                f.write(data)
    except GrpcError as exc:
        raise BuildFailure(f"failed to read the context from the client: {exc.message}") from None
    except BaseException:
        call.cancel()
        raise
    return size
