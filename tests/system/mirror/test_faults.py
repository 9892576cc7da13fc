"""Upstreams that misbehave, as small aiohttp servers in the test: wrong bytes, a download cut
or killed midway, a hang, a manifest that is not one. The client of the mirror gets an error
(never a whole body of wrong bytes), nothing bad is cached, and the mirror stays healthy."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack

import requests
from aiohttp import web

from tests.system.api.client import OCI_MANIFEST, assert_error
from tests.system.mirror.kit import (
    FakeUpstream,
    MirrorStarter,
    fake_upstream,
    get_blob,
    get_manifest,
    iter_chunks,
    mirror_entry,
    sha256,
)

GOOD = os.urandom(2 << 20)
DIGEST = sha256(GOOD)
BLOB_PATH = "/v2/r/blobs/{digest}"


def _read(url: str) -> tuple[int, bytes] | Exception:
    """Status and whole body, or the error that ended the response."""
    try:
        response = requests.get(url, timeout=30)
    except requests.RequestException as exc:
        return exc
    return response.status_code, response.content


def _never_wrong_bytes(outcome: tuple[int, bytes] | Exception, wrong: bytes) -> None:
    if isinstance(outcome, Exception):
        return  # cut short: the client knows it did not get the blob
    status, body = outcome
    assert not (status == 200 and body == wrong), "a full body of wrong bytes was served"
    assert status != 200 or len(body) < len(wrong), "a 200 with a complete body"


def _healthy(mirror_url: str) -> None:
    assert requests.get(mirror_url + "/v2/", timeout=5).status_code == 200


def test_blob_not_matching_its_digest(stack: ExitStack, start_mirror: MirrorStarter) -> None:
    wrong = os.urandom(len(GOOD))

    async def corrupt(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": str(len(wrong))})
        await response.prepare(request)
        for chunk in iter_chunks(wrong):
            await response.write(chunk)
        return response

    upstream = fake_upstream(stack, {BLOB_PATH: corrupt})
    mirror = start_mirror(mirror_entry(upstream.url, "up"))
    url = f"{mirror.url}/v2/up/r/blobs/{DIGEST}"

    _never_wrong_bytes(_read(url), wrong)
    _never_wrong_bytes(_read(url), wrong)
    assert upstream.count(f"/blobs/{DIGEST}") == 2, "the corrupt blob was cached"
    _healthy(mirror.url)


def test_download_cut_midway_is_not_cached(stack: ExitStack,
                                           start_mirror: MirrorStarter) -> None:
    """The upstream process dies with half the blob sent; it comes back whole."""
    sent_half = threading.Event()
    whole = threading.Event()

    async def blob(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": str(len(GOOD))})
        await response.prepare(request)
        if whole.is_set():
            await response.write(GOOD)
            return response
        await response.write(GOOD[:len(GOOD) // 2])
        sent_half.set()
        await asyncio.sleep(60)  # until the server is killed under it
        return response

    upstream = fake_upstream(stack, {BLOB_PATH: blob})
    mirror = start_mirror(mirror_entry(upstream.url, "up"))
    url = f"{mirror.url}/v2/up/r/blobs/{DIGEST}"

    outcome: list[tuple[int, bytes] | Exception] = []
    reader = threading.Thread(target=lambda: outcome.append(_read(url)))
    reader.start()
    assert sent_half.wait(10)
    upstream.stop()
    reader.join(30)
    assert outcome and (isinstance(outcome[0], Exception) or outcome[0][0] != 200
                        or len(outcome[0][1]) < len(GOOD)), "a cut download looked whole"

    assert_error(get_blob(mirror.url, "up/r", DIGEST), 503, "UNAVAILABLE")  # nothing cached
    whole.set()
    upstream.restart()
    response = get_blob(mirror.url, "up/r", DIGEST)
    assert response.status_code == 200 and response.content == GOOD
    _healthy(mirror.url)


def test_hanging_upstream_fails_within_the_timeout(stack: ExitStack,
                                                   start_mirror: MirrorStarter) -> None:
    async def hang(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(60)
        return web.Response()

    async def stall_midway(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": str(len(GOOD))})
        await response.prepare(request)
        await response.write(GOOD[:1 << 20])
        await asyncio.sleep(60)
        return response

    upstream = fake_upstream(stack, {"/v2/r/manifests/{reference}": hang,
                                     "/v2/r/blobs/{digest}": hang,
                                     "/v2/s/blobs/{digest}": stall_midway})
    mirror = start_mirror(mirror_entry(upstream.url, "up", timeout="1s"))

    waits: list[Callable[[], requests.Response]] = [
        lambda: get_manifest(mirror.url, "up/r", "latest"),
        lambda: get_blob(mirror.url, "up/r", DIGEST)]
    for request in waits:
        started = time.monotonic()
        response = request()
        assert time.monotonic() - started < 8, "the mirror waited far past its timeout"
        assert_error(response, 503, "UNAVAILABLE")
    started = time.monotonic()
    outcome = _read(f"{mirror.url}/v2/up/s/blobs/{DIGEST}")
    assert time.monotonic() - started < 8, "a stalled body held the client far past the timeout"
    assert isinstance(outcome, Exception) or len(outcome[1]) < len(GOOD)
    _healthy(mirror.url)


def test_garbage_manifest_is_502_and_not_cached(stack: ExitStack,
                                                start_mirror: MirrorStarter) -> None:
    garbage = b"<html>this is not a manifest</html>"

    async def manifest(request: web.Request) -> web.Response:
        return web.Response(body=garbage, headers={
            "Content-Type": OCI_MANIFEST, "Docker-Content-Digest": sha256(garbage)})

    upstream: FakeUpstream = fake_upstream(stack, {"/v2/r/manifests/{reference}": manifest})
    mirror = start_mirror(mirror_entry(upstream.url, "up"))

    for reference in ("latest", "latest", sha256(garbage)):
        assert_error(get_manifest(mirror.url, "up/r", reference), 502)
    assert upstream.count("/v2/r/manifests/latest") == 2, "the garbage was cached"
    assert upstream.count(f"/v2/r/manifests/{sha256(garbage)}") == 1
    _healthy(mirror.url)


def test_manifest_not_matching_the_asked_digest(stack: ExitStack,
                                                start_mirror: MirrorStarter) -> None:
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": [],
                       "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                                  "digest": sha256(b"{}"), "size": 2}}).encode()
    asked = sha256(body + b" ")

    async def manifest(request: web.Request) -> web.Response:
        return web.Response(body=body, headers={"Content-Type": OCI_MANIFEST})

    upstream = fake_upstream(stack, {"/v2/r/manifests/{reference}": manifest})
    mirror = start_mirror(mirror_entry(upstream.url, "up"))
    assert_error(get_manifest(mirror.url, "up/r", asked), 502)
    assert_error(get_manifest(mirror.url, "up/r", asked), 502)
    assert upstream.count(f"/v2/r/manifests/{asked}") == 2
    assert get_manifest(mirror.url, "up/r", sha256(body)).content == body
