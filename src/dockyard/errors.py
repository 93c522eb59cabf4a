"""The exception hierarchy every layer raises; the API edge maps it to HTTP status codes.

Each class carries the status Docker's daemon answers for the same condition, so the
API layer needs no table of its own and clients (the docker CLI among them) react as they
would to Docker: 404 makes `docker run` pull, 409 is a conflict, 400 a bad parameter.
"""

from __future__ import annotations


class DockyardError(Exception):
    """Base of every error dockyard raises on purpose."""

    status: int = 500


class InvalidArgument(DockyardError):
    """The caller gave a value that cannot be used (a bad flag, reference, spec or file)."""

    status = 400


class NotSupported(InvalidArgument):
    """A valid Docker setting that dockyard does not implement yet: refused, never ignored."""


class NotFound(DockyardError):
    """No such image, container, blob or layer."""

    status = 404


class Conflict(DockyardError):
    """The operation clashes with current state (a name in use, an image used by a container)."""

    status = 409


class DigestMismatch(DockyardError):
    """Content did not hash to the digest it was announced with; nothing was stored."""

    status = 400


class UnsafeArchive(InvalidArgument):
    """A tar archive tried to escape its root or is otherwise not a well-formed layer."""


class RuntimeFailure(DockyardError):
    """The OCI runtime (runc) or the kernel refused to run a container."""


class BuildFailure(DockyardError):
    """A build step failed; the message names the step and, where known, `Dockerfile:LINE`."""


class Unavailable(DockyardError):
    """The daemon cannot serve this now (dockerd's 503: e.g. swarm calls on a node that is
    not part of a swarm)."""

    status = 503


class RegistryUnavailable(DockyardError):
    """The registry could not be reached or broke off; a mirror falls back to the next one."""

    # dockerd answers an unreachable registry with 500 (docker-py's containers.run pulls a
    # missing image and scripts see that status)
    status = 500
