"""The decision in front of every request: who is calling, may they do this, what to answer.

Two modes, as in distribution: `basic` (htpasswd credentials on every request) and `bearer`
(tokens from a token service, the built-in one or an external one). In basic mode tokens of
the built-in service are accepted too, so either kind of client works against one server.
A request without credentials whose TLS client certificate names a user is that user in basic
mode; in bearer mode the built-in token service takes the certificate as a login instead.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from dockyard.auth.access import (
    ANONYMOUS,
    CATALOG,
    PULL,
    PUSH,
    REGISTRY,
    REPOSITORY,
    Principal,
    Scope,
)
from dockyard.auth.htpasswd import Htpasswd
from dockyard.auth.policy import AccessPolicy
from dockyard.auth.ratelimit import FailureLimiter, address_key, user_key
from dockyard.auth.tokens import TokenInvalid, TokenVerifier

log = logging.getLogger("dockyard.auth")

Mode = Literal["basic", "bearer"]
_MAX_HEADER = 64 * 1024
_NO_TOKEN = Principal(None, frozenset())


@dataclass(frozen=True, slots=True)
class Decision:
    """Allowed (status 200, with the caller) or a refusal to send as an OCI error."""

    status: int
    principal: Principal | None = None
    code: str = ""
    message: str = ""
    challenge: str | None = None
    retry_after: int = 0
    detail: list[dict[str, Any]] | None = field(default=None)

    @property
    def allowed(self) -> bool:
        return self.status == 200


@dataclass(frozen=True, slots=True)
class Credentials:
    user: str
    password: str


class Malformed(ValueError):
    """An Authorization header that cannot be read."""


def parse_authorization(header: str) -> tuple[str, str]:
    """(scheme in lower case, parameter); raises Malformed."""
    if len(header) > _MAX_HEADER:
        raise Malformed("header too long")
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if not scheme or not value or " " in value:
        raise Malformed("expected 'scheme value'")
    return scheme.lower(), value


def decode_basic(value: str) -> Credentials | None:
    """The user and password; None for an empty pair (`Basic Og==`), which is anonymous.

    skopeo, podman and buildah send the empty pair when they have no credentials; refusing it
    would keep them from anonymous pulls that curl (which sends no header) gets.
    """
    try:
        text = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise Malformed("bad base64") from None
    if text == ":":
        return None
    user, colon, password = text.partition(":")
    if not colon or not user:
        raise Malformed("expected user:password")
    return Credentials(user, password)


def quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def challenge_scope(scope: Scope) -> Scope:
    """What a client should ask a token for: push implies pull, as clients always need both."""
    if PUSH in scope.actions and PULL not in scope.actions:
        return Scope(scope.type, scope.name, (PULL, *scope.actions))
    return scope


def _detail(scope: Scope | None) -> list[dict[str, Any]] | None:
    if scope is None:
        return None
    return [{"Type": scope.type, "Name": scope.name, "Action": action}
            for action in scope.actions]


class Authorizer:
    def __init__(self, mode: Mode, policy: AccessPolicy, htpasswd: Htpasswd | None,
                 verifier: TokenVerifier | None, limiter: FailureLimiter,
                 basic_realm: str = "dockyard", service: str = "dockyard",
                 bearer_realm: str | None = None) -> None:
        self.mode = mode
        self.policy = policy
        self.htpasswd = htpasswd
        self.verifier = verifier
        self.limiter = limiter
        self.basic_realm = basic_realm
        self.service = service
        self.bearer_realm = bearer_realm
        """None: the built-in token service, whose URL the HTTP layer knows per request."""

    # --- passwords (also used by the token service) -------------------------------------------

    @staticmethod
    def _limit_keys(user: str, remote: str) -> list[str]:
        return [user_key(user), address_key(remote)]

    def throttled(self, user: str, remote: str) -> int:
        """Seconds the caller must wait before another password check is allowed."""
        return self.limiter.blocked_for(self._limit_keys(user, remote))

    def check_password(self, credentials: Credentials, remote: str) -> bool:
        """bcrypt (slow: call it off the event loop unless `password_cached` says otherwise)."""
        if self.htpasswd is None:
            return False
        ok = self.htpasswd.verify(credentials.user, credentials.password)
        if ok:
            self.limiter.succeeded([user_key(credentials.user)])
        else:
            self.limiter.failed(self._limit_keys(credentials.user, remote))
            log.info("failed login for user %r from %s", credentials.user, remote)
        return ok

    def password_cached(self, header: str | None) -> bool:
        """True when the request needs no bcrypt check (no Basic header, or a cached one)."""
        if header is None or self.htpasswd is None:
            return True
        try:
            scheme, value = parse_authorization(header)
            if scheme != "basic":
                return True
            credentials = decode_basic(value)
        except Malformed:
            return True
        return credentials is None or self.htpasswd.cached(credentials.user, credentials.password)

    # --- challenges and refusals --------------------------------------------------------------

    def challenge(self, needed: Scope | None, token_realm: str, error: str | None = None,
                  related: Sequence[Scope] = ()) -> str:
        """`related` scopes are named after `needed`, space-separated as distribution does."""
        if self.mode == "basic":
            return f"Basic realm={quote(self.basic_realm)}"
        parts = [f"realm={quote(self.bearer_realm or token_realm)}",
                 f"service={quote(self.service)}"]
        if needed is not None:
            scopes = [str(challenge_scope(needed)), *(str(scope) for scope in related)]
            parts.append(f"scope={quote(' '.join(scopes))}")
        if error is not None:
            parts.append(f"error={quote(error)}")
        return "Bearer " + ",".join(parts)

    def _unauthorized(self, needed: Scope | None, token_realm: str, message: str,
                      error: str | None = None, related: Sequence[Scope] = ()) -> Decision:
        return Decision(401, code="UNAUTHORIZED", message=message,
                        challenge=self.challenge(needed, token_realm, error, related),
                        detail=_detail(needed))

    def _denied(self, needed: Scope | None, token_realm: str,
                related: Sequence[Scope] = ()) -> Decision:
        challenge = (self.challenge(needed, token_realm, "insufficient_scope", related)
                     if self.mode == "bearer" else None)
        return Decision(403, code="DENIED", message="requested access to the resource is denied",
                        challenge=challenge, detail=_detail(needed))

    # --- the check --------------------------------------------------------------------------

    def authenticate(self, header: str | None, remote: str, token_realm: str,
                     certificate: str | None = None) -> Principal | Decision:
        """The caller, or the refusal to send. May run bcrypt (see `password_cached`).

        `certificate`: the user a verified client certificate names, if that identifies;
        it counts only when no credentials are sent.
        """
        if header is None:
            # Bearer mode: anonymous callers get (anonymous) tokens from the token service.
            return self._without_credentials(certificate) if self.mode == "basic" else _NO_TOKEN
        try:
            scheme, value = parse_authorization(header)
            if scheme == "bearer" and self.verifier is not None:
                try:
                    return self.verifier.principal(value)
                except TokenInvalid as exc:
                    log.debug("bearer token refused: %s", exc)
                    return self._unauthorized(None, token_realm, "invalid token", "invalid_token")
            if scheme == "basic" and self.mode == "basic":
                credentials = decode_basic(value)
            else:
                raise Malformed("unsupported scheme")
        except Malformed:
            return self._unauthorized(None, token_realm, "authentication required")
        if credentials is None:
            return self._without_credentials(certificate)
        wait = self.throttled(credentials.user, remote)
        if wait:
            return Decision(429, code="TOOMANYREQUESTS", message="too many failed logins",
                            retry_after=wait)
        if not self.check_password(credentials, remote):
            return self._unauthorized(None, token_realm, "authentication required")
        return Principal(credentials.user)

    @staticmethod
    def _without_credentials(certificate: str | None) -> Principal:
        """No header, or the empty pair skopeo, podman and buildah send: the certificate's
        user if it names one, else anonymous."""
        return ANONYMOUS if certificate is None else Principal(certificate)

    def may(self, principal: Principal, scope_type: str, name: str, action: str) -> bool:
        if principal.grants is not None:
            return ((scope_type, name, action) in principal.grants
                    or (scope_type, name, "*") in principal.grants)
        if scope_type == REPOSITORY:
            return self.policy.allows(principal.subject, name, action)
        if scope_type == REGISTRY and name == CATALOG:
            return self.policy.may_list_catalog(principal.subject)
        return False

    def may_pull(self, principal: Principal) -> Callable[[str], bool]:
        """What listings show: repositories the caller's identity may pull under the policy."""
        def check(repository: str) -> bool:
            return self.policy.allows(principal.subject, repository, PULL)
        return check

    def authorize(self, header: str | None, remote: str, needed: Scope | None,
                  token_realm: str, related: Sequence[Scope] = (),
                  certificate: str | None = None) -> Decision:
        """needed None: only authentication (GET /v2/).

        `related` scopes are named in a challenge but never required: a mount's source, which
        a token client can only hold if the challenge tells it to ask for it; without it the
        mount becomes an ordinary upload.
        """
        found = self.authenticate(header, remote, token_realm, certificate)
        if isinstance(found, Decision):
            if needed is not None and found.status == 401:
                return self._unauthorized(needed, token_realm, found.message, related=related)
            return found
        principal = found
        if needed is None:
            if principal.anonymous:
                return self._unauthorized(None, token_realm, "authentication required")
            return Decision(200, principal)
        if all(self.may(principal, needed.type, needed.name, a) for a in needed.actions):
            return Decision(200, principal)
        if principal.anonymous:
            return self._unauthorized(needed, token_realm, "authentication required",
                                      related=related)
        # A valid token that lacks the access, whether it names the repository or not, is 403
        # with error="insufficient_scope" (RFC 6750, 3.1): docker, containerd, skopeo, podman
        # and buildah ask for a token per repository and read either status as a refusal, but
        # oras-py reuses one token across repositories and fetches a new one only after a 403.
        return self._denied(needed, token_realm, related)
