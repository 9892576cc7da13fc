"""Pushing, pulling and deleting manifests: /v2/<name>/manifests/<reference>."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest
import requests

from tests.server import RunningRegistry
from tests.system.api.client import (
    API_VERSION,
    API_VERSION_HEADER,
    DOCKER_FOREIGN_LAYER,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    EMPTY_JSON,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
    OCI_NONDISTRIBUTABLE_LAYER,
    Client,
    Manifest,
    artifact_manifest,
    assert_error,
    assert_head_error,
    describe,
    descriptor,
    digest_matches,
    digest_of,
    image_manifest,
    index_manifest,
    random_bytes,
    raw_request,
    repo_name,
)

MIB = 1024 * 1024


def assert_manifest_created(client: Client, response: requests.Response, name: str,
                            manifest: Manifest) -> None:
    """201, a Location that serves the manifest, and the sha256 of the exact bytes."""
    assert response.status_code == 201, describe(response)
    assert response.headers["Docker-Content-Digest"] == manifest.digest
    assert response.headers[API_VERSION_HEADER] == API_VERSION
    location = client.follow(response.headers.get("Location"))
    assert urlsplit(location).path.startswith(f"/v2/{name}/manifests/")
    pulled = client.get(location)
    assert pulled.status_code == 200, describe(pulled)
    assert pulled.content == manifest.body


def assert_pullable(client: Client, name: str, reference: str, manifest: Manifest) -> None:
    """GET and HEAD return the stored bytes and type exactly."""
    response = client.get(f"/v2/{name}/manifests/{reference}")
    assert response.status_code == 200, describe(response)
    assert response.content == manifest.body
    assert response.headers["Content-Type"] == manifest.media_type
    assert response.headers["Docker-Content-Digest"] == manifest.digest
    assert response.headers["Content-Length"] == str(manifest.size)
    head = client.head(f"/v2/{name}/manifests/{reference}")
    assert head.status_code == 200, describe(head)
    assert head.content == b""
    assert head.headers["Content-Type"] == manifest.media_type
    assert head.headers["Docker-Content-Digest"] == manifest.digest
    assert head.headers["Content-Length"] == str(manifest.size)


# -- pushing and pulling ------------------------------------------------------------------------


def test_head_sends_no_body_on_the_wire(client: Client, registry: RunningRegistry,
                                        name: str) -> None:
    manifest = client.push_image(name, "latest")
    for reference, status in (("latest", 200), (manifest.digest, 200), ("absent", 404)):
        response = raw_request(registry.host, f"HEAD /v2/{name}/manifests/{reference} HTTP/1.1")
        assert response.status == status
        assert response.body == b""


def test_push_by_tag(client: Client, name: str) -> None:
    manifest = image_manifest()
    client.push_contents(name, manifest)
    response = client.put_manifest(name, "v1", manifest)
    assert_manifest_created(client, response, name, manifest)
    assert_pullable(client, name, "v1", manifest)
    assert_pullable(client, name, manifest.digest, manifest)


def test_push_by_digest(client: Client, name: str) -> None:
    manifest = image_manifest()
    client.push_contents(name, manifest)
    response = client.put_manifest(name, manifest.digest, manifest)
    assert_manifest_created(client, response, name, manifest)
    assert_pullable(client, name, manifest.digest, manifest)
    assert client.tags(name) == []


def test_push_by_sha512_digest(client: Client, name: str) -> None:
    manifest = image_manifest()
    client.push_contents(name, manifest)
    reference = digest_of(manifest.body, "sha512")
    response = client.put_manifest(name, reference, manifest)
    assert response.status_code == 201, describe(response)
    assert digest_matches(response.headers["Docker-Content-Digest"], manifest.body)
    pulled = client.get(f"/v2/{name}/manifests/{reference}")
    assert pulled.status_code == 200, describe(pulled)
    assert pulled.content == manifest.body
    assert pulled.headers["Content-Type"] == OCI_MANIFEST
    assert digest_matches(pulled.headers["Docker-Content-Digest"], manifest.body)


def test_a_tag_keeps_the_sha512_digest_it_was_pushed_with(client: Client, name: str) -> None:
    """The algorithm a client chose is the one every answer reports, by tag as by digest."""
    manifest = image_manifest()
    client.push_manifest(name, manifest, "t")
    sha512 = digest_of(manifest.body, "sha512")
    response = client.put_manifest(name, sha512, manifest, params=[("tag", "t")])
    assert response.status_code == 201, describe(response)
    assert response.headers["Docker-Content-Digest"] == sha512
    assert urlsplit(response.headers["Location"]).path == f"/v2/{name}/manifests/{sha512}"
    for reference in ("t", sha512):
        for method in (client.get, client.head):
            pulled = method(f"/v2/{name}/manifests/{reference}")
            assert pulled.status_code == 200, describe(pulled)
            assert pulled.headers["Docker-Content-Digest"] == sha512
    assert client.get(f"/v2/{name}/manifests/t").content == manifest.body
    by_sha256 = client.head(f"/v2/{name}/manifests/{manifest.digest}")
    assert by_sha256.headers["Docker-Content-Digest"] == manifest.digest
    assert client.tags(name) == ["t"]


def test_a_sha512_referrer_is_listed_by_its_sha512_digest(client: Client, name: str) -> None:
    subject = client.push_image(name, None)
    referrer = artifact_manifest("application/vnd.dockyard.signature.v1", subject=subject)
    client.push_contents(name, referrer)
    sha512 = digest_of(referrer.body, "sha512")
    response = client.put_manifest(name, sha512, referrer)
    assert response.status_code == 201, describe(response)
    listing = client.get(f"/v2/{name}/referrers/{subject.digest}")
    assert [entry["digest"] for entry in listing.json()["manifests"]] == [sha512]


def test_push_by_digest_that_does_not_match(client: Client, name: str) -> None:
    manifest = image_manifest()
    client.push_contents(name, manifest)
    for wrong in (digest_of(b"other"), digest_of(b"other", "sha512")):
        response = client.put_manifest(name, wrong, manifest)
        assert_error(response, 400, "DIGEST_INVALID")
        assert_error(client.get(f"/v2/{name}/manifests/{wrong}"), 404, "MANIFEST_UNKNOWN",
                     "NAME_UNKNOWN")


def test_push_by_digest_with_tag_parameters(client: Client, name: str) -> None:
    manifest = image_manifest()
    client.push_contents(name, manifest)
    response = client.put_manifest(name, manifest.digest, manifest,
                                   params=[("tag", "one"), ("tag", "two"), ("tag", "3.0")])
    assert_manifest_created(client, response, name, manifest)
    assert client.tags(name) == ["3.0", "one", "two"]
    for tag in ("one", "two", "3.0"):
        assert_pullable(client, name, tag, manifest)


def test_push_by_digest_with_one_tag_parameter(client: Client, name: str) -> None:
    manifest = image_manifest()
    client.push_contents(name, manifest)
    response = client.put_manifest(name, manifest.digest, manifest, params=[("tag", "only")])
    assert response.status_code == 201, describe(response)
    assert client.tags(name) == ["only"]


def test_retag_moves_the_tag(client: Client, name: str) -> None:
    first = client.push_image(name, "latest")
    second = client.push_image(name, "latest")
    assert_pullable(client, name, "latest", second)
    assert_pullable(client, name, first.digest, first)


def test_same_manifest_under_many_tags(client: Client, name: str) -> None:
    manifest = client.push_image(name, "a")
    for tag in ("b", "c"):
        response = client.put_manifest(name, tag, manifest)
        assert_manifest_created(client, response, name, manifest)
    assert client.tags(name) == ["a", "b", "c"]


def test_push_same_manifest_twice(client: Client, name: str) -> None:
    manifest = client.push_image(name, "x")
    response = client.put_manifest(name, "x", manifest)
    assert_manifest_created(client, response, name, manifest)


def test_tag_reference_edges(client: Client, name: str) -> None:
    manifest = client.push_image(name, None)
    for tag in ("A", "_under", "a" * 128, "v1.2.3-rc_1", "0"):
        response = client.put_manifest(name, tag, manifest)
        assert response.status_code == 201, describe(response)
        assert_pullable(client, name, tag, manifest)


def test_byte_exact_storage(client: Client, name: str) -> None:
    # Odd whitespace, key order, unicode and unknown fields must all survive byte for byte.
    config = random_bytes(30)
    layer = random_bytes(30)
    client.push_blob(name, config)
    client.push_blob(name, layer)
    body = (
        '{\n\t"schemaVersion" :2,   "mediaType":"' + OCI_MANIFEST + '",\r\n'
        '"x-custom": {"nested": [1, 2.50, null, "\u00e9\u2603"]},'
        '"config":{"mediaType":"application/vnd.oci.image.config.v1+json",'
        f'"digest":"{digest_of(config)}","size":{len(config)},"x-extra":true}},'
        '"layers":[{"size":' + str(len(layer)) + ',"digest":"' + digest_of(layer) + '",'
        '"mediaType":"application/vnd.oci.image.layer.v1.tar"}],'
        '"annotations":{"k":"\\u00e9"}}\n\n'
    ).encode()
    manifest = Manifest(body, OCI_MANIFEST)
    response = client.put_manifest(name, "exact", manifest)
    assert_manifest_created(client, response, name, manifest)
    assert_pullable(client, name, "exact", manifest)


def test_manifest_without_media_type_field(client: Client, name: str) -> None:
    # mediaType is optional in the body; Content-Type then tells the type.
    manifest = image_manifest(include_media_type=False)
    client.push_contents(name, manifest)
    response = client.put_manifest(name, "bare", manifest)
    assert_manifest_created(client, response, name, manifest)
    assert_pullable(client, name, "bare", manifest)


def test_put_without_content_type_uses_the_body_media_type(client: Client, name: str) -> None:
    for manifest in (image_manifest(), image_manifest(media_type=DOCKER_MANIFEST)):
        client.push_contents(name, manifest)
        response = client.put(f"/v2/{name}/manifests/untyped", data=manifest.body)
        assert response.status_code == 201, describe(response)
        assert_pullable(client, name, "untyped", manifest)


def test_content_type_with_parameters(client: Client, name: str) -> None:
    manifest = image_manifest()
    client.push_contents(name, manifest)
    response = client.put_manifest(name, "params", manifest,
                                   media_type=OCI_MANIFEST + "; charset=utf-8")
    assert response.status_code == 201, describe(response)
    pulled = client.get(f"/v2/{name}/manifests/params")
    assert pulled.headers["Content-Type"].split(";")[0] == OCI_MANIFEST


def test_get_with_accept_header(client: Client, name: str) -> None:
    manifest = client.push_image(name, "latest")
    accept = ", ".join([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST])
    response = client.get(f"/v2/{name}/manifests/latest", headers={"Accept": accept})
    assert response.status_code == 200
    assert response.content == manifest.body


# -- manifest types -----------------------------------------------------------------------------


def test_docker_schema2_manifest(client: Client, name: str) -> None:
    manifest = image_manifest(media_type=DOCKER_MANIFEST)
    client.push_contents(name, manifest)
    response = client.put_manifest(name, "docker", manifest)
    assert_manifest_created(client, response, name, manifest)
    assert_pullable(client, name, "docker", manifest)


def test_oci_index(client: Client, name: str) -> None:
    index = index_manifest([image_manifest(), image_manifest()])
    client.push_contents(name, index)
    response = client.put_manifest(name, "multi", index)
    assert_manifest_created(client, response, name, index)
    assert_pullable(client, name, "multi", index)
    for child in index.children:
        assert_pullable(client, name, child.digest, child)


def test_nested_index(client: Client, name: str) -> None:
    inner = index_manifest([image_manifest()])
    outer = index_manifest([inner, image_manifest()])
    client.push_contents(name, outer)
    response = client.put_manifest(name, "nested", outer)
    assert_manifest_created(client, response, name, outer)
    assert_pullable(client, name, "nested", outer)


def test_docker_manifest_list(client: Client, name: str) -> None:
    children = [image_manifest(media_type=DOCKER_MANIFEST) for _ in range(2)]
    index = index_manifest(children, media_type=DOCKER_MANIFEST_LIST)
    client.push_contents(name, index)
    response = client.put_manifest(name, "list", index)
    assert_manifest_created(client, response, name, index)
    assert_pullable(client, name, "list", index)


def test_empty_index(client: Client, name: str) -> None:
    index = index_manifest([])
    response = client.put_manifest(name, "empty", index)
    assert_manifest_created(client, response, name, index)


def test_artifact_with_empty_config_and_no_layers(client: Client, name: str) -> None:
    artifact = artifact_manifest("application/vnd.dockyard.test.v1")
    client.push_contents(name, artifact)
    response = client.put_manifest(name, "artifact", artifact)
    assert_manifest_created(client, response, name, artifact)
    assert_pullable(client, name, "artifact", artifact)
    empty = client.get(f"/v2/{name}/blobs/{digest_of(EMPTY_JSON)}")
    assert empty.content == b"{}"


def test_artifact_with_layers(client: Client, name: str) -> None:
    artifact = artifact_manifest("application/vnd.dockyard.sbom.v1",
                                 layers=[random_bytes(40), random_bytes(41)],
                                 annotations={"org.opencontainers.image.title": "sbom"})
    client.push_contents(name, artifact)
    response = client.put_manifest(name, "sbom", artifact)
    assert_manifest_created(client, response, name, artifact)


def test_artifact_with_custom_config_type(client: Client, name: str) -> None:
    # The pre-1.1 artifact convention: a custom config media type, no artifactType.
    manifest = image_manifest([random_bytes(20)], config=b'{"chart": "x"}',
                              config_media_type="application/vnd.cncf.helm.config.v1+json",
                              layer_media_type="application/vnd.cncf.helm.chart.content.v1.tar")
    client.push_contents(name, manifest)
    response = client.put_manifest(name, "0.1.0", manifest)
    assert_manifest_created(client, response, name, manifest)


def test_descriptors_with_embedded_data(client: Client, name: str) -> None:
    small = b"tiny"
    client.push_blob(name, EMPTY_JSON)
    client.push_blob(name, small)
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.dockyard.data.v1",
        "config": descriptor(OCI_EMPTY, EMPTY_JSON, data="e30="),
        "layers": [descriptor("text/plain", small, data="dGlueQ==",
                              annotations={"org.opencontainers.image.title": "t"})],
    }
    manifest = Manifest(json.dumps(document).encode(), OCI_MANIFEST)
    response = client.put_manifest(name, "data", manifest)
    assert_manifest_created(client, response, name, manifest)


def test_non_distributable_layers_need_not_be_pushed(client: Client, name: str) -> None:
    foreign = {
        **descriptor(OCI_NONDISTRIBUTABLE_LAYER, b"never pushed: oci"),
        "urls": ["https://example.com/layer.tar.gz"],
    }
    manifest = image_manifest([random_bytes(20)], extra_layers=[foreign])
    client.push_contents(name, manifest)
    response = client.put_manifest(name, "foreign", manifest)
    assert_manifest_created(client, response, name, manifest)


def test_docker_foreign_layers_need_not_be_pushed(client: Client, name: str) -> None:
    foreign = {
        **descriptor(DOCKER_FOREIGN_LAYER, b"never pushed: windows base"),
        "urls": ["https://example.com/base.tar.gz"],
    }
    manifest = image_manifest([random_bytes(20)], media_type=DOCKER_MANIFEST,
                              extra_layers=[foreign])
    client.push_contents(name, manifest)
    response = client.put_manifest(name, "foreign", manifest)
    assert_manifest_created(client, response, name, manifest)


def test_blobs_mounted_from_another_repository_count(client: Client, name: str) -> None:
    manifest = image_manifest()
    source = repo_name()
    client.push_contents(source, manifest)
    for blob in manifest.blobs:
        assert client.mount(name, digest_of(blob), source).status_code == 201
    response = client.put_manifest(name, "mounted", manifest)
    assert_manifest_created(client, response, name, manifest)


# -- subject ------------------------------------------------------------------------------------


def test_subject_header(client: Client, name: str) -> None:
    subject = client.push_image(name, "base")
    artifact = artifact_manifest("application/vnd.dockyard.sig.v1", subject=subject)
    client.push_contents(name, artifact)
    response = client.put_manifest(name, artifact.digest, artifact)
    assert_manifest_created(client, response, name, artifact)
    assert response.headers["OCI-Subject"] == subject.digest


def test_subject_header_when_subject_is_missing(client: Client, name: str) -> None:
    absent = image_manifest()  # never pushed
    artifact = artifact_manifest("application/vnd.dockyard.sig.v1", subject=absent)
    client.push_contents(name, artifact)
    response = client.put_manifest(name, artifact.digest, artifact)
    assert response.status_code == 201, describe(response)
    assert response.headers["OCI-Subject"] == absent.digest


def test_no_subject_header_without_subject(client: Client, name: str) -> None:
    manifest = image_manifest()
    response = client.push_manifest(name, manifest, "plain")
    assert "OCI-Subject" not in response.headers


# -- invalid manifests --------------------------------------------------------------------------


@pytest.mark.parametrize("body", [
    b"not json",
    b"{",
    b"",
    b"[]",
    b'"a string"',
    b"\xff\xfe\x00garbage",
    b'{"schemaVersion": 2, "mediaType": "' + OCI_MANIFEST.encode() + b'"}',
    b'{"schemaVersion": 3, "mediaType": "' + OCI_MANIFEST.encode() + b'", "config": {}}',
    b'{"schemaVersion": 2, "mediaType": "' + OCI_INDEX.encode() + b'", "manifests": {}}',
    b'{"schemaVersion": 2, "mediaType": "' + OCI_MANIFEST.encode()
    + b'", "config": {"mediaType": "x", "digest": "sha256:zz", "size": 1}}',
    b'{"schemaVersion": 2, "mediaType": "' + OCI_MANIFEST.encode()
    + b'", "config": {"mediaType": "x", "digest": "sha256:' + b"0" * 64 + b'", "size": 1},'
    + b' "subject": "sha256:' + b"0" * 64 + b'"}',
    b'{"schemaVersion": 2, "mediaType": "' + OCI_MANIFEST.encode()
    + b'", "config": {"mediaType": "x", "digest": "sha256:' + b"0" * 64 + b'", "size": 1},'
    + b' "layers": [], "annotations": {"k": 1}}',
    b'{"schemaVersion": 2, "mediaType": "' + OCI_MANIFEST.encode()
    + b'", "config": {"mediaType": "x", "digest": "sha256:' + b"0" * 64 + b'", "size": -1}}',
    b'{"schemaVersion": 2, "mediaType": "' + OCI_MANIFEST.encode()
    + b'", "config": {"mediaType": "x", "digest": "sha256:' + b"0" * 64 + b'", "size": "1"}}',
])
def test_invalid_manifest_body(client: Client, name: str, body: bytes) -> None:
    media_type = OCI_INDEX if OCI_INDEX.encode() in body else OCI_MANIFEST
    response = client.put_manifest(name, "bad", body, media_type=media_type)
    assert_error(response, 400, "MANIFEST_INVALID")


def test_media_type_differs_from_content_type(client: Client, name: str) -> None:
    manifest = image_manifest()
    client.push_contents(name, manifest)
    response = client.put_manifest(name, "mismatch", manifest, media_type=DOCKER_MANIFEST)
    assert_error(response, 400, "MANIFEST_INVALID")
    response = client.put_manifest(name, "mismatch", manifest, media_type=OCI_INDEX)
    assert_error(response, 400, "MANIFEST_INVALID")


def test_docker_schema1_is_refused(client: Client, name: str) -> None:
    body = json.dumps({"schemaVersion": 1, "name": name, "tag": "old", "architecture": "amd64",
                       "fsLayers": [], "history": []}).encode()
    for media_type in ("application/vnd.docker.distribution.manifest.v1+json",
                       "application/vnd.docker.distribution.manifest.v1+prettyjws"):
        response = client.put_manifest(name, "old", body, media_type=media_type)
        assert_error(response, 400, "MANIFEST_INVALID", "UNSUPPORTED")


def test_missing_config_blob(client: Client, name: str) -> None:
    manifest = image_manifest()
    config, *layers = manifest.blobs
    for layer in layers:
        client.push_blob(name, layer)
    response = client.put_manifest(name, "nocfg", manifest)
    errors = assert_error(response, 400, "MANIFEST_BLOB_UNKNOWN")
    assert digest_of(config) in json.dumps(errors)


def test_missing_layer_blob(client: Client, name: str) -> None:
    manifest = image_manifest([random_bytes(10), random_bytes(11)])
    config, present, missing = manifest.blobs
    client.push_blob(name, config)
    client.push_blob(name, present)
    response = client.put_manifest(name, "nolayer", manifest)
    errors = assert_error(response, 400, "MANIFEST_BLOB_UNKNOWN")
    assert digest_of(missing) in json.dumps(errors)


def test_blob_only_in_another_repository(client: Client, name: str) -> None:
    manifest = image_manifest()
    client.push_contents(repo_name(), manifest)
    response = client.put_manifest(name, "elsewhere", manifest)
    assert_error(response, 400, "MANIFEST_BLOB_UNKNOWN")


def test_index_with_missing_child(client: Client, name: str) -> None:
    present, missing = image_manifest(), image_manifest()
    client.push_manifest(name, present)
    client.push_contents(name, missing)  # blobs only; the child manifest itself is absent
    index = index_manifest([present, missing])
    response = client.put_manifest(name, "broken", index)
    assert_error(response, 400, "MANIFEST_UNKNOWN")


@pytest.mark.parametrize("tag", [
    "-leading-dash", ".leading-dot", "a" * 129, "has space", "plus+sign", "%C3%A9",
    "new%0Aline", "trailing%0A", "x%00",
])
def test_invalid_tag_in_url(client: Client, name: str, tag: str) -> None:
    manifest = image_manifest()
    client.push_contents(name, manifest)
    response = client.put_manifest(name, tag, manifest)
    assert_error(response, 400, "MANIFEST_INVALID")
    assert_error(client.get(f"/v2/{name}/manifests/{manifest.digest}"), 404, "MANIFEST_UNKNOWN",
                 "NAME_UNKNOWN")


def test_tag_with_encoded_slash(client: Client, name: str) -> None:
    # Whether %2F reaches the router decoded or not, it is never a valid tag.
    manifest = image_manifest()
    client.push_contents(name, manifest)
    response = client.put_manifest(name, "sl%2Fash", manifest)
    assert_error(response, (400, 404))


@pytest.mark.parametrize("reference", [".INVALID_NAME", "-dash", "a" * 129])
def test_a_reference_no_tag_can_have_names_no_manifest(client: Client, name: str,
                                                       reference: str) -> None:
    manifest = client.push_image(name, "ok")
    assert_error(client.get(f"/v2/{name}/manifests/{reference}"), 404, "MANIFEST_UNKNOWN")
    assert client.head(f"/v2/{name}/manifests/{reference}").status_code == 404
    assert_error(client.put_manifest(name, reference, manifest), 400, "MANIFEST_INVALID")


@pytest.mark.parametrize("tag", ["-dash", "a" * 129, "with space", "colon:tag", "", "tab\t"])
def test_invalid_tag_parameter(client: Client, name: str, tag: str) -> None:
    manifest = image_manifest()
    client.push_contents(name, manifest)
    response = client.put_manifest(name, manifest.digest, manifest,
                                   params=[("tag", "fine"), ("tag", tag)])
    assert_error(response, 400, "MANIFEST_INVALID")
    # The request is refused as a whole: the valid tag beside the bad one is not created.
    assert_error(client.get(f"/v2/{name}/manifests/fine"), 404, "MANIFEST_UNKNOWN",
                 "NAME_UNKNOWN")


@pytest.mark.parametrize("reference", [
    "sha256:abc",
    "sha256:" + "A" * 64,
    "sha256:" + "z" * 64,
    "md5:" + "0" * 32,
    "sha512:" + "0" * 64,
    "sha256:" + "0" * 65,
    ":nothing",
])
def test_malformed_digest_reference(client: Client, name: str, reference: str) -> None:
    manifest = client.push_image(name, "ok")
    assert_error(client.put_manifest(name, reference, manifest), 400, "DIGEST_INVALID")
    assert_error(client.get(f"/v2/{name}/manifests/{reference}"), 400, "DIGEST_INVALID")
    assert client.head(f"/v2/{name}/manifests/{reference}").status_code == 400
    assert_error(client.delete(f"/v2/{name}/manifests/{reference}"), 400, "DIGEST_INVALID")


def test_manifest_over_the_default_size_limit(client: Client, name: str) -> None:
    manifest = image_manifest(annotations={"pad": "x" * (4 * MIB)})
    client.push_contents(name, manifest)
    assert manifest.size > 4 * MIB
    response = client.put_manifest(name, "huge", manifest)
    assert_error(response, 413)
    assert_error(client.get(f"/v2/{name}/manifests/huge"), 404, "MANIFEST_UNKNOWN")


def test_manifest_just_under_the_default_limit(client: Client, name: str) -> None:
    manifest = image_manifest(annotations={"pad": "x" * (4 * MIB - 2048)})
    client.push_contents(name, manifest)
    assert manifest.size <= 4 * MIB
    response = client.put_manifest(name, "big", manifest)
    assert_manifest_created(client, response, name, manifest)


def test_rejected_put_keeps_the_old_tag(client: Client, name: str) -> None:
    good = client.push_image(name, "stable")
    attempts = [
        (b"{broken", OCI_MANIFEST),
        (image_manifest().body, OCI_MANIFEST),  # blobs never pushed
        (index_manifest([image_manifest()]).body, OCI_INDEX),  # child never pushed
        (good.body, DOCKER_MANIFEST),  # type mismatch
    ]
    for body, media_type in attempts:
        response = client.put_manifest(name, "stable", body, media_type=media_type)
        assert 400 <= response.status_code < 500, describe(response)
        assert_pullable(client, name, "stable", good)
    huge = image_manifest(annotations={"pad": "x" * (4 * MIB)})
    client.push_contents(name, huge)
    assert client.put_manifest(name, "stable", huge).status_code == 413
    assert_pullable(client, name, "stable", good)


# -- missing manifests --------------------------------------------------------------------------


def test_unknown_tag(client: Client, name: str) -> None:
    client.push_image(name, "present")
    assert_error(client.get(f"/v2/{name}/manifests/absent"), 404, "MANIFEST_UNKNOWN")
    assert_head_error(client.head(f"/v2/{name}/manifests/absent"))


def test_unknown_digest(client: Client, name: str) -> None:
    client.push_image(name, "present")
    digest = image_manifest().digest
    assert_error(client.get(f"/v2/{name}/manifests/{digest}"), 404, "MANIFEST_UNKNOWN")
    assert_head_error(client.head(f"/v2/{name}/manifests/{digest}"))


def test_unknown_repository(client: Client) -> None:
    name = repo_name()
    for reference in ("latest", image_manifest().digest):
        response = client.get(f"/v2/{name}/manifests/{reference}")
        assert_error(response, 404, "MANIFEST_UNKNOWN", "NAME_UNKNOWN")
        assert_head_error(client.head(f"/v2/{name}/manifests/{reference}"))


def test_manifests_are_scoped_to_their_repository(client: Client, name: str) -> None:
    manifest = client.push_image(name, "mine")
    other = repo_name()
    client.push_image(other, "theirs")
    for reference in ("mine", manifest.digest):
        assert_error(client.get(f"/v2/{other}/manifests/{reference}"), 404, "MANIFEST_UNKNOWN")


# -- deleting -----------------------------------------------------------------------------------


def test_delete_by_digest_removes_manifest_and_its_tags(client: Client, name: str) -> None:
    doomed = client.push_image(name, "doomed")
    client.put_manifest(name, "alias", doomed)
    kept = client.push_image(name, "kept")
    response = client.delete(f"/v2/{name}/manifests/{doomed.digest}")
    assert response.status_code == 202, describe(response)
    assert response.headers[API_VERSION_HEADER] == API_VERSION
    for reference in (doomed.digest, "doomed", "alias"):
        assert_error(client.get(f"/v2/{name}/manifests/{reference}"), 404, "MANIFEST_UNKNOWN")
        assert_head_error(client.head(f"/v2/{name}/manifests/{reference}"))
    assert client.tags(name) == ["kept"]
    assert_pullable(client, name, "kept", kept)


def test_delete_by_tag_removes_only_the_tag(client: Client, name: str) -> None:
    manifest = client.push_image(name, "gone")
    client.put_manifest(name, "stays", manifest)
    response = client.delete(f"/v2/{name}/manifests/gone")
    assert response.status_code == 202, describe(response)
    assert_error(client.get(f"/v2/{name}/manifests/gone"), 404, "MANIFEST_UNKNOWN")
    assert_pullable(client, name, manifest.digest, manifest)
    assert_pullable(client, name, "stays", manifest)
    assert client.tags(name) == ["stays"]


def test_delete_unknown_manifest(client: Client, name: str) -> None:
    client.push_image(name, "present")
    response = client.delete(f"/v2/{name}/manifests/{image_manifest().digest}")
    assert_error(response, 404, "MANIFEST_UNKNOWN")
    assert_error(client.delete(f"/v2/{name}/manifests/absent"), 404, "MANIFEST_UNKNOWN")


def test_delete_in_unknown_repository(client: Client) -> None:
    response = client.delete(f"/v2/{repo_name()}/manifests/{image_manifest().digest}")
    assert_error(response, 404, "MANIFEST_UNKNOWN", "NAME_UNKNOWN")


def test_delete_twice(client: Client, name: str) -> None:
    manifest = client.push_image(name, "once")
    assert client.delete(f"/v2/{name}/manifests/{manifest.digest}").status_code == 202
    response = client.delete(f"/v2/{name}/manifests/{manifest.digest}")
    assert_error(response, 404, "MANIFEST_UNKNOWN")


def test_push_again_after_delete(client: Client, name: str) -> None:
    manifest = client.push_image(name, "again")
    assert client.delete(f"/v2/{name}/manifests/{manifest.digest}").status_code == 202
    response = client.put_manifest(name, "again", manifest)
    assert_manifest_created(client, response, name, manifest)
    assert_pullable(client, name, "again", manifest)

