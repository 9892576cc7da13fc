"""The pieces in one process: the instrumented ports, the cache counter, reload hooks."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from dockyard.app import reload
from dockyard.app.observability import observed_gc, observed_purge
from dockyard.cache.base import Cache, Lookup
from dockyard.config import Config, load_config
from dockyard.metadata import migrate
from dockyard.metadata.engine import create_engines
from dockyard.metadata.interfaces import MetadataStore
from dockyard.metadata.records import ManifestWrite
from dockyard.metadata.store import SQLMetadataStore
from dockyard.observability.instrument import (
    CountingCache,
    InstrumentedBlobStore,
    InstrumentedMetadataStore,
)
from dockyard.oci.digest import Digest
from dockyard.registry.gc import GCReport
from dockyard.registry.purge import PurgeReport
from dockyard.storage.base import UploadMissing
from dockyard.storage.filesystem.driver import FilesystemBlobStore


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


def test_store_calls_are_timed_and_counted(tmp_path: Path) -> None:
    store = InstrumentedBlobStore(FilesystemBlobStore(tmp_path), "unit")
    count = "dockyard_storage_operation_duration_seconds_count"
    operations = ("stat", "read", "create_upload", "append_upload", "commit_upload",
                  "local_path")
    before = {op: sample(count, driver="unit", operation=op) for op in operations}
    errors = sample("dockyard_storage_operation_errors_total", driver="unit",
                    operation="upload_size")
    data = b"ab"
    digest = Digest.parse("sha256:" + hashlib.sha256(data).hexdigest())

    async def use() -> list[bytes]:
        assert await store.stat(digest) is None
        await store.create_upload("u")
        assert await store.append_upload("u", 0, _chunks(data)) == 2
        await store.commit_upload("u", digest)
        assert await store.stat(digest) == 2
        with pytest.raises(UploadMissing):
            await store.upload_size("u")
        return [chunk async for chunk in store.read(digest)]

    assert b"".join(asyncio.run(use())) == data
    after = {op: sample(count, driver="unit", operation=op) for op in operations}
    assert {op: after[op] - before[op] for op in operations} == {
        "stat": 2, "read": 1, "create_upload": 1, "append_upload": 1, "commit_upload": 1,
        "local_path": 0}
    assert sample("dockyard_storage_operation_errors_total", driver="unit",
                  operation="upload_size") == errors + 1
    assert store.local_path(digest) == FilesystemBlobStore(tmp_path).local_path(digest)
    assert sample(count, driver="unit", operation="local_path") == 0, "no I/O: not timed"


def test_every_metadata_call_is_timed_by_its_method(tmp_path: Path) -> None:
    count = "dockyard_database_operation_duration_seconds_count"
    layer = "sha256:" + "1" * 64
    write = ManifestWrite("sha256:" + "a" * 64, "application/json", b"{}", None, None, None,
                          blob_digests=(layer,), tags=("v1",))

    async def use(metadata: MetadataStore) -> None:
        await metadata.create_upload("u", "r")
        await metadata.get_upload("u")
        await metadata.touch_upload("u")
        await metadata.complete_upload("u", "r", layer, 1)
        assert not await metadata.delete_upload("gone")
        await metadata.linked_blob_size("r", layer)
        await metadata.mount_blob("s", layer, "r")
        await metadata.unlink_blob("s", layer)
        await metadata.put_manifest("r", write)
        await metadata.get_manifest("r", write.digest)
        await metadata.resolve_tag("r", "v1")
        await metadata.list_tags("r", None, 10)
        await metadata.list_referrers("r", write.digest, None, None, 10)
        await metadata.repository_exists("r")
        await metadata.list_repositories(None, 10)
        await metadata.delete_tag("r", "v1")
        await metadata.delete_manifest("r", write.digest)

    async def main() -> None:
        engines = create_engines(f"sqlite+aiosqlite:///{tmp_path / 'meta.db'}")
        await migrate.upgrade(engines.write)
        metadata = InstrumentedMetadataStore(SQLMetadataStore(engines))
        try:
            await use(metadata)
        finally:
            await metadata.close()

    operations = [name for name in vars(MetadataStore)
                  if not name.startswith("_") and name not in ("maintenance", "close")]
    before = {op: sample(count, operation=op) for op in operations}
    asyncio.run(main())
    assert {op: sample(count, operation=op) - before[op] for op in operations} == dict.fromkeys(
        operations, 1.0)


class DictCache(Cache):
    def __init__(self) -> None:
        self.entries: dict[str, bytes] = {}

    async def get(self, scope: str, key: str) -> Lookup:
        return Lookup("g", self.entries.get(key))

    async def fill(self, scope: str, generation: str, key: str, value: bytes) -> None:
        self.entries[key] = value

    async def invalidate(self, scope: str) -> None:
        self.entries.clear()

    async def invalidate_all(self) -> None:
        self.entries.clear()


def test_cache_hits_and_misses() -> None:
    cache = CountingCache(DictCache(), "unit")

    async def use() -> None:
        await cache.get("s", "k")
        await cache.fill("s", "g", "k", b"v")
        await cache.get("s", "k")
        await cache.get("s", "k")

    hits = sample("dockyard_cache_requests_total", cache="unit", result="hit")
    misses = sample("dockyard_cache_requests_total", cache="unit", result="miss")
    asyncio.run(use())
    assert sample("dockyard_cache_requests_total", cache="unit", result="hit") == hits + 2
    assert sample("dockyard_cache_requests_total", cache="unit", result="miss") == misses + 1


def test_gc_and_purge_runs_are_counted() -> None:
    async def gc() -> GCReport:
        return GCReport(manifests_removed=2, blobs_removed=5)

    async def failing_purge() -> PurgeReport:
        raise RuntimeError("database away")

    runs = sample("dockyard_gc_runs_total", result="ok")
    blobs = sample("dockyard_gc_deleted_total", kind="blobs")
    purge_errors = sample("dockyard_upload_purge_runs_total", result="error")
    asyncio.run(observed_gc(gc)())
    with pytest.raises(RuntimeError):
        asyncio.run(observed_purge(failing_purge)())
    assert sample("dockyard_gc_runs_total", result="ok") == runs + 1
    assert sample("dockyard_gc_deleted_total", kind="blobs") == blobs + 5
    assert sample("dockyard_upload_purge_runs_total", result="error") == purge_errors + 1


@pytest.fixture
def hooks() -> Iterator[None]:
    reload.clear()
    yield
    reload.clear()


def test_reload_applies_hooks_and_names_the_rest(
        tmp_path: Path, hooks: None, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "config.yml"
    path.write_text("version: 0.1\nlog: {level: info}\n")
    seen: list[str] = []

    def level_hook(config: Config) -> None:
        seen.append(config.log.level)

    async def async_hook(config: Config) -> None:
        seen.append("async")

    reload.register(("log.level",), level_hook)
    reload.register((), async_hook)
    reloader = reload.Reloader(path, load_config(path))
    path.write_text("version: 0.1\nlog: {level: debug}\nhttp: {relativeurls: true}\n")
    with caplog.at_level(logging.INFO, "dockyard.app.reload"):
        asyncio.run(reloader.reload())
    assert seen == ["debug", "async"]
    assert "need a restart: http.relativeurls" in caplog.text

    path.write_text("version: 0.1\nlog: {level: loud}\n")
    seen.clear()
    with caplog.at_level(logging.INFO, "dockyard.app.reload"):
        asyncio.run(reloader.reload())
    assert seen == ["debug", "async"]  # the settings in force, re-applied
    assert reloader.config.log.level == "debug"
    assert "configuration not applied" in caplog.text
    assert caplog.text.rstrip().endswith(
        "reload: done; the file was rejected, the configuration in force stays "
        "(files it names were re-read)")


def test_changed_settings() -> None:
    old = load_config(None, environ={})
    new = load_config(None, environ={"REGISTRY_LOG_LEVEL": "debug",
                                     "REGISTRY_HTTP_DEBUG_ADDR": "127.0.0.1:5001"})
    assert reload.changed_settings(old, new) == ["http.debug.addr", "log.level"]


def test_fast_paths_match_prometheus_client() -> None:
    from prometheus_client import CollectorRegistry, Counter, Histogram

    from dockyard.observability.metrics import LATENCY_BUCKETS, fast_inc, fast_observe

    registry = CollectorRegistry()
    slow = Histogram("slow", "", buckets=LATENCY_BUCKETS, registry=registry)
    fast = Histogram("fast", "", buckets=LATENCY_BUCKETS, registry=registry)
    observe = fast_observe(fast)
    for amount in (0.0, 0.0005, 0.0007, 1.0, 2.4999, 300.0, 301.0, float("inf"), -1.0):
        slow.observe(amount)
        observe(amount)
    for suffix in ("_count", "_sum"):
        assert registry.get_sample_value("fast" + suffix) == registry.get_sample_value(
            "slow" + suffix)
    for bound in [*LATENCY_BUCKETS, float("inf")]:
        le = {"le": str(float(bound)) if bound != float("inf") else "+Inf"}
        assert registry.get_sample_value("fast_bucket", le) == registry.get_sample_value(
            "slow_bucket", le), bound
    counter = Counter("requests", "", registry=registry)
    inc = fast_inc(counter)
    inc(1)
    inc(2)
    assert registry.get_sample_value("requests_total") == 3


def test_http_and_tcp_checks() -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from typing import Any

    from dockyard.observability.health import http_check, tcp_check
    from tests.server import free_port

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            ok = self.path == "/ok" and self.headers.get("Authorization") == "Basic eA=="
            self.send_response(200 if ok else 500)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    auth = {"Authorization": ["Basic eA=="]}

    async def run() -> None:
        await http_check(base + "/ok", auth, 200, 2)()
        with pytest.raises(Exception, match="unexpected status: 500"):
            await http_check(base + "/broken", auth, 200, 2)()
        await tcp_check("127.0.0.1", int(server.server_address[1]), 2)()
        with pytest.raises(OSError):
            await tcp_check("127.0.0.1", free_port(), 2)()

    try:
        asyncio.run(run())
    finally:
        server.shutdown()
