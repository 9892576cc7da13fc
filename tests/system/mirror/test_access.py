"""The mirror's own access control comes before the upstream: a user without pull rights on
the prefix is refused and the upstream never hears of it. The mirror's upstream credentials
never show in its responses or its log, not even when the upstream refuses them."""

from __future__ import annotations

import base64
from pathlib import Path

import requests

from tests.authkit import auth_config, write_htpasswd
from tests.system.api.client import assert_error, repo_name
from tests.system.mirror.kit import (
    UPSTREAM_CREDENTIALS,
    UPSTREAM_PASSWORD,
    MirrorStarter,
    get_blob,
    get_manifest,
    mirror_entry,
    pull,
)
from tests.upstreams import ReferenceRegistry, seed_image

READER = ("reader", "reader-pw")
OUTSIDER = ("outsider", "outsider-pw")
WRONG_PASSWORD = "wrong-upstream-pw-93f1"
ACCESS = {"rules": [
    {"repositories": ["up/**", "bad/**"], "users": [READER[0]], "actions": ["pull"]},
    {"repositories": ["local/**"], "users": [OUTSIDER[0]], "actions": ["pull"]},
]}


def test_pull_rights_are_checked_before_the_upstream(tmp_path: Path,
                                                     go_upstream: ReferenceRegistry,
                                                     start_mirror: MirrorStarter) -> None:
    name = repo_name("private")
    image = seed_image(go_upstream.url, name, "v1", credentials=UPSTREAM_CREDENTIALS)
    htpasswd = write_htpasswd(tmp_path / "htpasswd", dict([READER, OUTSIDER]))
    mirror = start_mirror(
        mirror_entry(go_upstream.url, "up", UPSTREAM_CREDENTIALS),
        mirror_entry(go_upstream.url, "bad", (UPSTREAM_CREDENTIALS[0], WRONG_PASSWORD)),
        config={**auth_config(htpasswd, access=ACCESS), "log": {"level": "debug"}})
    outsider, reader = requests.Session(), requests.Session()
    outsider.auth, reader.auth = OUTSIDER, READER
    responses: list[requests.Response] = []
    seeded = go_upstream.requests_for(f"/v2/{name}/")

    for session in (outsider, requests.Session()):
        for response in (get_manifest(mirror.url, f"up/{name}", "v1", session),
                         get_manifest(mirror.url, f"up/{name}", image.digest, session),
                         get_blob(mirror.url, f"up/{name}", image.layer_digests[0], session)):
            assert_error(response, (401, 403), "UNAUTHORIZED", "DENIED")
            responses.append(response)
    assert go_upstream.requests_for(f"/v2/{name}/") == seeded, "a refused pull reached the upstream"

    responses.append(pull(mirror.url, f"up/{name}", "v1", image.manifest.body,
                          reader).manifest)
    refused = get_manifest(mirror.url, f"bad/{name}", "v1", reader)
    assert_error(refused, 502)
    responses.append(refused)

    secrets = [UPSTREAM_PASSWORD, WRONG_PASSWORD,
               base64.b64encode(f"{UPSTREAM_CREDENTIALS[0]}:{UPSTREAM_PASSWORD}".encode())
               .decode()]
    for response in responses:
        said = response.content.decode(errors="replace") + str(dict(response.headers))
        assert not any(secret in said for secret in secrets), said
    log = mirror.log_text()
    assert "DEBUG" in log, "the log is not at debug level: the check would prove little"
    assert not any(secret in log for secret in secrets), "an upstream secret is in the log"
