"""Servers with the debug listener on, and helpers to read what operators would read.

These tests are about operating one server, not about storage backends, so they run on the
default filesystem + SQLite setup (PostgreSQL only where a database has to go away).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.server import RunningRegistry, deep_merge, free_port, running_registry

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


class ObservedRegistry(RunningRegistry):
    """A RunningRegistry with a debug address of its own."""

    debug_url: str


@pytest.fixture
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., ObservedRegistry]]:
    """Start a server with metrics on a debug address; stopped when the test ends."""
    with ExitStack() as stack:

        def start(config: dict[str, Any] | None = None, workers: int = 1,
                  env: dict[str, str] | None = None) -> ObservedRegistry:
            debug_port = free_port()
            base = {"http": {"debug": {"addr": f"127.0.0.1:{debug_port}",
                                       "prometheus": {"enabled": True}}}}
            workdir: Path = tmp_path_factory.mktemp("observed")
            server = stack.enter_context(
                running_registry(workdir, deep_merge(base, config or {}), workers, env))
            observed: ObservedRegistry = server  # type: ignore[assignment]
            observed.debug_url = f"http://127.0.0.1:{debug_port}"
            return observed

        yield start


def scrape(server: ObservedRegistry, path: str = "/metrics") -> Samples:
    """Every sample, keyed by name and labels, parsed by prometheus-client's own parser."""
    response = requests.get(server.debug_url + path, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain")
    return parse(response.text)


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum over samples of `name` whose labels include `labels` (0 when none)."""
    wanted = set(labels.items())
    return sum(v for (n, found), v in samples.items() if n == name and wanted <= found)


def wait_for(condition: Callable[[], Any], timeout: float = 10.0, interval: float = 0.1,
             message: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        time.sleep(interval)


def json_lines(server: RunningRegistry) -> list[dict[str, Any]]:
    """The server's log as JSON documents; every line must be one."""
    documents = []
    for line in server.log_text().splitlines():
        if line.strip():
            documents.append(json.loads(line))
    return documents
