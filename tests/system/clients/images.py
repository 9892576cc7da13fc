"""Build and read OCI image layouts on disk, with random content, for the client tests.

Every image gets fresh random layers: skopeo, buildah and podman remember where they
last saw a blob and would otherwise mount it from another repository instead of
uploading it, which would leave the upload paths of the server untested.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
REF_NAME = "org.opencontainers.image.ref.name"

# Every Accept value a registry client may send for a manifest.
ALL_MANIFEST_TYPES = ", ".join([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST])


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def encode_json(document: dict[str, Any]) -> bytes:
    """Indented, not canonical JSON: a registry that re-serialises manifests changes the digest."""
    return json.dumps(document, indent=3).encode() + b"\n"


def tar_of(files: dict[str, bytes]) -> bytes:
    """An uncompressed, reproducible tar holding the given regular files."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = 0o644
            info.mtime = 0
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def files_in_tar(data: bytes) -> dict[str, bytes]:
    """Regular files of a (possibly gzip-compressed) tar, by path without a leading slash."""
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    files: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        for member in tar.getmembers():
            extracted = tar.extractfile(member) if member.isfile() else None
            if extracted is not None:
                files[member.name.removeprefix("./").lstrip("/")] = extracted.read()
    return files


@dataclass(frozen=True)
class Blob:
    """Content plus the descriptor that points at it."""

    media_type: str
    data: bytes
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        return sha256_digest(self.data)

    def descriptor(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": len(self.data),
                **self.extra}


@dataclass(frozen=True)
class Image:
    """A single-platform image: manifest, config and gzip layers (each a random file)."""

    manifest: Blob
    config: Blob
    layers: list[Blob]
    files: dict[str, bytes]

    def blobs(self) -> list[Blob]:
        return [self.manifest, self.config, *self.layers]


@dataclass(frozen=True)
class ImageIndex:
    """A multi-platform index and its child images."""

    index: Blob
    images: list[Image]

    def blobs(self) -> list[Blob]:
        return [self.index, *(blob for image in self.images for blob in image.blobs())]


def random_image(layer_count: int = 2, layer_size: int = 48 * 1024, arch: str = "amd64",
                 os_name: str = "linux") -> Image:
    """An OCI image whose layers each hold one file of random (incompressible) bytes."""
    layers: list[Blob] = []
    diff_ids: list[str] = []
    files: dict[str, bytes] = {}
    for number in range(layer_count):
        name = f"payload-{number}-{os.urandom(4).hex()}.bin"
        files[name] = os.urandom(layer_size)
        tar = tar_of({name: files[name]})
        diff_ids.append(sha256_digest(tar))
        layers.append(Blob(OCI_LAYER_GZIP, gzip.compress(tar, mtime=0)))
    config = Blob(OCI_CONFIG, encode_json({
        "created": "2024-01-01T00:00:00Z",
        "architecture": arch,
        "os": os_name,
        "config": {"Cmd": ["/" + next(iter(files))] if files else ["/bin/true"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "dockyard e2e"}
                    for _ in layers],
    }))
    manifest = Blob(OCI_MANIFEST, encode_json({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": [layer.descriptor() for layer in layers],
    }))
    return Image(manifest, config, layers, files)


def random_index(platforms: list[tuple[str, str]]) -> ImageIndex:
    """An OCI index with one random image per (os, architecture) pair."""
    images = [random_image(arch=arch, os_name=os_name) for os_name, arch in platforms]
    entries = []
    for (os_name, arch), image in zip(platforms, images, strict=True):
        entries.append({**image.manifest.descriptor(),
                        "platform": {"architecture": arch, "os": os_name}})
    index = Blob(OCI_INDEX, encode_json({
        "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries,
    }))
    return ImageIndex(index, images)


class OciLayout:
    """An OCI image layout directory (the `oci:` transport of skopeo)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def blob_path(self, digest: str) -> Path:
        algorithm, hex_digest = digest.split(":", 1)
        return self.path / "blobs" / algorithm / hex_digest

    def read_blob(self, digest: str) -> bytes:
        data = self.blob_path(digest).read_bytes()
        assert sha256_digest(data) == digest, f"layout blob {digest} is corrupt"
        return data

    def write(self, tagged: dict[str, Image | ImageIndex]) -> None:
        """Write a fresh layout holding the given images under their tags."""
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
        entries = []
        for tag, image in tagged.items():
            for blob in image.blobs():
                target = self.blob_path(blob.digest)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(blob.data)
            top = image.manifest if isinstance(image, Image) else image.index
            entries.append({**top.descriptor(), "annotations": {REF_NAME: tag}})
        (self.path / "index.json").write_text(json.dumps(
            {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}))

    def descriptor(self, tag: str) -> dict[str, Any]:
        """The top-level descriptor that index.json records for a tag."""
        index = json.loads((self.path / "index.json").read_text())
        for entry in index["manifests"]:
            if entry.get("annotations", {}).get(REF_NAME) == tag:
                return dict(entry)
        raise KeyError(f"tag {tag!r} not in {self.path}/index.json")
