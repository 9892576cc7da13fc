"""The OCI image layout: `oci-layout`, `index.json` and `blobs/<algorithm>/<hex>`.

A layout is read from a directory or a tar archive and written to either. Its paths come from
whoever wrote it, so every name is checked before it is opened: no absolute paths, no `..`,
no link that leads outside the layout, no digest algorithm this registry cannot verify.
"""

from __future__ import annotations

import json
import os
import posixpath
import tarfile
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from dockyard.oci import boundedjson, mediatypes
from dockyard.oci.digest import Digest, InvalidDigest
from dockyard.oci.manifest import Descriptor, InvalidManifest
from dockyard.oci.manifest import parse as parse_manifest

LAYOUT_FILE = "oci-layout"
INDEX_FILE = "index.json"
LAYOUT_VERSION = "1.0.0"
REF_NAME = "org.opencontainers.image.ref.name"
"""The annotation naming an entry of `index.json` (a tag, as skopeo and oras write it)."""
REPOSITORY_ANNOTATION = "io.dockyard.repository"
"""The annotation naming the repository an entry comes from (Dockyard's own)."""
SMALL_FILE_LIMIT = 16 * 1024 * 1024
"""`oci-layout` and `index.json` are read whole; larger ones are refused."""
TAR_BLOCK = 512


class LayoutError(ValueError):
    """The layout is malformed, unsafe, or lacks what it names; the message names the item."""


def blob_path(digest: Digest) -> str:
    """Where a blob lives inside a layout."""
    return f"blobs/{digest.algorithm}/{digest.hex}"


def safe_name(name: str) -> str:
    """A member name normalised (`./a` is `a`); LayoutError if it is absolute or climbs out."""
    if not name or name.startswith("/") or "\\" in name or "\0" in name:
        raise LayoutError(f"unsafe path {name!r} in the layout")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise LayoutError(f"unsafe path {name!r} in the layout (leaves it)")
    return "/".join(parts)


def layout_document() -> bytes:
    return json.dumps({"imageLayoutVersion": LAYOUT_VERSION}).encode()


def check_layout_document(content: bytes) -> None:
    try:
        document = boundedjson.loads(content)
    except ValueError as exc:
        raise LayoutError(f"{LAYOUT_FILE} is not JSON: {exc}") from exc
    version = document.get("imageLayoutVersion") if isinstance(document, dict) else None
    if not isinstance(version, str) or not version.startswith("1."):
        raise LayoutError(f"{LAYOUT_FILE}: unsupported imageLayoutVersion {version!r}")


@dataclass(frozen=True, slots=True)
class Entry:
    """One manifest `index.json` names: its descriptor, repository and tag when given."""

    descriptor: Descriptor
    repository: str | None
    tag: str | None


def entry_document(descriptor: Descriptor, repository: str, tag: str | None) -> dict[str, Any]:
    annotations = {REPOSITORY_ANNOTATION: repository}
    if tag is not None:
        annotations[REF_NAME] = tag
    return {"mediaType": descriptor.media_type, "digest": str(descriptor.digest),
            "size": descriptor.size, "annotations": annotations}


def index_document(entries: list[dict[str, Any]]) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX,
                       "manifests": entries}, indent=1).encode()


def parse_index(content: bytes) -> list[Entry]:
    """The entries of `index.json`; LayoutError for a malformed one (unknown algorithms too)."""
    try:
        parsed = parse_manifest(content, mediatypes.OCI_INDEX)
    except InvalidManifest as exc:
        raise LayoutError(f"{INDEX_FILE}: {exc}") from exc
    if parsed.media_type not in mediatypes.INDEXES:
        raise LayoutError(f"{INDEX_FILE}: not an image index ({parsed.media_type})")
    entries = []
    for descriptor in parsed.children:
        annotations = descriptor.annotations or {}
        entries.append(Entry(descriptor, annotations.get(REPOSITORY_ANNOTATION),
                             annotations.get(REF_NAME)))
    return entries


