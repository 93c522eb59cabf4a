"""Wrong JSON bodies against dockerd 20.10 and against us: the same decoder message.

dockerd 20.10 answers most decoder errors with 500 (newer ones with 400, the status the
issue asks for); the message must be the same word for word, and ours a 400.
"""

from __future__ import annotations

import pytest

from tests.api.decode_cases import CASES
from tests.conftest import Clients
from tests.interop.test_api import call_raw
from tests.support.daemons import ReferenceDockerd

pytestmark = [pytest.mark.root, pytest.mark.dockerd]

PATHS = {
    "create": "/v1.41/containers/create",
    "update": "/v1.41/containers/no-such-ctr/update",
    "exec": "/v1.41/containers/no-such-ctr/exec",
    "execstart": "/v1.41/exec/no-such-exec/start",
    "network": "/v1.41/networks/create",
    "connect": "/v1.41/networks/no-such-net/connect",
    "disconnect": "/v1.41/networks/no-such-net/disconnect",
    "volume": "/v1.41/volumes/create",
}


@pytest.mark.parametrize(
    ("endpoint", "body"), [(e, b) for e, b, message in CASES if message is not None]
)
def test_decoder_errors_match_dockerd(
    clients: Clients, reference: ReferenceDockerd, endpoint: str, body: str
) -> None:
    theirs = call_raw(reference.socket, "POST", PATHS[endpoint], body.encode())
    ours = call_raw(clients.daemon.socket, "POST", PATHS[endpoint], body.encode())
    assert theirs.status in (400, 500)
    assert ours.status == 400, ours.body
    assert ours.headers["content-type"] == "application/json"
    assert ours.json() == theirs.json()
