"""Test material for access control: htpasswd files, a CA with server certificates, tokens."""

from __future__ import annotations

import base64
import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from dockyard.auth.htpasswd import hash_password

FAST_ROUNDS = 4
"""bcrypt's lowest cost: tests stay fast, the format is the real one."""


def write_htpasswd(path: Path, users: dict[str, str]) -> Path:
    path.write_text("".join(f"{user}:{hash_password(password, FAST_ROUNDS)}\n"
                            for user, password in users.items()))
    return path


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


@dataclass
class Pki:
    """A CA made for one test, and certificates it signs (files in `directory`)."""

    directory: Path

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        self.ca_cert = (
            x509.CertificateBuilder()
            .subject_name(_name("Dockyard test CA")).issuer_name(_name("Dockyard test CA"))
            .public_key(self.ca_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .sign(self.ca_key, hashes.SHA256())
        )
        self.ca_path = self.directory / "ca.crt"
        self.ca_path.write_bytes(self.ca_cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, name: str, common: str = "127.0.0.1", client: bool = False,
              alt_names: Sequence[x509.GeneralName] = ()) -> tuple[Path, Path]:
        """(certificate, key) for 127.0.0.1 and localhost, or a client certificate (with
        `alt_names` as its subject alternative names)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common)).issuer_name(self.ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if not client:
            alt_names = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                         x509.DNSName("localhost")]
        if alt_names:
            builder = builder.add_extension(x509.SubjectAlternativeName(alt_names),
                                            critical=False)
        certificate = builder.sign(self.ca_key, hashes.SHA256())
        cert_path = self.directory / f"{name}.crt"
        key_path = self.directory / f"{name}.key"
        cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(_pem(key))
        return cert_path, key_path

    def cert_dir(self, name: str = "certs") -> Path:
        """A directory holding only ca.crt, as containers tools' --cert-dir wants."""
        directory = self.directory / name
        directory.mkdir(exist_ok=True)
        (directory / "ca.crt").write_bytes(self.ca_path.read_bytes())
        return directory


def auth_config(htpasswd: Path, mode: str = "basic", **extra: Any) -> dict[str, Any]:
    """An `auth` section: Basic on every request, or bearer tokens from the built-in service."""
    section: dict[str, Any] = {"htpasswd": {"realm": "dockyard-test", "path": str(htpasswd)}}
    if mode == "bearer":
        section["token"] = {}
    section.update(extra)
    return {"auth": section}
