"""kill -9 of the server in the middle of a GC run, then a restart: nothing referenced is
lost, and the next run (taking over the dead holder's lease) finishes the job."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, update

from dockyard.metadata.schema import blobs, manifests, repository_blobs
from tests.server import RunningRegistry
from tests.system.api.client import Client, Manifest, digest_of, image_manifest, random_bytes
from tests.unit.registry.kit import open_kit

GARBAGE = 20_000
OLD = datetime.now(UTC) - timedelta(days=2)


def _seed(root: Path, images: list[Manifest]) -> None:
    """Referenced images pushed the normal way, then many unreferenced blobs, all of it old."""

    async def main() -> None:
        kit = await open_kit(root)
        try:
            for number, image in enumerate(images):
                await kit.push("keep/app", image, f"v{number}")
            rows = []
            for number in range(GARBAGE):
                data = b"garbage %d" % number
                hex_digest = hashlib.sha256(data).hexdigest()
                directory = root / "blobs" / "sha256" / hex_digest[:2]
                directory.mkdir(parents=True, exist_ok=True)
                (directory / hex_digest).write_bytes(data)
                rows.append({"digest": f"sha256:{hex_digest}", "size": len(data),
                             "created_at": OLD, "state": "live"})
            engines = kit.engines
            async with engines.begin_write() as connection:
                await connection.execute(insert(blobs), rows)
                await connection.execute(update(blobs).values(created_at=OLD))
                await connection.execute(update(repository_blobs).values(created_at=OLD))
                await connection.execute(update(manifests).values(created_at=OLD))
        finally:
            await kit.registry.close()

    asyncio.run(main())


def _counts(database: Path) -> tuple[int, int]:
    """(blob rows, rows marked deleting)."""
    with sqlite3.connect(database, timeout=30) as connection:
        total = connection.execute("SELECT count(*) FROM blobs").fetchone()[0]
        deleting = connection.execute(
            "SELECT count(*) FROM blobs WHERE state = 'deleting'").fetchone()[0]
    return int(total), int(deleting)


def _verify(client: Client, images: list[Manifest]) -> None:
    for number, image in enumerate(images):
        response = client.get(f"/v2/keep/app/manifests/v{number}")
        assert response.content == image.body
        for blob in image.blobs:
            assert client.get(f"/v2/keep/app/blobs/{digest_of(blob)}").content == blob


def test_kill_9_during_gc_loses_nothing_and_gc_resumes(tmp_path: Path) -> None:
    """Filesystem + SQLite only: the test seeds both directly, below the API."""
    server = RunningRegistry(tmp_path, {"storage": {"maintenance": {"gc": {
        "interval": "1h", "graceperiod": "1h"}}}})
    images = [image_manifest([random_bytes(1000 + i), random_bytes(2000)]) for i in range(5)]
    _seed(server.root, images)
    database = server.root / "dockyard.db"
    referenced = len({digest_of(b) for image in images for b in image.blobs})
    assert _counts(database) == (GARBAGE + referenced, 0)

    server.start()
    try:
        deadline = time.monotonic() + 60
        while _counts(database)[0] == GARBAGE + referenced:  # wait for the run to begin
            assert time.monotonic() < deadline, server.log_text()
            time.sleep(0.005)
        assert server.process is not None
        os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait()
        server.process = None
        left, marked = _counts(database)
        assert referenced < left < GARBAGE + referenced, "GC finished before the kill"

        server.start()
        client = Client(server.url)
        _verify(client, images)
        deadline = time.monotonic() + 60
        while _counts(database) != (referenced, 0):
            assert time.monotonic() < deadline, (_counts(database), server.log_text())
            time.sleep(0.2)
        _verify(client, images)
        files = sum(len(names) for _, _, names in os.walk(server.root / "blobs"))
        assert files == referenced
        assert "gc: removed" in server.log_text()
        print(f"killed with {left} blobs left ({marked} marked); resumed and finished")
        client.close()
    finally:
        server.stop()
