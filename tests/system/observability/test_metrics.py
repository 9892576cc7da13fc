"""Scraping /metrics on the debug address, as Prometheus would."""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from tests.system.api.client import Client, random_bytes, repo_name
from tests.system.observability.conftest import ObservedRegistry, parse, scrape, value, wait_for

ENDPOINT_KINDS = {"base", "catalog", "manifests", "blobs", "uploads", "tags", "referrers",
                  "health", "other"}


def _workers(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) != pid:
            continue
        if b"dockyard.server.worker" in (entry / "cmdline").read_bytes():
            found.append(int(entry.name))
    return found


def _metrics_dir(pid: int) -> Path:
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    for item in environ:
        if item.startswith(b"PROMETHEUS_MULTIPROC_DIR="):
            return Path(item.split(b"=", 1)[1].decode())
    raise AssertionError(f"worker {pid} has no PROMETHEUS_MULTIPROC_DIR")


def _requests_served_by(directory: Path, pid: int, scratch: Path) -> float:
    """One worker's own count, read from its file alone."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    alone = scratch / str(pid)
    alone.mkdir(parents=True)
    shutil.copy(directory / f"counter_{pid}.db", alone)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(alone))
    samples = parse(generate_latest(registry).decode())
    return value(samples, "dockyard_http_requests_total", endpoint="base")


def test_counters_sum_requests_from_all_workers(
        serve: Callable[..., ObservedRegistry], tmp_path: Path) -> None:
    server = serve(workers=2)
    assert server.process is not None
    pid = server.process.pid
    workers = wait_for(lambda: len(_workers(pid)) == 2 and _workers(pid), message="two workers")
    # Until both workers listen, the kernel sends every connection to the first.
    wait_for(lambda: all(_metrics_dir(pid).exists() for pid in workers), message="metric dirs")
    directory = _metrics_dir(workers[0])

    def both_serving() -> bool:
        for _ in range(20):
            requests.get(server.url + "/v2/", timeout=5)  # a new connection each time
        return all((directory / f"counter_{pid}.db").exists()
                   and _requests_served_by(directory, pid, tmp_path / os.urandom(4).hex()) > 0
                   for pid in workers)

    wait_for(both_serving, timeout=15, message="both workers to serve")

    before = value(scrape(server), "dockyard_http_requests_total", endpoint="base", code="200")
    sent = 120
    for _ in range(sent):
        assert requests.get(server.url + "/v2/", timeout=5).status_code == 200
    samples = scrape(server)
    after = value(samples, "dockyard_http_requests_total", endpoint="base", code="200")
    assert after - before == sent
    per_worker = [_requests_served_by(directory, pid, tmp_path / f"w{pid}") for pid in workers]
    assert sum(per_worker) == after and all(count > 0 for count in per_worker)
    assert value(samples, "dockyard_http_request_duration_seconds_count",
                 endpoint="base", method="GET") == after
    assert value(samples, "dockyard_build_info") == 1


def test_push_and_pull_show_in_every_family(serve: Callable[..., ObservedRegistry]) -> None:
    server = serve()
    client = Client(server.url)
    name = repo_name()
    layer = random_bytes(300_000)
    manifest = client.push_image(name, "v1")
    client.push_blob(name, layer)
    assert client.get(f"/v2/{name}/manifests/v1").status_code == 200
    assert client.get(f"/v2/{name}/blobs/{manifest.document['config']['digest']}"
                      ).status_code == 200
    client.get(f"/v2/{name}/manifests/missing")
    samples = scrape(server)

    requests_total = "dockyard_http_requests_total"
    assert value(samples, requests_total, endpoint="manifests", method="PUT", code="201") == 1
    assert value(samples, requests_total, endpoint="manifests", method="GET", code="200") == 1
    assert value(samples, requests_total, endpoint="manifests", method="GET", code="404") == 1
    assert value(samples, requests_total, endpoint="uploads", method="PUT", code="201") >= 3
    assert value(samples, requests_total, endpoint="blobs", method="GET", code="200") == 1
    assert value(samples, "dockyard_http_received_bytes_total", endpoint="uploads") >= len(layer)
    assert value(samples, "dockyard_http_sent_bytes_total", endpoint="manifests") >= manifest.size
    assert value(samples, "dockyard_uploads_in_progress") == 0
    storage = "dockyard_storage_operation_duration_seconds_count"
    # Each blob is pushed whole: written, checked and committed in one call.
    assert value(samples, storage, driver="filesystem", operation="append_and_commit") >= 3
    database = "dockyard_database_operation_duration_seconds_count"
    assert value(samples, database, operation="resolve_tag") >= 2
    assert value(samples, "dockyard_storage_operation_errors_total") == 0

    # Never a raw path as a label value: the series stay few whatever clients ask for.
    endpoints = {dict(labels).get("endpoint") for (_, labels) in samples} - {None}
    assert endpoints <= ENDPOINT_KINDS, endpoints
    names = {sample_name for (sample_name, _) in samples}
    ours = {n for n in names if n.startswith("dockyard_")}
    assert ours and all(n.islower() for n in ours)
    client.close()


def test_metrics_off_without_prometheus(serve: Callable[..., ObservedRegistry]) -> None:
    server = serve({"http": {"debug": {"prometheus": {"enabled": False}}}})
    assert requests.get(server.debug_url + "/metrics", timeout=5).status_code == 404
    assert requests.get(server.debug_url + "/debug/health", timeout=5).status_code == 200


@pytest.mark.parametrize("method", ["PATCH", "PUT"])  # a chunk; a whole blob, committed
def test_uploads_in_progress(serve: Callable[..., ObservedRegistry], method: str) -> None:
    server = serve()
    client = Client(server.url)
    location = client.upload_url(repo_name())
    if method == "PUT":
        digest = "sha256:" + hashlib.sha256(b"x" * 65536 * 30).hexdigest()
        location += ("&" if "?" in location else "?") + f"digest={digest}"
    started = threading.Event()

    def slow_body() -> Iterator[bytes]:
        for number in range(30):
            if number == 2:
                started.set()
            yield b"x" * 65536
            time.sleep(0.05)

    answers: list[int] = []
    uploading = threading.Thread(target=lambda: answers.append(requests.request(
        method, location, data=slow_body(), timeout=30,
        headers={"Content-Type": "application/octet-stream"}).status_code))
    uploading.start()
    assert started.wait(10)
    wait_for(lambda: value(scrape(server), "dockyard_uploads_in_progress") == 1,
             message="the upload to show")
    uploading.join(30)
    assert answers == [202 if method == "PATCH" else 201]
    assert value(scrape(server), "dockyard_uploads_in_progress") == 0
    client.close()
