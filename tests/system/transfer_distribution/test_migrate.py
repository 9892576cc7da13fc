"""Moving in from the Go registry: Debian's `docker-registry` is filled through its API,
stopped, its storage tree migrated with the command, and Dockyard serves every image back
byte for byte; what the Go registry deleted stays out, and a second run changes nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.server import RunningRegistry
from tests.system.api.client import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    Client,
    Manifest,
    artifact_manifest,
    digest_of,
    image_manifest,
    index_manifest,
    random_bytes,
)
from tests.upstreams import reference_registry

GO_DATA = "docker/registry/v2"


@dataclass(frozen=True)
class Seeded:
    """A Go registry's storage tree and what was pushed to it (and deleted from it)."""

    root: Path | None
    """The filesystem driver's tree; None when the Go registry stored elsewhere."""
    images: dict[tuple[str, str], Manifest]
    """(repository, tag) -> manifest, every child and blob of which must come back."""
    untagged: dict[tuple[str, str], Manifest]
    """(repository, digest) -> manifest pushed without a tag (the artifact)."""
    deleted_manifest: tuple[str, str, str]
    """(repository, tag, digest) of a manifest deleted through the API."""
    deleted_blob: tuple[str, str]
    """(repository, digest) of a blob deleted through the API."""
    left_linked: set[str]
    """Blobs of the deleted manifest: deleting it leaves their layer links in the Go
    registry, which still serves them, so they move too."""


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    return seed_go_registry(tmp_path_factory.mktemp("go-registry"))


def seed_go_registry(workdir: Path, storage: dict[str, object] | None = None) -> Seeded:
    """Fill a Go registry (on the filesystem, or on `storage`) through its API and stop it:
    images of every kind, a referrer, a deleted manifest and a deleted blob."""
    shared = random_bytes(4096)
    with reference_registry(workdir, storage=storage) as go:
        client = Client(go.url, requests.Session())
        images: dict[tuple[str, str], Manifest] = {}

        def push(repository: str, tag: str, manifest: Manifest) -> None:
            client.push_manifest(repository, manifest, tag)
            images[(repository, tag)] = manifest

        app = image_manifest([shared, random_bytes(70_000)])
        push("lib/app", "v1", app)
        push("lib/app", "v1-again", app)
        push("lib/app", "docker", image_manifest([shared], media_type=DOCKER_MANIFEST))
        platforms = [image_manifest([random_bytes(3000)]) for _ in range(2)]
        push("lib/app", "multi", index_manifest(platforms))
        docker_platforms = [image_manifest([random_bytes(1000)], media_type=DOCKER_MANIFEST)
                            for _ in range(2)]
        push("nested/deep/tool", "list", index_manifest(docker_platforms,
                                                         media_type=DOCKER_MANIFEST_LIST))
        push("nested", "top", image_manifest([shared]))
        signature = artifact_manifest("application/vnd.example.signature",
                                      subject=app, layers=[b"signed"])
        client.push_manifest("lib/app", signature)

        gone = image_manifest([random_bytes(2000)])
        client.push_manifest("lib/gone", gone, "old")
        assert client.delete(f"/v2/lib/gone/manifests/{gone.digest}").status_code == 202
        orphan = random_bytes(500)
        orphan_digest = client.push_blob("lib/app", orphan)
        assert client.delete(f"/v2/lib/app/blobs/{orphan_digest}").status_code == 202
        client.close()
    return Seeded(None if storage else workdir / "data", images,
                  {("lib/app", signature.digest): signature},
                  ("lib/gone", "old", gone.digest), ("lib/app", orphan_digest),
                  {digest_of(blob) for blob in gone.blobs})


def tree_copy(seeded: Seeded, target: Path) -> Path:
    """A copy of the Go registry's tree of one's own (the tests link and corrupt it)."""
    assert seeded.root is not None
    shutil.copytree(seeded.root, target)
    return target


