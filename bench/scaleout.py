"""Scale-out numbers: 1 vs 2 Dockyard nodes on S3 + PostgreSQL (+ Redis), and list pages at
10k and 100k entries.

    .venv/bin/python bench/scaleout.py [--seconds 10] [--concurrency 32] [--sizes 10000,100000]

Needs the local PostgreSQL and Redis (as the tests do) and moto's S3 server (a test extra),
started here on a free port. The load generator sends each request to the next node in turn,
as a round-robin load balancer would. Lists are seeded straight into PostgreSQL (one image,
then tags and repositories by INSERT ... SELECT), since pushing 100k manifests through HTTP
would measure the push, not the page; a page is then fetched at the start, the middle and the
end of the listing: with keyset pagination its cost must not grow with the listing.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
import asyncpg
from sqlalchemy.engine import make_url
from tests.api.client import Client, repo_name
from tests.backends import Services
from tests.server import RunningRegistry, running_registry

Request = Callable[[aiohttp.ClientSession, str], Awaitable[None]]


async def _load(urls: list[str], request: Request, seconds: float, concurrency: int
                ) -> tuple[float, float]:
    """Requests per second and median latency (ms), spread round-robin over the nodes."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    counter = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal counter
            while time.perf_counter() < deadline:
                counter += 1
                started = time.perf_counter()
                await request(session, urls[counter % len(urls)])
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return len(latencies) / elapsed, statistics.median(latencies) * 1000


def _expect(status: int) -> Callable[[aiohttp.ClientResponse], Awaitable[None]]:
    async def check(response: aiohttp.ClientResponse) -> None:
        await response.read()
        if response.status != status:
            raise RuntimeError(f"{response.method} {response.url}: HTTP {response.status}")

    return check


def pull_manifest(name: str) -> Request:
    check = _expect(200)
    headers = {"Accept": "application/vnd.oci.image.manifest.v1+json"}

    async def request(session: aiohttp.ClientSession, base: str) -> None:
        async with session.get(f"{base}/v2/{name}/manifests/latest", headers=headers) as got:
            await check(got)

    return request


def head_blob(name: str, digest: str) -> Request:
    check = _expect(200)

    async def request(session: aiohttp.ClientSession, base: str) -> None:
        async with session.head(f"{base}/v2/{name}/blobs/{digest}") as got:
            await check(got)

    return request


def push_small_blob(name: str) -> Request:
    """A monolithic 4 KiB upload (POST ?digest=): S3 writes, a copy and metadata commits."""
    check = _expect(201)

    async def request(session: aiohttp.ClientSession, base: str) -> None:
        data = os.urandom(4096)
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        async with session.post(f"{base}/v2/{name}/blobs/uploads/?digest={digest}",
                                data=data) as got:
            await check(got)

    return request


def _nodes(stack: ExitStack, services: Services, count: int) -> list[RunningRegistry]:
    shared = services.scaled_config()
    shared["log"] = {"level": "error", "accesslog": {"disabled": True}}
    return [stack.enter_context(running_registry(Path(tempfile.mkdtemp()), shared))
            for _ in range(count)]


def throughput(services: Services, seconds: float, concurrency: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for count in (1, 2):
        with ExitStack() as stack:
            nodes = _nodes(stack, services, count)
            client = Client(nodes[0].url)
            name = repo_name("bench")
            manifest = client.push_image(name, "latest")
            blob = "sha256:" + hashlib.sha256(manifest.blobs[0]).hexdigest()
            urls = [node.url for node in nodes]
            for label, request in (("manifest GET", pull_manifest(name)),
                                   ("blob HEAD", head_blob(name, blob)),
                                   ("4 KiB blob push", push_small_blob(name))):
                rate, median = asyncio.run(_load(urls, request, seconds, concurrency))
                results[f"{label} / {count} node(s)"] = {"req_per_s": round(rate),
                                                         "median_ms": round(median, 2)}
                print(f"{label:18} {count} node(s): {rate:8.0f} req/s  median {median:6.2f} ms",
                      flush=True)
    return results


async def _seed_lists(database_url: str, repository: str, size: int) -> None:
    """`size` tags on `repository` (all on its one manifest) and `size` more repositories."""
    url = make_url(database_url).set(drivername="postgresql")
    connection = await asyncpg.connect(url.render_as_string(hide_password=False))
    try:
        repository_id, manifest_id = await connection.fetchrow(
            "SELECT r.id, m.id FROM repositories r JOIN manifests m ON m.repository_id = r.id "
            "WHERE r.name = $1 LIMIT 1", repository)
        await connection.execute(
            "INSERT INTO tags (repository_id, name, manifest_id, updated_at) "
            "SELECT $1, 'tag-' || lpad(i::text, 7, '0'), $2, now() "
            "FROM generate_series(1, $3) AS i ON CONFLICT DO NOTHING",
            repository_id, manifest_id, size)
        await connection.execute(
            "INSERT INTO repositories (name, created_at) "
            "SELECT 'seeded/repo-' || lpad(i::text, 7, '0'), now() "
            "FROM generate_series(1, $1) AS i ON CONFLICT DO NOTHING", size)
        await connection.execute("ANALYZE")
    finally:
        await connection.close()


def _page_ms(client: Client, path: str, last: str | None, rounds: int = 200) -> float:
    params = {"n": "100"} | ({"last": last} if last else {})
    timings = []
    for _ in range(rounds):
        started = time.perf_counter()
        response = client.get(path, params=params)
        timings.append(time.perf_counter() - started)
        assert response.status_code == 200, response.text
    return statistics.median(timings) * 1000


def list_pages(services: Services, sizes: list[int]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for size in sizes:
        with ExitStack() as stack:
            nodes = _nodes(stack, services, 1)
            client = Client(nodes[0].url)
            name = repo_name("bench")
            client.push_image(name, "latest")
            database_url = str(nodes[0].config["database"]["url"])
            started = time.perf_counter()
            asyncio.run(_seed_lists(database_url, name, size))
            print(f"seeded {size} tags and {size} repositories in "
                  f"{time.perf_counter() - started:.1f}s", flush=True)
            for where, index in (("first", None), ("middle", size // 2), ("last", size - 100)):
                tag_last = None if index is None else f"tag-{index:07d}"
                repo_last = None if index is None else f"seeded/repo-{index:07d}"
                tags_ms = _page_ms(client, f"/v2/{name}/tags/list", tag_last)
                catalog_ms = _page_ms(client, "/v2/_catalog", repo_last)
                results[f"{size} / {where} page"] = {"tags_list_ms": round(tags_ms, 2),
                                                     "catalog_ms": round(catalog_ms, 2)}
                print(f"{size:>7} entries, {where:6} page of 100: tags/list "
                      f"{tags_ms:6.2f} ms  _catalog {catalog_ms:6.2f} ms", flush=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--only", choices=("throughput", "lists"))
    parser.add_argument("--json", type=Path, help="write the numbers here too")
    args = parser.parse_args()
    services = Services(Path(tempfile.mkdtemp(prefix="dockyard-scaleout-")))
    results: dict[str, Any] = {}
    try:
        if args.only in (None, "throughput"):
            results["throughput"] = throughput(services, args.seconds, args.concurrency)
        if args.only in (None, "lists"):
            sizes = [int(size) for size in args.sizes.split(",")]
            results["lists"] = list_pages(services, sizes)
    finally:
        services.close()
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