class LayoutReader:
    """A layout to read: a directory or a tar archive (see `open_layout`)."""

    def read_file(self, name: str, limit: int = SMALL_FILE_LIMIT) -> bytes:
        """A small file whole (`index.json`, a manifest); LayoutError if absent or too big."""
        size = self.size_of(name)
        if size is None:
            raise LayoutError(f"{name} is missing from the layout")
        if size > limit:
            raise LayoutError(f"{name} is larger than {limit} bytes")
        with self.open(name) as stream:
            return stream.read(limit + 1)

    def blob_size(self, digest: Digest) -> int | None:
        """The blob's size in the layout, or None if the layout lacks it."""
        return self.size_of(blob_path(digest))

    def open_blob(self, digest: Digest) -> IO[bytes]:
        return self.open(blob_path(digest))

    def read_chunk(self, stream: IO[bytes], size: int) -> bytes:
        """Up to `size` bytes of an opened file; safe from several threads at once, each
        reading its own file."""
        return stream.read(size)

    def size_of(self, name: str) -> int | None:
        raise NotImplementedError

    def open(self, name: str) -> IO[bytes]:
        raise NotImplementedError

    def names(self) -> Iterator[str]:
        """Every file's name under `blobs/`."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the archive, if one is open."""


class DirectoryLayout(LayoutReader):
    def __init__(self, root: Path) -> None:
        self._root = root.resolve()

    def _path(self, name: str) -> Path:
        path = self._root / safe_name(name)
        real = Path(os.path.realpath(path))
        if real != self._root and self._root not in real.parents:
            raise LayoutError(f"{name} links outside the layout")
        return real

    def size_of(self, name: str) -> int | None:
        path = self._path(name)
        if not path.is_file():
            return None
        return path.stat().st_size

    def open(self, name: str) -> IO[bytes]:
        return self._path(name).open("rb")

    def names(self) -> Iterator[str]:
        base = self._root / "blobs"
        for algorithm in sorted(os.listdir(base)) if base.is_dir() else []:
            for name in sorted(os.listdir(base / algorithm)):
                yield f"blobs/{algorithm}/{name}"


class TarLayout(LayoutReader):
    """A tar archive read in place: members are looked up by name and read by offset."""

    def __init__(self, path: Path, owned: bool = False) -> None:
        """`owned`: the archive is a temporary file, removed on close."""
        self._owned = path if owned else None
        self._reading = threading.Lock()
        try:
            self._tar = tarfile.open(path, "r:")  # noqa: SIM115 - open until close()
        except (tarfile.TarError, OSError) as exc:
            raise LayoutError(f"{path}: not a readable tar archive: {exc}") from exc
        self._members: dict[str, tarfile.TarInfo] = {}
        try:
            for member in self._tar:
                self._members[self._check(member)] = member
        except tarfile.TarError as exc:
            self._tar.close()
            raise LayoutError(f"{path}: damaged tar archive: {exc}") from exc
        except LayoutError:
            self._tar.close()
            raise

    @staticmethod
    def _check(member: tarfile.TarInfo) -> str:
        name = safe_name(member.name)
        if member.issym():
            target = posixpath.join(posixpath.dirname(name), member.linkname)
            if member.linkname.startswith("/"):
                raise LayoutError(f"tar member {member.name!r} links outside the layout")
            _inside(member.name, target)
        elif member.islnk():
            _inside(member.name, member.linkname)
        elif not (member.isfile() or member.isdir()):
            raise LayoutError(f"tar member {member.name!r} is not a file or directory")
        return name

    def _member(self, name: str) -> tarfile.TarInfo | None:
        member = self._members.get(safe_name(name))
        for _hop in range(16):  # links are followed inside the archive, never out of it
            if member is None or not (member.issym() or member.islnk()):
                return member
            target = (posixpath.join(posixpath.dirname(safe_name(member.name)), member.linkname)
                      if member.issym() else member.linkname)
            member = self._members.get(safe_name(posixpath.normpath(target)))
        raise LayoutError(f"{name}: too many links in the archive")

    def size_of(self, name: str) -> int | None:
        member = self._member(name)
        return member.size if member is not None and member.isfile() else None

    def read_chunk(self, stream: IO[bytes], size: int) -> bytes:
        # Every member reads through the archive's one file object (seek, then read).
        with self._reading:
            return stream.read(size)

    def open(self, name: str) -> IO[bytes]:
        member = self._member(name)
        stream = self._tar.extractfile(member) if member is not None else None
        if stream is None:
            raise LayoutError(f"{name} is missing from the layout")
        return stream

    def names(self) -> Iterator[str]:
        return (name for name, member in self._members.items()
                if name.startswith("blobs/") and not member.isdir())

    def close(self) -> None:
        self._tar.close()
        if self._owned is not None:
            self._owned.unlink(missing_ok=True)


