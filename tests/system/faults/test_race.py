"""GC racing pushes, tag moves and deletes on a real server: nothing referenced is ever lost.

Clients push images sharing layers, multi-arch indexes and referrers, move and delete tags
and delete manifests, while the server's scheduled GC (two workers) and a second collector in
this process (another "node") run in a loop with delete-untagged and a tiny grace period.
A client may see MANIFEST_BLOB_UNKNOWN / MANIFEST_UNKNOWN when GC wins a race, and pushes
again, as real clients do; it must never see a 5xx. Afterwards every tagged image pulls back
byte-identical, and no unreferenced blob older than the grace period remains.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from dockyard.app.web import build_registry
from dockyard.config import load_config
from dockyard.registry.gc import GCOptions
from tests.server import RunningRegistry
from tests.system.api.client import (
    Client,
    Manifest,
    ServerError,
    artifact_manifest,
    describe,
    digest_of,
    error_codes,
    image_manifest,
    index_manifest,
    random_bytes,
    repo_name,
)

LOAD_SECONDS = 8.0
GRACE = {"fs": 0.5, "s3": 2.0}
"""The server's grace period. The collector in this process uses none on the filesystem; over
S3 (moto) an upload takes long enough that it would win nearly every race, so it gets 2s."""
MIN_OPERATIONS = {"fs": 15, "s3": 4}
"""Enough to have raced; a push through moto takes about half a second here."""
SHARED_LAYERS = [random_bytes(4096 + i) for i in range(4)]
RETRYABLE = {"MANIFEST_BLOB_UNKNOWN", "MANIFEST_UNKNOWN", "BLOB_UPLOAD_INVALID",
             "BLOB_UPLOAD_UNKNOWN", "BLOB_UNKNOWN"}


@dataclass
class Pusher:
    """One client thread owning one repository, so its expected state is exact."""

    client: Client
    name: str = field(default_factory=repo_name)
    tags: dict[str, Manifest] = field(default_factory=dict)
    referrers: dict[str, list[Manifest]] = field(default_factory=dict)
    retries: int = 0
    operations: int = 0

    def push(self, manifest: Manifest, reference: str | None) -> bool:
        for _ in range(8):
            try:
                self.client.push_contents(self.name, manifest)
            except ServerError:
                raise
            except AssertionError:
                self.retries += 1  # GC won a race with a child or an upload: push it again
                continue
            response = self.client.put_manifest(self.name, reference or manifest.digest,
                                                manifest)
            if response.status_code == 201:
                return True
            assert set(error_codes(response)) & RETRYABLE, describe(response)
            self.retries += 1
        return False

    def image(self) -> Manifest:
        layers = [*random.sample(SHARED_LAYERS, 2), random_bytes(512)]
        return image_manifest(layers)

    def step(self) -> None:
        self.operations += 1
        choice = random.random()
        tag = f"t{random.randrange(4)}"
        if choice < 0.4:
            image = self.image()
            if self.push(image, tag):
                self.tags[tag] = image
        elif choice < 0.55:
            index = index_manifest([self.image(), self.image()])
            if self.push(index, tag):
                self.tags[tag] = index
        elif choice < 0.7 and self.tags:
            subject = random.choice(list(self.tags.values()))
            signature = artifact_manifest("application/vnd.test.signature", subject=subject,
                                          layers=[random_bytes(64)])
            if self.push(signature, None):
                self.referrers.setdefault(subject.digest, []).append(signature)
        elif choice < 0.85 and self.tags:
            victim = random.choice(list(self.tags))
            response = self.client.delete(f"/v2/{self.name}/manifests/{victim}")
            assert response.status_code == 202, describe(response)
            del self.tags[victim]
        elif self.tags:
            victim_manifest = random.choice(list(self.tags.values()))
            response = self.client.delete(
                f"/v2/{self.name}/manifests/{victim_manifest.digest}")
            assert response.status_code == 202, describe(response)
            self.tags = {t: m for t, m in self.tags.items() if m.digest != victim_manifest.digest}

    def verify(self) -> None:
        for tag, manifest in self.tags.items():
            response = self.client.get(f"/v2/{self.name}/manifests/{tag}",
                                       headers={"Accept": manifest.media_type})
            assert response.status_code == 200, describe(response)
            assert response.content == manifest.body
            self.verify_content(manifest)
            for signature in self.referrers.get(manifest.digest, []):
                listed = self.client.get(f"/v2/{self.name}/referrers/{manifest.digest}").json()
                assert signature.digest in {d["digest"] for d in listed["manifests"]}
                self.verify_content(signature)

    def verify_content(self, manifest: Manifest) -> None:
        for blob in manifest.blobs:
            response = self.client.get(f"/v2/{self.name}/blobs/{digest_of(blob)}")
            assert response.status_code == 200, describe(response)
            assert response.content == blob
        for child in manifest.children:
            response = self.client.get(f"/v2/{self.name}/manifests/{child.digest}")
            assert response.content == child.body, describe(response)
            self.verify_content(child)


def _collector_loop(server: RunningRegistry, grace: float, stop: threading.Event,
                    runs: list[int]) -> None:
    """A second collector, as another node would run it."""

    async def main() -> None:
        registry = build_registry(load_config(server.config_path))
        try:
            while not stop.is_set():
                await registry.collector.run(GCOptions(grace_period=grace, delete_untagged=True))
                runs.append(1)
                await asyncio.sleep(0.1)
        finally:
            await registry.close()

    asyncio.run(main())


def _garbage(server: RunningRegistry, grace: float) -> tuple[int, int]:
    """(unreferenced blobs older than the grace period, blobs GC left half-deleted)."""

    async def main() -> tuple[int, int]:
        registry = build_registry(load_config(server.config_path))
        try:
            cutoff = datetime.now(UTC) - timedelta(seconds=grace)
            garbage = await registry.maintenance.gc.garbage_blobs(cutoff, None, 1000)
            pending = await registry.maintenance.gc.pending_deletions(1000)
            return len(garbage), len(pending)
        finally:
            await registry.close()

    return asyncio.run(main())


def _check(server: RunningRegistry) -> list[str]:
    async def main() -> list[str]:
        registry = build_registry(load_config(server.config_path))
        try:
            report = await registry.checker.run()
            return [f"{p.kind} {p.digest} {p.detail}" for p in report.problems]
        finally:
            await registry.close()

    return asyncio.run(main())


def wait_until(check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_gc_racing_pushes_tag_moves_and_deletes_loses_nothing(
        start_registry: Callable[..., RunningRegistry], backend: str) -> None:
    grace = GRACE[backend]
    server = start_registry({"storage": {"maintenance": {"gc": {
        "interval": "1s", "graceperiod": f"{grace}s", "deleteuntagged": True}}}}, workers=2)
    pushers = [Pusher(Client(server.url)) for _ in range(3)]
    stop = threading.Event()
    runs: list[int] = []
    failures: list[BaseException] = []

    def drive(pusher: Pusher) -> None:
        try:
            while not stop.is_set():
                pusher.step()
        except BaseException as exc:
            failures.append(exc)
            stop.set()

    threads = [threading.Thread(target=drive, args=(p,)) for p in pushers]
    collector_grace = 0.0 if backend == "fs" else grace
    threads.append(threading.Thread(target=_collector_loop,
                                    args=(server, collector_grace, stop, runs)))
    for thread in threads:
        thread.start()
    time.sleep(LOAD_SECONDS)
    stop.set()
    for thread in threads:
        thread.join(60)
    if failures:
        raise failures[0]
    assert len(runs) >= 3, "the collector loop hardly ran"
    assert sum(p.operations for p in pushers) >= MIN_OPERATIONS[backend]

    for pusher in pushers:
        pusher.verify()
    # the server's own scheduled GC clears what the last operations left behind
    wait_until(lambda: _garbage(server, grace) == (0, 0), timeout=20)
    assert _check(server) == []
    for pusher in pushers:
        pusher.verify()
        pusher.client.close()
