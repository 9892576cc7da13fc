"""Signing keys of the built-in token service, and the keys a resource server trusts.

The built-in keys live as PEM files in one directory (by default under the storage root,
so the data directory is the whole state). The newest key signs; older keys keep verifying
until they are retired, so rotating never invalidates a token in flight. Every process
re-reads the directory when it changes, so `dockyard auth rotate-key` reaches all workers.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

log = logging.getLogger("dockyard.auth")

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | \
    ed448.Ed448PublicKey
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | \
    ed448.Ed448PrivateKey

SIGNING_ALGORITHM = "ES256"
_KEY_SUFFIX = ".pem"
_CHECK_INTERVAL = 1.0


class KeyFileError(ValueError):
    """A key file or bundle that cannot be used."""


def libtrust_kid(key: PublicKey) -> str:
    """distribution's key id: base32 of the truncated SHA-256 of the SubjectPublicKeyInfo."""
    der = key.public_bytes(serialization.Encoding.DER,
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(encoded[i:i + 4] for i in range(0, len(encoded), 4))


def jwk_of(key: PublicKey) -> dict[str, Any]:
    if isinstance(key, rsa.RSAPublicKey):
        return dict(RSAAlgorithm.to_jwk(key, as_dict=True))
    if isinstance(key, ec.EllipticCurvePublicKey):
        return dict(ECAlgorithm.to_jwk(key, as_dict=True))
    return dict(OKPAlgorithm.to_jwk(key, as_dict=True))


def thumbprint(key: PublicKey) -> str:
    """RFC 7638 JWK thumbprint: a key id any JOSE library can recompute."""
    jwk = jwk_of(key)
    members = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x")}
    canonical = json.dumps({k: jwk[k] for k in members[jwk["kty"]]}, separators=(",", ":"),
                           sort_keys=True)
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def key_fits(algorithm: str, key: PublicKey) -> bool:
    """The algorithm family must match the key type: no HS*, no RSA key read as an EC one."""
    if algorithm.startswith(("RS", "PS")):
        return isinstance(key, rsa.RSAPublicKey)
    curves = {"ES256": "secp256r1", "ES384": "secp384r1", "ES512": "secp521r1"}
    if algorithm in curves:
        return isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == curves[algorithm]
    if algorithm == "EdDSA":
        return isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey)
    return False


def _as_public(key: Any) -> PublicKey:
    if isinstance(key, PublicKey):
        return key
    raise KeyFileError(f"unsupported key type {type(key).__name__}")


# --- trusted keys (resource server) ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrustedKeys:
    """Public keys by kid, and root certificates for tokens that carry an x5c chain."""

    by_kid: dict[str, PublicKey]
    roots: tuple[x509.Certificate, ...] = ()

    def merged(self, other: TrustedKeys) -> TrustedKeys:
        return TrustedKeys({**self.by_kid, **other.by_kid}, self.roots + other.roots)


