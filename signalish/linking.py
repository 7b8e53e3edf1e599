"""Linking a new device to an account by QR code.

The new device makes a :class:`LinkRequest` and shows :meth:`LinkRequest.qr_text`
as a QR code; the existing device reads it with :func:`parse_link_qr` and
sends :func:`seal_provisioning` of a :class:`ProvisioningData` (the account's
identity key pair and identifiers) through the server; the new device opens
it with :meth:`LinkRequest.open`, then publishes its own prekeys and starts
its own sessions under the account's identity.  The server relays an
envelope only the new device can open.  Formats and flow: :doc:`linking`.
"""

from ._provisioning import (
    MAX_EXTRA,
    PROVISIONING_VERSION,
    LinkRequest,
    LinkTarget,
    ProvisioningData,
    parse_link_qr,
    seal_provisioning,
)

__all__ = ["LinkRequest", "LinkTarget", "ProvisioningData", "parse_link_qr",
           "seal_provisioning", "PROVISIONING_VERSION", "MAX_EXTRA"]
