"""Who a verified client certificate names: the user for the access rules (mTLS logins)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

CertificateField = Literal["cn", "san-email", "san-dns", "san-uri"]

_ALT_NAME_TYPES: dict[str, str] = {"san-email": "email", "san-dns": "DNS", "san-uri": "URI"}


def certificate_user(peercert: Mapping[str, Any] | None, field: CertificateField) -> str | None:
    """The first value of `field` in a certificate as `ssl.SSLSocket.getpeercert()` reads it.

    Only a certificate the TLS handshake verified against `http.tls.clientcas` has fields
    there (an unverified one reads as empty), so a name found here is one that CA vouched for.
    """
    if not peercert:
        return None
    if field == "cn":
        found = [value for rdn in peercert.get("subject", ()) for key, value in rdn
                 if key == "commonName"]
    else:
        wanted = _ALT_NAME_TYPES[field]
        found = [value for kind, value in peercert.get("subjectAltName", ()) if kind == wanted]
    return next((value for value in found if isinstance(value, str) and value), None)
