"""Manifest parsing: what a pushed manifest references and how its media type is decided."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from dockyard.oci import mediatypes
from dockyard.oci.digest import Digest
from dockyard.oci.manifest import Descriptor, InvalidManifest, ParsedManifest, Platform, parse

CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"


def digest(seed: str) -> str:
    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


def desc(seed: str, media_type: str = LAYER_TYPE, size: Any = 10, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": digest(seed), "size": size, **extra}


def image(**fields: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": mediatypes.OCI_MANIFEST,
        "config": desc("config", CONFIG_TYPE),
        "layers": [desc("l1"), desc("l2")],
    }
    document.update(fields)
    return {k: v for k, v in document.items() if v is not None}


def index(**fields: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": mediatypes.OCI_INDEX,
        "manifests": [desc("m1", mediatypes.OCI_MANIFEST), desc("m2", mediatypes.OCI_MANIFEST)],
    }
    document.update(fields)
    return {k: v for k, v in document.items() if v is not None}


def run(document: Any, content_type: str | None = None) -> ParsedManifest:
    return parse(json.dumps(document).encode(), content_type)


# -- image manifests ----------------------------------------------------------------------------


def test_image_manifest_lists_config_and_layers() -> None:
    parsed = run(image(), mediatypes.OCI_MANIFEST)
    assert parsed.media_type == mediatypes.OCI_MANIFEST
    assert [str(d.digest) for d in parsed.blobs] == [digest("config"), digest("l1"), digest("l2")]
    assert parsed.blobs[0] == Descriptor(CONFIG_TYPE, Digest.parse(digest("config")), 10)
    assert parsed.children == ()
    assert parsed.subject is None
    assert parsed.annotations == {}


def test_artifact_type_defaults_to_config_media_type() -> None:
    assert run(image()).artifact_type == CONFIG_TYPE


def test_explicit_artifact_type_wins() -> None:
    parsed = run(image(artifactType="application/vnd.example.sbom"))
    assert parsed.artifact_type == "application/vnd.example.sbom"


def test_layers_may_be_missing_or_empty() -> None:
    assert len(run(image(layers=None)).blobs) == 1
    assert len(run(image(layers=[])).blobs) == 1


@pytest.mark.parametrize("layer_type", [
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
])
def test_non_distributable_layers_are_not_required(layer_type: str) -> None:
    parsed = run(image(layers=[desc("l1"), desc("foreign", layer_type, urls=["https://x"])]))
    assert [str(d.digest) for d in parsed.blobs] == [digest("config"), digest("l1")]
    assert [layer.urls for layer in parsed.layers] == [(), ("https://x",)]


def test_docker_schema2_manifest() -> None:
    document = image(mediaType=mediatypes.DOCKER_MANIFEST,
                     config=desc("c", "application/vnd.docker.container.image.v1+json"))
    parsed = run(document, mediatypes.DOCKER_MANIFEST)
    assert parsed.media_type == mediatypes.DOCKER_MANIFEST
    assert len(parsed.blobs) == 3


def test_subject_and_annotations() -> None:
    subject = desc("subject", mediatypes.OCI_MANIFEST, 123)
    parsed = run(image(subject=subject, annotations={"a": "b"}))
    assert parsed.subject == Descriptor(mediatypes.OCI_MANIFEST,
                                        Digest.parse(digest("subject")), 123)
    assert parsed.annotations == {"a": "b"}


def test_descriptor_extras() -> None:
    layer = desc("l", artifactType="x/y", annotations={"k": "v"}, data="AA==", urls=[])
    parsed = run(image(layers=[layer]))
    assert parsed.blobs[1].artifact_type == "x/y"
    assert parsed.blobs[1].annotations == {"k": "v"}


def test_empty_descriptor_annotations_become_none() -> None:
    parsed = run(image(layers=[desc("l", annotations={})]))
    assert parsed.blobs[1].annotations is None


def test_sha512_descriptor() -> None:
    layer = {"mediaType": LAYER_TYPE, "digest": "sha512:" + "a" * 128, "size": 1}
    assert run(image(layers=[layer])).blobs[1].digest.algorithm == "sha512"


def test_zero_size_descriptor() -> None:
    assert run(image(layers=[desc("empty", size=0)])).blobs[1].size == 0


# -- indexes ------------------------------------------------------------------------------------


def test_index_lists_children() -> None:
    parsed = run(index(), mediatypes.OCI_INDEX)
    assert parsed.media_type == mediatypes.OCI_INDEX
    assert [str(d.digest) for d in parsed.children] == [digest("m1"), digest("m2")]
    assert parsed.blobs == ()
    assert parsed.artifact_type is None


def test_index_children_carry_their_platform() -> None:
    entry = desc("m1", mediatypes.OCI_MANIFEST,
                 platform={"architecture": "arm64", "os": "linux", "variant": "v8"})
    parsed = run(index(manifests=[entry, desc("m2", mediatypes.OCI_MANIFEST)]))
    assert [d.platform for d in parsed.children] == [Platform("arm64", "linux"), None]


def test_index_with_subject_and_artifact_type() -> None:
    parsed = run(index(subject=desc("s", mediatypes.OCI_MANIFEST), artifactType="a/b",
                       annotations={"x": "y"}))
    assert parsed.subject is not None
    assert str(parsed.subject.digest) == digest("s")
    assert parsed.artifact_type == "a/b"
    assert parsed.annotations == {"x": "y"}


def test_empty_index() -> None:
    assert run(index(manifests=[])).children == ()


def test_docker_manifest_list() -> None:
    document = index(mediaType=mediatypes.DOCKER_MANIFEST_LIST,
                     manifests=[desc("d", mediatypes.DOCKER_MANIFEST)])
    parsed = run(document, mediatypes.DOCKER_MANIFEST_LIST)
    assert parsed.media_type == mediatypes.DOCKER_MANIFEST_LIST
    assert len(parsed.children) == 1


def test_index_requires_manifests() -> None:
    with pytest.raises(InvalidManifest):
        run(index(manifests=None))


# -- media type resolution ----------------------------------------------------------------------


def test_body_media_type_must_match_content_type() -> None:
    with pytest.raises(InvalidManifest):
        run(image(), mediatypes.DOCKER_MANIFEST)
    with pytest.raises(InvalidManifest):
        run(index(), mediatypes.OCI_MANIFEST)


@pytest.mark.parametrize("content_type", [
    mediatypes.OCI_MANIFEST + "; charset=utf-8",
    "Application/VND.OCI.Image.Manifest.v1+JSON",
    "application/octet-stream",
    None,
])
def test_equivalent_content_types(content_type: str | None) -> None:
    assert run(image(), content_type).media_type == mediatypes.OCI_MANIFEST


def test_content_type_names_the_type_when_body_does_not() -> None:
    document = image(mediaType=None)
    assert run(document, mediatypes.OCI_MANIFEST).media_type == mediatypes.OCI_MANIFEST
    docker = image(mediaType=None)
    assert run(docker, mediatypes.DOCKER_MANIFEST).media_type == mediatypes.DOCKER_MANIFEST


@pytest.mark.parametrize("content_type", [None, "application/json", "application/octet-stream"])
def test_type_guessed_from_shape(content_type: str | None) -> None:
    assert run(image(mediaType=None), content_type).media_type == mediatypes.OCI_MANIFEST
    assert run(index(mediaType=None), content_type).media_type == mediatypes.OCI_INDEX


def test_shapeless_document_without_type() -> None:
    with pytest.raises(InvalidManifest):
        run({"schemaVersion": 2})


def test_unknown_media_type_is_opaque() -> None:
    parsed = run({"anything": [1, 2]}, "application/vnd.example.custom+json")
    assert parsed == ParsedManifest(media_type="application/vnd.example.custom+json")


@pytest.mark.parametrize("media_type", [mediatypes.DOCKER_SCHEMA1,
                                        mediatypes.DOCKER_SCHEMA1_SIGNED])
def test_docker_schema1_is_refused(media_type: str) -> None:
    document = {"schemaVersion": 1, "name": "a", "tag": "b", "fsLayers": [], "history": []}
    with pytest.raises(InvalidManifest):
        run(document, media_type)
    with pytest.raises(InvalidManifest):
        run({**document, "mediaType": media_type})


# -- malformed documents ------------------------------------------------------------------------


@pytest.mark.parametrize("content", [
    b"", b"not json", b"{", b"[]", b"null", b"42", b'"text"', b"\xff\xfe", b"{}\x00",
])
def test_not_a_json_object(content: bytes) -> None:
    with pytest.raises(InvalidManifest):
        parse(content, mediatypes.OCI_MANIFEST)


@pytest.mark.parametrize("document", [
    image(schemaVersion=None),
    image(schemaVersion=1),
    image(schemaVersion="2"),
    image(mediaType=7),
    image(config=None),
    image(config="sha256:abc"),
    image(config={"mediaType": CONFIG_TYPE, "size": 1}),
    image(config={"digest": digest("c"), "size": 1}),
    image(config={"mediaType": "", "digest": digest("c"), "size": 1}),
    image(config=desc("c", size=-1)),
    image(config=desc("c", size=True)),
    image(config=desc("c", size="1")),
    image(config=desc("c", size=1.5)),
    image(config={**desc("c"), "digest": "sha256:abc"}),
    image(config={**desc("c"), "digest": "md5:" + "0" * 32}),
    image(config={**desc("c"), "digest": 5}),
    image(layers={}),
    image(layers=["sha256:abc"]),
    image(layers=[desc("l", size=-5)]),
    image(artifactType=5),
    image(annotations=["a"]),
    image(annotations={"a": 1}),
    image(subject="sha256:abc"),
    image(subject={"mediaType": mediatypes.OCI_MANIFEST}),
    image(layers=[desc("l", annotations={"k": None})]),
    index(manifests={}),
    index(manifests=[{"mediaType": mediatypes.OCI_MANIFEST}]),
    index(subject=desc("s", size=-1)),
    image(layers=[desc("l", urls="https://x")]),
    image(layers=[desc("l", urls=[5])]),
    index(manifests=[desc("m", platform="linux/amd64")]),
    index(manifests=[desc("m", platform={"os": "linux"})]),
])
def test_invalid_documents(document: dict[str, Any]) -> None:
    with pytest.raises(InvalidManifest):
        run(document)


def test_invalid_manifest_is_a_value_error() -> None:
    assert issubclass(InvalidManifest, ValueError)
