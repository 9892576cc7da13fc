"""What the mirror tests share: mirrors started against real upstreams, pulls checked byte by
byte, requests counted in an upstream's access log, and small misbehaving upstreams.

A mirror is a Dockyard subprocess configured with `mirrors:` or `proxy:`, its debug listener
serving Prometheus metrics. Upstreams are the Go reference registry (htpasswd Basic), a second
Dockyard (bearer tokens), or `FakeUpstream`: an aiohttp server on a thread of the test process
whose handlers a test writes to misbehave in one precise way.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import uuid4

import requests
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from tests.server import RunningRegistry, deep_merge, free_port, running_registry
from tests.system.api.client import DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, describe

MANIFEST_ACCEPT = ", ".join([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST,
                             "application/vnd.docker.distribution.manifest.list.v2+json"])
UPSTREAM_USER = "mirror-robot"
UPSTREAM_PASSWORD = "upstream-pw-7c1e5b"
"""The mirror's credentials at its upstreams: must never show in what the mirror says."""
UPSTREAM_CREDENTIALS = (UPSTREAM_USER, UPSTREAM_PASSWORD)


class Mirror:
    """A running mirror: its registry URL, debug listener and log."""

    def __init__(self, server: RunningRegistry, debug_url: str) -> None:
        self.server = server
        self.url = server.url
        self.debug_url = debug_url

    def metric(self, name: str, **labels: str) -> float:
        """The sum of the samples of `name` whose labels include `labels` (0 when none)."""
        response = requests.get(self.debug_url + "/metrics", timeout=10)
        assert response.status_code == 200, response.text
        wanted = set(labels.items())
        return sum(sample.value
                   for family in text_string_to_metric_families(response.text)
                   for sample in family.samples
                   if sample.name == name and wanted <= set(sample.labels.items()))

    def log_text(self) -> str:
        return self.server.log_text()


def mirror_entry(url: str, prefix: str, credentials: tuple[str, str] | None = None,
                 **options: Any) -> dict[str, Any]:
    """One `mirrors:` item."""
    entry: dict[str, Any] = {"prefix": prefix, "url": url, **options}
    if credentials is not None:
        entry["username"], entry["password"] = credentials
    return entry


def proxy_section(url: str, credentials: tuple[str, str] | None = None) -> dict[str, Any]:
    """distribution's `proxy:` section."""
    section: dict[str, Any] = {"remoteurl": url}
    if credentials is not None:
        section["username"], section["password"] = credentials
    return {"proxy": section}


class MirrorStarter:
    """Starts mirrors for one test (or module) and stops them at its end."""

    def __init__(self, stack: ExitStack, workdirs: Callable[[], Path]) -> None:
        self._stack = stack
        self._workdirs = workdirs

    def __call__(self, *mirrors: dict[str, Any], config: dict[str, Any] | None = None,
                 workers: int = 1) -> Mirror:
        debug_port = free_port()
        base: dict[str, Any] = {"http": {"debug": {"addr": f"127.0.0.1:{debug_port}",
                                                   "prometheus": {"enabled": True}}}}
        if mirrors:
            base["mirrors"] = list(mirrors)
        server = self._stack.enter_context(
            running_registry(self._workdirs(), deep_merge(base, config or {}), workers))
        return Mirror(server, f"http://127.0.0.1:{debug_port}")


# -- pulling and checking ----------------------------------------------------------------------


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def get_manifest(url: str, repository: str, reference: str,
                 session: requests.Session | None = None, method: str = "GET",
                 ) -> requests.Response:
    http = session or requests
    return http.request(method, f"{url}/v2/{repository}/manifests/{reference}",
                        headers={"Accept": MANIFEST_ACCEPT}, timeout=30)


def get_blob(url: str, repository: str, digest: str,
             session: requests.Session | None = None, method: str = "GET",
             ) -> requests.Response:
    http = session or requests
    return http.request(method, f"{url}/v2/{repository}/blobs/{digest}", timeout=60)


