"""Many clients asking for one uncached thing at once cost the upstream one request: a large
blob is downloaded once per mirror (by one worker process), a manifest fetched once."""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import TypeVar

import pytest
import requests
from aiohttp import web

from tests.system.api.client import repo_name
from tests.system.mirror.kit import (
    UPSTREAM_CREDENTIALS,
    MirrorStarter,
    fake_upstream,
    get_manifest,
    iter_chunks,
    mirror_entry,
    sha256,
    wait_for,
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


def test_download_outlives_the_client_that_started_it(go_upstream: ReferenceRegistry,
                                                      start_mirror: MirrorStarter) -> None:
    name = repo_name("left")
    size = 8 << 20
    image = seed_image(go_upstream.url, name, credentials=UPSTREAM_CREDENTIALS,
                       layers=[os.urandom(size)])
    mirror = start_mirror(mirror_entry(go_upstream.url, "up", UPSTREAM_CREDENTIALS))
    layer = image.layer_digests[0]
    url = f"{mirror.url}/v2/up/{name}/blobs/{layer}"
    with requests.get(url, stream=True, timeout=30) as response:
        assert response.status_code == 200
        assert len(response.raw.read(64 << 10)) == 64 << 10
    # the client hung up: the mirror still finishes and caches the blob
    wait_for(lambda: mirror.metric("dockyard_mirror_requests_total", result="miss",
                                   kind="blob") == 1, message="the download to finish")
    assert download(url) == (200, layer, size)
    assert go_upstream.requests_for(f"/blobs/{layer}", "GET", 200) == 1


def test_blob_arriving_in_another_worker_has_its_length(stack: ExitStack,
                                                        start_mirror: MirrorStarter) -> None:
    """With two workers, requests landing on the one that did not win the download lease
    wait for the blob the other stores; they must still answer with its Content-Length."""
    data = os.urandom(4 << 20)
    digest = sha256(data)

    async def slow(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": str(len(data))})
        await response.prepare(request)
        for chunk in iter_chunks(data, 256 << 10):  # over 3 s
            await response.write(chunk)
            await asyncio.sleep(0.2)
        return response

    upstream = fake_upstream(stack, {"/v2/r/blobs/{digest}": slow})
    mirror = start_mirror(mirror_entry(upstream.url, "up"), workers=2)
    url = f"{mirror.url}/v2/up/r/blobs/{digest}"
    first = threading.Thread(target=download, args=(url,))
    first.start()
    wait_for(lambda: upstream.count("/blobs/"), message="the download to start")

    def head_or_get(number: int) -> tuple[int, str | None, bytes]:
        response = requests.request("HEAD" if number % 2 else "GET", url, timeout=60,
                                    headers={"Connection": "close"})
        return response.status_code, response.headers.get("Content-Length"), response.content

    with ThreadPoolExecutor(CLIENTS) as pool:
        results = list(pool.map(head_or_get, range(CLIENTS)))
    first.join(60)
    for number, (status, length, body) in enumerate(results):
        assert (status, length) == (200, str(len(data))), f"request {number}"
        assert body == (b"" if number % 2 else data)
    assert upstream.count("/blobs/") == 1
