"""Blobs on a local filesystem: `blobs/<alg>/<2 hex>/<hex>` and `uploads/<id>`.

Hashing and writing release the GIL, so while the event loop reads an upload off the socket
one thread hashes it and another writes it (storage/fanout.py); other disk work runs in the
default thread pool. Staged bytes bypass the page cache where the filesystem allows
(storage/direct.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import hashlib
import os
import tempfile
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from pathlib import Path

from dockyard.oci.digest import Digest, InvalidDigest
from dockyard.storage.base import (
    BlobMismatch,
    BlobStore,
    ChunkObserver,
    CommitCheck,
    StoredBlob,
    StoreUnusable,
    UploadBusy,
    UploadMissing,
)
from dockyard.storage.fanout import fan_out
from dockyard.storage.filesystem.direct import StagingWriter

READ_CHUNK = 1 << 20


class FilesystemBlobStore(BlobStore):
    def __init__(self, root: Path) -> None:
        self._blobs = root / "blobs"
        self._uploads = root / "uploads"
        self._blobs.mkdir(parents=True, exist_ok=True)
        self._uploads.mkdir(parents=True, exist_ok=True)
        # Strings on the upload path: building Paths cost more than the syscalls they name.
        self._blobs_dir = str(self._blobs)
        self._uploads_dir = str(self._uploads)

    def _blob_file(self, digest: Digest) -> str:
        return f"{self._blobs_dir}/{digest.algorithm}/{digest.hex[:2]}/{digest.hex}"

    def _blob_path(self, digest: Digest) -> Path:
        return Path(self._blob_file(digest))

    def _upload_file(self, upload_id: str) -> str:
        return f"{self._uploads_dir}/{upload_id}"

    async def verify(self) -> None:
        await asyncio.to_thread(self._verify)

    def _verify(self) -> None:
        for folder in (self._blobs, self._uploads):
            try:
                with tempfile.TemporaryFile(dir=folder):
                    pass
            except OSError as exc:
                raise StoreUnusable(f"cannot write to {folder}: {exc.strerror}") from None

    async def stat(self, digest: Digest) -> int | None:
        try:
            return os.stat(self._blob_file(digest)).st_size
        except FileNotFoundError:
            return None

    def local_path(self, digest: Digest) -> Path | None:
        return self._blob_path(digest)

    async def read(self, digest: Digest, offset: int = 0, length: int | None = None
                   ) -> AsyncIterator[bytes]:
        async for chunk in _read_file(self._blob_path(digest), offset, length):
            yield chunk

    async def list_blobs(self) -> AsyncIterator[StoredBlob]:
        for algorithm in sorted(os.listdir(self._blobs)):
            for prefix in sorted(os.listdir(self._blobs / algorithm)):
                folder = self._blobs / algorithm / prefix
                entries = await asyncio.to_thread(_scan, folder)
                for name, size, modified in entries:
                    try:
                        digest = Digest.parse(f"{algorithm}:{name}")
                    except InvalidDigest:
                        continue
                    yield StoredBlob(digest, size, modified)

    async def list_uploads(self) -> AsyncIterator[tuple[str, float]]:
        for name, _size, modified in await asyncio.to_thread(_scan, self._uploads):
            yield name, modified

    async def delete(self, digest: Digest) -> None:
        # In a thread: an unlink can take a millisecond, and GC runs beside live requests.
        await asyncio.to_thread(_unlink_quietly, self._blob_path(digest))

    async def delete_many(self, digests: Sequence[Digest]) -> int:
        # One thread for the batch: parallel unlinks contend on the journal and are slower.
        return await asyncio.to_thread(_unlink_all, [self._blob_path(d) for d in digests])

    async def create_upload(self, upload_id: str) -> None:
        os.close(os.open(self._upload_file(upload_id), os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                         0o666))

    @contextlib.asynccontextmanager
    async def hold_upload(self, upload_id: str) -> AsyncIterator[None]:
        """An exclusive flock on the staged file: it binds every worker process of this
        host, and goes with the descriptor if the process dies."""
        try:
            fd = os.open(self._upload_file(upload_id), os.O_RDONLY)
        except FileNotFoundError as exc:
            raise UploadMissing(upload_id) from exc
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise UploadBusy(upload_id) from exc
            yield
        finally:
            os.close(fd)

    async def upload_size(self, upload_id: str) -> int:
        try:
            return os.stat(self._upload_file(upload_id)).st_size
        except FileNotFoundError as exc:
            raise UploadMissing(upload_id) from exc

    async def append_upload(self, upload_id: str, offset: int, chunks: AsyncIterable[bytes],
                            observe: ChunkObserver | None = None) -> int:
        size, _committed = await self._append(upload_id, offset, chunks, observe, None)
        return size

    async def append_and_commit(self, upload_id: str, offset: int,
                                chunks: AsyncIterable[bytes], observe: ChunkObserver,
                                commit: CommitCheck) -> tuple[int, bool]:
        return await self._append(upload_id, offset, chunks, observe, commit)

    async def _append(self, upload_id: str, offset: int, chunks: AsyncIterable[bytes],
                      observe: ChunkObserver | None, commit: CommitCheck | None
                      ) -> tuple[int, bool]:
        source = self._upload_file(upload_id)
        try:
            if os.stat(source).st_size != offset:  # the writer would cut the file there
                raise UploadBusy(upload_id)
            writer = StagingWriter(source, offset)
        except FileNotFoundError as exc:
            raise UploadMissing(upload_id) from exc
        sinks = [writer.write] if observe is None else [writer.write, observe]
        committed = False

        def place() -> None:
            nonlocal committed
            digest = commit() if commit is not None else None
            target = self._blob_file(digest) if digest is not None else None
            if target is not None and not os.path.exists(target):
                _durable_rename(source, target)
                committed = True

        try:
            size = await fan_out(chunks, sinks, writer.finish,
                                 place if commit is not None else None)
        except BaseException:
            writer.abandon()
            raise
        return size, committed

    async def adopt_file(self, path: Path, digest: Digest, link: bool = False) -> int:
        """With `link`, a hard link to the file is staged, hashed and renamed into place: the
        blob shares the file's inode and no byte is written. Across filesystems (or where
        links are refused) it is copied as the default does."""
        if link:
            size = await asyncio.to_thread(self._adopt_link, path, digest)
            if size is not None:
                return size
        return await super().adopt_file(path, digest, link)

    def _adopt_link(self, path: Path, digest: Digest) -> int | None:
        target = self._blob_file(digest)
        with contextlib.suppress(FileNotFoundError):
            return os.stat(target).st_size
        staged = self._upload_file(str(uuid.uuid4()))
        try:
            os.link(path, staged)
        except OSError as exc:
            if exc.errno in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                return None
            raise
        try:
            # The staged name is hashed, not `path`: what is verified is what goes in place.
            with open(staged, "rb") as handle:
                actual = Digest(digest.algorithm,
                                hashlib.file_digest(handle, digest.algorithm).hexdigest())
                size = os.fstat(handle.fileno()).st_size
            if actual != digest:
                raise BlobMismatch(path, digest, actual)
            folder = os.path.dirname(target)
            os.makedirs(folder, exist_ok=True)
            os.replace(staged, target)
            _sync_folder(folder)
            return size
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(staged)

    async def read_upload(self, upload_id: str) -> AsyncIterator[bytes]:
        path = Path(self._upload_file(upload_id))
        if not path.exists():
            raise UploadMissing(upload_id)
        async for chunk in _read_file(path, 0, None):
            yield chunk

    async def commit_upload(self, upload_id: str, digest: Digest) -> None:
        source = self._upload_file(upload_id)
        target = self._blob_file(digest)
        await asyncio.to_thread(_durable_rename, source, target)

    async def delete_upload(self, upload_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._upload_file(upload_id))


def _scan(folder: Path) -> list[tuple[str, int, float]]:
    found = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_file(follow_symlinks=False):
                info = entry.stat(follow_symlinks=False)
                found.append((entry.name, info.st_size, info.st_mtime))
    return sorted(found)


def _unlink_quietly(path: Path) -> int:
    """Bytes freed by removing the file (0 if it was already gone)."""
    try:
        size = os.lstat(path).st_size
        os.unlink(path)
    except FileNotFoundError:
        return 0
    return size


def _unlink_all(paths: list[Path]) -> int:
    return sum(_unlink_quietly(path) for path in paths)


def _durable_rename(source: str, target: str) -> None:
    """Flush the staged file, then rename it into place; the blob appears whole or not at all."""
    try:
        fd = os.open(source, os.O_RDONLY)
    except FileNotFoundError as exc:
        raise UploadMissing(os.path.basename(source)) from exc
    try:
        os.fdatasync(fd)
    finally:
        os.close(fd)
    folder = os.path.dirname(target)
    os.makedirs(folder, exist_ok=True)
    os.replace(source, target)
    _sync_folder(folder)


def _sync_folder(folder: str) -> None:
    """Make a rename into `folder` durable."""
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


async def _read_file(path: Path, offset: int, length: int | None) -> AsyncIterator[bytes]:
    handle = await asyncio.to_thread(open, path, "rb")
    with handle:
        handle.seek(offset)
        remaining = length
        while remaining is None or remaining > 0:
            size = READ_CHUNK if remaining is None else min(READ_CHUNK, remaining)
            chunk = await asyncio.to_thread(handle.read, size)
            if not chunk:
                return
            if remaining is not None:
                remaining -= len(chunk)
            yield chunk