def fresh_dockyard(tmp_path: Path) -> RunningRegistry:
    """A Dockyard on an empty data directory, configured but not started."""
    (tmp_path / "dockyard").mkdir()
    return RunningRegistry(tmp_path / "dockyard", {})


def run_migration(dockyard: RunningRegistry, source: Path | str, *extra: str,
                  env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dockyard", "import", "--config",
         str(dockyard.config_path), "--from-distribution", str(source), *extra],
        capture_output=True, text=True, timeout=120, check=False,
        env=None if env is None else {**os.environ, **env})


def blob_digests(seeded: Seeded) -> set[str]:
    """Every blob the seeded images reference, their children's included."""
    pending = [*seeded.images.values(), *seeded.untagged.values()]
    found: set[str] = set()
    while pending:
        manifest = pending.pop()
        found.update(digest_of(blob) for blob in manifest.blobs)
        pending.extend(manifest.children)
    return found


def assert_served(client: Client, repository: str, reference: str, manifest: Manifest) -> None:
    response = client.get(f"/v2/{repository}/manifests/{reference}",
                          headers={"Accept": manifest.media_type})
    assert response.status_code == 200, (repository, reference, response.text)
    assert response.content == manifest.body
    assert response.headers["Docker-Content-Digest"] == manifest.digest
    for blob in manifest.blobs:
        got = client.get(f"/v2/{repository}/blobs/{digest_of(blob)}")
        assert got.status_code == 200, (repository, digest_of(blob))
        assert got.content == blob
    for child in manifest.children:
        assert_served(client, repository, child.digest, child)


def assert_everything_served(dockyard: RunningRegistry, seeded: Seeded) -> None:
    client = Client(dockyard.url, requests.Session())
    try:
        for (repository, tag), manifest in seeded.images.items():
            assert_served(client, repository, tag, manifest)
            assert_served(client, repository, manifest.digest, manifest)
        for (repository, digest), manifest in seeded.untagged.items():
            assert_served(client, repository, digest, manifest)
        app = seeded.images[("lib/app", "v1")]
        referrers = client.get(f"/v2/lib/app/referrers/{app.digest}").json()["manifests"]
        assert [item["digest"] for item in referrers] == list(
            digest for repository, digest in seeded.untagged)
        repository, tag, digest = seeded.deleted_manifest
        assert client.get(f"/v2/{repository}/manifests/{tag}").status_code == 404
        assert client.get(f"/v2/{repository}/manifests/{digest}").status_code == 404
        repository, digest = seeded.deleted_blob
        assert client.get(f"/v2/{repository}/blobs/{digest}").status_code == 404
        for digest in seeded.left_linked:
            assert client.head(f"/v2/lib/gone/blobs/{digest}").status_code == 200
        assert sorted(client.get("/v2/lib/app/tags/list").json()["tags"]) == [
            "docker", "multi", "v1", "v1-again"]
    finally:
        client.close()


@pytest.mark.parametrize("link", [False, True], ids=["copy", "link"])
def test_migrated_images_are_served_byte_for_byte(seeded: Seeded, tmp_path: Path,
                                                  link: bool) -> None:
    source = tree_copy(seeded, tmp_path / "go")
    dockyard = fresh_dockyard(tmp_path)
    flags = ["--link"] if link else []
    first = run_migration(dockyard, source, *flags)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "migrated 4 repositories, 6 tags, 10 manifests, 17 blobs" in first.stdout, first.stdout
    dockyard.start()
    try:
        assert_everything_served(dockyard, seeded)
    finally:
        dockyard.stop()

    again = run_migration(dockyard, source, *flags)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "4 repositories, 0 tags, 0 manifests, 0 blobs (0 bytes" in again.stdout, again.stdout
    assert "0 layer links" in again.stdout

    data = (source / GO_DATA / "blobs").rglob("data")
    shared = {f"sha256:{path.parent.name}" for path in data if path.stat().st_nlink == 2}
    # Blobs share their inode with the store's copy; manifests live in the database.
    assert shared == (blob_digests(seeded) | seeded.left_linked if link else set())


