"""The built-in token service's decisions: which of the requested scopes a caller gets."""

from __future__ import annotations

from collections.abc import Iterable

from dockyard.auth.access import ALL, CATALOG, REGISTRY, REPOSITORY, Scope
from dockyard.auth.policy import AccessPolicy
from dockyard.auth.tokens import Grant, TokenIssuer, scope_grant


def granted(policy: AccessPolicy, subject: str | None, scopes: Iterable[Scope]) -> list[Grant]:
    """The intersection of what was asked and what the policy allows; empty grants dropped.

    As the token protocol says, asking for more than allowed is not an error: the token
    simply carries less, and the registry refuses what it lacks.
    """
    grants: list[Grant] = []
    for scope in scopes:
        if scope.type == REPOSITORY:
            allowed = set(policy.actions(subject, scope.name))
            if ALL in scope.actions and len(allowed) == 3:
                allowed.add(ALL)
            grant = scope_grant(scope, allowed)
        elif scope.type == REGISTRY and scope.name == CATALOG:
            grant = scope_grant(scope, [ALL] if policy.may_list_catalog(subject) else [])
        else:
            continue
        if grant.actions:
            grants.append(grant)
    return grants


class TokenService:
    def __init__(self, issuer: TokenIssuer, policy: AccessPolicy, service: str) -> None:
        self.issuer = issuer
        self.policy = policy
        self.service = service

    def access_token(self, subject: str | None, scopes: Iterable[Scope]) -> str:
        return self.issuer.access_token(subject, granted(self.policy, subject, scopes))
