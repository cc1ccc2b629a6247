"""Mutual TLS for the peer transport, with the standard library's :mod:`ssl` only.

Every peer holds a certificate and key signed by the cluster's CA and trusts only that
CA. Both directions verify: the server requires a client certificate
(``CERT_REQUIRED``), the client verifies the server's certificate and, unless turned
off, its host name against the address it dialled (so peer certificates should carry
the peers' IPs or names as subject alternative names).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

__all__ = ["TLSConfig"]


@dataclass(slots=True, frozen=True)
class TLSConfig:
    """Paths to this peer's PEM certificate chain and key, and to the trusted CA bundle."""

    cert_file: str
    key_file: str
    ca_file: str
    #: Check the server certificate's names against the dialled host. Leave on unless
    #: peers are reached through addresses their certificates cannot name.
    check_hostname: bool = True

    def server_context(self) -> ssl.SSLContext:
        """Context for the listening side: presents our certificate, demands the peer's."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.cert_file, self.key_file)
        ctx.load_verify_locations(cafile=self.ca_file)
        ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx

    def client_context(self) -> ssl.SSLContext:
        """Context for the dialling side: presents our certificate, verifies the server's."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.cert_file, self.key_file)
        ctx.load_verify_locations(cafile=self.ca_file)
        ctx.check_hostname = self.check_hostname
        ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx
