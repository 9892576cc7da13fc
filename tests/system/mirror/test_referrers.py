"""Referrers (signatures, SBOMs) of a mirrored image are listed from the upstream's referrers
API and cached, so the listing outlives the upstream."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests

from tests.authkit import auth_config, write_htpasswd
from tests.server import running_registry
from tests.system.api.client import OCI_INDEX, describe, repo_name
from tests.system.mirror.kit import UPSTREAM_CREDENTIALS, MirrorStarter, mirror_entry
from tests.upstreams import seed_image

SIGNATURE = "application/vnd.dockyard.test.signature"


def _listed(mirror_url: str, repository: str, subject: str) -> dict[str, Any]:
    response = requests.get(f"{mirror_url}/v2/{repository}/referrers/{subject}", timeout=30)
    assert response.status_code == 200, describe(response)
    assert response.headers["Content-Type"].startswith(OCI_INDEX)
    listing: dict[str, Any] = response.json()
    return listing


def test_referrers_listed_and_kept_offline(tmp_path: Path,
                                           start_mirror: MirrorStarter) -> None:
    name = repo_name("signed")
    htpasswd = write_htpasswd(tmp_path / "htpasswd", dict([UPSTREAM_CREDENTIALS]))
    with running_registry(tmp_path, auth_config(htpasswd, mode="bearer")) as upstream:
        image = seed_image(upstream.url, name, "v1", credentials=UPSTREAM_CREDENTIALS)
        signature = seed_image(upstream.url, name, "sig", credentials=UPSTREAM_CREDENTIALS,
                               subject=image.manifest, artifact_type=SIGNATURE)
        mirror = start_mirror(mirror_entry(upstream.url, "up", UPSTREAM_CREDENTIALS))
        online = _listed(mirror.url, f"up/{name}", image.digest)
        # the mirror lists what the upstream lists, nothing more
        assert [m["digest"] for m in online["manifests"]] == [signature.digest]
        assert online["manifests"][0]["artifactType"] == SIGNATURE
    offline = _listed(mirror.url, f"up/{name}", image.digest)
    assert offline["manifests"] == online["manifests"]
    # and the referrer itself is served from the cache
    cached = requests.get(f"{mirror.url}/v2/up/{name}/manifests/{signature.digest}",
                          headers={"Accept": signature.manifest.media_type}, timeout=30)
    assert cached.status_code == 200 and cached.content == signature.manifest.body
