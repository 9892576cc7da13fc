"""HTTPS for the listener: TLS 1.2 or newer, optional client certificates, hot reload.

`reload` loads the certificate chain into the same SSLContext the listener uses, so new
handshakes present the new certificate while open connections carry on undisturbed.
"""

from __future__ import annotations

import logging
import ssl

from dockyard.config import TlsConfig

log = logging.getLogger("dockyard.server.tls")


def make_context(tls: TlsConfig) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = (ssl.TLSVersion.TLSv1_3 if tls.minimumtls == "tls1.3"
                               else ssl.TLSVersion.TLSv1_2)
    context.load_cert_chain(tls.certificate, tls.key)
    if tls.clientcas:
        for path in tls.clientcas:
            context.load_verify_locations(cafile=path)
        context.verify_mode = ssl.CERT_REQUIRED
    context.set_alpn_protocols(["http/1.1"])
    return context


def reload(context: ssl.SSLContext, tls: TlsConfig) -> bool:
    """Re-read certificate and key (SIGHUP); on error keep serving the old pair."""
    try:
        context.load_cert_chain(tls.certificate, tls.key)
        for path in tls.clientcas:
            context.load_verify_locations(cafile=path)
    except (OSError, ssl.SSLError) as exc:
        log.error("TLS reload failed, keeping the previous certificate: %s", exc)
        return False
    log.info("TLS certificate reloaded")
    return True
