"""Adopting a local file as a blob (moving another registry's storage in): verified first,
stored once, the source left as it was, with or without `link`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dockyard.oci.digest import Digest
from dockyard.storage.base import BlobMismatch
from tests.blobs import collect
from tests.contract.storage.conftest import Nodes, Run


@pytest.mark.parametrize("link", [False, True], ids=["copy", "link"])
@pytest.mark.parametrize("size", [0, 11, 3 * 1024 * 1024 + 5], ids=["empty", "small", "large"])
def test_adopt_file_stores_the_verified_bytes(run: Run, tmp_path: Path, link: bool,
                                              size: int) -> None:
    data = os.urandom(size)
    digest = Digest.of(data)
    source = tmp_path / "source-data"
    source.write_bytes(data)

    async def scenario(nodes: Nodes) -> None:
        store = nodes()
        assert await store.adopt_file(source, digest, link) == size
        assert await store.stat(digest) == size
        assert await collect(store.read(digest)) == data
        assert source.read_bytes() == data
        assert [upload async for upload in store.list_uploads()] == []

    run(scenario)


@pytest.mark.parametrize("link", [False, True], ids=["copy", "link"])
def test_adopt_file_refuses_bytes_of_another_digest(run: Run, tmp_path: Path,
                                                    link: bool) -> None:
    claimed = Digest.of(b"what the file should hold")
    source = tmp_path / "corrupt-data"
    source.write_bytes(b"what it holds")

    async def scenario(nodes: Nodes) -> None:
        store = nodes()
        with pytest.raises(BlobMismatch) as refused:
            await store.adopt_file(source, claimed, link)
        assert str(source) in str(refused.value)
        assert refused.value.actual == Digest.of(b"what it holds")
        assert await store.stat(claimed) is None
        assert [upload async for upload in store.list_uploads()] == []

    run(scenario)


def test_adopt_file_keeps_a_blob_already_stored(run: Run, tmp_path: Path) -> None:
    data = b"stored once"
    digest = Digest.of(data)
    source = tmp_path / "again-data"
    source.write_bytes(data)

    async def scenario(nodes: Nodes) -> None:
        first, second = nodes(), nodes()
        assert await first.adopt_file(source, digest) == len(data)
        assert await second.adopt_file(source, digest, link=True) == len(data)
        assert await collect(first.read(digest)) == data

    run(scenario)
