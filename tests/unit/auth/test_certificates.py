"""Reading the user out of a verified client certificate, as ssl's getpeercert() gives it."""

from __future__ import annotations

from typing import Any

import pytest

from dockyard.auth.certificates import CertificateField, certificate_user

PEERCERT: dict[str, Any] = {
    "subject": ((("organizationName", "Builders"),), (("commonName", "ci-runner"),)),
    "subjectAltName": (("DNS", "runner.example.test"), ("email", "ci@example.test"),
                       ("URI", "spiffe://example.test/ci"), ("email", "second@example.test")),
}


@pytest.mark.parametrize(("field", "user"), [
    ("cn", "ci-runner"),
    ("san-email", "ci@example.test"),
    ("san-dns", "runner.example.test"),
    ("san-uri", "spiffe://example.test/ci"),
])
def test_each_field_names_its_first_value(field: CertificateField, user: str) -> None:
    assert certificate_user(PEERCERT, field) == user


@pytest.mark.parametrize("peercert", [
    None,
    {},  # what getpeercert() returns for a certificate the handshake did not verify
    {"subject": ((("organizationName", "Builders"),),)},
    {"subject": ((("commonName", ""),),)},
])
def test_no_name_is_no_user(peercert: dict[str, Any] | None) -> None:
    assert certificate_user(peercert, "cn") is None
    assert certificate_user(peercert, "san-email") is None
