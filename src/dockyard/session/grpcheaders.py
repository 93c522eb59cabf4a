"""gRPC request/response headers as metadata: one reading for both HTTP/2 ends.

The daemon's asyncio end (h2grpc.py) and the CLI's synchronous end (h2lite.py) both use it;
it imports nothing at module level, so the CLI's light build path stays light.
"""

from __future__ import annotations

# `typing` costs the CLI's build path an import (tests/cli/test_lean.py): the constant, as h2lite.py
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence


def headers_dict(headers: Sequence[tuple[bytes, bytes]]) -> dict[str, list[str]]:
    """Header values by lower-cased name. A `-bin` value is base64 (PROTOCOL-HTTP2.md,
    "Custom-Metadata"; senders may leave out the padding) and becomes the latin-1 text of
    its bytes. A value that is not base64 reads as "": it is the peer's metadata, and a bad
    one must not bring the connection down (it used to raise inside the protocol's
    data_received, which closed every stream of the session with a logged traceback)."""
    out: dict[str, list[str]] = {}
    for k, v in headers:
        key = k.decode("latin-1").lower()
        if key.endswith("-bin"):
            import binascii  # rare: nothing we talk to sends binary metadata today

            try:
                value = binascii.a2b_base64(v + b"=" * (-len(v) % 4)).decode("latin-1")
            except binascii.Error:
                value = ""
        else:
            value = v.decode("latin-1")
        out.setdefault(key, []).append(value)
    return out
