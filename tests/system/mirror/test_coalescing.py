"""Many clients asking for one uncached thing at once cost the upstream one request: a large
blob is downloaded once per mirror (by one worker process), a manifest fetched once."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import pytest
import requests

from tests.system.api.client import repo_name
from tests.system.mirror.kit import (
    UPSTREAM_CREDENTIALS,
    MirrorStarter,
    get_manifest,
    mirror_entry,
)
from tests.upstreams import ReferenceRegistry, seed_image

T = TypeVar("T")
CLIENTS = 16
BIG = 64 << 20


def together(count: int, action: Callable[[], T]) -> list[T]:
    """Run `action()` on `count` threads released at the same moment."""
    barrier = threading.Barrier(count)

    def one(_: int) -> T:
        barrier.wait(10)
        return action()

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def download(url: str) -> tuple[int, str, int]:
    """Status, sha256 digest and length of a body read to its end on a new connection."""
    with requests.get(url, stream=True, timeout=120,
                      headers={"Connection": "close"}) as response:
        sha = hashlib.sha256()
        length = 0
        for chunk in response.iter_content(1 << 20):
            sha.update(chunk)
            length += len(chunk)
    return response.status_code, f"sha256:{sha.hexdigest()}", length


@pytest.mark.parametrize("workers", [1, 2])
def test_one_upstream_get_for_concurrent_blob_pulls(go_upstream: ReferenceRegistry,
                                                    start_mirror: MirrorStarter,
                                                    workers: int) -> None:
    name = repo_name("big")
    image = seed_image(go_upstream.url, name, credentials=UPSTREAM_CREDENTIALS,
                       layers=[os.urandom(BIG)])
    mirror = start_mirror(mirror_entry(go_upstream.url, "up", UPSTREAM_CREDENTIALS),
                          workers=workers)
    layer = image.layer_digests[0]

    results = together(CLIENTS, lambda: download(f"{mirror.url}/v2/up/{name}/blobs/{layer}"))

    assert results == [(200, layer, BIG)] * CLIENTS
    assert go_upstream.requests_for(f"/blobs/{layer}", "GET", 200) == 1
    assert go_upstream.requests_for(f"/blobs/{layer}", "GET", 401) <= workers


def test_one_upstream_get_for_concurrent_manifest_pulls(go_upstream: ReferenceRegistry,
                                                        start_mirror: MirrorStarter) -> None:
    name = repo_name("many")
    image = seed_image(go_upstream.url, name, "v1", credentials=UPSTREAM_CREDENTIALS)
    mirror = start_mirror(mirror_entry(go_upstream.url, "up", UPSTREAM_CREDENTIALS))

    responses = together(CLIENTS, lambda: get_manifest(mirror.url, f"up/{name}", "v1"))

    assert [r.status_code for r in responses] == [200] * CLIENTS
    assert {r.content for r in responses} == {image.manifest.body}
    assert go_upstream.requests_for(f"/v2/{name}/manifests/v1", "GET", 200) == 1
    assert go_upstream.requests_for(f"/v2/{name}/manifests/", "HEAD") == 0
