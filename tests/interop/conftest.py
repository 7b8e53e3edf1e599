"""A libsignal-client 0.72.1 peer for the interoperability tests.

The driver (driver.mjs) runs under Node with the package pinned in
package-lock.json, installed by ``.ci/run`` (``npm ci``).  A missing Node or
a missing install is a test failure, never a skip: these tests are the
evidence that signalish speaks libsignal's protocol.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from libsignal_peer import LibsignalPeer


@pytest.fixture
def libsignal() -> Iterator[LibsignalPeer]:
    peer = LibsignalPeer()
    try:
        yield peer
    finally:
        peer.close()
