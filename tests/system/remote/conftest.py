"""Upstreams for the remote client: the Go reference registry (Basic, and open) and a
Dockyard in bearer mode, one of each per module; and a way to run a client scenario."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest

from dockyard.remote import RegistryClient
from tests.authkit import auth_config, write_htpasswd
from tests.server import RunningRegistry, running_registry
from tests.upstreams import ReferenceRegistry, reference_registry

USER = "alice"
PASSWORD = "alice-upstream-secret"
CREDENTIALS = (USER, PASSWORD)
OUTSIDER = ("bob", "bob-upstream-secret")
"""Known to the bearer Dockyard, but granted nothing."""
ACCESS = {"rules": [
    {"repositories": ["team/**", "public/**"], "users": [USER], "actions": ["*"]},
    {"repositories": ["public/**"], "anonymouspull": True},
]}

T = TypeVar("T")


def with_client(url: str, scenario: Callable[[RegistryClient], Awaitable[T]],
                **options: Any) -> T:
    """Run `scenario` with a fresh client for `url` (closed after it) in a new event loop."""

    async def main() -> T:
        client = RegistryClient(url, **options)
        try:
            return await scenario(client)
        finally:
            await client.close()

    return asyncio.run(main())


@pytest.fixture(scope="module")
def basic_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReferenceRegistry]:
    """The reference registry behind htpasswd Basic auth."""
    with reference_registry(tmp_path_factory.mktemp("reference-basic"),
                            users=dict([CREDENTIALS])) as upstream:
        yield upstream


@pytest.fixture(scope="module")
def open_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReferenceRegistry]:
    """The reference registry without auth."""
    with reference_registry(tmp_path_factory.mktemp("reference-open")) as upstream:
        yield upstream


@pytest.fixture(scope="module")
def bearer_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    """A Dockyard with its built-in token service; public/ may be pulled anonymously."""
    workdir = tmp_path_factory.mktemp("dockyard-bearer")
    htpasswd = write_htpasswd(workdir / "htpasswd", dict([CREDENTIALS, OUTSIDER]))
    config: dict[str, Any] = auth_config(htpasswd, mode="bearer", access=ACCESS)
    with running_registry(workdir, config) as server:
        yield server
