"""TLS to a remote daemon, as the docker CLI does it (imported only for a TLS host: `ssl` costs
the CLI's start-up ~15 ms, which local commands must not pay).

Settings (cli/context.py reads them without importing this module): `--tlsverify` or
DOCKER_TLS_VERIFY (any non-empty value) verifies the daemon's certificate against
`--tlscacert` (default `$DOCKER_CERT_PATH/ca.pem`, else `~/.docker/ca.pem`) and its name or IP;
`--tls` alone encrypts without verifying. A client certificate (`--tlscert`/`--tlskey`, default
`cert.pem`/`key.pem` there) is presented when the files exist, as the docker CLI does.

The socket is our own TLS over an `ssl.SSLObject`, because the CLI half-closes a hijacked
stream at the end of stdin: that is a close_notify alert while reading goes on, which
`ssl.SSLSocket.shutdown` cannot do (it drops the TLS layer).
"""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

from dockyard.cli.transport import TLSError, TLSSettings


def context(settings: TLSSettings) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        if settings.verify:
            ctx.load_verify_locations(cafile=settings.ca)
        else:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if Path(settings.cert).is_file() and Path(settings.key).is_file():
            ctx.load_cert_chain(settings.cert, settings.key)
    except (OSError, ssl.SSLError) as exc:
        raise TLSError(f"could not read the TLS files: {exc}") from None
    return ctx


class TLSSocket:
    """A connected TLS client: sendall, recv, shutdown and close as a socket's."""

    def __init__(self, raw: socket.socket, settings: TLSSettings, server_name: str) -> None:
        self._raw = raw
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self._tls = context(settings).wrap_bio(self._in, self._out, server_hostname=server_name)
        self._eof = False
        self._answered = False
        try:
            self._handshake()
        except ssl.SSLError as exc:
            raise TLSError(f"TLS handshake with the daemon failed: {exc.reason or exc}") from None

    def _flush(self) -> None:
        data = self._out.read()
        if data:
            self._raw.sendall(data)

    def _fill(self) -> bool:
        data = self._raw.recv(65536)
        if not data:
            self._in.write_eof()
            return False
        self._in.write(data)
        return True

    def _handshake(self) -> None:
        while True:
            try:
                self._tls.do_handshake()
                self._flush()
                return
            except ssl.SSLWantReadError:
                self._flush()
                if not self._fill():
                    raise ssl.SSLError(
                        "the daemon closed the connection during the handshake"
                    ) from None

    def sendall(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = self._tls.write(view)
            view = view[n:]
            self._flush()

    def recv(self, size: int) -> bytes:
        while not self._eof:
            try:
                data = self._tls.read(size)
                self._answered = True
                return data
            except ssl.SSLWantReadError:
                self._flush()
                self._fill()  # at the socket's end, the next read says how the TLS ended
            except ssl.SSLZeroReturnError:
                self._eof = True
            except ssl.SSLEOFError:
                if not self._answered:
                    # A daemon that refuses our certificate after the handshake (TLS 1.3)
                    # may just drop the connection (asyncio sends no alert).
                    raise TLSError(
                        "the daemon closed the TLS connection before answering: is the "
                        "client certificate one its --tlscacert signed?"
                    ) from None
                self._eof = True
            except ssl.SSLError as exc:
                # With TLS 1.3 the daemon judges our certificate after the handshake: its
                # refusal arrives as an alert on the first read.
                reason = (exc.reason or str(exc)).lower().replace("_", " ")
                raise TLSError(f"remote error: {reason}") from None
        return b""

    def raw_socket(self) -> socket.socket:
        return self._raw

    def decrypt(self, data: bytes | None) -> bytes:
        """The plaintext of `data`, which the caller read from raw_socket() itself (None:
        only what the TLS layer already holds; b"": the socket's end), for a reader that
        must not block inside the TLS object while writers wait for it (one operation at a
        time on an SSLObject; session/h2lite.py). b"" when the records carried no data
        (a session ticket); EOFError at the end of the TLS stream."""
        if data:
            self._in.write(data)
        elif data is not None:
            self._in.write_eof()
        out: list[bytes] = []
        while True:
            try:
                chunk = self._tls.read(1 << 20)
            except ssl.SSLWantReadError:
                break
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                if out:
                    break
                raise EOFError from None
            except ssl.SSLError as exc:
                reason = (exc.reason or str(exc)).lower().replace("_", " ")
                raise TLSError(f"remote error: {reason}") from None
            if not chunk:
                break
            out.append(chunk)
        self._flush()  # what the TLS layer answers on its own (key updates)
        return b"".join(out)

    def shutdown(self, how: int) -> None:
        if how in (socket.SHUT_WR, socket.SHUT_RDWR):
            # close_notify: the TLS half-close; reading may go on (SSL_shutdown's first step)
            try:
                self._tls.unwrap()
            except ssl.SSLError:
                pass
            self._flush()
        if how in (socket.SHUT_RD, socket.SHUT_RDWR):
            self._raw.shutdown(how)

    def close(self) -> None:
        self._raw.close()


def wrap(raw: socket.socket, settings: TLSSettings, server_name: str) -> TLSSocket:
    try:
        return TLSSocket(raw, settings, server_name)
    except BaseException:
        raw.close()
        raise
