"""A mirrored prefix takes no pushes (the upstream is its only source); the same server's
local repositories take pushes and pulls as always."""

from __future__ import annotations

import requests

from tests.system.api.client import (
    Client,
    assert_error,
    digest_of,
    image_manifest,
    random_bytes,
    repo_name,
)
from tests.system.mirror.kit import UPSTREAM_CREDENTIALS, MirrorStarter, mirror_entry, pull
from tests.upstreams import ReferenceRegistry


def test_pushes_to_a_mirrored_prefix_are_refused(go_upstream: ReferenceRegistry,
                                                 start_mirror: MirrorStarter) -> None:
    mirror = start_mirror(mirror_entry(go_upstream.url, "up", UPSTREAM_CREDENTIALS))
    mirrored, local = repo_name("up/team"), repo_name("local")
    manifest = image_manifest([random_bytes(700)])
    before = go_upstream.requests_for("/v2/team/")

    upload = requests.post(f"{mirror.url}/v2/{mirrored}/blobs/uploads/", timeout=10)
    assert_error(upload, 405, "UNSUPPORTED")
    mount = requests.post(f"{mirror.url}/v2/{mirrored}/blobs/uploads/", timeout=10, params={
        "mount": digest_of(manifest.blobs[1]), "from": local})
    assert_error(mount, 405, "UNSUPPORTED")
    put = requests.put(f"{mirror.url}/v2/{mirrored}/manifests/v1", data=manifest.body,
                       headers={"Content-Type": manifest.media_type}, timeout=10)
    assert_error(put, 405, "UNSUPPORTED")
    assert go_upstream.requests_for("/v2/team/") == before, "a push reached the upstream"

    client = Client(mirror.url)
    try:
        client.push_manifest(local, manifest, "v1")
    finally:
        client.close()
    pull(mirror.url, local, "v1", manifest.body)
