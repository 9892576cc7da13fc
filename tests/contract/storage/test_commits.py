"""Committing only bytes that hash to their digest, and only once per blob."""

from __future__ import annotations

import hashlib
import os

import pytest

from dockyard.oci.digest import Digest
from dockyard.storage.base import UploadMissing
from tests.blobs import chunks, collect, commit_if, pieces
from tests.contract.storage.conftest import Nodes, Run


# On a filesystem a small body is written in one thread hop, a large one by threads.
@pytest.mark.parametrize("size", [11, 3 * 1024 * 1024 + 5], ids=["small", "large"])
def test_append_and_commit_places_a_body_that_hashes_to_its_digest(run: Run, size: int) -> None:
    data = os.urandom(size)
    digest = Digest.of(data)

    async def scenario(nodes: Nodes) -> None:
        store = nodes()
        await store.create_upload("whole")
        seen = hashlib.sha256()
        assert await store.append_and_commit("whole", 0, chunks(pieces(data, 65536)),
                                             seen.update, commit_if(seen, digest)) == (size, True)
        assert await store.stat(digest) == size
        assert await collect(store.read(digest)) == data
        with pytest.raises(UploadMissing):
            await store.upload_size("whole")

    run(scenario)


def test_append_and_commit_leaves_a_mismatch_staged(run: Run) -> None:
    claimed = Digest.of(b"something else")

    async def scenario(nodes: Nodes) -> None:
        store = nodes()
        await store.create_upload("wrong")
        seen = hashlib.sha256()
        assert await store.append_and_commit("wrong", 0, chunks([b"abc"]), seen.update,
                                             commit_if(seen, claimed)) == (3, False)
        assert await store.stat(claimed) is None
        assert await store.upload_size("wrong") == 3
        assert await collect(store.read_upload("wrong")) == b"abc"

    run(scenario)


def test_append_and_commit_keeps_a_blob_already_stored(run: Run) -> None:
    digest = Digest.of(b"abc")

    async def scenario(nodes: Nodes) -> None:
        store = nodes()
        await store.create_upload("first")
        await store.append_upload("first", 0, chunks([b"abc"]))
        await store.commit_upload("first", digest)
        await store.create_upload("again")
        seen = hashlib.sha256()
        assert await store.append_and_commit("again", 0, chunks([b"abc"]), seen.update,
                                             commit_if(seen, digest)) == (3, False)
        assert await store.upload_size("again") == 3  # still staged: the caller drops it
        assert await store.stat(digest) == 3

    run(scenario)


def test_commit_if_absent_commits_only_a_new_blob(run: Run) -> None:
    digest = Digest.of(b"abc")

    async def scenario(nodes: Nodes) -> None:
        store = nodes()
        for upload_id in ("first", "again"):
            await store.create_upload(upload_id)
            await store.append_upload(upload_id, 0, chunks([b"abc"]))
        assert await store.commit_if_absent("first", digest) is True
        with pytest.raises(UploadMissing):
            await store.upload_size("first")
        assert await store.commit_if_absent("again", digest) is False
        assert await store.upload_size("again") == 3
        assert await collect(store.read(digest)) == b"abc"

    run(scenario)
