"""Every blob store driver, for the contract suite; a new driver is one more parameter here.

Each test gets storage of its own; `nodes()` made from it are stores on that same storage, as
the nodes of one registry are (an upload begun on one may continue on another).
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from dockyard.storage.base import BlobStore
from dockyard.storage.filesystem.driver import FilesystemBlobStore
from dockyard.storage.s3.driver import S3BlobStore
from tests.backends import Services
from tests.blobs import s3_options
from tests.nodes import run_on_nodes

Nodes = Callable[[], BlobStore]
Run = Callable[[Callable[[Nodes], Awaitable[None]]], None]


def _filesystem(request: pytest.FixtureRequest) -> Nodes:
    root: Path = request.getfixturevalue("tmp_path")
    return lambda: FilesystemBlobStore(root)


def _s3(request: pytest.FixtureRequest) -> Nodes:
    """On moto's S3 server (over HTTP), started once for the session; a prefix per test."""
    services: Services = request.getfixturevalue("services")
    options = s3_options(services, f"contract-{secrets.token_hex(4)}")
    return lambda: S3BlobStore(options)


@pytest.fixture(params=[pytest.param(_filesystem, id="filesystem"), pytest.param(_s3, id="s3")])
def run(request: pytest.FixtureRequest) -> Run:
    """Run a scenario on the driver; it is given the factory of nodes."""
    nodes: Nodes = request.param(request)
    return functools.partial(run_on_nodes, nodes)
