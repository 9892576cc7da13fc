"""The `auth` section: who may do what, proved by htpasswd or by bearer tokens."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from dockyard.config.section import Section
from dockyard.config.values import PositiveDuration, URLPath, parse_duration


class HtpasswdConfig(Section):
    """Users in an htpasswd file (bcrypt): Basic auth, or the built-in token service's users."""

    realm: str = "dockyard"
    path: str = Field(min_length=1)


TOKEN_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                    "ES256", "ES384", "ES512", "EdDSA")


class TokenConfig(Section):
    """Bearer tokens (distribution's auth.token). Without rootcertbundle or jwks, the
    built-in token service issues them and its realm is this server's token path."""

    realm: str | None = None
    service: str | None = None
    issuer: str | None = None
    rootcertbundle: str | None = None
    jwks: str | None = None
    signingalgorithms: list[Literal[TOKEN_ALGORITHMS]] = Field(  # type: ignore[valid-type]
        default_factory=lambda: list(TOKEN_ALGORITHMS), min_length=1)


class TokenServiceConfig(Section):
    """The built-in token service (Dockyard's): issues bearer tokens to htpasswd users."""

    enabled: bool | None = None
    """Default: on when auth.htpasswd is configured."""
    path: URLPath = "/token"
    issuer: str = "dockyard"
    service: str = "dockyard"
    expiration: PositiveDuration = "5m"
    refreshexpiration: PositiveDuration = "24h"
    keydirectory: str | None = None
    """Default: <rootdirectory>/auth/keys."""

    @property
    def expiration_seconds(self) -> float:
        """`expiration` in seconds."""
        return parse_duration(self.expiration)

    @property
    def refresh_expiration_seconds(self) -> float:
        """`refreshexpiration` in seconds."""
        return parse_duration(self.refreshexpiration)


class AccessRuleConfig(Section):
    """One grant: these users and groups may do these actions on matching repositories."""

    repositories: list[str] = Field(min_length=1)
    """Globs: `*` within a path component, `**` across components."""
    users: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)
    actions: list[Literal["pull", "push", "delete", "*"]] = Field(default_factory=list)
    anonymouspull: bool = False


class AccessConfig(Section):
    """Rights beyond "any authenticated user may do anything": admins, groups and rules."""

    admins: list[str] = Field(default_factory=list)
    groups: dict[str, list[str]] = Field(default_factory=dict)
    rules: list[AccessRuleConfig] = Field(default_factory=list)


class RateLimitConfig(Section):
    """Failed logins are throttled so passwords cannot be guessed at line speed."""

    attempts: int = Field(default=5, ge=1)
    """Failed logins per user within the window before 429."""
    addressattempts: int = Field(default=30, ge=1)
    """Failed logins per client address within the window before 429."""
    window: PositiveDuration = "5m"

    @property
    def window_seconds(self) -> float:
        """`window` in seconds."""
        return parse_duration(self.window)


class ClientCertificateConfig(Section):
    """Machines log in with the client certificate `http.tls.clientcas` verified: `field`
    names the user (the subject's CN, or the first email, DNS or URI subject alternative
    name). A request with an Authorization header is judged by that header instead."""

    enabled: bool = False
    field: Literal["cn", "san-email", "san-dns", "san-uri"] = "cn"


class AuthConfig(Section):
    """distribution's `auth` section plus access rules; no htpasswd or token means open."""

    htpasswd: HtpasswdConfig | None = None
    token: TokenConfig | None = None
    tokenservice: TokenServiceConfig = Field(default_factory=TokenServiceConfig)
    access: AccessConfig = Field(default_factory=AccessConfig)
    ratelimit: RateLimitConfig = Field(default_factory=RateLimitConfig)
    clientcertificate: ClientCertificateConfig = Field(default_factory=ClientCertificateConfig)

    @property
    def enabled(self) -> bool:
        """Whether requests must authenticate at all."""
        return self.htpasswd is not None or self.token is not None

    @property
    def token_service_enabled(self) -> bool:
        """Whether this server issues tokens itself (needs htpasswd users to issue them to)."""
        enabled = self.tokenservice.enabled
        return self.htpasswd is not None and (enabled is None or enabled)

    @model_validator(mode="after")
    def _consistent(self) -> AuthConfig:
        if self.tokenservice.enabled and self.htpasswd is None:
            raise ValueError("tokenservice.enabled needs auth.htpasswd (its users)")
        token = self.token
        if token is not None and not self.token_service_enabled and not (
                token.rootcertbundle or token.jwks):
            raise ValueError("auth.token needs rootcertbundle or jwks, "
                             "or auth.htpasswd for the built-in token service")
        if token is not None and (token.rootcertbundle or token.jwks) and not (
                token.realm and token.service and token.issuer):
            raise ValueError("auth.token with an external token service needs realm, "
                             "service and issuer")
        if self.clientcertificate.enabled and not self.enabled:
            raise ValueError("auth.clientcertificate needs auth.htpasswd or auth.token")
        if self.clientcertificate.enabled and token is not None and (
                not self.token_service_enabled):
            raise ValueError("auth.clientcertificate in bearer mode needs the built-in "
                             "token service (it takes the certificate as a login)")
        return self
