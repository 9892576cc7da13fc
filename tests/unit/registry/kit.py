"""A registry in-process on a real database and filesystem."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from dockyard.metadata import migrate
from dockyard.metadata.engine import Engines, create_engines
from dockyard.metadata.store import SQLMetadataStore
from dockyard.oci.digest import Digest
from dockyard.registry.gc import GCOptions, GCReport
from dockyard.registry.registry import Registry, RegistryOptions
from dockyard.registry.uploads import Chunk
from dockyard.storage.filesystem.driver import FilesystemBlobStore
from tests.system.api.client import Manifest, digest_of

T = TypeVar("T")


@dataclass
class Kit:
    registry: Registry
    root: Path
    engines: Engines
    """The registry's database, for tests that set rows up or lock them directly."""

    async def push_blob(self, repository: str, data: bytes) -> str:
        digest = Digest.parse(digest_of(data))
        await self.registry.uploads.upload_whole(repository, digest, chunk(data))
        return str(digest)

    async def push(self, repository: str, manifest: Manifest, tag: str | None = None) -> str:
        """Push a manifest's blobs (or children, by digest) and then the manifest."""
        for blob in dict.fromkeys(manifest.blobs):
            await self.push_blob(repository, blob)
        for child in manifest.children:
            await self.push(repository, child)
        await self.put(repository, manifest, tag)
        return manifest.digest

    async def put(self, repository: str, manifest: Manifest, tag: str | None = None) -> None:
        await self.registry.manifests.put(repository, tag or manifest.digest,
                                          chunks(manifest.body), manifest.media_type, [])

    async def gc(self, grace: float = 0.0, **options: Any) -> GCReport:
        return await self.registry.collector.run(GCOptions(grace_period=grace, **options))

    def blob_files(self) -> dict[str, int]:
        """digest -> size of every blob file on disk."""
        found: dict[str, int] = {}
        base = self.root / "blobs"
        for algorithm in os.listdir(base):
            for dirpath, _dirs, files in os.walk(base / algorithm):
                for name in files:
                    found[f"{algorithm}:{name}"] = os.stat(Path(dirpath) / name).st_size
        return found

    async def has_manifest(self, repository: str, digest: str) -> bool:
        return await self.registry._metadata.get_manifest(repository, digest) is not None

    async def linked(self, repository: str, digest: str) -> bool:
        return await self.registry._metadata.linked_blob_size(repository, digest) is not None


def chunk(data: bytes) -> Chunk:
    return Chunk(chunks(data), None, len(data))


async def chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def open_kit(root: Path, url: str | None = None, **options: Any) -> Kit:
    url = url or f"sqlite+aiosqlite:///{root / 'dockyard.db'}"
    engines = create_engines(url)
    await migrate.upgrade(engines.write)
    store = FilesystemBlobStore(root)
    registry = Registry(store, SQLMetadataStore(engines), RegistryOptions(**options))
    return Kit(registry, root, engines)


def run(scenario: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(scenario())  # type: ignore[arg-type]


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each such test runs on SQLite and on PostgreSQL (required in CI)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'dockyard.db'}"
        return
    from tests.backends import Postgres

    postgres = Postgres()
    try:
        yield postgres.create()
    finally:
        postgres.drop_all()
