"""Online GC at scale: time and peak memory over many blobs and manifests, and what a GC run
costs the pulls served meanwhile.

    .venv/bin/python bench/gc_bench.py [--blobs 100000] [--manifests 10000] [--workdir DIR]

Seeds a filesystem + SQLite registry directly (rows and files, all older than the grace
period): `--manifests` image manifests over 100 repositories, half of them tagged, each
naming a unique config and two layers from a shared pool; the rest of `--blobs` is garbage.
Then it serves the data, measures pull latency (manifest by tag, then a blob) without GC and
while `dockyard gc --delete-untagged` runs in its own process, and reports that run's wall
time and peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
import yaml

from dockyard.metadata import migrate
from dockyard.metadata.engine import create_engines
from dockyard.metadata.schema import (
    blobs,
    manifest_references,
    manifests,
    repositories,
    repository_blobs,
    tags,
)

REPOSITORIES = 100
OLD = datetime.now(UTC) - timedelta(days=2)
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _blob(root: Path, data: bytes) -> tuple[str, int]:
    hex_digest = hashlib.sha256(data).hexdigest()
    directory = root / "blobs" / "sha256" / hex_digest[:2]
    directory.mkdir(parents=True, exist_ok=True)
    (directory / hex_digest).write_bytes(data)
    return f"sha256:{hex_digest}", len(data)


def _descriptor(media_type: str, digest: str, size: int) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": digest, "size": size}


async def seed(root: Path, blob_count: int, manifest_count: int) -> list[tuple[str, str]]:
    """Write the registry; returns (repository, tag) pairs of tagged images."""
    engines = create_engines(f"sqlite+aiosqlite:///{root / 'dockyard.db'}")
    await migrate.upgrade(engines.write)
    pool = [_blob(root, os.urandom(256) + b"layer %d" % i) for i in range(manifest_count * 2)]
    blob_rows = {digest: size for digest, size in pool}
    links: set[tuple[int, str]] = set()
    manifest_rows: list[dict[str, Any]] = []
    reference_rows: list[dict[str, Any]] = []
    tag_rows: list[dict[str, Any]] = []
    tagged: list[tuple[str, str]] = []
    for number in range(manifest_count):
        repository_id = number % REPOSITORIES + 1
        config = _blob(root, json.dumps({"n": number}).encode())
        blob_rows[config[0]] = config[1]
        layers = random.sample(pool, 2)
        body = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": _descriptor("application/vnd.oci.image.config.v1+json", *config),
            "layers": [_descriptor("application/vnd.oci.image.layer.v1.tar", *layer)
                       for layer in layers],
        }).encode()
        manifest_id = number + 1
        manifest_rows.append({
            "id": manifest_id, "repository_id": repository_id,
            "digest": f"sha256:{hashlib.sha256(body).hexdigest()}", "media_type": OCI_MANIFEST,
            "size": len(body), "content": body, "created_at": OLD,
        })
        for digest in {config[0], *(layer[0] for layer in layers)}:
            reference_rows.append({"manifest_id": manifest_id, "digest": digest, "kind": "blob"})
            links.add((repository_id, digest))
        if number % 2 == 0:
            tag_rows.append({"repository_id": repository_id, "name": f"v{number}",
                             "manifest_id": manifest_id, "updated_at": OLD})
            tagged.append((f"bench/r{repository_id}", f"v{number}"))
    garbage = blob_count - len(blob_rows)
    for number in range(max(garbage, 0)):
        digest, size = _blob(root, b"garbage %d" % number)
        blob_rows[digest] = size
        links.add((number % REPOSITORIES + 1, digest))
    async with engines.write.begin() as connection:
        await connection.execute(repositories.insert(), [
            {"id": i, "name": f"bench/r{i}", "created_at": OLD}
            for i in range(1, REPOSITORIES + 1)])
        await connection.execute(blobs.insert(), [
            {"digest": d, "size": s, "created_at": OLD, "state": "live"}
            for d, s in blob_rows.items()])
        await connection.execute(repository_blobs.insert(), [
            {"repository_id": r, "digest": d, "created_at": OLD} for r, d in links])
        await connection.execute(manifests.insert(), manifest_rows)
        await connection.execute(manifest_references.insert(), reference_rows)
        await connection.execute(tags.insert(), tag_rows)
    await engines.dispose()
    return tagged


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "n": len(ordered),
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p99_ms": round(ordered[int(len(ordered) * 0.99) - 1] * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
    }


def _pull_loop(url: str, images: list[tuple[str, str]], stop: threading.Event,
               samples: list[float], limit: int | None = None) -> None:
    session = requests.Session()
    accept = {"Accept": OCI_MANIFEST}
    while not stop.is_set() and (limit is None or len(samples) < limit):
        name, tag = random.choice(images)
        started = time.perf_counter()
        response = session.get(f"{url}/v2/{name}/manifests/{tag}", headers=accept, timeout=30)
        assert response.status_code == 200, response.text
        layer = response.json()["layers"][0]["digest"]
        blob = session.get(f"{url}/v2/{name}/blobs/{layer}", timeout=30)
        assert blob.status_code == 200, blob.status_code
        samples.append(time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blobs", type=int, default=100_000)
    parser.add_argument("--manifests", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="dockyard-gc-bench-"))
    root = workdir / "data"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    started = time.monotonic()
    images = asyncio.run(seed(root, args.blobs, args.manifests))
    seeded = time.monotonic() - started
    port = 20000 + random.randrange(20000)
    config = {
        "version": 0.1, "log": {"level": "info", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(root)},
                    "maintenance": {"gc": {"enabled": False}}},
        "http": {"addr": f"127.0.0.1:{port}"},
    }
    config_path = workdir / "config.yml"
    config_path.write_text(yaml.safe_dump(config))
    url = f"http://127.0.0.1:{port}"
    dockyard = [sys.executable, "-m", "dockyard"]
    server = subprocess.Popen([*dockyard, "serve", "--config", str(config_path),
                               "--workers", str(args.workers)], start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(url + "/v2/", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.1)
        baseline: list[float] = []
        _pull_loop(url, images, threading.Event(), baseline, limit=2000)

        during: list[float] = []
        stop = threading.Event()
        puller = threading.Thread(target=_pull_loop, args=(url, images, stop, during))
        puller.start()
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        gc_started = time.monotonic()
        done = subprocess.run([*dockyard, "gc", "--delete-untagged", "--config",
                               str(config_path)], capture_output=True, text=True, check=True)
        gc_seconds = time.monotonic() - gc_started
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        stop.set()
        puller.join()
    finally:
        os.killpg(server.pid, 15)
        server.wait()
    print(json.dumps({
        "blobs": args.blobs, "manifests": args.manifests, "seed_seconds": round(seeded, 1),
        "gc_seconds": round(gc_seconds, 2),
        "gc_peak_rss_mib": round(peak_kib / 1024, 1) if peak_kib > before else None,
        "gc_summary": done.stdout.strip().splitlines()[0],
        "pull_without_gc": _percentiles(baseline),
        "pull_during_gc": _percentiles(during),
    }, indent=2))
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
