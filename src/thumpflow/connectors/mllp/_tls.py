"""TLS contexts for MLLP: TLS 1.2 or later, certificates from PEM files."""

from __future__ import annotations

import ssl

from thumpflow.connectors.mllp.spec import MllpClientTls, MllpServerTls


def server_context(tls: MllpServerTls) -> ssl.SSLContext:
    """A server context; verifies client certificates against `ca_file` when given."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(tls.cert_file, tls.key_file)
    if tls.ca_file is not None:
        ctx.load_verify_locations(cafile=tls.ca_file)
        ctx.verify_mode = ssl.CERT_REQUIRED if tls.require_client_cert else ssl.CERT_OPTIONAL
    return ctx


def client_context(tls: MllpClientTls) -> ssl.SSLContext:
    """A client context; verifies the receiver unless `verify` is off."""
    ctx = ssl.create_default_context(cafile=tls.ca_file)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if not tls.verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if tls.cert_file is not None and tls.key_file is not None:
        ctx.load_cert_chain(tls.cert_file, tls.key_file)
    return ctx
