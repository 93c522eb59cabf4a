"""What the client and its TLS layer (cli/tls.py) share: the settings of a TLS connection and
the errors of reaching a daemon. Its own module, so that tls.py (loaded only for a TLS host)
does not import the client that loads it lazily."""

from __future__ import annotations


class DaemonUnreachable(Exception):
    """Nothing answers on the daemon's socket (missing, refused, or not started)."""


class DaemonPermissionDenied(DaemonUnreachable):
    """The socket refused us (EACCES), or a daemon would have to be started without root."""


class TLSError(DaemonUnreachable):
    """The TLS set-up or handshake with a remote daemon failed (a bad or missing certificate)."""


class TLSSettings:
    """What `--tls*` and the DOCKER_TLS* variables ask for (cli/tls.py does the TLS; a plain
    class, see Host)."""

    __slots__ = ("ca", "cert", "key", "verify")

    def __init__(self, verify: bool, ca: str, cert: str, key: str) -> None:
        self.verify = verify
        self.ca = ca
        self.cert = cert
        self.key = key
