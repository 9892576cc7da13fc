"""Access control over HTTP: Basic and bearer modes, the token service, and the attacks.

Two servers per module (one per mode) share a policy:
- alice (group team-a): pull+push on team-a/**; bob: pull on team-a/**, everything on bob/**
- admin: everything; carol: no rule at all; anyone, even anonymous: pull on public/*
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization

from dockyard.auth import htpasswd
from dockyard.auth.keys import KeyDirectory
from dockyard.cli import main
from tests.authkit import auth_config, bearer, write_htpasswd
from tests.server import RunningRegistry, running_registry
from tests.system.api.client import Client, assert_error, describe, digest_of, random_bytes

USERS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw", "admin": "admin-pw",
         "dave": "dave-pw", "erin": "erin-pw", "frank": "frank-pw"}
ACCESS = {
    "admins": ["admin"],
    "groups": {"team-a": ["alice"]},
    "rules": [
        {"repositories": ["team-a/**"], "groups": ["team-a"], "actions": ["pull", "push"]},
        {"repositories": ["team-a/**"], "users": ["bob"], "actions": ["pull"]},
        {"repositories": ["bob/**"], "users": ["bob"], "actions": ["*"]},
        {"repositories": ["public/*"], "anonymouspull": True},
    ],
}
RATELIMIT = {"attempts": 3, "addressattempts": 1000, "window": "1m"}


def _start(tmp: Path, mode: str) -> Iterator[RunningRegistry]:
    htpasswd = write_htpasswd(tmp / "htpasswd", USERS)
    config = auth_config(htpasswd, mode, access=ACCESS, ratelimit=RATELIMIT)
    with running_registry(tmp, config) as server:
        yield server


@pytest.fixture(scope="module")
def basic_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    yield from _start(tmp_path_factory.mktemp("auth-basic"), "basic")


@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    yield from _start(tmp_path_factory.mktemp("auth-token"), "bearer")


def as_user(server: RunningRegistry, user: str | None) -> Client:
    session = requests.Session()
    if user is not None:
        session.auth = (user, USERS[user])
    return Client(server.url, session)


def unique(prefix: str) -> str:
    return f"{prefix}/{random_bytes(4).hex()}"


def assert_unauthorized(response: requests.Response, challenge_prefix: str) -> None:
    assert_error(response, 401, "UNAUTHORIZED")
    assert response.headers["WWW-Authenticate"].startswith(challenge_prefix), describe(response)


def assert_denied(response: requests.Response) -> None:
    assert_error(response, 403, "DENIED")


def comparable(response: requests.Response) -> tuple[int, str, bytes]:
    return response.status_code, response.headers.get("WWW-Authenticate", ""), response.content


# --- Basic mode --------------------------------------------------------------------------------


def test_base_endpoint_needs_credentials(basic_server: RunningRegistry) -> None:
    anonymous = requests.get(basic_server.url + "/v2/", timeout=10)
    assert_unauthorized(anonymous, 'Basic realm="dockyard-test"')
    assert anonymous.json()["errors"][0]["code"] == "UNAUTHORIZED"
    assert requests.get(basic_server.url + "/v2/", auth=("alice", "alice-pw"),
                        timeout=10).status_code == 200
    assert requests.get(basic_server.url + "/healthz", timeout=10).status_code == 200


def test_wrong_password_and_unknown_user_look_the_same(basic_server: RunningRegistry) -> None:
    url = basic_server.url + "/v2/team-a/x/tags/list"
    wrong = requests.get(url, auth=("erin", "nope"), timeout=10)
    unknown = requests.get(url, auth=("nobody-here", "nope"), timeout=10)
    assert_unauthorized(wrong, "Basic ")
    assert comparable(wrong) == comparable(unknown)


@pytest.mark.parametrize("header", [
    "Basic", "Basic ", "Basic !!!notbase64", "Basic " + base64.b64encode(b"nocolon").decode(),
    "Basic " + base64.b64encode(b":emptyuser").decode(), "Basic \xff", "Digest username=x",
    "Bearer", "Bearer a.b.c", "basicauth xyz", "Basic " + "A" * 70000,
    "Basic " + base64.b64encode(b"\xff\xfe:x").decode(),
])
def test_malformed_authorization_headers(basic_server: RunningRegistry, header: str) -> None:
    response = requests.get(basic_server.url + "/v2/team-a/x/tags/list",
                            headers={"Authorization": header.encode("latin-1")}, timeout=10)
    if response.status_code == 431 or (response.status_code == 400 and len(header) > 8000):
        return  # aiohttp refuses an oversized header before any handler runs
    assert_unauthorized(response, "Basic ")


def test_push_pull_delete_rights(basic_server: RunningRegistry) -> None:
    repo = unique("team-a")
    alice, bob, carol = (as_user(basic_server, u) for u in ("alice", "bob", "carol"))
    manifest = alice.push_image(repo, "v1")
    assert bob.get(f"/v2/{repo}/manifests/v1").status_code == 200
    assert bob.get(f"/v2/{repo}/blobs/{manifest.blobs[0] and digest_of(manifest.blobs[0])}"
                   ).status_code == 200
    assert bob.tags(repo) == ["v1"]
    # bob may pull team-a but not write or delete there.
    assert_denied(bob.start_upload(repo))
    assert_denied(bob.push_blob_single_post(repo, b"x"))
    assert_denied(bob.put_manifest(repo, "v2", manifest))
    assert_denied(bob.delete(f"/v2/{repo}/manifests/{manifest.digest}"))
    assert_denied(bob.delete(f"/v2/{repo}/blobs/{digest_of(manifest.blobs[0])}"))
    # carol has no rule: nothing at all, not even whether the repository exists.
    for response in (carol.get(f"/v2/{repo}/manifests/v1"), carol.get(f"/v2/{repo}/tags/list"),
                     carol.get(f"/v2/{unique('team-a')}/tags/list"),
                     carol.head(f"/v2/{repo}/manifests/v1")):
        assert response.status_code == 403, describe(response)
    # alice may push but not delete; admin may delete.
    assert_denied(alice.delete(f"/v2/{repo}/manifests/{manifest.digest}"))
    admin = as_user(basic_server, "admin")
    assert admin.delete(f"/v2/{repo}/manifests/{manifest.digest}").status_code == 202


def test_upload_sessions_need_push(basic_server: RunningRegistry) -> None:
    repo = unique("team-a")
    alice, bob = as_user(basic_server, "alice"), as_user(basic_server, "bob")
    location = alice.upload_url(repo)
    for method in ("GET", "PATCH", "PUT", "DELETE"):
        assert_denied(bob.request(method, location))


def test_anonymous_pull_per_pattern(basic_server: RunningRegistry) -> None:
    repo = unique("public")
    manifest = as_user(basic_server, "admin").push_image(repo, "v1")
    anonymous = as_user(basic_server, None)
    assert anonymous.get(f"/v2/{repo}/manifests/v1").status_code == 200
    assert anonymous.tags(repo) == ["v1"]
    assert_unauthorized(anonymous.start_upload(repo), "Basic ")
    assert_unauthorized(anonymous.put_manifest(repo, "v2", manifest), "Basic ")
    assert_unauthorized(anonymous.delete(f"/v2/{repo}/manifests/v1"), "Basic ")
    assert_unauthorized(anonymous.get(f"/v2/{unique('team-a')}/tags/list"), "Basic ")
    assert_unauthorized(anonymous.get(f"/v2/{repo}/sub/tags/list"), "Basic ")


EMPTY_PAIR = {"Authorization": "Basic " + base64.b64encode(b":").decode()}
"""What skopeo, podman and buildah send when they have no credentials."""


def test_an_empty_basic_pair_is_anonymous(basic_server: RunningRegistry) -> None:
    repo = unique("public")
    as_user(basic_server, "admin").push_image(repo, "v1")
    session = requests.Session()
    session.headers.update(EMPTY_PAIR)
    empty = Client(basic_server.url, session)
    assert empty.get(f"/v2/{repo}/manifests/v1").status_code == 200
    assert empty.tags(repo) == ["v1"]
    assert_unauthorized(empty.start_upload(repo), "Basic ")
    assert_unauthorized(empty.get(f"/v2/{unique('team-a')}/tags/list"), "Basic ")
    assert_unauthorized(empty.get("/v2/"), "Basic ")


def test_catalog_lists_only_what_the_caller_may_pull(basic_server: RunningRegistry) -> None:
    admin = as_user(basic_server, "admin")
    repos = {"team": unique("team-a"), "bob": unique("bob"), "public": unique("public")}
    for repo in repos.values():
        admin.push_image(repo, "v1")

    def listed(user: str | None) -> set[str]:
        names: list[str] = []
        client = as_user(basic_server, user)
        url: str | None = "/v2/_catalog?n=2"
        while url:
            response = client.get(url)
            assert response.status_code == 200, describe(response)
            names += response.json()["repositories"]
            link = response.headers.get("Link")
            url = link.split(";")[0].strip("<>") if link else None
        assert len(names) == len(set(names))
        return set(names) & set(repos.values())

    assert listed("admin") == set(repos.values())
    assert listed("alice") == {repos["team"], repos["public"]}
    assert listed("bob") == set(repos.values())
    assert listed("carol") == {repos["public"]}
    assert listed(None) == {repos["public"]}


def test_mount_only_from_a_readable_repository(basic_server: RunningRegistry) -> None:
    bob, alice = as_user(basic_server, "bob"), as_user(basic_server, "alice")
    secret = random_bytes(2048)
    private, readable = unique("bob"), unique("team-a")
    digest = bob.push_blob(private, secret)
    target = unique("team-a")
    refused = alice.mount(target, digest, private)
    assert refused.status_code == 202, describe(refused)  # an ordinary upload session instead
    assert alice.head(f"/v2/{target}/blobs/{digest}").status_code == 404
    alice.push_blob(readable, secret)
    mounted = alice.mount(target, digest, readable)
    assert mounted.status_code == 201, describe(mounted)


def test_failed_logins_are_rate_limited(basic_server: RunningRegistry) -> None:
    url = basic_server.url + "/v2/"
    for _ in range(3):
        assert requests.get(url, auth=("dave", "guess"), timeout=10).status_code == 401
    limited = requests.get(url, auth=("dave", "dave-pw"), timeout=10)
    assert_error(limited, 429, "TOOMANYREQUESTS")
    assert 0 < int(limited.headers["Retry-After"]) <= 60
    # Unknown users are limited alike: no hint which names exist.
    for _ in range(3):
        requests.get(url, auth=("ghost", "guess"), timeout=10)
    assert requests.get(url, auth=("ghost", "guess"), timeout=10).status_code == 429
    assert requests.get(url, auth=("alice", "alice-pw"), timeout=10).status_code == 200


def test_bearer_tokens_of_the_builtin_service_work_in_basic_mode(
        basic_server: RunningRegistry) -> None:
    token = get_token(basic_server, "alice", "repository:team-a/t:pull")
    assert requests.get(basic_server.url + "/v2/team-a/t/tags/list", headers=bearer(token),
                        timeout=10).status_code == 404  # allowed, and the repository is empty


# --- the token service ---------------------------------------------------------------------


def get_token(server: RunningRegistry, user: str | None, *scopes: str,
              **params: str) -> str:
    auth = (user, USERS[user]) if user else None
    response = requests.get(server.url + "/token", params={"service": "dockyard",
                                                           "scope": list(scopes), **params},
                            auth=auth, timeout=10)
    assert response.status_code == 200, describe(response)
    body = response.json()
    assert body["token"] == body["access_token"]
    assert body["expires_in"] == 300
    assert response.headers["Cache-Control"] == "no-store"
    return str(body["token"])


def claims_of(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


def test_bearer_challenges(token_server: RunningRegistry) -> None:
    base = requests.get(token_server.url + "/v2/", timeout=10)
    assert_unauthorized(base, "Bearer ")
    assert base.headers["WWW-Authenticate"] == (
        f'Bearer realm="{token_server.url}/token",service="dockyard"')
    pull = requests.get(token_server.url + "/v2/team-a/app/manifests/v1", timeout=10)
    assert pull.headers["WWW-Authenticate"] == (
        f'Bearer realm="{token_server.url}/token",service="dockyard",'
        f'scope="repository:team-a/app:pull"')
    assert pull.json()["errors"][0]["detail"] == [
        {"Type": "repository", "Name": "team-a/app", "Action": "pull"}]
    push = requests.post(token_server.url + "/v2/team-a/app/blobs/uploads/", timeout=10)
    assert 'scope="repository:team-a/app:pull,push"' in push.headers["WWW-Authenticate"]
    delete = requests.delete(token_server.url + "/v2/team-a/app/manifests/v1", timeout=10)
    assert 'scope="repository:team-a/app:delete"' in delete.headers["WWW-Authenticate"]
    catalog = requests.get(token_server.url + "/v2/_catalog", timeout=10)
    assert 'scope="registry:catalog:*"' in catalog.headers["WWW-Authenticate"]
    # Passwords are not accepted directly in bearer mode.
    assert_unauthorized(requests.get(token_server.url + "/v2/", auth=("alice", "alice-pw"),
                                     timeout=10), "Bearer ")


def test_token_grants_are_the_policy(token_server: RunningRegistry) -> None:
    token = get_token(token_server, "bob", "repository:team-a/app:pull,push",
                      "repository:bob/x:pull,push,delete", "repository:other:pull",
                      "registry:catalog:*")
    claims = claims_of(token)
    assert claims["sub"] == "bob" and claims["aud"] == "dockyard" and claims["iss"] == "dockyard"
    assert claims["access"] == [
        {"type": "repository", "name": "team-a/app", "actions": ["pull"]},
        {"type": "repository", "name": "bob/x", "actions": ["pull", "push", "delete"]},
        {"type": "registry", "name": "catalog", "actions": ["*"]},
    ]
    assert claims["exp"] - claims["iat"] == 300
    anonymous = claims_of(get_token(token_server, None, "repository:public/p:pull,push",
                                    "repository:team-a/app:pull"))
    assert anonymous["access"] == [{"type": "repository", "name": "public/p",
                                    "actions": ["pull"]}]
    empty_pair = requests.get(token_server.url + "/token", headers=EMPTY_PAIR, timeout=10,
                              params={"service": "dockyard", "scope": "repository:public/p:pull"})
    assert empty_pair.status_code == 200, describe(empty_pair)
    assert claims_of(empty_pair.json()["token"])["access"] == anonymous["access"]


def test_push_and_pull_with_tokens(token_server: RunningRegistry) -> None:
    repo = unique("team-a")
    token = get_token(token_server, "alice", f"repository:{repo}:pull,push")
    session = requests.Session()
    session.headers.update(bearer(token))
    alice = Client(token_server.url, session)
    manifest = alice.push_image(repo, "v1")
    assert alice.get(f"/v2/{repo}/manifests/v1").status_code == 200
    assert requests.get(token_server.url + "/v2/", headers=bearer(token),
                        timeout=10).status_code == 200
    # alice's token for this repository on another one: 403 insufficient_scope, whose
    # challenge names the scope of a new token (oras-py asks for one only after a 403).
    other = unique("team-a")
    response = requests.get(f"{token_server.url}/v2/{other}/tags/list", headers=bearer(token),
                            timeout=10)
    assert_denied(response)
    assert (f'scope="repository:{other}:pull",error="insufficient_scope"'
            in response.headers["WWW-Authenticate"])
    # A pull-only token used to push, or to delete, is denied.
    pull_only = get_token(token_server, "alice", f"repository:{repo}:pull")
    session.headers.update(bearer(pull_only))
    assert alice.get(f"/v2/{repo}/manifests/v1").status_code == 200
    denied = alice.start_upload(repo)
    assert_denied(denied)
    assert 'error="insufficient_scope"' in denied.headers["WWW-Authenticate"]
    assert_denied(alice.put_manifest(repo, "v2", manifest))
    assert_denied(alice.delete(f"/v2/{repo}/manifests/v1"))
    # bob asked for push and got pull only: push is denied.
    bobs = get_token(token_server, "bob", f"repository:{repo}:pull,push")
    assert_denied(requests.post(f"{token_server.url}/v2/{repo}/blobs/uploads/",
                                headers=bearer(bobs), timeout=10))


def test_catalog_with_a_token_is_filtered(token_server: RunningRegistry) -> None:
    repos = [unique("team-a"), unique("bob")]
    for repo in repos:
        token = get_token(token_server, "admin", f"repository:{repo}:pull,push")
        session = requests.Session()
        session.headers.update(bearer(token))
        Client(token_server.url, session).push_image(repo, "v1")
    alices = get_token(token_server, "alice", "registry:catalog:*")
    listed = requests.get(token_server.url + "/v2/_catalog?n=100000", headers=bearer(alices),
                          timeout=10).json()["repositories"]
    assert repos[0] in listed and repos[1] not in listed
    no_scope = get_token(token_server, "alice")
    refused = requests.get(token_server.url + "/v2/_catalog", headers=bearer(no_scope),
                           timeout=10)
    assert_denied(refused)
    assert 'error="insufficient_scope"' in refused.headers["WWW-Authenticate"]


def test_token_endpoint_refuses_bad_credentials(token_server: RunningRegistry) -> None:
    url = token_server.url + "/token"
    params = {"service": "dockyard", "scope": "repository:team-a/x:pull"}
    wrong = requests.get(url, params=params, auth=("erin", "nope"), timeout=10)
    unknown = requests.get(url, params=params, auth=("no-such-user", "nope"), timeout=10)
    assert_error(wrong, 401, "UNAUTHORIZED")
    assert comparable(wrong) == comparable(unknown)
    assert "token" not in wrong.text
    for header in ("Basic !!!", "Bearer x", "Basic " + base64.b64encode(b"x").decode()):
        assert_error(requests.get(url, params=params, headers={"Authorization": header},
                                  timeout=10), 401, "UNAUTHORIZED")
    assert_error(requests.get(url, params={**params, "service": "elsewhere"},
                              auth=("alice", "alice-pw"), timeout=10), 400)
    assert_error(requests.get(url, params={"scope": "nonsense"}, auth=("alice", "alice-pw"),
                              timeout=10), 400)
    assert_error(requests.get(url, params={**params, "account": "bob"},
                              auth=("alice", "alice-pw"), timeout=10), 401)


def test_token_endpoint_is_rate_limited(token_server: RunningRegistry) -> None:
    url = token_server.url + "/token"
    for _ in range(3):
        assert requests.get(url, auth=("dave", "x"), timeout=10).status_code == 401
    limited = requests.get(url, auth=("dave", "dave-pw"), timeout=10)
    assert_error(limited, 429, "TOOMANYREQUESTS")
    assert int(limited.headers["Retry-After"]) > 0
    form = requests.post(url, data={"grant_type": "password", "username": "dave",
                                    "password": "dave-pw", "service": "dockyard"}, timeout=10)
    assert form.status_code == 429


def test_oauth_password_and_refresh_grants(token_server: RunningRegistry) -> None:
    url = token_server.url + "/token"
    scope = "repository:team-a/app:pull repository:team-a/other:pull,push"
    response = requests.post(url, data={
        "grant_type": "password", "username": "alice", "password": "alice-pw",
        "service": "dockyard", "scope": scope, "client_id": "test", "access_type": "offline",
    }, timeout=10)
    assert response.status_code == 200, describe(response)
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 300
    assert len(claims_of(body["access_token"])["access"]) == 2
    refresh = body["refresh_token"]
    again = requests.post(url, data={"grant_type": "refresh_token", "refresh_token": refresh,
                                     "service": "dockyard", "scope": "repository:team-a/app:pull",
                                     "client_id": "test"}, timeout=10)
    assert again.status_code == 200, describe(again)
    assert claims_of(again.json()["access_token"])["sub"] == "alice"
    # A refresh token is no access token, and an access token no refresh token.
    assert_unauthorized(requests.get(token_server.url + "/v2/", headers=bearer(refresh),
                                     timeout=10), "Bearer ")
    assert_error(requests.post(url, data={"grant_type": "refresh_token", "service": "dockyard",
                                          "refresh_token": body["access_token"]}, timeout=10),
                 401, "UNAUTHORIZED")
    wrong = requests.post(url, data={"grant_type": "password", "username": "erin",
                                     "password": "bad", "service": "dockyard"}, timeout=10)
    assert_error(wrong, 401, "UNAUTHORIZED")
    assert_error(requests.post(url, data={"grant_type": "client_credentials"}, timeout=10), 400)
    offline = requests.get(url, params={"service": "dockyard", "offline_token": "true"},
                           auth=("alice", "alice-pw"), timeout=10).json()
    assert "refresh_token" in offline


# --- forged and misused tokens ---------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _forge(server: RunningRegistry, **override: Any) -> str:
    keys = KeyDirectory(server.root / "auth" / "keys")
    key = keys.current()
    now = int(time.time())
    claims = {"iss": "dockyard", "aud": "dockyard", "sub": "alice", "iat": now, "nbf": now,
              "exp": now + 300,
              "access": [{"type": "repository", "name": "team-a/forged", "actions": ["pull"]}]}
    claims.update(override)
    return jwt.encode(claims, key.private, algorithm="ES256", headers={"kid": key.kid})


def _attacks(server: RunningRegistry) -> dict[str, str]:
    genuine = _forge(server)
    header, payload, signature = genuine.split(".")
    keys = KeyDirectory(server.root / "auth" / "keys")
    public_pem = keys.current().public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    hs_header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": keys.current().kid}
                                ).encode())
    hs_input = f"{hs_header}.{payload}"
    hs_signature = _b64(hmac.new(public_pem, hs_input.encode(), hashlib.sha256).digest())
    none_header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    escalated = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    escalated["access"][0]["actions"] = ["pull", "push"]
    return {
        "alg none": f"{none_header}.{payload}.",
        "HS256 with the public key": f"{hs_input}.{hs_signature}",
        "expired": _forge(server, exp=int(time.time()) - 3600, iat=int(time.time()) - 4000,
                          nbf=int(time.time()) - 4000),
        "not yet valid": _forge(server, nbf=int(time.time()) + 3600),
        "wrong audience": _forge(server, aud="another-registry"),
        "wrong issuer": _forge(server, iss="evil"),
        "tampered payload": f"{header}.{_b64(json.dumps(escalated).encode())}.{signature}",
        "bad signature": f"{header}.{payload}.{signature[:-4]}AAAA",
        "garbage": "not-a-jwt",
    }


@pytest.mark.parametrize("attack", [
    "alg none", "HS256 with the public key", "expired", "not yet valid", "wrong audience",
    "wrong issuer", "tampered payload", "bad signature", "garbage",
])
def test_forged_tokens_are_rejected(token_server: RunningRegistry, attack: str) -> None:
    token = _attacks(token_server)[attack]
    for method, path in (("GET", "/v2/"), ("GET", "/v2/team-a/forged/tags/list"),
                         ("POST", "/v2/team-a/forged/blobs/uploads/")):
        response = requests.request(method, token_server.url + path, headers=bearer(token),
                                    timeout=10)
        assert_unauthorized(response, "Bearer ")


def test_the_genuine_forgery_baseline_works(token_server: RunningRegistry) -> None:
    """The attacks differ from a valid token only in what they break."""
    response = requests.get(token_server.url + "/v2/team-a/forged/tags/list",
                            headers=bearer(_forge(token_server)), timeout=10)
    assert response.status_code == 404, describe(response)


def test_jwks_publishes_the_signing_key(token_server: RunningRegistry) -> None:
    body = requests.get(token_server.url + "/token/jwks.json", timeout=10).json()
    token = get_token(token_server, "alice")
    assert jwt.get_unverified_header(token)["kid"] in [key["kid"] for key in body["keys"]]
    assert all("d" not in key for key in body["keys"]), "private material must not leak"


def test_no_secrets_in_the_logs(basic_server: RunningRegistry,
                                token_server: RunningRegistry) -> None:
    token = get_token(token_server, "alice", "repository:team-a/x:pull")
    requests.get(token_server.url + "/v2/team-a/x/tags/list", headers=bearer(token), timeout=10)
    requests.get(basic_server.url + "/v2/", auth=("alice", "alice-pw"), timeout=10)
    requests.get(basic_server.url + "/v2/", auth=("erin", "typo-secret"), timeout=10)
    for server in (basic_server, token_server):
        text = server.log_text()
        for secret in (*USERS.values(), "typo-secret", token, token.split(".")[2]):
            assert secret not in text
        assert base64.b64encode(b"alice:alice-pw").decode() not in text
    # The failed login names who tried, so an operator can tell a typo from an attack.
    assert "failed login for user 'erin' from 127.0.0.1" in basic_server.log_text()


def test_token_keys_survive_a_restart(token_server: RunningRegistry) -> None:
    token = get_token(token_server, "alice", "repository:team-a/y:pull")
    token_server.restart()
    response = requests.get(token_server.url + "/v2/team-a/y/tags/list", headers=bearer(token),
                            timeout=10)
    assert response.status_code == 404, describe(response)


def test_mount_with_tokens_needs_pull_on_the_source(token_server: RunningRegistry) -> None:
    source, secret_source, target = unique("team-a"), unique("bob"), unique("team-a")
    data = random_bytes(1500)
    for repo, user in ((source, "alice"), (secret_source, "bob")):
        session = requests.Session()
        session.headers.update(bearer(get_token(token_server, user,
                                                f"repository:{repo}:pull,push")))
        digest = Client(token_server.url, session).push_blob(repo, data)
    session = requests.Session()
    session.headers.update(bearer(get_token(
        token_server, "alice", f"repository:{target}:pull,push",
        f"repository:{secret_source}:pull", f"repository:{source}:pull")))
    alice = Client(token_server.url, session)
    assert alice.mount(target, digest, secret_source).status_code == 202
    assert alice.mount(target, digest, source).status_code == 201


def test_a_mount_challenge_names_the_source(token_server: RunningRegistry) -> None:
    """A client that asks for exactly the challenged scopes gets pull on the source, and mounts."""
    source, target = unique("team-a"), unique("team-a")
    session = requests.Session()
    session.headers.update(bearer(get_token(token_server, "alice",
                                            f"repository:{source}:pull,push")))
    digest = Client(token_server.url, session).push_blob(source, random_bytes(1500))
    challenged = Client(token_server.url, requests.Session()).mount(target, digest, source)
    assert_unauthorized(challenged, "Bearer ")
    challenge = challenged.headers["WWW-Authenticate"]
    scopes = re.search(r'scope="([^"]*)"', challenge)
    assert scopes is not None, challenge
    assert scopes.group(1).split(" ") == [f"repository:{target}:pull,push",
                                          f"repository:{source}:pull"]
    session.headers.update(bearer(get_token(token_server, "alice", *scopes.group(1).split(" "))))
    assert Client(token_server.url, session).mount(target, digest, source).status_code == 201


def test_a_new_password_revokes_refresh_tokens(token_server: RunningRegistry) -> None:
    url = token_server.url + "/token"
    refresh = requests.get(url, params={"service": "dockyard", "offline_token": "true"},
                           auth=("frank", "frank-pw"), timeout=10).json()["refresh_token"]
    form = {"grant_type": "refresh_token", "refresh_token": refresh, "service": "dockyard"}
    assert requests.post(url, data=form, timeout=10).status_code == 200
    htpasswd.set_password(token_server.workdir / "htpasswd", "frank", "frank-new",
                          create=False, rounds=4)
    time.sleep(1.2)  # the file is looked at once a second
    assert_error(requests.post(url, data=form, timeout=10), 401, "UNAUTHORIZED")
    htpasswd.set_password(token_server.workdir / "htpasswd", "frank", "frank-pw",
                          create=False, rounds=4)


def test_rotating_the_key_keeps_tokens_in_flight(token_server: RunningRegistry) -> None:
    before = get_token(token_server, "alice", "repository:team-a/rot:pull")
    old_kid = jwt.get_unverified_header(before)["kid"]
    assert main(["key", "--config", str(token_server.config_path), "rotate"]) == 0
    time.sleep(1.2)  # workers look at the key directory once a second
    after = get_token(token_server, "alice", "repository:team-a/rot:pull")
    assert jwt.get_unverified_header(after)["kid"] != old_kid
    for token in (before, after):
        response = requests.get(token_server.url + "/v2/team-a/rot/tags/list",
                                headers=bearer(token), timeout=10)
        assert response.status_code == 404, describe(response)
