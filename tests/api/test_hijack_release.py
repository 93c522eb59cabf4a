"""A hijacked connection (attach, exec start) leaves nothing registered in aiohttp's server
once it is over (api/hijack.py): before, every one stayed in `Server.connections` for good,
with its buffers, and the daemon's idle re-exec counts connections there."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from aiohttp import web

from dockyard.api.hijack import HijackedResponse, hijack

_UPGRADE = b"POST /h HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n"


def _app(finished: list[str]) -> web.Application:
    async def handler(request: web.Request) -> web.StreamResponse:
        eof = asyncio.Event()
        transport, proto = hijack(request, {}, lambda _data: None, eof.set)
        if request.query.get("wait") == "client":
            await eof.wait()  # the client's half-close (docker's end of stdin)
            transport.close()
            await proto.closed.wait()
            # the connection is gone while the handler still runs: it finishes on its own
            await asyncio.sleep(0.05)
        else:
            transport.write(b"hi")
            transport.close()
        finished.append(request.query.get("wait", "server"))
        return HijackedResponse(request)

    app = web.Application()
    app.router.add_post("/h", handler)
    return app


def test_a_hijacked_connection_is_released_once_over(tmp_path: Path) -> None:
    async def main() -> None:
        finished: list[str] = []
        runner = web.AppRunner(_app(finished), handler_cancellation=True, shutdown_timeout=1)
        await runner.setup()
        path = tmp_path / "s.sock"
        site = web.UnixSite(runner, str(path))
        await site.start()
        loop = asyncio.get_running_loop()
        try:
            for query in (b"", b"?wait=client"):
                sock = socket.socket(socket.AF_UNIX)
                sock.setblocking(False)
                await loop.sock_connect(sock, str(path))
                await loop.sock_sendall(sock, _UPGRADE.replace(b"/h", b"/h" + query))
                got = b""
                while b"\r\n\r\n" not in got:
                    got += await loop.sock_recv(sock, 4096)
                assert got.startswith(b"HTTP/1.1 101")
                if not query:
                    while not got.endswith(b"hi"):
                        got += await loop.sock_recv(sock, 4096)
                sock.shutdown(socket.SHUT_WR)
                while await loop.sock_recv(sock, 4096):
                    pass
                sock.close()
                for _ in range(100):
                    if runner.server is not None and not runner.server.connections:
                        break
                    await asyncio.sleep(0.01)
                assert runner.server is not None
                assert runner.server.connections == []
            assert finished == ["server", "client"]  # neither handler was cancelled
        finally:
            await runner.cleanup()

    asyncio.run(main())
