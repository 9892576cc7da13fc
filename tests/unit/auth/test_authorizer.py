"""The decision in front of requests: 401 with the right challenge, 403, 429, or allowed."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from dockyard.auth import keys as keymod
from dockyard.auth.access import CATALOG_SCOPE, repository_scope
from dockyard.auth.authorizer import Authorizer
from dockyard.auth.htpasswd import Htpasswd
from dockyard.auth.keys import KeyDirectory
from dockyard.auth.policy import AccessPolicy, Rule
from dockyard.auth.ratelimit import MemoryFailureLimiter
from dockyard.auth.service import TokenService, granted
from dockyard.auth.tokens import TokenIssuer, TokenVerifier
from tests.authkit import write_htpasswd

REALM = "https://registry.test/token"
POLICY = AccessPolicy(
    rules=[Rule(("team/**",), users=frozenset({"alice"}), actions=frozenset({"pull", "push"})),
           Rule(("team/**",), users=frozenset({"bob"}), actions=frozenset({"pull"})),
           Rule(("public/*",), anonymous_pull=True)],
)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def parts(tmp_path: Path) -> tuple[Htpasswd, KeyDirectory]:
    users = Htpasswd(write_htpasswd(tmp_path / "htpasswd", {"alice": "a", "bob": "b"}))
    keymod.ensure_key(tmp_path / "keys")
    return users, KeyDirectory(tmp_path / "keys")


def make(parts: tuple[Htpasswd, KeyDirectory], mode: str) -> tuple[Authorizer, TokenService]:
    users, keys = parts
    verifier = TokenVerifier(keys.trusted, "dockyard", "registry.test")
    limiter = MemoryFailureLimiter(300, lambda key: 3)
    authorizer = Authorizer(mode, POLICY, users, verifier, limiter,  # type: ignore[arg-type]
                            basic_realm="test", service="registry.test")
    issuer = TokenIssuer(keys, "dockyard", "registry.test", 300, 3600)
    return authorizer, TokenService(issuer, POLICY, "registry.test")


def test_basic_mode(parts: tuple[Htpasswd, KeyDirectory]) -> None:
    authorizer, _ = make(parts, "basic")
    pull = repository_scope("team/app", "pull")
    push = repository_scope("team/app", "push")
    assert authorizer.authorize(basic("alice", "a"), "ip", push, REALM).allowed
    assert authorizer.authorize(basic("bob", "b"), "ip", pull, REALM).allowed
    denied = authorizer.authorize(basic("bob", "b"), "ip", push, REALM)
    assert (denied.status, denied.code, denied.challenge) == (403, "DENIED", None)
    for header in (None, basic("alice", "wrong"), basic("nobody", "a"), "Basic !!!",
                   "Basic " + base64.b64encode(b"no-colon").decode(), "Digest x", "Basic",
                   "Bearer not-a-token"):
        refused = authorizer.authorize(header, "ip2", pull, REALM)
        assert (refused.status, refused.code) == (401, "UNAUTHORIZED"), header
        assert refused.challenge == 'Basic realm="test"'
    # Anonymous: public pull works, the base endpoint still asks for credentials.
    assert authorizer.authorize(None, "ip", repository_scope("public/x", "pull"), REALM).allowed
    assert authorizer.authorize(None, "ip", None, REALM).status == 401
    assert authorizer.authorize(None, "ip", repository_scope("public/x", "push"),
                                REALM).status == 401


def test_bearer_mode_challenges_and_scopes(parts: tuple[Htpasswd, KeyDirectory]) -> None:
    authorizer, service = make(parts, "bearer")
    push = repository_scope("team/app", "push")
    refused = authorizer.authorize(None, "ip", push, REALM)
    assert refused.status == 401
    assert refused.challenge == ('Bearer realm="https://registry.test/token",'
                                 'service="registry.test",scope="repository:team/app:pull,push"')
    # Basic credentials are not accepted in bearer mode: the client must fetch a token.
    assert authorizer.authorize(basic("alice", "a"), "ip", push, REALM).status == 401
    token = service.access_token("alice", [repository_scope("team/app", "pull", "push")])
    assert authorizer.authorize(f"Bearer {token}", "ip", push, REALM).allowed
    assert authorizer.authorize(f"Bearer {token}", "ip", None, REALM).allowed
    # Another repository: the token says nothing about it. 403 (a 401 would keep oras-py from
    # fetching a new token), and the challenge names the scope to ask for.
    other = authorizer.authorize(f"Bearer {token}", "ip", repository_scope("team/b", "pull"),
                                 REALM)
    assert (other.status, other.code) == (403, "DENIED")
    assert other.challenge == ('Bearer realm="https://registry.test/token",'
                               'service="registry.test",scope="repository:team/b:pull",'
                               'error="insufficient_scope"')
    # bob asked for push but was granted pull only: pushing with it is denied.
    bobs = service.access_token("bob", [repository_scope("team/app", "pull", "push")])
    denied = authorizer.authorize(f"Bearer {bobs}", "ip", push, REALM)
    assert (denied.status, denied.code) == (403, "DENIED")
    assert 'error="insufficient_scope"' in (denied.challenge or "")
    catalog = authorizer.authorize(f"Bearer {token}", "ip", CATALOG_SCOPE, REALM)
    assert catalog.status == 403
    assert 'scope="registry:catalog:*",error="insufficient_scope"' in (catalog.challenge or "")
    # No token at all: 401, the challenge without an error.
    assert authorizer.authorize(None, "ip", CATALOG_SCOPE, REALM).status == 401


def test_a_certificate_user_without_credentials(parts: tuple[Htpasswd, KeyDirectory]) -> None:
    push = repository_scope("team/app", "push")
    authorizer, _ = make(parts, "basic")
    allowed = authorizer.authorize(None, "ip", push, REALM, certificate="alice")
    assert allowed.allowed and allowed.principal is not None
    assert allowed.principal.subject == "alice"
    assert authorizer.authorize(None, "ip", push, REALM, certificate="bob").status == 403
    empty_pair = "Basic " + base64.b64encode(b":").decode()
    assert authorizer.authorize(empty_pair, "ip", push, REALM, certificate="alice").allowed
    wrong = authorizer.authorize(basic("alice", "wrong"), "ip", push, REALM, certificate="alice")
    assert wrong.status == 401, "credentials sent are judged, not the certificate"
    bearer_mode, _ = make(parts, "bearer")
    refused = bearer_mode.authorize(None, "ip", push, REALM, certificate="alice")
    assert refused.status == 401 and (refused.challenge or "").startswith("Bearer ")


def test_granted_is_the_intersection() -> None:
    grants = granted(POLICY, "bob", [repository_scope("team/app", "pull", "push"),
                                     repository_scope("elsewhere", "pull"), CATALOG_SCOPE])
    assert [(g.name, g.actions) for g in grants] == [("team/app", ("pull",)),
                                                     ("catalog", ("*",))]
    assert granted(POLICY, None, [repository_scope("public/x", "pull", "push")])[0].actions == (
        "pull",)
    assert granted(POLICY, None, [repository_scope("team/app", "pull")]) == []


def test_failed_logins_are_throttled(parts: tuple[Htpasswd, KeyDirectory]) -> None:
    authorizer, _ = make(parts, "basic")
    pull = repository_scope("team/app", "pull")
    for _ in range(3):
        assert authorizer.authorize(basic("alice", "guess"), "ip", pull, REALM).status == 401
    throttled = authorizer.authorize(basic("alice", "a"), "ip", pull, REALM)
    assert (throttled.status, throttled.code) == (429, "TOOMANYREQUESTS")
    assert throttled.retry_after > 0
    # Unknown users are throttled exactly the same way (no hint that they do not exist).
    for _ in range(3):
        authorizer.authorize(basic("ghost", "guess"), "ip3", pull, REALM)
    assert authorizer.authorize(basic("ghost", "guess"), "ip3", pull, REALM).status == 429
