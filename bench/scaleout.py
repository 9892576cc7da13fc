"""Scale-out numbers: 1 vs 2 Dockyard nodes on S3 + PostgreSQL (+ Redis), and list pages at
1k, 10k and 100k entries on PostgreSQL and on the embedded default (filesystem + SQLite).

    .venv/bin/python bench/scaleout.py [--seconds 10] [--concurrency 32]
        [--sizes 1000,10000,100000] [--engines postgres,sqlite] [--rounds 100] [--only lists]

Needs the local PostgreSQL and Redis (as the tests do) and moto's S3 server (a test extra),
started here on a free port. The load generator sends each request to the next node in turn,
as a round-robin load balancer would.

Lists are seeded straight into the database (one image pushed over HTTP, then `size` tags and
`size` repositories inserted through SQLAlchemy Core on the server's own tables), since
pushing 100k manifests through HTTP would measure the push, not the page. Each size gets a
fresh single-worker node. A page of 100 is then fetched at the start, the middle and the end
of each listing, and a full page of 1000 at the start; every page is checked to be full.
With keyset pagination a page's cost must not grow with the listing.

What a figure is: the median over `--rounds` fetches of one GET on a kept-alive connection
(bench/httpclient.py), client time included. On SQLite the server memoizes read answers
until the database changes (metadata/memo.py), so two figures are given per page:
- uncached: before each (untimed) fetch this script commits an empty change to the SQLite
  file (`PRAGMA user_version`), which empties the memo in every server process, as any push
  would; the fetch then runs the queries and builds the rows: the cost of a page nobody
  asked for since the last write.
- repeat: the same request again with no write in between: the memo's answer.
PostgreSQL has no memo (Redis caches manifests and links, not listings); both figures are
measured there too and should agree.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
from sqlalchemy import insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from tests.backends import Services
from tests.server import RunningRegistry, running_registry
from tests.system.api.client import Client, repo_name

from bench.httpclient import Connection, expect
from dockyard.config import load_config
from dockyard.metadata.schema import manifests, repositories, tags

PAGE = 100
FULL_PAGE = 1000  # the bench table's "tags list, 1000 tags" shape
QUIET_LOG: dict[str, Any] = {"level": "error", "accesslog": {"disabled": True}}

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


def _node(stack: ExitStack, config: dict[str, Any]) -> RunningRegistry:
    """One single-worker node in a scratch directory removed when `stack` closes."""
    workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="dockyard-node-"))
    return stack.enter_context(running_registry(Path(workdir), config))


def _nodes(stack: ExitStack, services: Services, count: int) -> list[RunningRegistry]:
    shared = services.scaled_config()
    shared["log"] = QUIET_LOG
    return [_node(stack, shared) for _ in range(count)]


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
    """`size` tags on `repository` (all on its one manifest) and `size` more repositories.

    Core inserts into the server's own tables (metadata/schema.py), so the one statement
    serves SQLite and PostgreSQL and values are encoded as the server encodes them.
    """
    engine = create_async_engine(database_url)
    now = datetime.now(UTC)
    try:
        async with engine.begin() as connection:
            repository_id, manifest_id = (await connection.execute(
                select(repositories.c.id, manifests.c.id)
                .join(manifests, manifests.c.repository_id == repositories.c.id)
                .where(repositories.c.name == repository).limit(1))).one()
            await connection.execute(insert(tags), [
                {"repository_id": repository_id, "name": f"tag-{i:07d}",
                 "manifest_id": manifest_id, "updated_at": now} for i in range(1, size + 1)])
            await connection.execute(insert(repositories), [
                {"name": f"seeded/repo-{i:07d}", "created_at": now}
                for i in range(1, size + 1)])
        async with engine.begin() as connection:
            await connection.execute(text("ANALYZE"))
    finally:
        await engine.dispose()


class _SqliteCommits:
    """Commits an empty change (`PRAGMA user_version`) to the server's SQLite file.

    Every server process sees `PRAGMA data_version` move and empties its read memo, as after
    any push, so the next fetch runs the query and builds its rows again.
    """

    def __init__(self, path: str) -> None:
        self._connection = sqlite3.connect(path, isolation_level=None, timeout=10)
        self._count = 0

    def __call__(self) -> None:
        self._count += 1
        self._connection.execute(f"PRAGMA user_version = {self._count}")

    def close(self) -> None:
        self._connection.close()


def _page_target(path: str, last: str | None, n: int) -> str:
    return f"{path}?{urlencode({'n': n} | ({'last': last} if last else {}))}"


def _page_ms(conn: Connection, path: str, last: str | None, n: int, rounds: int,
             before_each: Callable[[], None] | None) -> float:
    """Median ms of one page fetch; `before_each` runs untimed before every fetch."""
    target = _page_target(path, last, n)
    key = "tags" if path.endswith("/tags/list") else "repositories"
    timings = []
    for _ in range(rounds):
        if before_each is not None:
            before_each()
        started = time.perf_counter()
        response = conn.request("GET", target)
        timings.append(time.perf_counter() - started)
        expect(response, 200, what=f"GET {target}")
        count = len(json.loads(response.body)[key])
        if count != n:
            raise RuntimeError(f"GET {target}: {count} entries, expected a full page of {n}")
    return statistics.median(timings) * 1000


def _page_both(conn: Connection, path: str, last: str | None, n: int, rounds: int,
               invalidate: Callable[[], None] | None) -> dict[str, float]:
    """Uncached (memo emptied before each fetch, if the engine has one) and repeated fetch."""
    uncached = _page_ms(conn, path, last, n, rounds, invalidate)
    conn.request("GET", _page_target(path, last, n))  # the answer the repeats will find
    repeat = _page_ms(conn, path, last, n, rounds, None)
    return {"uncached": round(uncached, 2), "repeat": round(repeat, 2)}


def _list_node(stack: ExitStack, services: Services, engine: str) -> RunningRegistry:
    if engine == "postgres":
        return _nodes(stack, services, 1)[0]
    return _node(stack, {"log": QUIET_LOG})  # the embedded default: filesystem + SQLite


def list_pages(services: Services, engines: list[str], sizes: list[int], rounds: int
               ) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for engine in engines:
        for size in sizes:
            with ExitStack() as stack:
                node = _list_node(stack, services, engine)
                name = repo_name("bench")
                Client(node.url).push_image(name, "latest")
                database_url = load_config(node.config_path, environ={}).database_url()
                started = time.perf_counter()
                asyncio.run(_seed_lists(database_url, name, size))
                print(f"{engine}: seeded {size} tags and {size} repositories in "
                      f"{time.perf_counter() - started:.1f}s", flush=True)
                invalidate: Callable[[], None] | None = None
                if engine == "sqlite":
                    commits = _SqliteCommits(str(make_url(database_url).database))
                    stack.callback(commits.close)
                    invalidate = commits
                conn = stack.enter_context(Connection("127.0.0.1", node.port))
                pages = [(where, PAGE, index) for where, index in
                         (("first", None), ("middle", size // 2), ("last", size - PAGE))]
                pages.append(("first", FULL_PAGE, None))
                for where, n, index in pages:
                    tag_last = None if index is None else f"tag-{index:07d}"
                    repo_last = None if index is None else f"seeded/repo-{index:07d}"
                    tags_ms = _page_both(conn, f"/v2/{name}/tags/list", tag_last, n, rounds,
                                         invalidate)
                    catalog_ms = _page_both(conn, "/v2/_catalog", repo_last, n, rounds,
                                            invalidate)
                    label = f"{where} page of {n}"
                    results[f"{engine} / {size} / {label}"] = {"tags_list_ms": tags_ms,
                                                                "catalog_ms": catalog_ms}
                    print(f"{engine:8} {size:>7} entries, {label:18}: tags/list "
                          f"{tags_ms['uncached']:6.2f} ms (repeat {tags_ms['repeat']:6.2f})  "
                          f"_catalog {catalog_ms['uncached']:6.2f} ms "
                          f"(repeat {catalog_ms['repeat']:6.2f})", flush=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--engines", default="postgres,sqlite",
                        help="metadata engines for the list pages: postgres, sqlite")
    parser.add_argument("--rounds", type=int, default=100,
                        help="fetches per page and mode; the median is reported")
    parser.add_argument("--only", choices=("throughput", "lists"))
    parser.add_argument("--json", type=Path, help="write the numbers here too")
    args = parser.parse_args()
    engines = [engine.strip() for engine in args.engines.split(",") if engine.strip()]
    if set(engines) - {"postgres", "sqlite"}:
        parser.error(f"--engines: unknown {sorted(set(engines) - {'postgres', 'sqlite'})}")
    workdir = Path(tempfile.mkdtemp(prefix="dockyard-scaleout-"))
    services = Services(workdir)
    results: dict[str, Any] = {}
    try:
        if args.only in (None, "throughput"):
            results["throughput"] = throughput(services, args.seconds, args.concurrency)
        if args.only in (None, "lists"):
            sizes = [int(size) for size in args.sizes.split(",")]
            results["lists"] = list_pages(services, engines, sizes, args.rounds)
    finally:
        services.close()
        shutil.rmtree(workdir, ignore_errors=True)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
