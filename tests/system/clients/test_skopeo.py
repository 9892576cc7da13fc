"""skopeo pushes and pulls OCI layouts, indexes and Docker schema2 images."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.system.clients.clients import Http, Skopeo
from tests.system.clients.conftest import Target
from tests.system.clients.images import (
    DOCKER_CONFIG,
    DOCKER_LAYER_GZIP,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    OciLayout,
    random_image,
    random_index,
)

pytestmark = pytest.mark.clients


def push_tags(skopeo: Skopeo, remote: str, layout: OciLayout, tags: dict[str, str]) -> None:
    """Copy layout images (tag in the layout -> tag in the registry), digests unchanged."""
    for tag, source_tag in tags.items():
        skopeo.copy(f"oci:{layout.path}:{source_tag}", f"{remote}:{tag}", "--preserve-digests")


def assert_manifest_unknown(skopeo: Skopeo, reference: str) -> None:
    result = skopeo.inspect_raw(reference, check=False)
    assert result.returncode != 0, f"{reference} is still there"
    assert b"manifest unknown" in result.stderr.lower(), result.stderr


def test_skopeo_round_trip_is_byte_exact(target: Target, skopeo: Skopeo,
                                         new_repo: Callable[..., str], tmp_path: Path) -> None:
    """A pushed OCI image reads back with the very manifest bytes and blobs it was pushed with."""
    remote = f"docker://{target.host}/{new_repo()}"
    image = random_image()
    source = OciLayout(tmp_path / "source")
    source.write({"v1": image})
    push_tags(skopeo, remote, source, {"v1": "v1"})

    assert skopeo.inspect_raw(f"{remote}:v1").stdout == image.manifest.data
    assert skopeo.inspect_raw(f"{remote}@{image.manifest.digest}").stdout == image.manifest.data
    inspected = skopeo.inspect(f"{remote}:v1")
    assert inspected["Digest"] == image.manifest.digest
    assert inspected["Layers"] == [layer.digest for layer in image.layers]

    pulled = OciLayout(tmp_path / "pulled")
    skopeo.copy(f"{remote}:v1", f"oci:{pulled.path}:v1", "--preserve-digests")
    assert pulled.descriptor("v1")["digest"] == image.manifest.digest
    for blob in image.blobs():
        assert pulled.read_blob(blob.digest) == blob.data


def test_skopeo_list_tags_sorted(target: Target, skopeo: Skopeo, http: Http,
                                 new_repo: Callable[..., str], tmp_path: Path) -> None:
    """Tags pushed out of order are listed in lexical order, by skopeo and by the API."""
    repo = new_repo()
    remote = f"docker://{target.host}/{repo}"
    source = OciLayout(tmp_path / "source")
    source.write({"one": random_image(layer_count=1), "two": random_image(layer_count=1)})
    push_tags(skopeo, remote, source, {"v2": "two", "latest": "one", "v10": "two", "b.1": "one"})

    expected = ["b.1", "latest", "v10", "v2"]
    assert skopeo.list_tags(remote) == expected
    assert http.tags(repo) == expected


def test_skopeo_delete_by_tag_and_digest(target: Target, skopeo: Skopeo,
                                         new_repo: Callable[..., str], tmp_path: Path) -> None:
    """skopeo deletes manifests (it resolves a tag to its digest); every tag naming one goes."""
    remote = f"docker://{target.host}/{new_repo()}"
    first, second = random_image(layer_count=1), random_image(layer_count=1)
    source = OciLayout(tmp_path / "source")
    source.write({"first": first, "second": second})
    push_tags(skopeo, remote, source, {"first": "first", "again": "first", "second": "second"})

    skopeo.delete(f"{remote}:second")
    assert_manifest_unknown(skopeo, f"{remote}:second")
    assert_manifest_unknown(skopeo, f"{remote}@{second.manifest.digest}")
    assert sorted(skopeo.list_tags(remote)) == ["again", "first"]
    assert skopeo.inspect_raw(f"{remote}:first").stdout == first.manifest.data

    skopeo.delete(f"{remote}@{first.manifest.digest}")
    for reference in (f"{remote}:first", f"{remote}:again", f"{remote}@{first.manifest.digest}"):
        assert_manifest_unknown(skopeo, reference)


def test_skopeo_copy_all_multi_arch_index(target: Target, skopeo: Skopeo, http: Http,
                                          new_repo: Callable[..., str], tmp_path: Path) -> None:
    """An index and both platform manifests survive `copy --all` both ways unchanged."""
    repo = new_repo()
    remote = f"docker://{target.host}/{repo}:multi"
    index = random_index([("linux", "amd64"), ("linux", "arm64")])
    source = OciLayout(tmp_path / "source")
    source.write({"multi": index})

    skopeo.copy(f"oci:{source.path}:multi", remote, "--all", "--preserve-digests")

    assert skopeo.inspect_raw(remote).stdout == index.index.data
    response = http.get_manifest(repo, "multi")
    assert response.headers["Content-Type"] == OCI_INDEX
    assert response.content == index.index.data
    for image in index.images:
        child = f"docker://{target.host}/{repo}@{image.manifest.digest}"
        assert skopeo.inspect_raw(child).stdout == image.manifest.data
        by_digest = http.get_manifest(repo, image.manifest.digest)
        assert by_digest.headers["Content-Type"] == OCI_MANIFEST

    # skopeo resolves the arm64 child through the index and reads its config blob.
    arm = skopeo.inspect(remote, "--override-os", "linux", "--override-arch", "arm64")
    assert arm["Digest"] == index.index.digest
    assert arm["Architecture"] == "arm64"
    assert arm["Layers"] == [layer.digest for layer in index.images[1].layers]

    pulled = OciLayout(tmp_path / "pulled")
    skopeo.copy(remote, f"oci:{pulled.path}:multi", "--all", "--preserve-digests")
    assert pulled.descriptor("multi")["digest"] == index.index.digest
    for blob in index.blobs():
        assert pulled.read_blob(blob.digest) == blob.data


def test_skopeo_docker_schema2(target: Target, skopeo: Skopeo, http: Http,
                               new_repo: Callable[..., str], tmp_path: Path) -> None:
    """`--format v2s2` stores a Docker schema2 manifest, served with its own media type."""
    repo = new_repo()
    remote = f"docker://{target.host}/{repo}:v2s2"
    image = random_image()
    source = OciLayout(tmp_path / "source")
    source.write({"latest": image})
    digestfile = tmp_path / "digest"

    skopeo.copy(f"oci:{source.path}:latest", remote, "--format", "v2s2",
                "--digestfile", str(digestfile))
    pushed_digest = digestfile.read_text().strip()

    response = http.get_manifest(repo, "v2s2", accept=DOCKER_MANIFEST)
    assert response.headers["Content-Type"] == DOCKER_MANIFEST
    assert response.headers["Docker-Content-Digest"] == pushed_digest
    assert skopeo.inspect_raw(remote).stdout == response.content
    manifest = json.loads(response.content)
    assert manifest["mediaType"] == DOCKER_MANIFEST
    assert manifest["config"]["mediaType"] == DOCKER_CONFIG
    assert manifest["config"]["digest"] == image.config.digest
    assert [layer["mediaType"] for layer in manifest["layers"]] == [DOCKER_LAYER_GZIP] * 2
    assert [layer["digest"] for layer in manifest["layers"]] == [
        layer.digest for layer in image.layers]

    # HEAD and a GET by digest describe the same stored bytes.
    head = http.session.head(f"{target.url}/v2/{repo}/manifests/{pushed_digest}",
                             headers={"Accept": DOCKER_MANIFEST}, timeout=30)
    assert head.status_code == 200
    assert head.headers["Content-Type"] == DOCKER_MANIFEST
    assert head.headers["Docker-Content-Digest"] == pushed_digest
    assert int(head.headers["Content-Length"]) == len(response.content)
    assert http.get_manifest(repo, pushed_digest, DOCKER_MANIFEST).content == response.content
    for layer in image.layers:
        assert http.get_blob(repo, layer.digest) == layer.data