def _inside(member: str, target: str) -> None:
    normal = posixpath.normpath(target)
    if normal.startswith("/") or normal == ".." or normal.startswith("../"):
        raise LayoutError(f"tar member {member!r} links outside the layout")


def open_layout(path: Path, scratch: Path | None = None) -> LayoutReader:
    """A directory, a tar archive, or a zstd-compressed one (`.tar.zst`), which is first
    decompressed into a temporary tar in `scratch` (the system's temporary directory by
    default): a layout is read by name, in any order, which a compressed stream cannot do."""
    if path.is_dir():
        return DirectoryLayout(path)
    if not path.exists():
        raise LayoutError(f"{path} does not exist")
    if path.name.endswith(ZSTD_SUFFIX):
        return _decompressed(path, scratch)
    return TarLayout(path)


ZSTD_SUFFIX = ".tar.zst"


def _decompressed(path: Path, scratch: Path | None) -> LayoutReader:
    import zstandard

    with tempfile.NamedTemporaryFile(dir=scratch, suffix=".tar", delete=False) as out:
        plain = Path(out.name)
        try:
            with path.open("rb") as source:
                zstandard.ZstdDecompressor().copy_stream(source, out)
        except (zstandard.ZstdError, OSError) as exc:
            plain.unlink(missing_ok=True)
            raise LayoutError(f"{path}: cannot decompress: {exc}") from exc
    try:
        return TarLayout(plain, owned=True)
    except LayoutError:
        plain.unlink(missing_ok=True)
        raise


def zstd_writer(out: IO[bytes]) -> IO[bytes]:
    """A stream compressing with zstd into `out` (closing it ends the frame, not `out`)."""
    import zstandard

    writer: IO[bytes] = zstandard.ZstdCompressor(threads=-1).stream_writer(out, closefd=False)
    return writer


def parse_blob_digest(name: str) -> Digest | None:
    """The digest a `blobs/<algorithm>/<hex>` name stands for; None for other names.

    LayoutError for a blob of an algorithm this registry cannot verify.
    """
    parts = safe_name(name).split("/")
    if len(parts) != 3 or parts[0] != "blobs":
        return None
    try:
        return Digest.parse(f"{parts[1]}:{parts[2]}")
    except InvalidDigest as exc:
        raise LayoutError(f"{name}: {exc}") from exc


def blob_digests(reader: LayoutReader) -> set[Digest]:
    """Every blob a layout holds (what `--base` skips)."""
    return {digest for name in reader.names() if (digest := parse_blob_digest(name))}


# -- writing a tar stream --------------------------------------------------------------------

def tar_header(name: str, size: int, directory: bool = False) -> bytes:
    """A ustar/pax header for a member about to be written (the bytes follow, then padding)."""
    info = tarfile.TarInfo(name)
    info.size = 0 if directory else size
    info.mode = 0o755 if directory else 0o644
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    return info.tobuf(format=tarfile.PAX_FORMAT)


def tar_padding(size: int) -> bytes:
    return b"\0" * (-size % TAR_BLOCK)


TAR_END = b"\0" * (2 * TAR_BLOCK)
