"""The composition root's auth part: builds the authorizer and token service from config.

Part of the composition root (not in auth/) because it reads Config; auth/ stays config-free.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from dockyard.api.auth import AuthState
from dockyard.app.backends import redis_options
from dockyard.auth.authorizer import Authorizer, Mode
from dockyard.auth.htpasswd import Htpasswd
from dockyard.auth.keys import (
    SIGNING_ALGORITHM,
    KeyDirectory,
    TrustedKeys,
    ensure_key,
    load_jwks,
    load_root_bundle,
    merge_all,
)
from dockyard.auth.policy import AccessPolicy, Rule
from dockyard.auth.ratelimit import FailureLimiter, MemoryFailureLimiter
from dockyard.auth.service import TokenService
from dockyard.auth.tokens import TokenIssuer, TokenVerifier
from dockyard.config import AuthConfig, Config

log = logging.getLogger("dockyard.auth")


def build_policy(auth: AuthConfig) -> AccessPolicy:
    rules = [
        Rule(tuple(rule.repositories), frozenset(rule.users), frozenset(rule.groups),
             frozenset(rule.actions), rule.anonymouspull)
        for rule in auth.access.rules
    ]
    return AccessPolicy(rules, auth.access.admins, auth.access.groups)


def _limiter(config: Config) -> FailureLimiter:
    """Shared through Redis when it is configured (one limit for all nodes), else per process."""
    limits = config.auth.ratelimit

    def limit(key: str) -> int:
        return limits.attempts if key.startswith("user:") else limits.addressattempts

    options = redis_options(config)
    if options is None:
        return MemoryFailureLimiter(limits.window_seconds, limit)
    from redis import Redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from dockyard.auth.redis_limiter import RedisFailureLimiter
    from dockyard.cache.redis import client_arguments

    client = Redis(retry=Retry(NoBackoff(), retries=1), **client_arguments(options))
    return RedisFailureLimiter(client, limits.window_seconds, limit)


def prepare_auth(config: Config) -> None:
    """Before workers start: the first signing key, so workers never race to make one."""
    if config.auth.token_service_enabled:
        ensure_key(config.token_key_directory())


def build_auth(config: Config) -> AuthState | None:
    auth = config.auth
    if not auth.enabled:
        return None
    policy = build_policy(auth)
    htpasswd = Htpasswd(auth.htpasswd.path) if auth.htpasswd is not None else None
    settings = auth.tokenservice
    keys = KeyDirectory(config.token_key_directory()) if auth.token_service_enabled else None

    external: list[TrustedKeys] = []
    token = auth.token
    if token is not None and token.rootcertbundle:
        external.append(load_root_bundle(token.rootcertbundle))
    if token is not None and token.jwks:
        external.append(load_jwks(token.jwks))
    fixed = merge_all(external)

    def trusted() -> TrustedKeys:
        return fixed.merged(keys.trusted()) if keys is not None else fixed

    issuer_name = (token.issuer if token is not None else None) or settings.issuer
    service_name = (token.service if token is not None else None) or settings.service
    algorithms = token.signingalgorithms if token is not None else [SIGNING_ALGORITHM]
    verifier = (TokenVerifier(trusted, issuer_name, service_name, algorithms)
                if token is not None or keys is not None else None)
    mode: Mode = "bearer" if token is not None else "basic"
    authorizer = Authorizer(
        mode, policy, htpasswd, verifier, _limiter(config),
        basic_realm=auth.htpasswd.realm if auth.htpasswd is not None else "dockyard",
        service=service_name,
        bearer_realm=token.realm if token is not None else None,
    )
    token_service = refresh_verifier = None
    if keys is not None:
        # auth.token's issuer and service, when given, name the built-in service too, so the
        # tokens it signs are the ones the registry checks for.
        issuer = TokenIssuer(keys, issuer_name, service_name,
                             settings.expiration_seconds, settings.refresh_expiration_seconds)
        token_service = TokenService(issuer, policy, service_name)
        refresh_verifier = TokenVerifier(keys.trusted, issuer_name, service_name,
                                         [SIGNING_ALGORITHM])
    certificate = auth.clientcertificate
    return AuthState(authorizer, settings.path, config.http.host, token_service,
                     refresh_verifier, keys,
                     certificate.field if certificate.enabled else None)


def reload_htpasswd(state: AuthState) -> Callable[[Config], None]:
    """A SIGHUP hook: read the htpasswd file again, from its new path if that changed."""

    def apply(config: Config) -> None:
        htpasswd = config.auth.htpasswd
        if htpasswd is None or state.authorizer.htpasswd is None:
            return  # turning basic auth on or off needs a restart
        state.authorizer.htpasswd = Htpasswd(htpasswd.path)
        log.info("reload: htpasswd users read from %s", htpasswd.path)

    return apply