@dataclass
class Pulled:
    """What a pull through the mirror got."""

    manifest: requests.Response
    blobs: dict[str, bytes] = field(default_factory=dict)


def pull(url: str, repository: str, reference: str, expected_manifest: bytes,
         session: requests.Session | None = None) -> Pulled:
    """Pull as a client does (manifest, then each blob) and check every byte on the way."""
    response = get_manifest(url, repository, reference, session)
    assert response.status_code == 200, describe(response)
    assert response.content == expected_manifest, "manifest bytes differ from the upstream's"
    assert response.headers["Docker-Content-Digest"] == sha256(expected_manifest)
    pulled = Pulled(response)
    document = response.json()
    for descriptor in [document["config"], *document["layers"]]:
        blob = get_blob(url, repository, descriptor["digest"], session)
        assert blob.status_code == 200, describe(blob)
        assert sha256(blob.content) == descriptor["digest"], "blob bytes do not hash to it"
        assert len(blob.content) == descriptor["size"]
        pulled.blobs[descriptor["digest"]] = blob.content
    return pulled


# -- counting what reached a Dockyard upstream -------------------------------------------------

_DOCKYARD_ACCESS = re.compile(r'"(?P<method>[A-Z]+) (?P<path>\S+)" (?P<status>\d{3}) ')


def dockyard_requests(server: RunningRegistry, fragment: str, method: str | None = None,
                      status: int | None = None, timeout: float = 5.0) -> int:
    """Requests a Dockyard upstream logged with `fragment` in their path; first waits for a
    marker request to be logged, so every request answered before it is counted."""
    marker = f"sync{uuid4().hex}"
    requests.get(f"{server.url}/v2/{marker}/tags/list", timeout=5)
    deadline = time.monotonic() + timeout
    while marker not in server.log_text():
        assert time.monotonic() < deadline, "the upstream's access log did not show the marker"
        time.sleep(0.01)
    return sum(1 for m in map(_DOCKYARD_ACCESS.search, server.log_text().splitlines())
               if m and fragment in m["path"] and method in (None, m["method"])
               and status in (None, int(m["status"])))


def wait_for(condition: Callable[[], Any], timeout: float = 10.0, message: str = "condition",
             ) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {message}"
        time.sleep(0.05)


# -- upstreams that misbehave ------------------------------------------------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class FakeUpstream:
    """An aiohttp registry on loopback, run on its own thread, answering only what a test
    routes; every request it receives is recorded as (method, path)."""

    def __init__(self, routes: dict[str, Handler]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.seen: list[tuple[str, str]] = []
        self._routes = {"/v2/": _version, **routes}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    def count(self, fragment: str, method: str = "GET") -> int:
        return sum(1 for seen_method, path in list(self.seen)
                   if seen_method == method and fragment in path)

    def start(self) -> FakeUpstream:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    async def _start(self) -> None:
        @web.middleware
        async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
            self.seen.append((request.method, request.path))
            return await handler(request)

        app = web.Application(middlewares=[record])
        for path, handler in self._routes.items():
            app.router.add_route("*", path, handler)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def stop(self) -> None:
        """Close the listener and every connection (a download in flight is cut)."""
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
            self._runner = None

    def restart(self) -> None:
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)

    def close(self) -> None:
        self.stop()
        asyncio.run_coroutine_threadsafe(_cancel_others(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


async def _cancel_others() -> None:
    """Handlers still hanging when the server stops: cancelled, not left to the loop's end."""
    others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in others:
        task.cancel()
    await asyncio.gather(*others, return_exceptions=True)


async def _version(request: web.Request) -> web.Response:
    return web.json_response({})


def fake_upstream(stack: ExitStack, routes: dict[str, Handler]) -> FakeUpstream:
    upstream = FakeUpstream(routes).start()
    stack.callback(upstream.close)
    return upstream


def iter_chunks(data: bytes, size: int = 64 << 10) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]
