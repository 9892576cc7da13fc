"""Where an export writes its layout: a directory, or a tar stream (a file or stdout).

A blob is written whole or not at all: in a directory it is renamed into place once its last
byte is down, so a rerun export (or one interrupted) never leaves a truncated blob that a
later `--base` would trust.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from typing import IO

from dockyard.oci.digest import Digest
from dockyard.oci.layout import (
    INDEX_FILE,
    LAYOUT_FILE,
    TAR_END,
    blob_path,
    layout_document,
    tar_header,
    tar_padding,
)


async def once(content: bytes) -> AsyncIterator[bytes]:
    """Bytes already in memory (a manifest) as the one chunk of a body."""
    yield content


class LayoutWriter(ABC):
    @abstractmethod
    def has_blob(self, digest: Digest, size: int) -> bool:
        """Whether the layout already holds the blob whole (a rerun into a directory)."""

    @abstractmethod
    async def write_blob(self, digest: Digest, size: int, body: AsyncIterable[bytes]) -> None:
        """Write one blob; ValueError if the body is not `size` bytes long."""

    @abstractmethod
    def finish(self, index: bytes) -> None:
        """Write `index.json` last, so a layout with one is complete."""


class DirectoryWriter(LayoutWriter):
    def __init__(self, root: Path) -> None:
        self._root = root
        root.mkdir(parents=True, exist_ok=True)
        (root / LAYOUT_FILE).write_bytes(layout_document())

    def has_blob(self, digest: Digest, size: int) -> bool:
        path = self._root / blob_path(digest)
        return path.is_file() and path.stat().st_size == size

    async def write_blob(self, digest: Digest, size: int, body: AsyncIterable[bytes]) -> None:
        path = self._root / blob_path(digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{digest.hex}.partial")
        written = 0
        try:
            with partial.open("wb") as out:
                async for data in body:
                    out.write(data)
                    written += len(data)
            if written != size:
                raise ValueError(f"{digest}: read {written} bytes, expected {size}")
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)

    def finish(self, index: bytes) -> None:
        partial = self._root / f".{INDEX_FILE}.partial"
        partial.write_bytes(index)
        os.replace(partial, self._root / INDEX_FILE)


class TarWriter(LayoutWriter):
    """A tar stream written front to back: `oci-layout`, the blobs, `index.json`."""

    def __init__(self, out: IO[bytes]) -> None:
        self._out = out
        self._written: set[Digest] = set()
        self._directories: set[str] = set()
        self._member(LAYOUT_FILE, layout_document())

    def _member(self, name: str, content: bytes) -> None:
        self._out.write(tar_header(name, len(content)) + content + tar_padding(len(content)))

    def _directory(self, name: str) -> None:
        if name not in self._directories:
            self._directories.add(name)
            self._out.write(tar_header(name + "/", 0, directory=True))

    def has_blob(self, digest: Digest, size: int) -> bool:
        return digest in self._written

    async def write_blob(self, digest: Digest, size: int, body: AsyncIterable[bytes]) -> None:
        self._directory("blobs")
        self._directory(f"blobs/{digest.algorithm}")
        self._out.write(tar_header(blob_path(digest), size))
        written = 0
        async for data in body:
            written += len(data)
            if written > size:
                raise ValueError(f"{digest}: more than {size} bytes")
            self._out.write(data)
        if written != size:  # the stream is broken now: the header promised `size` bytes
            raise ValueError(f"{digest}: read {written} bytes, expected {size}")
        self._out.write(tar_padding(size))
        self._written.add(digest)

    def finish(self, index: bytes) -> None:
        self._member(INDEX_FILE, index)
        self._out.write(TAR_END)
        self._out.flush()
