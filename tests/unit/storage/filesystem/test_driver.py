"""What only the filesystem driver promises: its layout on disk, and a hold that binds every
process of the host."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from dockyard.oci.digest import Digest
from dockyard.storage.base import StoreUnusable, UploadBusy
from dockyard.storage.filesystem.driver import FilesystemBlobStore
from tests.blobs import chunks


def test_blobs_are_laid_out_by_digest(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = FilesystemBlobStore(tmp_path)
        digest = Digest.of(b"layout", "sha512")
        await store.create_upload("u3")
        await store.append_upload("u3", 0, chunks([b"layout"]))
        await store.commit_upload("u3", digest)
        expected = tmp_path / "blobs" / "sha512" / digest.hex[:2] / digest.hex
        assert store.local_path(digest) == expected
        assert expected.read_bytes() == b"layout"
        assert not list((tmp_path / "uploads").iterdir())

    asyncio.run(scenario())


def test_holding_an_upload_excludes_other_processes(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    holder = (
        "import fcntl, os, sys\n"
        "fd = os.open(sys.argv[1], os.O_RDONLY)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "print('held', flush=True)\n"
        "sys.stdin.read()\n"
    )

    async def scenario() -> None:
        await store.create_upload("held")
        other = subprocess.Popen([sys.executable, "-c", holder, str(tmp_path / "uploads/held")],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert other.stdout is not None and other.stdout.readline() == "held\n"
            with pytest.raises(UploadBusy):
                async with store.hold_upload("held"):
                    pass
        finally:
            other.communicate("")  # the process ends; its lock goes with it
        async with store.hold_upload("held"):
            pass

    asyncio.run(scenario())


def test_a_root_that_takes_no_files_does_not_verify(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    asyncio.run(store.verify())
    (tmp_path / "uploads").rmdir()
    (tmp_path / "uploads").write_text("in the way")
    with pytest.raises(StoreUnusable) as raised:
        asyncio.run(store.verify())
    assert str(raised.value).startswith(f"cannot write to {tmp_path / 'uploads'}: ")


def test_adopting_with_link_shares_the_files_inode(tmp_path: Path) -> None:
    source = tmp_path / "go" / "data"
    source.parent.mkdir()
    source.write_bytes(b"linked, not copied")
    digest = Digest.of(b"linked, not copied")

    async def scenario() -> None:
        store = FilesystemBlobStore(tmp_path / "store")
        assert await store.adopt_file(source, digest, link=True) == 18
        placed = store.local_path(digest)
        assert placed is not None
        assert placed.stat().st_ino == source.stat().st_ino
        assert source.stat().st_nlink == 2

    asyncio.run(scenario())


def test_adopting_with_link_across_filesystems_copies(tmp_path: Path) -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("needs a second filesystem at /dev/shm")
    data = b"another filesystem"
    digest = Digest.of(data)

    async def scenario() -> None:
        with tempfile_in(shm) as source:
            source.write_bytes(data)
            store = FilesystemBlobStore(tmp_path / "store")
            assert await store.adopt_file(source, digest, link=True) == len(data)
            placed = store.local_path(digest)
            assert placed is not None and placed.read_bytes() == data
            assert source.stat().st_nlink == 1

    asyncio.run(scenario())


@contextmanager
def tempfile_in(folder: Path) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(dir=folder) as made:
        yield Path(made) / "data"
