"""Tokens: what the built-in service signs verifies; every forgery and misuse does not."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from dockyard.auth import keys as keymod
from dockyard.auth.keys import KeyDirectory, TrustedKeys, libtrust_kid, load_jwks, load_root_bundle
from dockyard.auth.tokens import Grant, TokenInvalid, TokenIssuer, TokenVerifier

ISS, AUD = "dockyard", "registry.test"


@pytest.fixture
def keydir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> KeyDirectory:
    monkeypatch.setattr(keymod, "_CHECK_INTERVAL", 0.0)
    keymod.ensure_key(tmp_path / "keys")
    return KeyDirectory(tmp_path / "keys")


def issuer_for(keydir: KeyDirectory, lifetime: float = 300) -> TokenIssuer:
    return TokenIssuer(keydir, ISS, AUD, lifetime, 3600)


def verifier_for(keydir: KeyDirectory, **kwargs: Any) -> TokenVerifier:
    return TokenVerifier(keydir.trusted, ISS, AUD, **kwargs)


PULL_A = [Grant("repository", "team/a", ("pull",))]


def test_round_trip(keydir: KeyDirectory) -> None:
    token = issuer_for(keydir).access_token("alice", PULL_A)
    principal = verifier_for(keydir).principal(token)
    assert principal.subject == "alice"
    assert principal.grants == {("repository", "team/a", "pull")}
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "ES256" and header["kid"] == keydir.current().kid


def _claims(**override: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {"iss": ISS, "aud": AUD, "sub": "alice", "iat": now, "nbf": now,
                              "exp": now + 300, "access": [PULL_A[0].as_claim()]}
    claims.update(override)
    return claims


def _signed(keydir: KeyDirectory, **override: Any) -> str:
    key = keydir.current()
    return jwt.encode(_claims(**override), key.private, algorithm="ES256",
                      headers={"kid": key.kid})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _reject(keydir: KeyDirectory, token: str) -> None:
    with pytest.raises(TokenInvalid):
        verifier_for(keydir).principal(token)


def test_alg_none_is_rejected(keydir: KeyDirectory) -> None:
    header = _b64(json.dumps({"alg": "none", "kid": keydir.current().kid}).encode())
    payload = _b64(json.dumps(_claims()).encode())
    _reject(keydir, f"{header}.{payload}.")
    _reject(keydir, f"{header}.{payload}")


def test_hs256_signed_with_the_public_key_is_rejected(keydir: KeyDirectory) -> None:
    public_pem = keydir.current().public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    header = {"alg": "HS256", "kid": keydir.current().kid, "typ": "JWT"}
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(_claims()).encode())}"
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    _reject(keydir, f"{signing_input}.{_b64(signature)}")


@pytest.mark.parametrize(("claim", "value"), [
    ("exp", -120), ("nbf", 120), ("aud", "another-service"), ("iss", "someone-else"),
])
def test_claims_are_checked(keydir: KeyDirectory, claim: str, value: Any) -> None:
    """Times are offsets from now, taken when the test runs (not when it is collected)."""
    if isinstance(value, int):
        value = int(time.time()) + value
    _reject(keydir, _signed(keydir, **{claim: value}))


def test_small_clock_skew_is_tolerated(keydir: KeyDirectory) -> None:
    verifier_for(keydir).principal(_signed(keydir, nbf=int(time.time()) + 10))
    verifier_for(keydir).principal(_signed(keydir, exp=int(time.time()) - 10))


@pytest.mark.parametrize("missing", ["exp", "iss", "aud"])
def test_required_claims(keydir: KeyDirectory, missing: str) -> None:
    claims = _claims()
    del claims[missing]
    key = keydir.current()
    _reject(keydir, jwt.encode(claims, key.private, algorithm="ES256", headers={"kid": key.kid}))


def test_tampered_payload_is_rejected(keydir: KeyDirectory) -> None:
    token = issuer_for(keydir).access_token("alice", PULL_A)
    header, _, signature = token.split(".")
    escalated = _claims(access=[{"type": "repository", "name": "team/a",
                                 "actions": ["pull", "push"]}])
    _reject(keydir, f"{header}.{_b64(json.dumps(escalated).encode())}.{signature}")


def test_unknown_key_and_garbage(keydir: KeyDirectory) -> None:
    stranger = ec.generate_private_key(ec.SECP256R1())
    _reject(keydir, jwt.encode(_claims(), stranger, algorithm="ES256",
                               headers={"kid": keydir.current().kid}))
    _reject(keydir, jwt.encode(_claims(), stranger, algorithm="ES256", headers={"kid": "nope"}))
    for garbage in ("", "abc", "a.b.c", "x" * 100_000):
        _reject(keydir, garbage)


def test_malformed_access_claim(keydir: KeyDirectory) -> None:
    _reject(keydir, _signed(keydir, access="repository:team/a:push"))
    _reject(keydir, _signed(keydir, access=[{"type": "repository"}]))


def test_refresh_token_is_not_an_access_token(keydir: KeyDirectory) -> None:
    _reject(keydir, issuer_for(keydir).refresh_token("alice"))


def test_rotation_keeps_tokens_in_flight(keydir: KeyDirectory, tmp_path: Path) -> None:
    issuer = issuer_for(keydir)
    before = issuer.access_token("alice", PULL_A)
    old_kid = keydir.current().kid
    new_kid, retired = keymod.rotate(tmp_path / "keys", retire_after=3600)
    assert retired == [] and new_kid != old_kid
    after = issuer.access_token("alice", PULL_A)
    assert jwt.get_unverified_header(after)["kid"] == new_kid
    verifier = verifier_for(keydir)
    verifier.principal(before)
    verifier.principal(after)
    # Once the old key is retired, its tokens stop verifying; the new ones do not.
    _, retired = keymod.rotate(tmp_path / "keys", retire_after=0, now=time.time() + 10)
    assert old_kid in retired
    _reject(keydir, before)
    assert keydir.jwks()["keys"][-1]["kid"] != old_kid


def test_only_configured_algorithms(keydir: KeyDirectory) -> None:
    token = issuer_for(keydir).access_token("alice", PULL_A)
    with pytest.raises(TokenInvalid):
        verifier_for(keydir, algorithms=["RS256"]).principal(token)


def _jwks(tmp_path: Path, entries: list[tuple[str, Any]]) -> Path:
    path = tmp_path / "jwks.json"
    keys = [{**keymod.jwk_of(key.public_key()), "kid": kid} for kid, key in entries]
    path.write_text(json.dumps({"keys": keys}))
    return path


def test_rs256_and_eddsa_from_a_jwks(tmp_path: Path) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ed_key = ed25519.Ed25519PrivateKey.generate()
    trusted = load_jwks(_jwks(tmp_path, [("r1", rsa_key), ("e1", ed_key)]))
    verifier = TokenVerifier(lambda: trusted, ISS, AUD)
    for kid, key, alg in (("r1", rsa_key, "RS256"), ("e1", ed_key, "EdDSA")):
        token = jwt.encode(_claims(), key, algorithm=alg, headers={"kid": kid})
        assert verifier.principal(token).subject == "alice"
    # The right key id with the wrong algorithm family is refused.
    crossed = jwt.encode(_claims(), rsa_key, algorithm="RS256", headers={"kid": "e1"})
    with pytest.raises(TokenInvalid):
        verifier.principal(crossed)


def _self_signed(key: Any) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "token signer")])
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))


def test_rootcertbundle_by_libtrust_kid_and_by_x5c(tmp_path: Path) -> None:
    """distribution's token servers name the key by libtrust id or send the x5c chain."""
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = _self_signed(key)
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    trusted = load_root_bundle(bundle)
    verifier = TokenVerifier(lambda: trusted, ISS, AUD)
    kid = libtrust_kid(key.public_key())
    assert len(kid.split(":")) == 12
    verifier.principal(jwt.encode(_claims(), key, algorithm="ES256", headers={"kid": kid}))
    x5c = [base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode()]
    verifier.principal(jwt.encode(_claims(), key, algorithm="ES256", headers={"x5c": x5c}))
    # An x5c chain of a certificate the bundle does not hold is refused.
    other = ec.generate_private_key(ec.SECP256R1())
    foreign = [base64.b64encode(_self_signed(other).public_bytes(
        serialization.Encoding.DER)).decode()]
    with pytest.raises(TokenInvalid):
        verifier.principal(jwt.encode(_claims(), other, algorithm="ES256",
                                      headers={"x5c": foreign}))


def test_empty_trust_rejects_everything(keydir: KeyDirectory) -> None:
    verifier = TokenVerifier(lambda: TrustedKeys({}), ISS, AUD)
    with pytest.raises(TokenInvalid):
        verifier.principal(issuer_for(keydir).access_token("alice", PULL_A))


def test_key_files_are_private(keydir: KeyDirectory, tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    assert (directory.stat().st_mode & 0o077) == 0
    for path in directory.iterdir():
        assert (path.stat().st_mode & 0o077) == 0
