"""Staged appends around the page cache: exact bytes at any offset, fallbacks, cutting back."""

from __future__ import annotations

import errno
import fcntl
import os
import random
from pathlib import Path

import pytest

from dockyard.storage.filesystem import direct
from dockyard.storage.filesystem.direct import BLOCK, BUFFER, StagingWriter

# Appends that start and end off block boundaries, cross the bounce buffer, and are empty.
SIZES = [1, BLOCK - 1, 0, BLOCK + 3, BUFFER + BLOCK // 2, 3 * BUFFER, 17, 2 * BLOCK]


def _append(path: Path, offset: int, data: bytes, piece: int = 100_000) -> int:
    writer = StagingWriter(path, offset)
    for start in range(0, len(data), piece):
        writer.write(data[start:start + piece])
    return writer.finish()


def _append_all(path: Path) -> bytes:
    rng = random.Random(7)
    expected = b""
    for size in SIZES:
        data = rng.randbytes(size)
        assert _append(path, len(expected), data) == len(expected) + size
        expected += data
    return expected


@pytest.mark.parametrize("direct_io", [True, False])  # False: tmpfs, FUSE, ...
def test_appends_at_any_offset_store_exactly_the_bytes(tmp_path: Path, direct_io: bool,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    if not direct_io:
        monkeypatch.setattr(direct, "_open_direct", lambda path: None)
    path = tmp_path / "upload"
    path.touch()
    expected = _append_all(path)
    assert path.read_bytes() == expected


def test_a_device_refusing_direct_writes_falls_back(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    real_pwrite = os.pwrite

    def refusing(fd: int, data: bytes, position: int) -> int:
        if fcntl.fcntl(fd, fcntl.F_GETFL) & direct._O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_pwrite(fd, data, position)

    monkeypatch.setattr(os, "pwrite", refusing)
    path = tmp_path / "upload"
    path.touch()
    expected = _append_all(path)
    assert path.read_bytes() == expected


def test_opening_cuts_the_file_to_the_offset(tmp_path: Path) -> None:
    path = tmp_path / "upload"
    path.write_bytes(b"x" * 10_000)
    assert _append(path, 5000, b"y" * 10) == 5010
    assert path.read_bytes() == b"x" * 5000 + b"y" * 10


@pytest.mark.parametrize("finished", [False, True])
def test_abandon_cuts_back_to_the_offset(tmp_path: Path, finished: bool) -> None:
    path = tmp_path / "upload"
    path.write_bytes(b"a" * 3000)
    writer = StagingWriter(path, 3000)
    writer.write(os.urandom(2 * BUFFER + 5))
    if finished:
        writer.finish()
    writer.abandon()
    assert path.read_bytes() == b"a" * 3000


def test_a_missing_file_is_not_created(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        StagingWriter(tmp_path / "gone", 0)
    assert not (tmp_path / "gone").exists()
