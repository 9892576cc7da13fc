"""Bearer tokens from the upstream's token service (distribution's token spec): the request,
the answer, and a cache so a pull asks once per repository scope, not once per request."""

from __future__ import annotations

import asyncio
import datetime
import json
import time
from dataclasses import dataclass

DEFAULT_LIFETIME = 60.0
"""The token spec's default when the answer has no `expires_in`."""

MARGIN = 10.0
"""A token is dropped this long before it expires (at most a quarter of its lifetime), so a
request never leaves with a token that expires on the way."""


class InvalidTokenResponse(ValueError):
    """The token service answered 200 with something that is not a token."""


@dataclass(frozen=True, slots=True)
class Realm:
    """Where the upstream sends us for tokens (from its Bearer challenge)."""

    url: str
    service: str | None


@dataclass(frozen=True, slots=True)
class Token:
    value: str
    expires_at: float
    """On the monotonic clock."""


def token_params(realm: Realm, scopes: list[str]) -> list[tuple[str, str]]:
    """The query of a token request: the service, and each scope entry as its own `scope`."""
    params = [("service", realm.service)] if realm.service else []
    params.extend(("scope", scope) for scope in scopes)
    return params


def parse_token(body: bytes, now: float | None = None,
                wall_now: datetime.datetime | None = None) -> Token:
    """The token in a token service's JSON answer (`token`, or OAuth's `access_token`), with
    its expiry from `expires_in` counted from `issued_at` when given."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidTokenResponse("the token answer is not JSON") from exc
    if not isinstance(document, dict):
        raise InvalidTokenResponse("the token answer is not a JSON object")
    value = document.get("token") or document.get("access_token")
    if not isinstance(value, str) or not value:
        raise InvalidTokenResponse("the token answer has no token")
    lifetime = document.get("expires_in")
    if not isinstance(lifetime, int | float) or isinstance(lifetime, bool) or lifetime <= 0:
        lifetime = DEFAULT_LIFETIME
    now = time.monotonic() if now is None else now
    age = _age(document.get("issued_at"), wall_now or datetime.datetime.now(datetime.UTC))
    remaining = float(lifetime) - age - min(MARGIN, float(lifetime) / 4)
    return Token(value, now + remaining)


def _age(issued_at: object, wall_now: datetime.datetime) -> float:
    """Seconds since `issued_at` (RFC 3339); 0 when absent, unparseable or in the future
    (clocks differ: the answer just arrived, so it cannot be much older)."""
    if not isinstance(issued_at, str):
        return 0.0
    try:
        issued = datetime.datetime.fromisoformat(issued_at.replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    if issued.tzinfo is None:
        issued = issued.replace(tzinfo=datetime.UTC)
    return max(0.0, (wall_now - issued).total_seconds())


class TokenCache:
    """Tokens by the scope they were fetched for; one lock per scope so concurrent requests
    of one pull wait for the first one's token instead of each fetching their own."""

    def __init__(self) -> None:
        self._tokens: dict[str, Token] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def get(self, scope: str, now: float | None = None) -> str | None:
        token = self._tokens.get(scope)
        if token is None:
            return None
        if token.expires_at <= (time.monotonic() if now is None else now):
            del self._tokens[scope]
            return None
        return token.value

    def put(self, scope: str, token: Token) -> None:
        self._tokens[scope] = token

    def discard(self, scope: str, value: str) -> None:
        """Forget the token for `scope` if it is still `value` (the one the upstream just
        refused); a newer one another request fetched meanwhile is kept."""
        token = self._tokens.get(scope)
        if token is not None and token.value == value:
            del self._tokens[scope]

    def lock(self, scope: str) -> asyncio.Lock:
        return self._locks.setdefault(scope, asyncio.Lock())
