"""JSON Web Tokens of the Docker token protocol: issued by the built-in service, verified here.

Verification trusts only asymmetric algorithms from a configured list, looks the key up by
`kid` (or an `x5c` chain to a configured root), and checks issuer, audience, expiry and
not-before with a small leeway. Anything else is `TokenInvalid`, whose message is for logs
of the server only at debug level and never contains the token.
"""

from __future__ import annotations

import base64
import itertools
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography import x509
from cryptography.exceptions import InvalidSignature

from dockyard.auth.access import Principal, Scope
from dockyard.auth.keys import SIGNING_ALGORITHM, KeyDirectory, PublicKey, TrustedKeys, key_fits

ASYMMETRIC_ALGORITHMS: tuple[str, ...] = (
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
)
DEFAULT_LEEWAY = 30.0
REFRESH_USE = "refresh"
_MAX_TOKEN_LENGTH = 64 * 1024


class TokenInvalid(Exception):
    """The token cannot be trusted (why is for debugging, never for the client)."""


@dataclass(frozen=True, slots=True)
class Grant:
    type: str
    name: str
    actions: tuple[str, ...]

    def as_claim(self) -> dict[str, Any]:
        return {"type": self.type, "name": self.name, "actions": list(self.actions)}


def _grants_of(claim: Any) -> frozenset[tuple[str, str, str]]:
    if claim is None:
        return frozenset()
    if not isinstance(claim, list):
        raise TokenInvalid("access claim is not a list")
    grants: set[tuple[str, str, str]] = set()
    for entry in claim:
        if not isinstance(entry, dict):
            raise TokenInvalid("access entry is not an object")
        kind, name, actions = entry.get("type"), entry.get("name"), entry.get("actions")
        if not isinstance(kind, str) or not isinstance(name, str) or not isinstance(actions, list):
            raise TokenInvalid("access entry lacks type, name or actions")
        grants.update((kind, name, action) for action in actions if isinstance(action, str))
    return frozenset(grants)


class TokenVerifier:
    """Checks bearer tokens against trusted keys (re-read through `keys` on every call)."""

    def __init__(self, keys: Callable[[], TrustedKeys], issuer: str, audience: str,
                 algorithms: Iterable[str] = ASYMMETRIC_ALGORITHMS,
                 leeway: float = DEFAULT_LEEWAY,
                 clock: Callable[[], float] = time.time) -> None:
        self._keys = keys
        self.issuer = issuer
        self.audience = audience
        self.algorithms = tuple(a for a in algorithms if a in ASYMMETRIC_ALGORITHMS)
        self._leeway = leeway
        self._clock = clock

    def _key_for(self, header: dict[str, Any], trusted: TrustedKeys) -> PublicKey:
        kid = header.get("kid")
        if isinstance(kid, str) and kid in trusted.by_kid:
            return trusted.by_kid[kid]
        chain = header.get("x5c")
        if isinstance(chain, list) and chain and trusted.roots:
            return _verify_chain(chain, trusted.roots)
        raise TokenInvalid("no trusted key for this token")

    def verify(self, token: str) -> dict[str, Any]:
        if len(token) > _MAX_TOKEN_LENGTH:
            raise TokenInvalid("token too long")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise TokenInvalid(f"malformed token: {exc}") from None
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in self.algorithms:
            raise TokenInvalid("algorithm not accepted")
        key = self._key_for(header, self._keys())
        if not key_fits(algorithm, key):
            raise TokenInvalid("algorithm does not fit the key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token, key, algorithms=[algorithm], audience=self.audience, issuer=self.issuer,
                leeway=self._leeway,
                options={"require": ["exp", "iss", "aud"], "verify_iat": False},
            )
        except jwt.InvalidTokenError as exc:
            raise TokenInvalid(f"rejected: {type(exc).__name__}") from None
        # PyJWT reads the clock itself; a test clock is applied here as well.
        now = self._clock()
        if float(claims["exp"]) + self._leeway < now:
            raise TokenInvalid("expired")
        if "nbf" in claims and float(claims["nbf"]) - self._leeway > now:
            raise TokenInvalid("not yet valid")
        return claims

    def principal(self, token: str) -> Principal:
        """A caller whose rights are the token's `access` claim."""
        claims = self.verify(token)
        if claims.get("token_use") == REFRESH_USE:
            raise TokenInvalid("a refresh token is not an access token")
        subject = claims.get("sub")
        return Principal(subject if isinstance(subject, str) and subject else None,
                         _grants_of(claims.get("access")), via_token=True)


def _verify_chain(chain: list[Any], roots: tuple[x509.Certificate, ...]) -> PublicKey:
    """x5c: the leaf (first) certificate must be a root or be signed along the chain by one."""
    try:
        certificates = [x509.load_der_x509_certificate(base64.b64decode(c)) for c in chain]
    except (ValueError, TypeError):
        raise TokenInvalid("bad x5c chain") from None
    now = time.time()
    for certificate in certificates:
        if not (certificate.not_valid_before_utc.timestamp() <= now
                <= certificate.not_valid_after_utc.timestamp()):
            raise TokenInvalid("certificate in x5c chain is not valid now")
    for child, parent in itertools.pairwise(certificates):
        try:
            child.verify_directly_issued_by(parent)
        except (ValueError, TypeError, InvalidSignature):
            raise TokenInvalid("broken x5c chain") from None
    top = certificates[-1]
    for root in roots:
        if top == root:
            break
        try:
            top.verify_directly_issued_by(root)
            break
        except (ValueError, TypeError, InvalidSignature):
            continue
    else:
        raise TokenInvalid("x5c chain does not lead to a trusted root")
    key = certificates[0].public_key()
    if not isinstance(key, PublicKey):
        raise TokenInvalid("unsupported key in x5c")
    return key


class TokenIssuer:
    """Signs access and refresh tokens with the newest built-in key."""

    def __init__(self, keys: KeyDirectory, issuer: str, audience: str, lifetime: float,
                 refresh_lifetime: float, clock: Callable[[], float] = time.time) -> None:
        self._keys = keys
        self.issuer = issuer
        self.audience = audience
        self.lifetime = lifetime
        self.refresh_lifetime = refresh_lifetime
        self._clock = clock

    def _sign(self, claims: dict[str, Any]) -> str:
        key = self._keys.current()
        return jwt.encode(claims, key.private, algorithm=SIGNING_ALGORITHM,
                          headers={"kid": key.kid, "typ": "JWT"})

    def _base(self, subject: str | None, lifetime: float) -> dict[str, Any]:
        now = int(self._clock())
        return {"iss": self.issuer, "sub": subject or "", "aud": self.audience,
                "iat": now, "nbf": now, "exp": now + int(lifetime),
                "jti": secrets.token_urlsafe(16)}

    def access_token(self, subject: str | None, grants: list[Grant]) -> str:
        claims = self._base(subject, self.lifetime)
        claims["access"] = [grant.as_claim() for grant in grants]
        return self._sign(claims)

    def refresh_token(self, subject: str, fingerprint: str = "") -> str:
        claims = self._base(subject, self.refresh_lifetime)
        claims["token_use"] = REFRESH_USE
        claims["pwf"] = fingerprint
        return self._sign(claims)


def scope_grant(scope: Scope, actions: Iterable[str]) -> Grant:
    """The granted part of a requested scope, in the order the client asked."""
    allowed = set(actions)
    return Grant(scope.type, scope.name, tuple(a for a in scope.actions if a in allowed))
