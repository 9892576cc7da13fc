"""auth.clientcertificate: a verified TLS client certificate names the user (mTLS logins)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from cryptography import x509

from tests.authkit import Pki, auth_config, bearer, write_htpasswd
from tests.server import RunningRegistry, running_registry
from tests.system.api.client import Client, assert_error, describe, random_bytes

USERS = {"alice": "alice-pw"}
ACCESS = {"rules": [
    {"repositories": ["team-a/**"], "users": ["alice", "alice@example.test"],
     "actions": ["pull", "push"]},
]}


def start(tmp: Path, pki: Pki, mode: str = "basic", **certificate: Any
          ) -> Iterator[RunningRegistry]:
    cert, key = pki.issue("server")
    htpasswd = write_htpasswd(tmp / "htpasswd", USERS)
    config = {
        **auth_config(htpasswd, mode, access=ACCESS, clientcertificate=certificate),
        "http": {"tls": {"certificate": str(cert), "key": str(key),
                         "clientcas": [str(pki.ca_path)]}},
    }
    workdir = tmp / "server"
    workdir.mkdir()
    with running_registry(workdir, config) as server:
        yield server


def client_for(server: RunningRegistry, pki: Pki, common: str,
               alt_names: tuple[x509.GeneralName, ...] = ()) -> Client:
    """A client presenting a certificate for `common` (and `alt_names`), no password."""
    cert, key = pki.issue(f"client-{common}", common=common, client=True, alt_names=alt_names)
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE would replace `verify`
    session.verify = str(pki.ca_path)
    session.cert = (str(cert), str(key))
    return Client(server.url, session)


def start_upload(client: Client, name: str, **kwargs: Any) -> requests.Response:
    return client.post(f"/v2/{name}/blobs/uploads/", **kwargs)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def basic_server(tmp_path_factory: pytest.TempPathFactory, pki: Pki
                 ) -> Iterator[RunningRegistry]:
    yield from start(tmp_path_factory.mktemp("mtls-basic"), pki, enabled=True)


def test_in_basic_mode_the_certificate_is_the_user(basic_server: RunningRegistry,
                                                    pki: Pki) -> None:
    alice = client_for(basic_server, pki, "alice")
    assert alice.get("/v2/").status_code == 200
    digest = alice.push_blob("team-a/app", random_bytes(100))
    assert alice.head(alice.blob_path("team-a/app", digest)).status_code == 200
    # skopeo, podman and buildah send an empty Basic pair when they have no credentials
    assert alice.head(alice.blob_path("team-a/app", digest), auth=("", "")).status_code == 200
    assert_error(alice.start_upload("elsewhere/app"), 403, "DENIED")


def test_a_certificate_for_no_rule_gets_nothing(basic_server: RunningRegistry,
                                                pki: Pki) -> None:
    mallory = client_for(basic_server, pki, "mallory")
    assert mallory.get("/v2/").status_code == 200, "authenticated, as mallory"
    assert_error(mallory.start_upload("team-a/app"), 403, "DENIED")


def test_an_authorization_header_wins_over_the_certificate(basic_server: RunningRegistry,
                                                           pki: Pki) -> None:
    alice = client_for(basic_server, pki, "alice")
    refused = start_upload(alice, "team-a/app", auth=("alice", "wrong"))
    assert_error(refused, 401, "UNAUTHORIZED")


def test_without_the_setting_a_certificate_names_nobody(
        tmp_path: Path, pki: Pki) -> None:
    for server in start(tmp_path, pki):
        alice = client_for(server, pki, "alice")
        assert_error(alice.get("/v2/"), 401, "UNAUTHORIZED")
        assert_error(alice.start_upload("team-a/app"), 401, "UNAUTHORIZED")


def test_in_bearer_mode_the_token_service_takes_the_certificate_as_a_login(
        tmp_path: Path, pki: Pki) -> None:
    email = x509.RFC822Name("alice@example.test")
    for server in start(tmp_path, pki, "bearer", enabled=True, field="san-email"):
        alice = client_for(server, pki, "ignored-cn", (email,))
        challenge = alice.start_upload("team-a/app")
        assert_error(challenge, 401, "UNAUTHORIZED")
        assert challenge.headers["WWW-Authenticate"].startswith("Bearer ")
        response = alice.get("/token", params={
            "service": "dockyard", "scope": "repository:team-a/app:pull,push",
            "offline_token": "true"})
        assert response.status_code == 200, describe(response)
        body = response.json()
        assert "refresh_token" not in body, "the certificate is the lasting credential"
        claims = jwt.decode(body["token"], options={"verify_signature": False})
        assert claims["sub"] == "alice@example.test"
        assert claims["access"] == [
            {"type": "repository", "name": "team-a/app", "actions": ["pull", "push"]}]
        upload = start_upload(alice, "team-a/app", headers=bearer(body["token"]))
        assert upload.status_code == 202, describe(upload)