def load_root_bundle(path: str | Path) -> TrustedKeys:
    """distribution's rootcertbundle: PEM certificates whose keys sign tokens."""
    try:
        certificates = x509.load_pem_x509_certificates(Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        raise KeyFileError(f"cannot read root certificate bundle {path}: {exc}") from None
    keys: dict[str, PublicKey] = {}
    for certificate in certificates:
        key = _as_public(certificate.public_key())
        keys[libtrust_kid(key)] = key
        keys[thumbprint(key)] = key
    return TrustedKeys(keys, tuple(certificates))


def load_jwks(path: str | Path) -> TrustedKeys:
    """A JSON Web Key Set file; every key needs a kid."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
        entries = document["keys"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise KeyFileError(f"cannot read JWKS {path}: {exc}") from None
    keys: dict[str, PublicKey] = {}
    for entry in entries:
        kty = entry.get("kty") if isinstance(entry, dict) else None
        if kty not in ("RSA", "EC", "OKP") or not entry.get("kid"):
            raise KeyFileError(f"JWKS {path}: every key needs a kid and kty RSA, EC or OKP")
        try:
            if kty == "RSA":
                loaded: Any = RSAAlgorithm.from_jwk(entry)
            elif kty == "EC":
                loaded = ECAlgorithm.from_jwk(entry)
            else:
                loaded = OKPAlgorithm.from_jwk(entry)
        except (ValueError, KeyError, TypeError) as exc:
            raise KeyFileError(f"JWKS {path}: bad key {entry.get('kid')!r}: {exc}") from None
        keys[str(entry["kid"])] = _as_public(loaded)
    return TrustedKeys(keys)


# --- the built-in service's own keys ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    created: int
    private: ec.EllipticCurvePrivateKey

    @property
    def public(self) -> PublicKey:
        return self.private.public_key()


def _generate(created: int) -> SigningKey:
    private = ec.generate_private_key(ec.SECP256R1())
    return SigningKey(thumbprint(private.public_key()), created, private)


def _write_key(directory: Path, key: SigningKey) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    pem = key.private.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    fd, temporary = tempfile.mkstemp(prefix=".key-", dir=directory)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, directory / f"{key.created:012d}-{key.kid}{_KEY_SUFFIX}")


def _read_keys(directory: Path) -> list[SigningKey]:
    """Oldest first; unreadable files are skipped with a warning."""
    keys: list[SigningKey] = []
    try:
        names = sorted(p for p in directory.iterdir() if p.name.endswith(_KEY_SUFFIX))
    except FileNotFoundError:
        return []
    for path in names:
        created_text, _, kid = path.name[: -len(_KEY_SUFFIX)].partition("-")
        try:
            private = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (OSError, ValueError) as exc:
            log.warning("skipping token key %s: %s", path.name, exc)
            continue
        if not isinstance(private, ec.EllipticCurvePrivateKey) or not created_text.isdigit():
            log.warning("skipping token key %s: not a P-256 key file", path.name)
            continue
        keys.append(SigningKey(kid, int(created_text), private))
    return keys


def list_keys(directory: Path) -> list[SigningKey]:
    """The keys in the directory, oldest first: the last one signs, all of them verify."""
    return _read_keys(directory)


def ensure_key(directory: Path) -> SigningKey:
    """The current key, generating the first one; run before workers start."""
    keys = _read_keys(directory)
    if keys:
        return keys[-1]
    key = _generate(int(time.time()))
    _write_key(directory, key)
    log.info("generated token signing key %s in %s", key.kid, directory)
    return key


def rotate(directory: Path, retire_after: float, now: float | None = None) -> tuple[str, list[str]]:
    """Add a new signing key; delete keys superseded more than `retire_after` seconds ago.

    Returns the new kid and the retired kids. A superseded key keeps verifying for
    `retire_after`, which must cover the longest token lifetime.
    """
    moment = int(now if now is not None else time.time())
    existing = _read_keys(directory)
    created = max([moment, *[key.created + 1 for key in existing]])
    new = _generate(created)
    _write_key(directory, new)
    retired: list[str] = []
    for older, newer in zip(existing, [*existing[1:], new], strict=False):
        if min(newer.created, moment) + retire_after <= moment:
            for path in directory.glob(f"{older.created:012d}-*{_KEY_SUFFIX}"):
                path.unlink(missing_ok=True)
            retired.append(older.kid)
    return new.kid, retired


class KeyDirectory:
    """The built-in keys of one directory, re-read at most once a second when it changed."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._keys: list[SigningKey] = []
        self._stamp: int | None = None
        self._checked = 0.0
        self._lock = threading.Lock()
        self._refresh(force=True)

    def _refresh(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._checked < _CHECK_INTERVAL:
            return
        self._checked = now
        try:
            stamp = os.stat(self.directory).st_mtime_ns
        except FileNotFoundError:
            stamp = None
        if stamp == self._stamp and not force:
            return
        self._keys, self._stamp = _read_keys(self.directory), stamp

    def current(self) -> SigningKey:
        with self._lock:
            self._refresh()
            if not self._keys:
                self._keys = [ensure_key(self.directory)]
            return self._keys[-1]

    def trusted(self) -> TrustedKeys:
        with self._lock:
            self._refresh()
            return TrustedKeys({key.kid: key.public for key in self._keys})

    def jwks(self) -> dict[str, Any]:
        with self._lock:
            self._refresh()
            keys = list(self._keys)
        return {"keys": [{**jwk_of(key.public), "kid": key.kid, "use": "sig",
                          "alg": SIGNING_ALGORITHM} for key in keys]}


def merge_all(parts: Iterable[TrustedKeys]) -> TrustedKeys:
    merged = TrustedKeys({})
    for part in parts:
        merged = merged.merged(part)
    return merged
