"""Pulling through the mirror: the bytes are the upstream's, by tag and by digest, from either
kind of upstream and either form of configuration; once cached, the upstream is not asked."""

from __future__ import annotations

from collections.abc import Callable
from uuid import uuid4

import pytest

from tests.server import RunningRegistry
from tests.system.api.client import assert_error, describe, random_bytes, repo_name
from tests.system.mirror.kit import (
    UPSTREAM_CREDENTIALS,
    MirrorStarter,
    dockyard_requests,
    get_blob,
    get_manifest,
    mirror_entry,
    proxy_section,
    pull,
    sha256,
)
from tests.upstreams import ReferenceRegistry, seed_image

Counter = Callable[[str], int]
"""Successful upstream requests whose path holds a fragment."""


def _upstream(request: pytest.FixtureRequest, kind: str) -> tuple[str, Counter]:
    if kind == "go":
        go: ReferenceRegistry = request.getfixturevalue("go_upstream")
        return go.url, lambda fragment: go.requests_for(fragment, status=200)
    dockyard: RunningRegistry = request.getfixturevalue("bearer_upstream")
    return dockyard.url, lambda fragment: dockyard_requests(dockyard, fragment, status=200)


@pytest.mark.parametrize("form", ["mirrors", "proxy"])
@pytest.mark.parametrize("kind", ["go", "bearer"])
def test_pull_through_by_tag_and_digest(request: pytest.FixtureRequest,
                                        start_mirror: MirrorStarter, kind: str,
                                        form: str) -> None:
    url, upstream_requests = _upstream(request, kind)
    name = repo_name("lib")
    image = seed_image(url, name, "v1", credentials=UPSTREAM_CREDENTIALS,
                       layers=[random_bytes(3000), random_bytes(5000)])
    if form == "mirrors":
        mirror = start_mirror(mirror_entry(url, "up", UPSTREAM_CREDENTIALS))
        local = f"up/{name}"
    else:
        mirror = start_mirror(config=proxy_section(url, UPSTREAM_CREDENTIALS))
        local = name

    head = get_manifest(mirror.url, local, "v1", method="HEAD")
    assert head.status_code == 200, describe(head)
    assert head.headers["Content-Length"] == str(image.manifest.size)
    assert head.headers["Docker-Content-Digest"] == image.digest
    uncached = image.layer_digests[1]
    head = get_blob(mirror.url, local, uncached, method="HEAD")
    assert head.status_code == 200, describe(head)
    assert head.headers["Content-Length"] == "5000"
    assert head.headers["Docker-Content-Digest"] == uncached

    pull(mirror.url, local, "v1", image.manifest.body)
    pull(mirror.url, local, image.digest, image.manifest.body)
    fetched = upstream_requests(f"/v2/{name}/")
    for layer in image.layer_digests:  # the HEAD's download served the later GET
        assert upstream_requests(f"/v2/{name}/blobs/{layer}") == 1

    pull(mirror.url, local, "v1", image.manifest.body)
    pull(mirror.url, local, image.digest, image.manifest.body)
    assert upstream_requests(f"/v2/{name}/") == fetched, "a cached pull reached the upstream"
    head = get_blob(mirror.url, local, uncached, method="HEAD")
    assert head.headers["Content-Length"] == "5000"


def test_docker_hub_names_get_library(go_upstream: ReferenceRegistry,
                                      start_mirror: MirrorStarter) -> None:
    tag = uuid4().hex[:10]
    image = seed_image(go_upstream.url, "library/alpine", tag,
                       credentials=UPSTREAM_CREDENTIALS)
    mirror = start_mirror(mirror_entry(go_upstream.url, "docker.io", UPSTREAM_CREDENTIALS))
    pull(mirror.url, "docker.io/alpine", tag, image.manifest.body)
    assert go_upstream.requests_for(f"/v2/library/alpine/manifests/{tag}", "GET", 200) == 1
    assert go_upstream.requests_for("/v2/alpine/") == 0
    pull(mirror.url, "docker.io/library/alpine", tag, image.manifest.body)  # the long form
    # is the same cached repository: nothing more from the upstream
    assert go_upstream.requests_for(f"/v2/library/alpine/manifests/{tag}", "GET", 200) == 1
    for layer in image.layer_digests:
        assert go_upstream.requests_for(f"/blobs/{layer}", "GET", 200) == 1


def test_containerd_namespace_query(go_upstream: ReferenceRegistry,
                                    start_mirror: MirrorStarter) -> None:
    """containerd asks `/v2/library/alpine/manifests/latest?ns=docker.io`."""
    tag = uuid4().hex[:10]
    image = seed_image(go_upstream.url, "library/alpine", tag,
                       credentials=UPSTREAM_CREDENTIALS)
    other = seed_image(go_upstream.url, "team/app", tag, credentials=UPSTREAM_CREDENTIALS)
    mirror = start_mirror(mirror_entry(go_upstream.url, "docker.io", UPSTREAM_CREDENTIALS),
                          mirror_entry(go_upstream.url.replace("127.0.0.1", "localhost"),
                                       "quay", UPSTREAM_CREDENTIALS))
    response = get_manifest(mirror.url, "library/alpine", f"{tag}?ns=docker.io")
    assert response.status_code == 200, describe(response)
    assert response.content == image.manifest.body
    assert response.headers["Docker-Content-Digest"] == image.digest
    layer = image.layer_digests[0]
    blob = get_blob(mirror.url, "library/alpine", f"{layer}?ns=docker.io")
    assert blob.status_code == 200 and sha256(blob.content) == layer
    # the namespace may also name the upstream by its host
    host = go_upstream.url.replace("127.0.0.1", "localhost").split("//")[1]
    response = get_manifest(mirror.url, "team/app", f"{tag}?ns={host}")
    assert response.status_code == 200, describe(response)
    assert response.content == other.manifest.body
    # without ns the same path is a local repository, which holds nothing
    assert get_manifest(mirror.url, "library/alpine", tag).status_code == 404


def test_missing_upstream_content_is_404_and_not_remembered(
        go_upstream: ReferenceRegistry, start_mirror: MirrorStarter) -> None:
    name = repo_name("lib")
    mirror = start_mirror(mirror_entry(go_upstream.url, "up", UPSTREAM_CREDENTIALS))
    assert_error(get_manifest(mirror.url, f"up/{name}", "v1"), 404, "MANIFEST_UNKNOWN",
                 "NAME_UNKNOWN")
    missing = sha256(random_bytes(64))
    assert_error(get_blob(mirror.url, f"up/{name}", missing), 404, "BLOB_UNKNOWN")
    image = seed_image(go_upstream.url, name, "v1", credentials=UPSTREAM_CREDENTIALS)
    pull(mirror.url, f"up/{name}", "v1", image.manifest.body)
