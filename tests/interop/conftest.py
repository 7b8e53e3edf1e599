"""libsignal-client peers for the interoperability tests.

``libsignal``: a libsignal-client 0.72.1 party (driver.mjs, protocol v3).
``libsignal_v4``: a libsignal-client 0.90.0 party (driver_v4.mjs, protocol v4:
PQXDH with Kyber1024; it offers SPQR and drops it for a peer that never sends
it).  Both drivers run under Node with the packages pinned in
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


@pytest.fixture
def libsignal_v4() -> Iterator[LibsignalPeer]:
    peer = LibsignalPeer("0.90.0")
    try:
        yield peer
    finally:
        peer.close()


@pytest.fixture
def libsignal_v5() -> Iterator[LibsignalPeer]:
    """A libsignal-client 0.103.0 party (driver_v5.mjs), not yet initialised."""
    peer = LibsignalPeer("0.103.0")
    try:
        yield peer
    finally:
        peer.close()
