"""What the client reads from headers and token answers: challenges, Retry-After, expiry."""

from __future__ import annotations

import datetime
import json

import pytest

from dockyard.remote.backoff import LONGEST, parse_retry_after
from dockyard.remote.challenge import Challenge, parse_challenges
from dockyard.remote.tokens import InvalidTokenResponse, TokenCache, parse_token

NOW = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.UTC)


def test_docker_hub_challenge() -> None:
    [challenge] = parse_challenges([
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/alpine:pull"'])
    assert challenge.scheme == "bearer"
    assert challenge.realm == "https://auth.docker.io/token"
    assert challenge.service == "registry.docker.io"
    assert challenge.scopes == ["repository:library/alpine:pull"]


def test_several_challenges_quoting_and_junk() -> None:
    found = parse_challenges(['Basic realm="a, \\"quoted\\" realm", Bearer realm=x, scope="a b"',
                              "Negotiate abc==", 'Basic realm="r" ,,, ???'])
    assert found == [Challenge("basic", {"realm": 'a, "quoted" realm'}),
                     Challenge("bearer", {"realm": "x", "scope": "a b"}),
                     Challenge("negotiate"), Challenge("basic", {"realm": "r"})]
    assert found[1].scopes == ["a", "b"]
    assert parse_challenges(["", "=broken"]) == []


@pytest.mark.parametrize(("header", "seconds"), [
    ("2", 2.0), (" 0 ", 0.0), ("1.5", 1.5), ("Thu, 01 Jan 2026 12:00:30 GMT", 30.0),
    ("Thu, 01 Jan 2026 11:00:00 GMT", 0.0), ("99999", LONGEST), (None, None), ("soon", None),
    ("-1", None),
])
def test_retry_after(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, NOW) == seconds


def test_token_expiry_counts_from_issued_at_with_a_margin() -> None:
    answer = {"access_token": "t", "expires_in": 300, "issued_at": "2026-01-01T11:59:00Z"}
    token = parse_token(json.dumps(answer).encode(), now=1000.0, wall_now=NOW)
    assert token.value == "t"
    assert token.expires_at == 1000 + 300 - 60 - 10
    default = parse_token(b'{"token": "u"}', now=0.0, wall_now=NOW)
    assert 40 <= default.expires_at < 60, "the spec's 60 s, less the margin"
    cache = TokenCache()
    cache.put("scope", default)
    assert cache.get("scope", now=1.0) == "u"
    assert cache.get("scope", now=60.0) is None
    cache.put("scope", default)
    cache.discard("scope", "another")
    assert cache.get("scope", now=1.0) == "u", "only the refused token is dropped"


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"token": ""}', b'{"expires_in": 5}'])
def test_answers_without_a_token(body: bytes) -> None:
    with pytest.raises(InvalidTokenResponse):
        parse_token(body)