def test_a_corrupt_blob_is_refused_with_its_path_named(seeded: Seeded, tmp_path: Path) -> None:
    source = tree_copy(seeded, tmp_path / "go")
    layer = seeded.images[("nested/deep/tool", "list")].children[0].blobs[1]
    digest = digest_of(layer)
    data = source / GO_DATA / "blobs" / "sha256" / digest[7:9] / digest[7:] / "data"
    corrupt = bytearray(data.read_bytes())
    corrupt[10] ^= 0xFF
    data.write_bytes(bytes(corrupt))
    dockyard = fresh_dockyard(tmp_path)
    outcome = run_migration(dockyard, source, "--link")
    assert outcome.returncode == 1, outcome.stdout + outcome.stderr
    assert f"error: blob nested/deep/tool@{digest}: refused: {data} does not hash" in \
        outcome.stdout, outcome.stdout
    assert data.stat().st_nlink == 1
    assert "MANIFEST_BLOB_UNKNOWN" in outcome.stdout
    assert_left_out(dockyard, seeded, "nested/deep/tool", digest)


def assert_left_out(dockyard: RunningRegistry, seeded: Seeded, repository: str, digest: str
                    ) -> None:
    """The refused blob is not served; the images that do not need it are."""
    dockyard.start()
    try:
        client = Client(dockyard.url, requests.Session())
        assert client.get(f"/v2/{repository}/blobs/{digest}").status_code == 404
        assert_served(client, "lib/app", "v1", seeded.images[("lib/app", "v1")])
        client.close()
    finally:
        dockyard.stop()


def test_a_tree_without_the_go_layout_is_refused(tmp_path: Path) -> None:
    dockyard = fresh_dockyard(tmp_path)
    outcome = run_migration(dockyard, tmp_path)
    assert outcome.returncode == 2
    assert f"{tmp_path} holds no {GO_DATA}" in outcome.stderr
    assert not os.path.exists(dockyard.root / "blobs" / "sha256")


def _write(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)


def test_what_cannot_move_is_reported_with_its_reason(tmp_path: Path) -> None:
    v2 = tmp_path / "go" / GO_DATA
    schema1 = b'{"schemaVersion": 1, "name": "old/one", "tag": "v1", "fsLayers": []}'
    digest = digest_of(schema1)
    _write(v2 / "blobs" / "sha256" / digest[7:9] / digest[7:] / "data", schema1)
    repository = v2 / "repositories" / "old" / "one"
    _write(repository / "_manifests" / "revisions" / "sha256" / digest[7:] / "link",
           digest.encode())
    _write(repository / "_manifests" / "tags" / "v1" / "current" / "link", digest.encode())
    missing = digest_of(b"never stored")
    _write(repository / "_layers" / "sha256" / missing[7:] / "link", missing.encode())
    garbage = repository / "_layers" / "sha256" / ("ab" * 32) / "link"
    _write(garbage, b"not a digest")
    dockyard = fresh_dockyard(tmp_path)
    outcome = run_migration(dockyard, tmp_path / "go")
    assert outcome.returncode == 1, outcome.stdout + outcome.stderr
    lines = outcome.stdout.splitlines()
    assert f"skipped: manifest old/one@{digest}: Docker schema 1 manifest: Dockyard does not " \
           "store schema 1 (convert it, e.g. with skopeo copy, and push it again)" in lines
    assert f"skipped: tag old/one:v1: it names {digest}, which was not migrated (see above, " \
           "or deleted in the Go registry)" in lines
    data = v2 / "blobs" / "sha256" / missing[7:9] / missing[7:] / "data"
    assert f"error: blob old/one@{missing}: its data {data} is missing" in lines
    assert f"error: old/one@sha256:{'ab' * 32}: {garbage} does not hold a digest" in lines
    assert "1 repositories, 0 tags, 0 manifests, 0 blobs" in lines[-1]
